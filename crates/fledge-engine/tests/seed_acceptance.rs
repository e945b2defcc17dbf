//! The seed articles' event sequences, reproduced by the engine.
//!
//! The articles were written against older Flagger releases; where today's Flagger words a
//! line differently (and Fledge follows today's Flagger), the expected line says so.

mod common;

use common::{Script, fixture, messages, run_to_end, started};
use fledge_api::CanaryPhase;
use fledge_engine::MetricResult::Value;
use fledge_engine::simulation::Timing;
use pretty_assertions::assert_eq;

#[test]
fn seed_003_successful_rollout_with_traefik() {
    let canary = fixture("003-traefik-canary.yaml");
    let mut checks = Script::passing(100.0).metric("request-duration", vec![Value(120.0)]);
    let timing = Timing {
        canary_ready_after: Some(2),
        primary_ready_after: Some(2),
        promoted_primary_ready_after: Some(2),
    };
    let mut sim = started(&canary, timing, &mut checks);
    let records = run_to_end(&mut sim, &mut checks, 100);
    let mut expected = vec![
        "New revision detected! Scaling up podinfo.test".to_owned(),
        // Older Flagger: "Waiting for podinfo.test rollout to finish: 0 of 1 updated replicas are available".
        // The target has an HPA, so it is scaled up to one replica, as in the article.
        "canary deployment podinfo.test not ready: waiting for rollout to finish: 0 of 1 (readyThreshold 100%) updated replicas are available".to_owned(),
        "Starting canary analysis for podinfo.test".to_owned(),
        "Pre-rollout check acceptance-test passed".to_owned(),
    ];
    expected
        .extend((1..=10).map(|step| format!("Advance podinfo.test canary weight {}", step * 5)));
    expected.push("Copying podinfo.test template spec to podinfo-primary.test".to_owned());
    // Older Flagger: "Waiting for podinfo-primary.test rollout to finish: 1 of 2 updated replicas are available".
    expected.push("podinfo-primary.test not ready: waiting for rollout to finish: 0 of 2 (readyThreshold 100%) updated replicas are available".to_owned());
    expected.push("Routing all traffic to primary".to_owned());
    expected.push("Promotion completed! Scaling down podinfo.test".to_owned());
    let got = messages(&records);
    let got: Vec<String> = dedup_consecutive(got);
    assert_eq!(got, expected);
    assert_eq!(sim.status.phase, CanaryPhase::Succeeded);
    assert_eq!(sim.cluster.primary_revision.as_deref(), Some("v2"));
    assert!(!sim.cluster.canary_running());
}

/// Flagger repeats a "not ready" warning every tick; the articles show it once.
fn dedup_consecutive(mut lines: Vec<String>) -> Vec<String> {
    lines.dedup();
    lines
}

fn lines(text: &[&str]) -> Vec<String> {
    text.iter().map(|line| (*line).to_owned()).collect()
}

fn values(list: &[f64]) -> Vec<fledge_engine::MetricResult> {
    list.iter().copied().map(Value).collect()
}

#[test]
fn seed_000_rollback_on_success_rate_then_request_duration() {
    let canary = fixture("000-podinfo-v1alpha3.yaml");
    let mut checks = Script::passing(100.0)
        .metric(
            "request-success-rate",
            values(&[100.0, 100.0, 69.17, 61.39, 55.06, 47.0, 37.0, 100.0]),
        )
        .metric(
            "request-duration",
            values(&[
                100.0, 100.0, 100.0, 100.0, 100.0, 100.0, 100.0, 1515.0, 1600.0, 1915.0, 2050.0,
                2515.0,
            ]),
        );
    let mut sim = started(&canary, Timing::default(), &mut checks);
    let records = run_to_end(&mut sim, &mut checks, 100);
    let expected = lines(&[
        // Not shown in the article, which starts its log one line later.
        "New revision detected! Scaling up podinfo.test",
        // Older Flagger: "Starting canary deployment for podinfo.test".
        "Starting canary analysis for podinfo.test",
        "Advance podinfo.test canary weight 5",
        "Advance podinfo.test canary weight 10",
        "Advance podinfo.test canary weight 15",
        "Halt podinfo.test advancement success rate 69.17% < 99%",
        "Halt podinfo.test advancement success rate 61.39% < 99%",
        "Halt podinfo.test advancement success rate 55.06% < 99%",
        "Halt podinfo.test advancement success rate 47.00% < 99%",
        "Halt podinfo.test advancement success rate 37.00% < 99%",
        "Halt podinfo.test advancement request duration 1.515s > 500ms",
        "Halt podinfo.test advancement request duration 1.6s > 500ms",
        "Halt podinfo.test advancement request duration 1.915s > 500ms",
        // Go prints 2050ms as 2.05s (the article's "2.050s" is not Go's output).
        "Halt podinfo.test advancement request duration 2.05s > 500ms",
        "Halt podinfo.test advancement request duration 2.515s > 500ms",
        "Rolling back podinfo.test failed checks threshold reached 10",
        "Canary failed! Scaling down podinfo.test",
    ]);
    assert_eq!(messages(&records), expected);
    assert_eq!(sim.status.phase, CanaryPhase::Failed);
    assert_eq!(sim.cluster.routes, fledge_engine::Routes::ALL_TO_PRIMARY);
    assert_eq!(sim.cluster.primary_revision.as_deref(), Some("v1"));
    assert!(!sim.cluster.canary_running());
}

#[test]
fn seed_003_rollback_on_success_rate() {
    let mut canary = fixture("003-traefik-canary.yaml");
    // The article's log was cut to three failed checks; its threshold is 3 here.
    if let Some(analysis) = canary.spec.analysis.as_mut() {
        analysis.threshold = Some(3);
    }
    let mut checks = Script::passing(100.0)
        .metric(
            "request-success-rate",
            values(&[100.0, 100.0, 100.0, 53.42, 53.19, 48.05]),
        )
        .metric("request-duration", values(&[100.0]));
    let timing = Timing {
        canary_ready_after: Some(1),
        primary_ready_after: Some(0),
        promoted_primary_ready_after: Some(0),
    };
    let mut sim = started(&canary, timing, &mut checks);
    let records = run_to_end(&mut sim, &mut checks, 100);
    let expected = lines(&[
        "New revision detected! Scaling up podinfo.test",
        // Older Flagger: "Canary deployment podinfo.test not ready: ... 0 of 1 updated replicas are available".
        "canary deployment podinfo.test not ready: waiting for rollout to finish: 0 of 1 (readyThreshold 100%) updated replicas are available",
        "Starting canary analysis for podinfo.test",
        "Pre-rollout check acceptance-test passed",
        "Advance podinfo.test canary weight 5",
        "Advance podinfo.test canary weight 10",
        "Advance podinfo.test canary weight 15",
        "Advance podinfo.test canary weight 20",
        "Halt podinfo.test advancement success rate 53.42% < 99%",
        "Halt podinfo.test advancement success rate 53.19% < 99%",
        "Halt podinfo.test advancement success rate 48.05% < 99%",
        "Rolling back podinfo.test failed checks threshold reached 3",
        "Canary failed! Scaling down podinfo.test",
    ]);
    assert_eq!(messages(&records), expected);
    assert_eq!(sim.status.phase, CanaryPhase::Failed);
}

#[test]
fn seed_003_rollback_on_the_404s_template() {
    let mut canary = fixture("003-traefik-canary.yaml");
    let metric: fledge_api::canary::CanaryMetric = fledge_api::yaml::from_str(
        "name: \"404s percentage\"\ntemplateRef: {name: not-found-percentage}\nthresholdRange: {max: 5}\ninterval: 1m",
    )
    .expect("a valid metric");
    if let Some(analysis) = canary.spec.analysis.as_mut() {
        analysis.metrics = vec![metric];
        analysis.threshold = Some(5);
        analysis.webhooks.clear();
    }
    let mut checks = Script::passing(0.0).metric(
        "404s percentage",
        values(&[1.0, 1.0, 6.2, 6.45, 7.6, 8.69, 9.7]),
    );
    let mut sim = started(&canary, Timing::default(), &mut checks);
    let records = run_to_end(&mut sim, &mut checks, 100);
    let expected = lines(&[
        "New revision detected! Scaling up podinfo.test",
        // Older Flagger: "Starting canary deployment for podinfo.test".
        "Starting canary analysis for podinfo.test",
        "Advance podinfo.test canary weight 5",
        "Advance podinfo.test canary weight 10",
        "Advance podinfo.test canary weight 15",
        "Halt podinfo.test advancement 404s percentage 6.20 > 5",
        "Halt podinfo.test advancement 404s percentage 6.45 > 5",
        "Halt podinfo.test advancement 404s percentage 7.60 > 5",
        "Halt podinfo.test advancement 404s percentage 8.69 > 5",
        "Halt podinfo.test advancement 404s percentage 9.70 > 5",
        "Rolling back podinfo.test failed checks threshold reached 5",
        "Canary failed! Scaling down podinfo.test",
    ]);
    assert_eq!(messages(&records), expected);
}

fn ab_canary() -> fledge_api::Canary {
    let mut canary = fixture("002-frontend-abtest.yaml");
    // The article's run used ten iterations.
    if let Some(analysis) = canary.spec.analysis.as_mut() {
        analysis.iterations = Some(10);
    }
    canary
}

#[test]
fn seed_002_ab_testing_promotes_after_ten_iterations() {
    let canary = ab_canary();
    let mut checks = Script::passing(0.5);
    let timing = Timing {
        canary_ready_after: Some(1),
        primary_ready_after: Some(1),
        promoted_primary_ready_after: Some(1),
    };
    let mut sim = started(&canary, timing, &mut checks);
    let records = run_to_end(&mut sim, &mut checks, 100);
    let mut expected = lines(&[
        "New revision detected! Scaling up frontend.prod",
        // Older Flagger: "Waiting for frontend.prod rollout to finish: 0 of 1 updated replicas are available".
        "canary deployment frontend.prod not ready: waiting for rollout to finish: 0 of 1 (readyThreshold 100%) updated replicas are available",
        // Not printed by the article's Flagger release.
        "Starting canary analysis for frontend.prod",
        "Pre-rollout check conformance-test passed",
    ]);
    expected.extend((1..=10).map(|i| format!("Advance frontend.prod canary iteration {i}/10")));
    expected.extend(lines(&[
        "Copying frontend.prod template spec to frontend-primary.prod",
        // Older Flagger: "Waiting for frontend-primary.prod rollout to finish: 1 of 2 updated replicas are available".
        "frontend-primary.prod not ready: waiting for rollout to finish: 0 of 2 (readyThreshold 100%) updated replicas are available",
        // Not printed by the article's Flagger release.
        "Routing all traffic to primary",
        "Promotion completed! Scaling down frontend.prod",
    ]));
    assert_eq!(messages(&records), expected);
    assert_eq!(sim.status.phase, CanaryPhase::Succeeded);
}

#[test]
fn seed_002_ab_testing_rolls_back_on_error_rate_and_latency() {
    let canary = ab_canary();
    let error_rate: Vec<f64> = (0..10)
        .map(|k| if k % 2 == 0 { 31.0 } else { 0.5 })
        .collect();
    let latency: Vec<f64> = (0..10)
        .map(|k| if k % 2 == 0 { 400.0 } else { 2000.0 })
        .collect();
    let mut checks = Script::passing(0.5)
        .metric("error-rate", values(&error_rate))
        .metric("latency", values(&latency));
    let mut sim = started(&canary, Timing::default(), &mut checks);
    let records = run_to_end(&mut sim, &mut checks, 100);
    let mut expected = lines(&[
        "New revision detected! Scaling up frontend.prod",
        "Starting canary analysis for frontend.prod",
        "Pre-rollout check conformance-test passed",
        "Advance frontend.prod canary iteration 1/10",
    ]);
    for _ in 0..5 {
        // Older Flagger printed custom values with %v ("31", "2000").
        expected.push("Halt frontend.prod advancement error-rate 31.00 > 1".to_owned());
        expected.push("Halt frontend.prod advancement latency 2000.00 > 500".to_owned());
    }
    expected.extend(lines(&[
        "Rolling back frontend.prod failed checks threshold reached 10",
        "Canary failed! Scaling down frontend.prod",
    ]));
    assert_eq!(messages(&records), expected);
    assert_eq!(sim.cluster.routes, fledge_engine::Routes::ALL_TO_PRIMARY);
}
