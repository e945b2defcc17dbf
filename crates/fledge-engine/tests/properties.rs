//! The engine's invariants, checked on random canaries against random worlds.

mod common;

use common::random::{Case, Flaky, Shape, case, observe, passing, start};
use fledge_api::strategy::Strategy as Release;
use fledge_api::{CanaryPhase, CanaryStatus};
use fledge_engine::simulation::{AllPassing, CheckSource, Cluster, Simulation, Timing};
use fledge_engine::{Action, Observation, Plan, Rollout, Timestamp, WorkloadState, World, advance};
use proptest::prelude::*;
use std::time::Duration;
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
        None,
        &mut |_, _, _| {},
    )
}

/// The primary loses its pods at a tick and gets them back some ticks later (or never).
#[derive(Clone, Copy, Debug)]
struct Disruption {
    at: u32,
    ready_after: Option<u32>,
}

/// As [`check_invariants`], with the primary disrupted as `disruption` says, and `also`
/// checking every plan against the status and the observation it was planned from.
fn drive(
    case: &Case,
    timing: Timing,
    checks: &mut dyn CheckSource,
    ticks: u32,
    new_revision_at: Option<u32>,
    disruption: Option<Disruption>,
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
        if let Some(outage) = disruption.filter(|d| d.at == tick) {
            cluster.disrupt_primary(tick, now, outage.ready_after);
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
            // A promotion failed on a stuck primary sends everything to the canary.
            let promoting = matches!(
                before.phase,
                CanaryPhase::Promoting | CanaryPhase::Finalising
            );
            if rollout.strategy() == Release::Canary && !promoting {
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

/// Random rollout speeds of both workloads, including a primary that never becomes ready
/// (at onboarding, or once a promoted revision is copied to it) and a canary that never does.
fn readiness() -> impl Strategy<Value = Timing> {
    (
        proptest::option::of(0u32..4),
        proptest::option::of(0u32..4),
        proptest::option::of(0u32..4),
    )
        .prop_map(|(canary, primary, promoted)| Timing {
            canary_ready_after: canary,
            primary_ready_after: primary,
            promoted_primary_ready_after: promoted,
        })
}

/// Whether the observed primary can serve: it exists, runs pods, and has rolled them all out
/// (Flagger's readiness with the default readyThreshold of 100%).
fn primary_serves(world: &World) -> bool {
    world.primary.as_ref().is_some_and(|p: &WorkloadState| {
        p.generation_observed
            && !p.progress_deadline_exceeded
            && p.desired_replicas > 0
            && p.updated_replicas >= p.desired_replicas
            && p.replicas <= p.updated_replicas
            && p.available_replicas >= p.updated_replicas
    })
}

/// A fault injected into one tick of the operator.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// The operator dies after carrying out this many actions of the plan (all of them when
    /// the plan is shorter): the status is not written; it restarts and ticks again at once.
    Crash(usize),
    /// Every action is carried out but the status write fails; the operator's error retry
    /// ticks again 5 s later.
    StatusLost,
}

/// The operator's retry after a failed tick.
const ERROR_RETRY: Duration = Duration::from_secs(5);

fn fault_schedule() -> impl Strategy<Value = Vec<Option<Fault>>> {
    proptest::collection::vec(
        prop_oneof![
            3 => Just(None),
            1 => (0usize..8).prop_map(|n| Some(Fault::Crash(n))),
            1 => Just(Some(Fault::StatusLost)),
        ],
        90,
    )
}

/// Whether every check this tick consulted for its analysis passed: the metrics, the
/// pre-rollout and rollout hooks, and the confirm-traffic-increase gate.
fn analysis_passed(observation: &Observation) -> bool {
    passing(observation)
        && observation
            .webhooks
            .iter()
            .filter(|(name, _)| matches!(name.as_str(), "smoke" | "load-test" | "traffic-gate"))
            .all(|(_, outcome)| outcome.passed())
}

/// What a run under faults did: weight increases while analysing, and the engine's own
/// words about routes that differed from the recorded weight.
#[derive(Default)]
struct PacedRun {
    increases: usize,
    drift_repairs: usize,
}

/// Drives `case` through `schedule` (one entry per tick; a tick right after a faulty one runs
/// clean) and checks the pacing of every canary weight increase while analysing.
fn pace_under_faults(
    case: &Case,
    timing: Timing,
    checks: &mut dyn CheckSource,
    schedule: &[Option<Fault>],
    new_revision_at: Option<usize>,
) -> PacedRun {
    let rollout = Rollout::new(&case.canary(), Some("istio")).expect("a plannable canary");
    let interval = rollout.interval();
    let mut cluster = Cluster::new("v1", 2, timing);
    let mut status = CanaryStatus::default();
    let mut now = start();
    let mut run = PacedRun::default();
    // When the canary weight last changed, or the rollout (re)started.
    let mut last_change: Option<Timestamp> = None;
    let mut deployed = false;
    let mut faulted_before = false;
    for (attempt, scheduled) in (0u32..).zip(schedule) {
        let first = !deployed && status.phase == CanaryPhase::Initialized;
        if first || (deployed && Some(attempt as usize) == new_revision_at) {
            deployed = true;
            cluster.deploy(&format!("v{}", attempt + 2), attempt, now);
        }
        let observation = observe(&rollout, &status, &cluster, attempt, now, checks);
        let plan = rollout
            .plan(&status, &observation, now)
            .expect("every needed check was observed");
        let fault = if faulted_before { None } else { *scheduled };
        faulted_before = fault.is_some();
        if plan
            .messages()
            .any(|m| m.starts_with("New revision detected!"))
        {
            last_change = Some(now);
        }
        run.drift_repairs += plan
            .messages()
            .filter(|m| m.starts_with("Routes of"))
            .count();
        let analysing = matches!(
            status.phase,
            CanaryPhase::Progressing | CanaryPhase::WaitingPromotion
        );
        let done = match fault {
            Some(Fault::Crash(after)) => after.min(plan.actions.len()),
            _ => plan.actions.len(),
        };
        for action in &plan.actions[..done] {
            let before = cluster.routes.canary;
            cluster.apply(action, attempt, now);
            let after = cluster.routes.canary;
            if analysing && after > before {
                run.increases += 1;
                assert!(
                    analysis_passed(&observation),
                    "canary weight {before} -> {after} at {now} by a tick whose analysis failed: {observation:?}"
                );
                let since = last_change.expect("a rollout started before any step");
                let waited = Duration::from_secs(
                    u64::try_from(now.as_second() - since.as_second()).unwrap_or(0),
                );
                assert!(
                    waited >= interval,
                    "canary weight {before} -> {after} at {now}, only {waited:?} after the previous change at {since} (interval {interval:?}); fault {fault:?}, plan {plan:?}"
                );
            }
            if after != before {
                last_change = Some(now);
            }
        }
        match fault {
            None => {
                status = plan.status;
                now = advance(now, plan.requeue_after);
            }
            Some(Fault::Crash(_)) => {}
            Some(Fault::StatusLost) => now = advance(now, ERROR_RETRY),
        }
    }
    run
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Invariant: while the canary is Initializing and the observed primary is not ready, no
    /// plan points the apex Service or the routes anywhere (`InitializeRouting`,
    /// `SetRoutes`) or scales the target down (`ScaleCanaryToZero`): onboarding a live
    /// service costs no request, however slow the primary is, never-ready included.
    #[test]
    fn onboarding_moves_no_traffic_and_keeps_the_target_until_the_primary_is_ready(
        case in case(),
        seed in any::<u64>(),
        failure_percent in 0u64..60,
        timing in readiness(),
    ) {
        let mut checks = Flaky { seed, failure_percent };
        drive(&case, timing, &mut checks, 40, None, None, &mut |status, observation, plan| {
            if status.phase == CanaryPhase::Initializing && !primary_serves(&observation.world) {
                let moved = plan.actions.iter().find(|a| {
                    matches!(a, Action::InitializeRouting | Action::SetRoutes(_) | Action::ScaleCanaryToZero)
                });
                assert_eq!(moved, None, "onboarding moved on before the primary was ready: {plan:?}");
            }
        });
    }

    /// Invariant: no plan raises the primary's share of traffic (a `SetRoutes` whose primary
    /// weight is above the observed routes' primary weight) while the observed primary is
    /// not ready, in any phase: a primary that cannot serve never receives a healthy canary's
    /// traffic (no rollback onto it, no promotion traffic shift towards it). The primary is
    /// slow or never ready at onboarding or promotion, and may lose its pods at any tick.
    #[test]
    fn no_plan_gives_a_primary_that_is_not_ready_more_traffic(
        case in case(),
        seed in any::<u64>(),
        failure_percent in 0u64..60,
        timing in readiness(),
        new_revision_at in proptest::option::of(3u32..30),
        disruption in proptest::option::of((2u32..40, proptest::option::of(0u32..30))),
    ) {
        let mut checks = Flaky { seed, failure_percent };
        let disruption = disruption.map(|(at, ready_after)| Disruption { at, ready_after });
        drive(&case, timing, &mut checks, 60, new_revision_at, disruption, &mut |_, observation, plan| {
            let world = &observation.world;
            if primary_serves(world) {
                return;
            }
            for action in &plan.actions {
                if let Action::SetRoutes(target) = action {
                    assert!(
                        target.primary <= world.routes.primary,
                        "primary share {} -> {} while the primary is not ready: {plan:?}",
                        world.routes.primary, target.primary
                    );
                }
            }
        });
    }

    /// Invariant: every increase of the canary weight while analysing (Progressing,
    /// WaitingPromotion) is decided by a tick whose analysis passed, and comes at least one
    /// full `interval` of simulated time after the previous change of the weight (or after
    /// the rollout started) — with crashes (a prefix of the plan carried out, the status not
    /// written, an immediate restart) and failed status writes (all actions carried out, the
    /// status not written, a retry 5 s later) injected at every action boundary of random
    /// ticks. The tick after a faulty one runs clean: two lost status writes in a row leave
    /// routes and status exactly as a normal tick finds them, which no status-only engine can
    /// tell apart.
    #[test]
    fn every_weight_step_follows_a_full_interval_of_passing_analysis_despite_crashes_and_lost_status_writes(
        case in case(),
        seed in any::<u64>(),
        failure_percent in 0u64..40,
        canary_delay in 0u32..3,
        schedule in fault_schedule(),
        new_revision_at in proptest::option::of(10usize..60),
    ) {
        let timing = Timing { canary_ready_after: Some(canary_delay), ..Timing::default() };
        let mut checks = Flaky { seed, failure_percent };
        pace_under_faults(&case, timing, &mut checks, &schedule, new_revision_at);
    }

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
fn the_fault_schedules_do_reach_weight_steps_and_drifted_routes() {
    let case = Case {
        shape: Shape::Canary {
            step: 10,
            max: 50,
            mirror: false,
        },
        threshold: 3,
        promotion_step: None,
        gates: false,
    };
    let mut total = PacedRun::default();
    for seed in 0..20u64 {
        let schedule: Vec<Option<Fault>> = (0..90)
            .map(|tick| match (tick + seed) % 5 {
                0 => Some(Fault::StatusLost),
                2 => Some(Fault::Crash(1)),
                _ => None,
            })
            .collect();
        let mut checks = Flaky {
            seed,
            failure_percent: 10,
        };
        let run = pace_under_faults(&case, Timing::default(), &mut checks, &schedule, None);
        total.increases += run.increases;
        total.drift_repairs += run.drift_repairs;
    }
    assert!(total.increases >= 40, "{} weight steps", total.increases);
    assert!(
        total.drift_repairs >= 20,
        "{} drifted routes",
        total.drift_repairs
    );
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
