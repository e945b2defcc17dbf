//! Metric checks in a running controller: a MetricTemplate queried against a real
//! Prometheus judges the canary. A version whose success rate stays below the threshold is
//! halted, rolled back and scaled down, and the primary keeps the old version.

mod common;

use std::time::Duration;

use common::{Stage, capture_logs, podinfo};
use fledge_api::{CanaryPhase, MetricTemplate};
use fledge_testkit::LocalPrometheus;
use kube::api::{Api, PostParams};

#[tokio::test]
async fn a_version_failing_its_metric_is_rolled_back() {
    let _logs = capture_logs();
    let prometheus = LocalPrometheus::start(&[])
        .await
        .expect("a local Prometheus");
    let stage = Stage::set_up(
        "  provider: kubernetes\n  analysis:\n    interval: 10s\n    threshold: 1\n    iterations: 3\n    metrics:\n    \
         - name: success-rate\n      templateRef: { name: success-rate }\n      thresholdRange: { min: 99 }\n      interval: 1m\n",
    )
    .await;
    let ns = stage.ns().to_owned();
    // The "success rate" of the new version: a constant 61.39%, whatever the traffic.
    let template: MetricTemplate = fledge_api::yaml::from_str(&format!(
        "apiVersion: flagger.app/v1beta1\nkind: MetricTemplate\nmetadata: {{ name: success-rate, namespace: {ns} }}\n\
         spec:\n  provider: {{ type: prometheus, address: {} }}\n  query: vector(61.39)\n",
        prometheus.url()
    ))
    .expect("a valid MetricTemplate");
    let templates: Api<MetricTemplate> = Api::namespaced(stage.cluster.client(), &ns);
    templates
        .create(&PostParams::default(), &template)
        .await
        .expect("the MetricTemplate is created");
    let (stop, operator) = stage.run_operator(&["-mesh-provider=kubernetes"]);

    stage.reaches(CanaryPhase::Initialized, 30).await;
    stage.kubectl_apply(podinfo("podinfo:6.0.1", None)).await;
    let failed = stage.reaches(CanaryPhase::Failed, 120).await;
    assert_eq!(
        stage.primary_image().await.as_deref(),
        Some("podinfo:6.0.0"),
        "the primary keeps the old version"
    );
    assert_eq!(
        stage.replicas("podinfo").await,
        Some(0),
        "the canary is scaled down"
    );
    assert_eq!(failed.status.map(|s| s.canary_weight), Some(0));
    stage
        .tells(&[
            format!("Halt podinfo.{ns} advancement success-rate 61.39 < 99"),
            format!("Rolling back podinfo.{ns} failed checks threshold reached 1"),
            format!("Canary failed! Scaling down podinfo.{ns}"),
        ])
        .await;

    let _ = stop.send(());
    let finished = tokio::time::timeout(Duration::from_secs(10), operator).await;
    assert!(
        matches!(finished, Ok(Ok(Ok(())))),
        "the controller stops cleanly: {finished:?}"
    );
}
