//! Stories of traffic safety: onboarding a live service waits for the primary, a primary that
//! is not ready never gets the traffic of a healthy canary, a primary scaled to zero is not
//! ready, the status says why, and routes that drifted from the recorded weight cost no step.

mod common;

use common::messages;
use fledge_api::canary::{CanaryCondition, ConditionStatus};
use fledge_api::{CanaryPhase, CanaryStatus};
use fledge_engine::simulation::{AllPassing, Cluster, Simulation, Timing};
use fledge_engine::{
    Action, EventLevel, Observation, PRIMARY_NOT_READY, PRIMARY_READY, Plan, Revision, Rollout,
    RouteTarget, Routes, Timestamp, WorkloadState, World,
};
use pretty_assertions::assert_eq;

fn manifest(extra_spec: &str, analysis: &str) -> fledge_api::Canary {
    common::canary(&format!(
        "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {{name: podinfo, namespace: test}}\nspec:\n  provider: istio\n  progressDeadlineSeconds: 120\n  targetRef: {{apiVersion: apps/v1, kind: Deployment, name: podinfo}}\n  service: {{port: 9898}}{extra_spec}\n  analysis:\n{analysis}\n"
    ))
}

fn weights() -> fledge_api::Canary {
    manifest(
        "",
        "    interval: 30s\n    threshold: 5\n    stepWeight: 10\n    maxWeight: 50",
    )
}

fn with_autoscaler() -> fledge_api::Canary {
    manifest(
        "\n  autoscalerRef: {apiVersion: autoscaling/v2, kind: HorizontalPodAutoscaler, name: podinfo}",
        "    interval: 30s\n    threshold: 5\n    stepWeight: 10\n    maxWeight: 50",
    )
}

fn start() -> Timestamp {
    Timestamp::from_second(1_700_000_000).expect("a valid time")
}

fn onboarding(canary: &fledge_api::Canary, timing: Timing) -> Simulation {
    let rollout = Rollout::new(canary, Some("istio")).expect("a plannable canary");
    Simulation::new(rollout, Cluster::new("v1", 2, timing), start())
}

fn primary_condition(status: &CanaryStatus) -> Option<&CanaryCondition> {
    status.conditions.iter().find(|c| c.type_ == PRIMARY_READY)
}

fn all_to_primary() -> Action {
    Action::SetRoutes(RouteTarget {
        primary: 100,
        canary: 0,
        mirror: None,
        session_affinity: None,
    })
}

#[test]
fn onboarding_creates_the_primary_and_moves_nothing_until_it_is_ready() {
    let canary = with_autoscaler();
    let timing = Timing::default().primary(Some(2));
    let mut sim = onboarding(&canary, timing);
    let mut checks = AllPassing { value: 100.0 };
    for tick in 0..3 {
        let record = sim.step(&mut checks).expect("plans");
        assert_eq!(
            record.plan.actions,
            [Action::InitializePrimary],
            "tick {tick}: only the primary is created"
        );
        let said: Vec<_> = record.plan.messages().collect();
        assert_eq!(said.len(), 1);
        assert!(
            said[0].starts_with("podinfo-primary.test not ready: waiting for rollout to finish: "),
            "{said:?}"
        );
        assert_eq!(record.plan.events[0].level, EventLevel::Warning);
        let condition = primary_condition(&sim.status).expect("the status says why");
        assert_eq!(
            (
                condition.status,
                condition.reason.as_deref(),
                condition.message.as_deref()
            ),
            (
                ConditionStatus::False,
                Some(PRIMARY_NOT_READY),
                Some(record.plan.events[0].message.as_str())
            )
        );
        assert_eq!(sim.status.phase, CanaryPhase::Initializing);
        assert!(sim.cluster.canary_running(), "the target keeps serving");
    }
    let ready = sim.step(&mut checks).expect("plans");
    assert_eq!(
        ready.plan.actions,
        [
            Action::InitializePrimary,
            Action::InitializeRouting,
            all_to_primary(),
            Action::ReconcilePrimaryAutoscaler,
            Action::PauseCanaryAutoscaler,
            Action::ScaleCanaryToZero,
        ],
        "Flagger's order: primary, then the apex and the routes, then the target goes down"
    );
    assert_eq!(
        ready.plan.messages().collect::<Vec<_>>(),
        ["Initialization done! podinfo.test"]
    );
    assert_eq!(sim.status.phase, CanaryPhase::Initialized);
    assert_eq!(primary_condition(&sim.status), None, "removed once ready");
    assert_eq!(
        sim.status
            .conditions
            .iter()
            .map(|c| c.type_.as_str())
            .collect::<Vec<_>>(),
        ["Promoted"]
    );
}

#[test]
fn a_primary_that_never_becomes_ready_keeps_the_canary_initializing_and_the_target_serving() {
    let canary = weights();
    let mut sim = onboarding(&canary, Timing::default().primary(None));
    let mut checks = AllPassing { value: 100.0 };
    // 40 ticks of 30s: ten times the progress deadline of 120s.
    let mut records = Vec::new();
    for _ in 0..40 {
        records.push(sim.step(&mut checks).expect("plans"));
    }
    assert!(
        records
            .iter()
            .all(|r| r.plan.actions == [Action::InitializePrimary]),
        "no routing, no scale-down, no rollback"
    );
    assert!(
        messages(&records)
            .iter()
            .all(|m| m.starts_with("podinfo-primary.test not ready: waiting for rollout to finish")),
        "{:?}",
        messages(&records)
    );
    assert_eq!(sim.status.phase, CanaryPhase::Initializing);
    assert!(sim.cluster.canary_running());
    assert_eq!(sim.cluster.routes, Routes::ALL_TO_PRIMARY);
    assert!(primary_condition(&sim.status).is_some());

    // A new revision of the target starts the primary over: it follows the target while
    // Initializing.
    let (tick, now) = (sim.tick, sim.now);
    sim.cluster.deploy("v2", tick, now);
    let record = sim.step(&mut checks).expect("plans");
    assert_eq!(record.plan.actions, [Action::InitializePrimary]);
    assert_eq!(sim.cluster.primary_revision.as_deref(), Some("v2"));
    assert_eq!(sim.status.phase, CanaryPhase::Initializing);
}

#[test]
fn with_skip_analysis_onboarding_does_not_wait_for_the_primary() {
    let mut canary = with_autoscaler();
    canary.spec.skip_analysis = true;
    let mut sim = onboarding(&canary, Timing::default().primary(None));
    let record = sim.step(&mut AllPassing { value: 100.0 }).expect("plans");
    assert_eq!(
        record.plan.actions,
        [
            Action::InitializePrimary,
            Action::InitializeRouting,
            all_to_primary(),
            Action::ReconcilePrimaryAutoscaler,
            Action::PauseCanaryAutoscaler,
            Action::ScaleCanaryToZero
        ]
    );
}

/// A canary in `phase` at `canary_weight`, with routes to match, judged in a world whose
/// primary is `primary` and whose canary is `canary`.
fn mid_rollout(
    phase: CanaryPhase,
    canary_weight: u32,
    primary: WorkloadState,
    canary: WorkloadState,
) -> (CanaryStatus, World) {
    let status = CanaryStatus {
        phase,
        canary_weight: i32::try_from(canary_weight).expect("a percentage"),
        failed_checks: 2,
        last_applied_spec: Some("v2".into()),
        last_promoted_spec: Some("v1".into()),
        last_transition_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(start())),
        ..CanaryStatus::default()
    };
    let world = World {
        primary: Some(primary),
        canary,
        revision: Revision::new("v2"),
        routes: Routes::split(100 - canary_weight, canary_weight),
        ..World::default()
    };
    (status, world)
}

fn plan(canary: &fledge_api::Canary, status: &CanaryStatus, world: World, at: i64) -> Plan {
    let rollout = Rollout::new(canary, Some("istio")).expect("a plannable canary");
    let now = Timestamp::from_second(start().as_second() + at).expect("a valid time");
    assert!(
        rollout.needs(status, &world, now).is_empty(),
        "nothing is analysed in these ticks"
    );
    rollout
        .plan(status, &Observation::of(world), now)
        .expect("plans")
}

fn stuck_primary() -> WorkloadState {
    WorkloadState::rolling_out(2, 0, start())
}

#[test]
fn while_analysing_a_primary_that_is_not_ready_halts_the_analysis_and_gets_no_traffic_back() {
    let canary = weights();
    for phase in [CanaryPhase::Progressing, CanaryPhase::WaitingPromotion] {
        // Within the deadline (retriable) and long past it (stuck): the same halt.
        for at in [60, 600] {
            let (status, world) = mid_rollout(phase, 30, stuck_primary(), WorkloadState::ready(2));
            let plan = plan(&canary, &status, world, at);
            assert_eq!(
                plan.messages().collect::<Vec<_>>(),
                [
                    "podinfo-primary.test not ready: waiting for rollout to finish: 0 of 2 (readyThreshold 100%) updated replicas are available"
                ],
                "{phase:?} at {at}s"
            );
            assert_eq!(plan.actions, [], "no routes, no scale-down");
            let mut expected = status.clone();
            expected.conditions = plan.status.conditions.clone();
            assert_eq!(
                plan.status, expected,
                "phase, weight and failedChecks unchanged"
            );
            assert!(primary_condition(&plan.status).is_some());
        }
    }
}

#[test]
fn a_primary_stuck_in_promotion_fails_it_towards_a_ready_canary_and_records_the_split() {
    let canary = weights();
    let (status, world) = mid_rollout(
        CanaryPhase::Promoting,
        50,
        stuck_primary(),
        WorkloadState::ready(2),
    );
    let within_deadline = plan(&canary, &status, world.clone(), 60);
    assert_eq!(within_deadline.actions, [], "the primary may still come up");
    assert_eq!(within_deadline.status.phase, CanaryPhase::Promoting);

    let stuck = plan(&canary, &status, world, 600);
    assert_eq!(
        stuck.actions,
        [Action::SetRoutes(RouteTarget {
            primary: 0,
            canary: 100,
            mirror: None,
            session_affinity: None
        })]
    );
    assert_eq!(stuck.status.phase, CanaryPhase::Failed);
    assert_eq!(
        stuck.status.canary_weight, 100,
        "at rest the routes equal status.canaryWeight, so drift repair keeps 0/100"
    );
    assert!(
        stuck
            .messages()
            .any(|m| m.starts_with("Promotion of podinfo.test failed, primary not ready:"))
    );
    assert_eq!(
        primary_condition(&stuck.status).and_then(|c| c.message.as_deref()),
        Some(
            "podinfo-primary.test not ready: waiting for rollout to finish: 0 of 2 (readyThreshold 100%) updated replicas are available"
        ),
        "the failed canary says why"
    );
}

#[test]
fn a_primary_stuck_in_promotion_beside_a_canary_that_is_not_ready_either_changes_nothing() {
    let canary = weights();
    for phase in [CanaryPhase::Promoting, CanaryPhase::Finalising] {
        let (status, world) = mid_rollout(
            phase,
            50,
            stuck_primary(),
            WorkloadState::rolling_out(2, 1, start()),
        );
        let plan = plan(&canary, &status, world, 600);
        assert_eq!(plan.actions, [], "{phase:?}");
        assert_eq!(plan.status.phase, phase);
        assert_eq!(
            plan.messages().collect::<Vec<_>>(),
            [
                "podinfo-primary.test not ready: waiting for rollout to finish: 0 of 2 (readyThreshold 100%) updated replicas are available"
            ]
        );
    }
}

#[test]
fn a_primary_scaled_to_zero_is_not_ready_and_says_so_in_flaggers_words() {
    let canary = weights();
    for phase in [CanaryPhase::Progressing, CanaryPhase::Promoting] {
        let (status, world) = mid_rollout(
            phase,
            20,
            WorkloadState::scaled_to_zero(),
            WorkloadState::ready(2),
        );
        // Long past the deadline: still a halt, never a rollback or a failed promotion.
        let plan = plan(&canary, &status, world, 6000);
        assert_eq!(
            plan.messages().collect::<Vec<_>>(),
            ["halt podinfo.test advancement: primary deployment is scaled to zero"]
        );
        assert_eq!(plan.actions, []);
        assert_eq!(plan.status.phase, phase);
    }
}

#[test]
fn while_analysing_a_canary_scaled_to_zero_gets_no_traffic_and_rolls_back_at_the_deadline() {
    let canary = weights();
    let (status, mut world) = mid_rollout(
        CanaryPhase::Progressing,
        0,
        WorkloadState::ready(2),
        WorkloadState::scaled_to_zero(),
    );
    world.routes = Routes::ALL_TO_PRIMARY;
    let waiting = plan(&canary, &status, world.clone(), 60);
    assert_eq!(
        waiting.messages().collect::<Vec<_>>(),
        ["canary deployment podinfo.test not ready: deployment \"podinfo\" is scaled to zero"]
    );
    assert_eq!(waiting.actions, []);
    let stuck = plan(&canary, &status, world, 121);
    assert_eq!(stuck.status.phase, CanaryPhase::Failed);
}

#[test]
fn routes_above_the_recorded_weight_are_set_back_and_the_step_waits_an_interval() {
    let canary = weights();
    // The tick that stepped 10 -> 20 wrote the routes but not the status.
    let (status, mut world) = mid_rollout(
        CanaryPhase::Progressing,
        10,
        WorkloadState::ready(2),
        WorkloadState::ready(2),
    );
    world.routes = Routes::split(80, 20);
    let plan = plan(&canary, &status, world, 35);
    assert_eq!(
        plan.actions,
        [Action::SetRoutes(RouteTarget {
            primary: 90,
            canary: 10,
            mirror: None,
            session_affinity: None
        })]
    );
    assert_eq!(
        plan.messages().collect::<Vec<_>>(),
        ["Routes of podinfo.test differ from the recorded canary weight 10; setting them back"]
    );
    assert_eq!(plan.status.canary_weight, 10);
    assert_eq!(plan.status.failed_checks, 2, "nothing judged");
    assert_eq!(
        plan.status.last_transition_time.map(|t| t.0.as_second()),
        Some(start().as_second() + 35)
    );
}

#[test]
fn routes_below_the_recorded_weight_are_recorded_not_raised() {
    let canary = weights();
    let (status, mut world) = mid_rollout(
        CanaryPhase::Progressing,
        30,
        WorkloadState::ready(2),
        WorkloadState::ready(2),
    );
    world.routes = Routes::split(90, 10);
    let plan = plan(&canary, &status, world, 35);
    assert_eq!(plan.actions, [], "no traffic moves to the canary unjudged");
    assert_eq!(plan.status.canary_weight, 10);
    assert_eq!(
        plan.messages().collect::<Vec<_>>(),
        ["Routes of podinfo.test give the canary weight 10, below the recorded 30; recording 10"]
    );
}

#[test]
fn after_a_failed_promotion_the_next_rollout_starts_with_traffic_back_on_the_recovered_primary() {
    let canary = weights();
    let (mut status, world) = mid_rollout(
        CanaryPhase::Promoting,
        50,
        stuck_primary(),
        WorkloadState::ready(2),
    );
    status = plan(&canary, &status, world, 600).status;
    assert_eq!(status.phase, CanaryPhase::Failed);
    // The primary recovers and a new revision arrives: the rollout starts at weight 0, so
    // the routes left at 0/100 go back to the primary before any analysis.
    let world = World {
        primary: Some(WorkloadState::ready(2)),
        canary: WorkloadState::ready(2),
        revision: Revision::new("v3"),
        routes: Routes::ALL_TO_CANARY,
        ..World::default()
    };
    let detected = plan(&canary, &status, world, 630);
    assert_eq!(detected.status.phase, CanaryPhase::Progressing);
    assert_eq!(detected.status.canary_weight, 0);
    assert_eq!(
        detected.actions.first(),
        Some(&all_to_primary()),
        "the new, unjudged revision gets no traffic: {:?}",
        detected.actions
    );
}

#[test]
fn after_a_failed_promotion_a_blue_green_rollout_also_starts_on_the_primary() {
    let canary = manifest("", "    interval: 30s\n    threshold: 5\n    iterations: 3");
    let (mut status, world) = mid_rollout(
        CanaryPhase::Promoting,
        0,
        stuck_primary(),
        WorkloadState::ready(2),
    );
    status = plan(&canary, &status, world, 600).status;
    assert_eq!(status.phase, CanaryPhase::Failed);
    let world = World {
        primary: Some(WorkloadState::ready(2)),
        canary: WorkloadState::ready(2),
        revision: Revision::new("v3"),
        routes: Routes::ALL_TO_CANARY,
        ..World::default()
    };
    let detected = plan(&canary, &status, world, 630);
    assert_eq!(detected.status.phase, CanaryPhase::Progressing);
    assert_eq!(detected.actions.first(), Some(&all_to_primary()));
}
