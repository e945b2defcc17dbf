//! The controller against a real kube-apiserver, with the cluster simulator making pods
//! ready: a Canary is initialized (primary, Services, target scaled to zero), and a new image
//! is detected, rolled out blue/green and promoted, every step recorded as an Event.

mod common;

use std::time::Duration;

use common::{Stage, capture_logs, podinfo};
use fledge_api::CanaryPhase;
use k8s_openapi::api::core::v1::Service;
use kube::api::Api;

#[tokio::test]
async fn a_canary_is_initialized_then_a_new_image_is_detected_and_promoted() {
    let _logs = capture_logs();
    let stage = Stage::set_up(
        "  provider: kubernetes\n  analysis: { interval: 10s, threshold: 2, iterations: 2 }\n",
    )
    .await;
    let ns = stage.ns().to_owned();
    let (stop, operator) = stage.run_operator(&["-mesh-provider=kubernetes"]);

    // Initialization: the primary serves, the target is scaled to zero, three Services exist.
    stage.reaches(CanaryPhase::Initialized, 30).await;
    assert_eq!(
        stage.primary_image().await.as_deref(),
        Some("podinfo:6.0.0")
    );
    assert_eq!(stage.replicas("podinfo").await, Some(0));
    let services: Api<Service> = Api::namespaced(stage.cluster.client(), &ns);
    for name in ["podinfo", "podinfo-primary", "podinfo-canary"] {
        assert!(
            services
                .get_opt(name)
                .await
                .expect("services are read")
                .is_some(),
            "service {name}"
        );
    }
    stage
        .tells(&[format!("Initialization done! podinfo.{ns}")])
        .await;

    // `kubectl set image`: detected, analysed for two iterations, promoted, scaled down.
    stage.kubectl_apply(podinfo("podinfo:6.0.1", None)).await;
    let succeeded = stage.reaches(CanaryPhase::Succeeded, 150).await;
    assert_eq!(
        stage.primary_image().await.as_deref(),
        Some("podinfo:6.0.1")
    );
    assert_eq!(stage.replicas("podinfo").await, Some(0));
    let status = succeeded.status.unwrap_or_default();
    assert_eq!(status.last_applied_spec, status.last_promoted_spec);
    stage
        .tells(&[
            format!("New revision detected! Scaling up podinfo.{ns}"),
            format!("Advance podinfo.{ns} canary iteration 2/2"),
            format!("Copying podinfo.{ns} template spec to podinfo-primary.{ns}"),
            format!("Promotion completed! Scaling down podinfo.{ns}"),
        ])
        .await;

    let _ = stop.send(());
    let finished = tokio::time::timeout(Duration::from_secs(10), operator).await;
    assert!(
        matches!(finished, Ok(Ok(Ok(())))),
        "the controller stops cleanly: {finished:?}"
    );
}
