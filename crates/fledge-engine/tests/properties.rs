//! The engine's invariants, checked on random canaries against random worlds.

mod common;

use common::random::{Case, Flaky, Shape, case, observe, passing, start};
use fledge_api::strategy::Strategy as Release;
use fledge_api::{CanaryPhase, CanaryStatus};
use fledge_engine::simulation::{AllPassing, CheckSource, Cluster, Simulation, Timing};
use fledge_engine::{Action, Observation, Plan, Rollout, advance};
use proptest::prelude::*;
/// Drives `case` for `ticks` ticks, checking every plan and every action as it is carried out;
/// returns every phase the canary went through.
fn check_invariants(
    case: &Case,
    timing: Timing,
    checks: &mut dyn CheckSource,
    ticks: u32,
    new_revision_at: Option<u32>,
) -> Vec<CanaryPhase> {
    drive(
        case,
        timing,
        checks,
        ticks,
        new_revision_at,
        &mut |_, _, _| {},
    )
}

/// As [`check_invariants`], with `also` checking every plan against the status and the
/// observation it was planned from.
fn drive(
    case: &Case,
    timing: Timing,
    checks: &mut dyn CheckSource,
    ticks: u32,
    new_revision_at: Option<u32>,
    also: &mut dyn FnMut(&CanaryStatus, &Observation, &Plan),
) -> Vec<CanaryPhase> {
    let canary = case.canary();
    let rollout = Rollout::new(&canary, Some("istio")).expect("a plannable canary");
    let max_weight = rollout.settings().max_weight;
    let mut cluster = Cluster::new("v1", 2, timing);
    let mut status = CanaryStatus::default();
    let mut now = start();
    let mut phases = Vec::new();
    let mut deployed = false;
    for tick in 0..ticks {
        // The first new revision arrives once the canary is initialised; another may follow.
        let first = !deployed && status.phase == CanaryPhase::Initialized;
        if first || (deployed && Some(tick) == new_revision_at) {
            deployed = true;
            cluster.deploy(&format!("v{}", tick + 2), tick, now);
        }
        let observation = observe(&rollout, &status, &cluster, tick, now, checks);
        let plan = rollout
            .plan(&status, &observation, now)
            .expect("every needed check was observed");
        assert_eq!(
            Ok(&plan),
            rollout.plan(&status, &observation, now).as_ref(),
            "the same inputs give the same plan"
        );
        check_plan(&rollout, &status, &observation, &plan, max_weight);
        also(&status, &observation, &plan);
        for action in &plan.actions {
            if matches!(action, Action::ScaleCanaryToZero) {
                assert_eq!(
                    cluster.routes.canary, 0,
                    "the canary is scaled down only once it gets no traffic: {plan:?}"
                );
            }
            cluster.apply(action, tick, now);
            assert!(
                cluster
                    .world(tick)
                    .primary
                    .is_none_or(|p| p.desired_replicas > 0),
                "the primary is never scaled to zero"
            );
        }
        status = plan.status;
        if phases.last() != Some(&status.phase) {
            phases.push(status.phase);
        }
        now = advance(now, plan.requeue_after);
    }
    phases
}

fn check_plan(
    rollout: &Rollout,
    before: &CanaryStatus,
    observation: &Observation,
    plan: &Plan,
    max_weight: u32,
) {
    for action in &plan.actions {
        if let Action::SetRoutes(target) = action {
            assert_eq!(
                target.primary + target.canary,
                100,
                "weights sum to 100: {target:?}"
            );
            assert!(target.canary <= 100 && target.primary <= 100);
            if rollout.strategy() == Release::Canary {
                assert!(
                    target.canary <= max_weight,
                    "canary weight {} above maxWeight {max_weight}",
                    target.canary
                );
            }
        }
    }
    let analysing = matches!(
        before.phase,
        CanaryPhase::Progressing | CanaryPhase::WaitingPromotion
    );
    let world = &observation.world;
    let workloads_ready = world.canary.available_replicas >= world.canary.desired_replicas
        && world
            .primary
            .as_ref()
            .is_some_and(|p| p.available_replicas >= p.desired_replicas);
    let same_revision =
        before.last_applied_spec.as_deref() == Some(world.revision.spec_hash.as_str());
    if analysing
        && workloads_ready
        && same_revision
        && u32::try_from(before.failed_checks).unwrap_or(0) >= rollout.settings().threshold
    {
        assert_eq!(
            plan.status.phase,
            CanaryPhase::Failed,
            "failedChecks >= threshold rolls back in that tick"
        );
        let routes_first = plan
            .actions
            .iter()
            .position(|a| matches!(a, Action::SetRoutes(t) if t.canary == 0));
        let scale_down = plan
            .actions
            .iter()
            .position(|a| matches!(a, Action::ScaleCanaryToZero));
        assert!(
            routes_first < scale_down,
            "routes go to the primary before the canary is scaled down"
        );
    }
    if plan.actions.contains(&Action::PromotePrimary) {
        assert!(
            passing(observation),
            "promotion only in a tick whose analysis passed"
        );
        let gates_open = observation
            .webhooks
            .iter()
            .filter(|(name, _)| name.as_str() == "promotion-gate")
            .all(|(_, outcome)| outcome.passed());
        assert!(
            gates_open,
            "promotion only once every confirm-promotion gate opened"
        );
        match rollout.strategy() {
            Release::Canary => assert!(
                world.routes.canary >= rollout.settings().max_weight,
                "every step passed"
            ),
            Release::AbTesting => assert!(before.iterations as u32 >= rollout.iterations()),
            Release::BlueGreen | Release::BlueGreenMirroring => {
                assert!(before.iterations as u32 > rollout.iterations());
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn invariants_hold_against_flaky_checks_and_slow_workloads(
        case in case(),
        seed in any::<u64>(),
        failure_percent in 0u64..60,
        canary_delay in proptest::option::of(0u32..4),
        primary_delay in 0u32..3,
        new_revision_at in proptest::option::of(3u32..30),
    ) {
        let timing = Timing { canary_ready_after: canary_delay, ..Timing::default() }.primary(Some(primary_delay));
        let mut checks = Flaky { seed, failure_percent };
        let _phases = check_invariants(&case, timing, &mut checks, 60, new_revision_at);
    }

    #[test]
    fn with_every_check_passing_a_rollout_succeeds_in_exactly_flaggers_number_of_ticks(case in case()) {
        let rollout = Rollout::new(&case.canary(), Some("istio")).expect("a plannable canary");
        let interval = rollout.interval();
        let mut checks = AllPassing { value: 100.0 };
        let mut sim = common::started(&case.canary(), Timing::default(), &mut checks);
        let began = sim.now;
        let mut ticks = 0;
        while sim.status.phase != CanaryPhase::Succeeded {
            let record = sim.step(&mut checks).expect("every tick plans");
            ticks += 1;
            prop_assert!(ticks <= case.ticks_to_success(), "not done after {ticks} ticks: {:?}", record.events);
        }
        prop_assert_eq!(ticks, case.ticks_to_success());
        let elapsed = u64::try_from(sim.now.as_second() - began.as_second()).expect("time runs forward");
        prop_assert_eq!(elapsed, u64::from(ticks) * interval.as_secs(), "interval × ticks of simulated time");
    }

    #[test]
    fn a_crash_after_any_prefix_of_a_plan_converges_to_the_same_end(
        case in case(),
        crash_tick in 0u32..20,
        crash_after in 0usize..6,
    ) {
        let canary = case.canary();
        let mut checks = AllPassing { value: 100.0 };
        let mut clean = common::started(&canary, Timing::default(), &mut checks);
        common::run_to_end(&mut clean, &mut checks, 200);

        let mut crashed = common::started(&canary, Timing::default(), &mut checks);
        for _ in 0..crash_tick {
            crashed.step(&mut checks).expect("every tick plans");
        }
        crashed.step_with_crash(&mut checks, Some(crash_after)).expect("the crashing tick plans");
        common::run_to_end(&mut crashed, &mut checks, 200);

        prop_assert_eq!(crashed.status.phase, CanaryPhase::Succeeded);
        prop_assert_eq!(&crashed.cluster.routes, &clean.cluster.routes);
        prop_assert_eq!(&crashed.cluster.primary_revision, &clean.cluster.primary_revision);
        prop_assert_eq!(crashed.cluster.canary_running(), clean.cluster.canary_running());
        prop_assert_eq!(&crashed.status.last_promoted_spec, &clean.status.last_promoted_spec);
    }
}

#[test]
fn a_canary_that_never_becomes_ready_is_rolled_back_at_the_progress_deadline() {
    let canary = common::canary(
        "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {name: podinfo, namespace: test}\nspec:\n  provider: istio\n  progressDeadlineSeconds: 120\n  targetRef: {name: podinfo}\n  service: {port: 80}\n  analysis: {interval: 30s, stepWeight: 10, maxWeight: 50}\n",
    );
    let timing = Timing {
        canary_ready_after: None,
        primary_ready_after: Some(0),
        promoted_primary_ready_after: Some(0),
    };
    let mut checks = AllPassing { value: 100.0 };
    let mut sim: Simulation = common::started(&canary, timing, &mut checks);
    let records = common::run_to_end(&mut sim, &mut checks, 50);
    assert_eq!(sim.status.phase, CanaryPhase::Failed);
    let last = records.last().expect("ticks ran");
    assert!(
        last.events
            .iter()
            .any(|e| e.message == "Canary failed! Scaling down podinfo.test")
    );
    // Scaled up at the detection tick; not ready for 120s (4 ticks of 30s) plus one more.
    assert_eq!(records.len(), 1 + 5);
    assert!(!sim.cluster.canary_running());
    assert_eq!(sim.cluster.routes, fledge_engine::Routes::ALL_TO_PRIMARY);
}

#[test]
fn the_random_worlds_reach_every_outcome_the_invariants_speak_of() {
    let case = Case {
        shape: Shape::Canary {
            step: 10,
            max: 50,
            mirror: false,
        },
        threshold: 2,
        promotion_step: None,
        gates: true,
    };
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..40 {
        let mut checks = Flaky {
            seed,
            failure_percent: 25,
        };
        let timing = Timing {
            canary_ready_after: Some(1),
            primary_ready_after: Some(1),
            promoted_primary_ready_after: Some(1),
        };
        for phase in check_invariants(&case, timing, &mut checks, 60, None) {
            seen.insert(phase.as_str());
        }
    }
    for phase in [
        "Progressing",
        "WaitingPromotion",
        "Promoting",
        "Finalising",
        "Succeeded",
        "Failed",
    ] {
        assert!(
            seen.contains(phase),
            "no random world reached {phase}: {seen:?}"
        );
    }
}
