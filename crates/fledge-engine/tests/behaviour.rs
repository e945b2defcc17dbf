//! Stories of single features: gates, skipAnalysis, suspend, revisions mid-analysis, staged
//! promotion, mirroring, session affinity, the kubernetes provider, deletion, and what the
//! engine asks to have observed.

mod common;

use common::{Script, messages, run_to_end, started};
use fledge_api::CanaryPhase;
use fledge_api::canary::HookType;
use fledge_engine::simulation::{AllPassing, Timing};
use fledge_engine::{Action, Error, Observation, Rollout, Routes, WebhookRequest};
use pretty_assertions::assert_eq;

fn manifest(analysis: &str) -> fledge_api::Canary {
    common::canary(&format!(
        "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {{name: podinfo, namespace: test}}\nspec:\n  provider: istio\n  targetRef: {{apiVersion: apps/v1, kind: Deployment, name: podinfo}}\n  service: {{port: 9898}}\n  analysis:\n{analysis}\n"
    ))
}

#[test]
fn a_closed_confirm_rollout_gate_holds_the_canary_in_waiting_until_it_opens() {
    let canary = manifest(
        "    interval: 1m\n    stepWeight: 50\n    webhooks:\n      - {name: start gate, type: confirm-rollout, url: http://gate/}",
    );
    let mut closed = Script::passing(100.0).failing("start gate", "gate closed");
    let mut sim = started(&canary, Timing::default(), &mut closed);
    let waiting = run_to_end(&mut sim, &mut closed, 3);
    assert_eq!(sim.status.phase, CanaryPhase::Waiting);
    assert_eq!(
        messages(&waiting),
        ["Halt podinfo.test advancement waiting for approval start gate"]
    );
    assert_eq!(
        waiting[0].plan.alerts[0].message,
        "Canary is waiting for approval."
    );

    let mut open = Script::passing(100.0);
    let records = run_to_end(&mut sim, &mut open, 20);
    assert_eq!(
        &messages(&records)[..2],
        [
            "Confirm-rollout check start gate passed",
            "New revision detected! Scaling up podinfo.test"
        ]
    );
    assert_eq!(sim.status.phase, CanaryPhase::Succeeded);
}

#[test]
fn a_closed_confirm_promotion_gate_keeps_analysing_in_waiting_promotion() {
    let canary = manifest(
        "    interval: 1m\n    stepWeight: 50\n    maxWeight: 50\n    webhooks:\n      - {name: promotion gate, type: confirm-promotion, url: http://gate/}",
    );
    let mut closed = Script::passing(100.0).failing("promotion gate", "not yet");
    let mut sim = started(&canary, Timing::default(), &mut closed);
    let records = run_to_end(&mut sim, &mut closed, 6);
    assert_eq!(
        messages(&records),
        [
            "New revision detected! Scaling up podinfo.test",
            "Starting canary analysis for podinfo.test",
            "Advance podinfo.test canary weight 50",
            "Halt podinfo.test advancement waiting for promotion approval promotion gate",
        ]
    );
    assert_eq!(sim.status.phase, CanaryPhase::WaitingPromotion);
    assert_eq!(
        sim.cluster.routes,
        Routes::split(50, 50),
        "traffic stays split while waiting"
    );
    assert!(
        !records
            .iter()
            .any(|r| r.plan.actions.contains(&Action::PromotePrimary))
    );

    let mut open = Script::passing(100.0);
    let records = run_to_end(&mut sim, &mut open, 10);
    assert_eq!(
        &messages(&records)[..2],
        [
            "Confirm-promotion check promotion gate passed",
            "Copying podinfo.test template spec to podinfo-primary.test"
        ]
    );
    assert_eq!(sim.status.phase, CanaryPhase::Succeeded);
}

#[test]
fn skip_analysis_promotes_without_judging() {
    let mut canary = manifest("    interval: 1m\n    stepWeight: 10");
    canary.spec.skip_analysis = true;
    let mut checks = Script::passing(0.0);
    let mut sim = started(&canary, Timing::default(), &mut checks);
    let records = run_to_end(&mut sim, &mut checks, 10);
    assert_eq!(
        messages(&records),
        [
            "New revision detected! Scaling up podinfo.test",
            "Copying podinfo.test template spec to podinfo-primary.test",
            "Promotion completed! Canary analysis was skipped for podinfo.test",
        ]
    );
    assert_eq!(sim.cluster.primary_revision.as_deref(), Some("v2"));
}

#[test]
fn a_suspended_canary_does_nothing_but_say_so() {
    let mut canary = manifest("    interval: 1m\n    stepWeight: 10");
    let mut checks = AllPassing { value: 100.0 };
    let mut sim = started(&canary, Timing::default(), &mut checks);
    canary.spec.suspend = true;
    sim.rollout = Rollout::new(&canary, Some("istio")).expect("plannable");
    let before = sim.status.clone();
    let record = sim.step(&mut checks).expect("plans");
    assert_eq!(
        record.plan.messages().collect::<Vec<_>>(),
        ["skipping canary run as object is suspended"]
    );
    assert!(record.plan.actions.is_empty());
    assert_eq!(sim.status, before);
}

#[test]
fn a_new_revision_during_the_analysis_restarts_it_from_zero() {
    let canary = manifest("    interval: 1m\n    stepWeight: 20\n    maxWeight: 60");
    let mut checks = AllPassing { value: 100.0 };
    let mut sim = started(&canary, Timing::default(), &mut checks);
    for _ in 0..3 {
        sim.step(&mut checks).expect("plans");
    }
    assert_eq!(sim.cluster.routes, Routes::split(60, 40));
    let (tick, now) = (sim.tick, sim.now);
    sim.cluster.deploy("v3", tick, now);
    let records = run_to_end(&mut sim, &mut checks, 20);
    assert_eq!(
        &messages(&records)[..4],
        [
            "New revision detected! Restarting analysis for podinfo.test",
            "Starting canary analysis for podinfo.test",
            "Advance podinfo.test canary weight 20",
            "Advance podinfo.test canary weight 40",
        ]
    );
    assert_eq!(records[0].plan.status.canary_weight, 0);
    assert_eq!(sim.cluster.primary_revision.as_deref(), Some("v3"));
}

#[test]
fn going_back_to_the_promoted_revision_starts_no_rollout() {
    let canary = manifest("    interval: 1m\n    stepWeight: 50");
    let mut checks = AllPassing { value: 100.0 };
    let mut sim = started(&canary, Timing::default(), &mut checks);
    run_to_end(&mut sim, &mut checks, 20);
    assert_eq!(sim.status.phase, CanaryPhase::Succeeded);
    let (tick, now) = (sim.tick, sim.now);
    sim.cluster.deploy("v2", tick, now);
    let record = sim.step(&mut checks).expect("plans");
    assert!(record.plan.events.is_empty() && record.plan.actions.is_empty());
}

#[test]
fn step_weights_never_overshoot_max_weight_and_staged_promotion_moves_back_in_steps() {
    let canary = manifest(
        "    interval: 1m\n    stepWeight: 30\n    maxWeight: 50\n    stepWeightPromotion: 20",
    );
    let mut checks = AllPassing { value: 100.0 };
    let mut sim = started(&canary, Timing::default(), &mut checks);
    let records = run_to_end(&mut sim, &mut checks, 20);
    assert_eq!(
        messages(&records),
        [
            "New revision detected! Scaling up podinfo.test",
            "Starting canary analysis for podinfo.test",
            "Advance podinfo.test canary weight 30",
            // Flagger would go to 60 here.
            "Advance podinfo.test canary weight 50",
            "Copying podinfo.test template spec to podinfo-primary.test",
            "Advance podinfo.test primary weight 70",
            "Advance podinfo.test primary weight 90",
            "Advance podinfo.test primary weight 100",
            "Promotion completed! Scaling down podinfo.test",
        ]
    );
}

#[test]
fn blue_green_with_mirroring_mirrors_then_switches_then_promotes() {
    let canary =
        manifest("    interval: 1m\n    iterations: 2\n    mirror: true\n    mirrorWeight: 40");
    let mut checks = AllPassing { value: 100.0 };
    let mut sim = started(&canary, Timing::default(), &mut checks);
    let records = run_to_end(&mut sim, &mut checks, 20);
    assert_eq!(
        messages(&records),
        [
            "New revision detected! Scaling up podinfo.test",
            "Starting canary analysis for podinfo.test",
            "Advance podinfo.test canary iteration 1/2",
            "Advance podinfo.test canary iteration 2/2",
            "Stop traffic mirroring and route all traffic to canary",
            "Copying podinfo.test template spec to podinfo-primary.test",
            "Routing all traffic to primary",
            "Promotion completed! Scaling down podinfo.test",
        ]
    );
    let mirrored = records[1].plan.actions.iter().find_map(|a| match a {
        Action::SetRoutes(target) => Some(target.clone()),
        _ => None,
    });
    assert_eq!(
        mirrored.map(|t| (t.primary, t.canary, t.mirror)),
        Some((100, 0, Some(40)))
    );
}

#[test]
fn the_kubernetes_provider_runs_ten_blue_green_iterations_and_says_why() {
    let mut canary = manifest("    interval: 1m\n    stepWeight: 10");
    canary.spec.provider = Some("kubernetes".into());
    let mut checks = AllPassing { value: 100.0 };
    let mut sim = started(&canary, Timing::default(), &mut checks);
    let records = run_to_end(&mut sim, &mut checks, 30);
    let all = messages(&records);
    assert!(all.contains(
        &"Progressive traffic is not supported when using the kubernetes provider".to_owned()
    ));
    assert!(all.contains(&"Setting canaryAnalysis.iterations: 10".to_owned()));
    assert!(all.contains(&"Advance podinfo.test canary iteration 10/10".to_owned()));
    assert!(
        !all.iter().any(|m| m.starts_with("Routing all traffic")),
        "no routing with plain Services"
    );
    assert_eq!(sim.status.phase, CanaryPhase::Succeeded);
}

/// A rollback button pressed: every hook, the rollback hook too, answers 2xx.
struct Pressed;
impl fledge_engine::simulation::CheckSource for Pressed {
    fn metric(&mut self, _: &str, _: u32) -> fledge_engine::MetricResult {
        fledge_engine::MetricResult::Value(100.0)
    }
    fn webhook(&mut self, _: &str, _: HookType, _: u32) -> fledge_engine::WebhookOutcome {
        fledge_engine::WebhookOutcome::Passed
    }
}

#[test]
fn a_rollback_hook_answering_2xx_rolls_back_by_hand() {
    let canary = manifest(
        "    interval: 1m\n    stepWeight: 10\n    webhooks:\n      - {name: big red button, type: rollback, url: http://button/}",
    );
    let mut checks = AllPassing { value: 100.0 };
    let mut sim = started(&canary, Timing::default(), &mut checks);
    sim.step(&mut checks).expect("plans");
    sim.step(&mut checks).expect("plans");
    let record = sim.step(&mut Pressed).expect("plans");
    assert_eq!(
        record.plan.messages().collect::<Vec<_>>(),
        [
            "Rollback check big red button passed",
            "Rolling back podinfo.test manual webhook invoked",
            "Canary failed! Scaling down podinfo.test",
        ]
    );
    assert_eq!(sim.status.phase, CanaryPhase::Failed);
}

#[test]
fn session_affinity_pins_users_while_the_canary_gets_traffic_and_expires_the_cookie_after() {
    let canary = manifest(
        "    interval: 1m\n    stepWeight: 50\n    sessionAffinity: {cookieName: flagger-cookie, maxAge: 21600}",
    );
    let mut checks = AllPassing { value: 100.0 };
    let mut sim = started(&canary, Timing::default(), &mut checks);
    let records = run_to_end(&mut sim, &mut checks, 20);
    let cookies: Vec<_> = records
        .iter()
        .flat_map(|r| r.plan.actions.iter())
        .filter_map(|a| match a {
            Action::SetRoutes(t) => t.session_affinity.clone(),
            _ => None,
        })
        .collect();
    let first = cookies
        .first()
        .and_then(|c| c.canary.clone())
        .expect("a canary cookie while shifting");
    assert!(first.starts_with("flagger-cookie=") && first.len() == "flagger-cookie=".len() + 10);
    assert_eq!(cookies[0].max_age_seconds, 21600);
    let last = cookies.last().expect("routes back to the primary");
    assert_eq!(
        (last.canary.as_ref(), last.previous.as_ref()),
        (None, Some(&first))
    );
}

#[test]
fn deletion_with_revert_restores_the_target_then_ends_terminated() {
    let mut canary = manifest("    interval: 1m\n    stepWeight: 50");
    canary.spec.revert_on_deletion = true;
    let rollout = Rollout::new(&canary, Some("istio")).expect("plannable");
    let mut status = fledge_api::CanaryStatus {
        phase: CanaryPhase::Succeeded,
        ..Default::default()
    };
    let now = fledge_engine::Timestamp::UNIX_EPOCH;
    let mut world = fledge_engine::World {
        deleting: true,
        ..Default::default()
    };
    let first = rollout
        .plan(&status, &Observation::of(world.clone()), now)
        .expect("plans");
    assert_eq!(
        first.messages().collect::<Vec<_>>(),
        ["Terminating canary podinfo.test"]
    );
    assert_eq!(first.actions, [Action::RevertTarget]);
    status = first.status;
    world.canary = fledge_engine::WorkloadState::ready(2);
    let second = rollout
        .plan(&status, &Observation::of(world), now)
        .expect("plans");
    assert_eq!(
        second.actions,
        [Action::RevertTarget, Action::RevertRouting]
    );
    assert_eq!(second.status.phase, CanaryPhase::Terminated);
}

#[test]
fn needs_lists_exactly_the_checks_flagger_would_run_and_plan_refuses_without_them() {
    let canary = common::fixture("004-webhooks-all-types.yaml");
    let rollout = Rollout::new(&canary, Some("istio")).expect("plannable");
    let mut checks = AllPassing { value: 100.0 };
    let mut sim = started(&canary, Timing::default(), &mut checks);
    let world = sim.cluster.world(sim.tick);
    let request = rollout.needs(&sim.status, &world, sim.now);
    assert_eq!(
        request.webhooks,
        [WebhookRequest {
            name: "start gate".into(),
            hook_type: HookType::ConfirmRollout,
            phase: CanaryPhase::Initialized
        }]
    );
    assert!(request.metrics.is_empty());
    sim.step(&mut checks).expect("plans");
    let world = sim.cluster.world(sim.tick);
    let names: Vec<_> = rollout
        .needs(&sim.status, &world, sim.now)
        .webhooks
        .into_iter()
        .map(|w| w.name)
        .collect();
    assert_eq!(
        names,
        ["rollback gate", "helm test"],
        "the first analysing tick runs the pre-rollout hook"
    );
    let refused = rollout.plan(&sim.status, &Observation::of(world), sim.now);
    assert_eq!(
        refused,
        Err(Error::MissingWebhook {
            name: "rollback gate".into()
        })
    );
}

#[test]
fn bad_specs_are_errors_that_name_the_field() {
    let mut canary = manifest("    interval: 1m\n    maxWeight: 50");
    let error = Rollout::new(&canary, Some("istio")).expect_err("no steps");
    assert!(
        error.to_string().starts_with("spec.analysis.stepWeight:"),
        "{error}"
    );
    canary.metadata.name = None;
    let error = Rollout::new(&canary, Some("istio")).expect_err("no name");
    assert_eq!(
        error.to_string(),
        "metadata.name: must be set (name the Canary)"
    );
    let twice = manifest(
        "    stepWeight: 5\n    webhooks:\n      - {name: a, url: http://a/}\n      - {name: a, type: pre-rollout, url: http://b/}",
    );
    assert_eq!(
        Rollout::new(&twice, None).expect_err("duplicate"),
        Error::DuplicateName {
            field: "spec.analysis.webhooks",
            name: "a".into()
        }
    );
}

#[test]
fn an_autoscaler_scaling_the_canary_up_halts_advancement_until_the_new_pods_are_ready() {
    let canary = manifest("    interval: 1m\n    stepWeight: 10\n    maxWeight: 50");
    let rollout = Rollout::new(&canary, Some("istio")).expect("plannable");
    let status = fledge_api::CanaryStatus {
        phase: CanaryPhase::Progressing,
        canary_weight: 20,
        last_applied_spec: Some("v2".into()),
        last_promoted_spec: Some("v1".into()),
        ..Default::default()
    };
    let now = fledge_engine::Timestamp::UNIX_EPOCH;
    let mut scaling = fledge_engine::WorkloadState::ready(2);
    scaling.desired_replicas = 3;
    let world = fledge_engine::World {
        primary: Some(fledge_engine::WorkloadState::ready(2)),
        canary: scaling,
        revision: fledge_engine::Revision::new("v2"),
        routes: Routes::split(80, 20),
        ..Default::default()
    };
    assert!(
        rollout.needs(&status, &world, now).is_empty(),
        "no checks while the canary is not ready"
    );
    let plan = rollout
        .plan(&status, &Observation::of(world), now)
        .expect("plans");
    assert_eq!(
        plan.messages().collect::<Vec<_>>(),
        [
            "canary deployment podinfo.test not ready: waiting for rollout to finish: 2 out of 3 new replicas have been updated"
        ]
    );
    assert!(plan.actions.is_empty(), "no traffic moves");
    assert_eq!(plan.status, status, "nothing is counted");
}

#[test]
fn after_a_failure_only_a_further_revision_starts_a_new_rollout() {
    let canary = manifest(
        "    interval: 1m\n    stepWeight: 25\n    threshold: 1\n    metrics:\n      - {name: request-success-rate, thresholdRange: {min: 99}}",
    );
    let mut failing = Script::passing(50.0);
    let mut sim = started(&canary, Timing::default(), &mut failing);
    run_to_end(&mut sim, &mut failing, 20);
    assert_eq!(sim.status.phase, CanaryPhase::Failed);

    let mut healthy = AllPassing { value: 100.0 };
    let quiet = sim.step(&mut healthy).expect("plans");
    assert!(
        quiet.plan.events.is_empty() && quiet.plan.actions.is_empty(),
        "the failed revision stays rolled back"
    );

    let (tick, now) = (sim.tick, sim.now);
    sim.cluster.deploy("v3", tick, now);
    let records = run_to_end(&mut sim, &mut healthy, 20);
    assert_eq!(
        messages(&records)[0],
        "New revision detected! Scaling up podinfo.test"
    );
    assert_eq!(sim.status.phase, CanaryPhase::Succeeded);
    assert_eq!(sim.cluster.primary_revision.as_deref(), Some("v3"));
}

#[test]
fn an_operator_may_stop_running_checks_at_the_first_that_halts_the_tick() {
    let canary = manifest(
        "    interval: 1m\n    stepWeight: 10\n    metrics:\n      - {name: request-success-rate, thresholdRange: {min: 99}}\n    webhooks:\n      - {name: load-test, type: rollout, url: http://tester/}",
    );
    let rollout = Rollout::new(&canary, Some("istio")).expect("plannable");
    let status = fledge_api::CanaryStatus {
        phase: CanaryPhase::Progressing,
        canary_weight: 10,
        last_applied_spec: Some("v2".into()),
        last_promoted_spec: Some("v1".into()),
        ..Default::default()
    };
    let world = fledge_engine::World {
        primary: Some(fledge_engine::WorkloadState::ready(2)),
        canary: fledge_engine::WorkloadState::ready(2),
        revision: fledge_engine::Revision::new("v2"),
        routes: Routes::split(90, 10),
        ..Default::default()
    };
    let now = fledge_engine::Timestamp::UNIX_EPOCH;
    let request = rollout.needs(&status, &world, now);
    assert_eq!(request.webhooks[0].name, "load-test");
    assert_eq!(request.metrics, ["request-success-rate"]);
    // The load test fails; the operator does not bother querying the metric.
    let observation = Observation::of(world).with_webhook(
        "load-test",
        fledge_engine::WebhookOutcome::Failed("exit status 1".into()),
    );
    let plan = rollout
        .plan(&status, &observation, now)
        .expect("nothing past the failure is read");
    assert_eq!(
        plan.messages().collect::<Vec<_>>(),
        ["Halt podinfo.test advancement external check load-test failed exit status 1"]
    );
    assert_eq!(plan.status.failed_checks, 1);
}

#[test]
fn alerts_with_metadata_carry_flaggers_fields() {
    let canary = common::fixture("004-stepweights.yaml");
    let rollout = Rollout::new(&canary, Some("istio")).expect("plannable");
    let fields = rollout.alert_metadata();
    assert_eq!(fields[0], ("Target", "Deployment/podinfo.test".to_owned()));
    assert_eq!(fields[2].0, "Progress deadline");
    assert_eq!(
        fields[3],
        (
            "Traffic routing",
            "Weight steps: 1,2,10,80 max: 0".to_owned()
        ),
        "maxWeight as written"
    );
}
