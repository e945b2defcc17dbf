//! End-to-end stories of the seeds' Istio tutorial with the operator binary: a real
//! kube-apiserver with Istio's schemas, the cluster simulator making pods ready, the traffic
//! simulator sending podinfo's requests the way the VirtualService in the cluster says, and a
//! real Prometheus answering the builtin `request-success-rate` / `request-duration` queries.
//!
//! - initialization: primary, three Services, VirtualService 100/0, target at zero (7a);
//! - a healthy version walks every weight step to Succeeded (7b);
//! - a version with errors, and one too slow, are halted and rolled back to 100/0 (7c);
//! - A/B testing: only requests with the insider header reach the canary (7d).

mod common;

use std::time::Duration;

use common::istio::IstioStage;
use common::podinfo;
use fledge_api::CanaryPhase;
use fledge_testkit::TrafficSimConfig;
use k8s_openapi::api::core::v1::Service;
use kube::api::Api;
use serde_json::json;

/// The seeds' analysis, with 10 s intervals so that a story takes about a minute.
const ANALYSIS: &str = "  analysis:\n    interval: 10s\n    threshold: 2\n    maxWeight: 60\n    stepWeight: 20\n    metrics:\n    \
     - name: request-success-rate\n      thresholdRange: { min: 99 }\n      interval: 1m\n    \
     - name: request-duration\n      thresholdRange: { max: 500 }\n      interval: 30s\n";

#[tokio::test]
async fn a_healthy_version_walks_every_weight_step_and_is_promoted() {
    let istio = IstioStage::set_up(ANALYSIS, |app| app).await;
    let (stage, ns) = (&istio.stage, istio.ns());

    // 7a: initialization.
    stage.reaches(CanaryPhase::Initialized, 30).await;
    assert_eq!(
        stage.primary_image().await.as_deref(),
        Some("podinfo:6.0.0")
    );
    assert_eq!(
        stage.replicas("podinfo").await,
        Some(0),
        "the target is scaled to zero"
    );
    let services: Api<Service> = Api::namespaced(stage.cluster.client(), &ns);
    for name in ["podinfo", "podinfo-primary", "podinfo-canary"] {
        assert!(
            services.get_opt(name).await.expect("read").is_some(),
            "Service {name}"
        );
    }
    assert_eq!(istio.weights().await, (100, 0));
    // The simulated data plane, like Envoy, sees the new routes up to one refresh late:
    // requests still sent to the target as it went to zero belong to the initialization.
    let refresh = TrafficSimConfig::default().refresh;
    istio.routes_by_virtual_service().await;
    tokio::time::sleep(refresh * 2).await;
    // From here on, no request may fail: the primary serves until the canary is ready and
    // a promotion rolls the primary without an outage.
    let at_initialization = istio
        .sim
        .counts(&ns, "podinfo")
        .expect("the app is simulated");

    // 7b: kubectl set image → every step, then promotion.
    stage.kubectl_apply(podinfo("podinfo:6.0.1", None)).await;
    stage.reaches(CanaryPhase::Succeeded, 150).await;
    assert_eq!(
        stage.primary_image().await.as_deref(),
        Some("podinfo:6.0.1")
    );
    assert_eq!(stage.replicas("podinfo").await, Some(0));
    assert_eq!(istio.weights().await, (100, 0));
    stage
        .tells(&[
            format!("New revision detected! Scaling up podinfo.{ns}"),
            format!("Starting canary analysis for podinfo.{ns}"),
            format!("Advance podinfo.{ns} canary weight 20"),
            format!("Advance podinfo.{ns} canary weight 40"),
            format!("Advance podinfo.{ns} canary weight 60"),
            format!("Copying podinfo.{ns} template spec to podinfo-primary.{ns}"),
            "Routing all traffic to primary".to_owned(),
            format!("Promotion completed! Scaling down podinfo.{ns}"),
        ])
        .await;
    let counts = istio
        .sim
        .counts(&ns, "podinfo")
        .expect("the app is simulated");
    assert!(counts.canary > 0, "the canary got traffic: {counts:?}");
    assert_eq!(
        counts.errors, at_initialization.errors,
        "no failed request during the rollout: {counts:?}"
    );
    drop(istio.operator);
}

#[tokio::test]
async fn a_version_with_errors_is_halted_and_rolled_back() {
    let istio = IstioStage::set_up(ANALYSIS, |app| app).await;
    let (stage, ns) = (&istio.stage, istio.ns());
    stage.reaches(CanaryPhase::Initialized, 30).await;

    let mut bad = podinfo("podinfo:6.0.2", None);
    bad["spec"]["template"]["spec"]["containers"][0]["env"] =
        json!([{ "name": "FLEDGE_SIM_ERROR_RATE", "value": "0.3" }]);
    stage.kubectl_apply(bad).await;
    let failed = stage.reaches(CanaryPhase::Failed, 120).await;
    assert_eq!(failed.status.map(|s| s.canary_weight), Some(0));
    assert_eq!(
        istio.weights().await,
        (100, 0),
        "all traffic back on the primary"
    );
    assert_eq!(
        stage.primary_image().await.as_deref(),
        Some("podinfo:6.0.0")
    );
    assert_eq!(stage.replicas("podinfo").await, Some(0));
    let story = stage
        .tells(&[
            format!("Rolling back podinfo.{ns} failed checks threshold reached 2"),
            format!("Canary failed! Scaling down podinfo.{ns}"),
        ])
        .await;
    let halted = format!("Halt podinfo.{ns} advancement success rate ");
    assert!(
        story
            .iter()
            .any(|m| m.starts_with(&halted) && m.ends_with("% < 99%")),
        "{story:#?}"
    );
    drop(istio.operator);
}

#[tokio::test]
async fn a_version_too_slow_is_halted_and_rolled_back() {
    let istio = IstioStage::set_up(ANALYSIS, |app| app).await;
    let (stage, ns) = (&istio.stage, istio.ns());
    stage.reaches(CanaryPhase::Initialized, 30).await;

    let mut slow = podinfo("podinfo:6.0.3", None);
    slow["spec"]["template"]["spec"]["containers"][0]["env"] =
        json!([{ "name": "FLEDGE_SIM_LATENCY_MS", "value": "900" }]);
    stage.kubectl_apply(slow).await;
    stage.reaches(CanaryPhase::Failed, 120).await;
    assert_eq!(istio.weights().await, (100, 0));
    assert_eq!(
        stage.primary_image().await.as_deref(),
        Some("podinfo:6.0.0")
    );
    let story = stage
        .tells(&[format!("Canary failed! Scaling down podinfo.{ns}")])
        .await;
    let halted = format!("Halt podinfo.{ns} advancement request duration ");
    assert!(
        story
            .iter()
            .any(|m| m.starts_with(&halted) && m.ends_with(" > 500ms")),
        "{story:#?}"
    );
    drop(istio.operator);
}

#[tokio::test]
async fn ab_testing_sends_only_insiders_to_the_canary() {
    let spec = "  analysis:\n    interval: 10s\n    threshold: 2\n    iterations: 3\n    match:\n    \
                - headers:\n        x-canary: { exact: insider }\n    metrics:\n    \
                - name: request-success-rate\n      thresholdRange: { min: 99 }\n      interval: 1m\n";
    let istio = IstioStage::set_up(spec, |app| {
        app.with_header_share(0.25, "x-canary", "insider")
    })
    .await;
    let (stage, ns) = (&istio.stage, istio.ns());
    stage.reaches(CanaryPhase::Initialized, 30).await;

    stage.kubectl_apply(podinfo("podinfo:6.0.1", None)).await;
    // Once the analysis runs (first iteration), the canary's share is the insiders' share.
    let started = std::time::Instant::now();
    loop {
        let canary = stage
            .canaries
            .get("podinfo")
            .await
            .expect("the Canary is read");
        if canary.status.is_some_and(|s| s.iterations >= 1) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the analysis did not start"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    // About 200 requests at 20/s: the bounds are more than 4 standard deviations from 25 %.
    let before = istio.sim.counts(&ns, "podinfo").expect("simulated");
    tokio::time::sleep(Duration::from_secs(10)).await;
    let after = istio.sim.counts(&ns, "podinfo").expect("simulated");
    let (primary, canary) = (after.primary - before.primary, after.canary - before.canary);
    #[allow(
        clippy::cast_precision_loss,
        reason = "request counts of a few seconds"
    )]
    let share = canary as f64 / (primary + canary).max(1) as f64;
    assert!(
        (0.12..=0.40).contains(&share),
        "canary share {share:.2} ({primary}/{canary})"
    );

    stage.reaches(CanaryPhase::Succeeded, 120).await;
    assert_eq!(
        stage.primary_image().await.as_deref(),
        Some("podinfo:6.0.1")
    );
    stage
        .tells(&[
            format!("Advance podinfo.{ns} canary iteration 1/3"),
            format!("Advance podinfo.{ns} canary iteration 3/3"),
            format!("Promotion completed! Scaling down podinfo.{ns}"),
        ])
        .await;
    drop(istio.operator);
}
