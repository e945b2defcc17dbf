//! Traffic safety on the paths where a canary operator can cause the outage it exists to
//! prevent, each told with the operator binary, the cluster simulator, the traffic simulator
//! (which counts every failed request) and Istio's schemas on a real API server:
//!
//! - onboarding a live service that serves through its own Service: no request fails while
//!   the primary starts, and none when it never starts (the target keeps serving, and a new
//!   revision of the target starts over);
//! - a promotion whose primary gets stuck leaves traffic on the ready canary, and drift repair
//!   keeps it there instead of "repairing" it back onto the broken primary;
//! - a spec that turns invalid mid-rollout sends traffic back to the primary;
//! - deleting an invalid Canary with `revertOnDeletion` still restores the target and the
//!   user's Service before the finalizer goes;
//! - a hostile Canary (an interval of 292 years) beside a healthy one does not stop the
//!   operator: the healthy canary is promoted.

mod common;

use std::time::Duration;

use common::istio::IstioStage;
use common::{Stage, podinfo, wait_until};
use fledge_api::CanaryPhase;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

/// One weight step, then promotion: a short rollout, on 10 s intervals.
const ANALYSIS: &str = "  analysis:\n    interval: 10s\n    threshold: 2\n    maxWeight: 20\n    stepWeight: 20\n    metrics:\n    \
     - name: request-success-rate\n      thresholdRange: { min: 99 }\n      interval: 1m\n";

/// The user's own Service for podinfo, deployed with the app before any Canary.
fn users_service() -> Service {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": { "name": "podinfo" },
        "spec": {
            "selector": { "app": "podinfo" },
            "ports": [{ "name": "http", "port": 9898, "targetPort": 9898 }],
        },
    }))
    .expect("a Service")
}

/// podinfo serving 20 requests/s through its own Service, the operator running, no Canary yet;
/// pods become ready `ready_delay` after a change.
async fn live_service(ready_delay: Duration) -> IstioStage {
    let stage = Stage::prepare(ready_delay).await;
    // The app serves before its traffic starts: every request counted from here must succeed.
    wait_until("podinfo is available", Duration::from_secs(30), || async {
        let deployment = stage.deployments.get("podinfo").await.expect("podinfo");
        deployment.status.and_then(|s| s.available_replicas) == Some(2)
    })
    .await;
    let services: Api<Service> = Api::namespaced(stage.cluster.client(), stage.ns());
    services
        .create(&PostParams::default(), &users_service())
        .await
        .expect("the user's Service is created");
    let istio = IstioStage::around(stage, |app| app).await;
    let ns = istio.ns();
    wait_until(
        "podinfo serves through its own Service",
        Duration::from_secs(20),
        || async {
            istio
                .sim
                .counts(&ns, "podinfo")
                .is_some_and(|c| c.canary > 20)
        },
    )
    .await;
    istio
}

fn onboarding_canary(deadline_seconds: u32) -> String {
    format!(
        "targetRef: {{ apiVersion: apps/v1, kind: Deployment, name: podinfo }}\n  \
         progressDeadlineSeconds: {deadline_seconds}\n  provider: istio\n  service: {{ port: 9898 }}\n{ANALYSIS}"
    )
}

async fn selector_of_users_service(istio: &IstioStage) -> serde_json::Value {
    let services: Api<Service> = Api::namespaced(istio.stage.cluster.client(), istio.stage.ns());
    let service = services.get("podinfo").await.expect("the Service exists");
    json!(service.spec.and_then(|s| s.selector))
}

/// Edits the Canary into one validation refuses (`stepWeight: 0`).
async fn make_invalid(stage: &Stage) {
    stage
        .canaries
        .patch(
            "podinfo",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "analysis": { "stepWeight": 0 } } })),
        )
        .await
        .expect("the Canary is edited");
}

#[tokio::test]
async fn onboarding_a_live_service_costs_no_request() {
    // Pods take 3 s to start, long enough for any request sent to a primary that is not
    // ready yet to be counted.
    let istio = live_service(Duration::from_secs(3)).await;
    let (stage, ns) = (&istio.stage, istio.ns());
    stage.create_canary(&onboarding_canary(60)).await;
    stage.reaches(CanaryPhase::Initialized, 60).await;
    assert_eq!(
        selector_of_users_service(&istio).await,
        json!({ "app": "podinfo-primary" }),
        "the apex Service now selects the primary"
    );
    assert_eq!(istio.weights().await, (100, 0));
    assert_eq!(
        stage.replicas("podinfo").await,
        Some(0),
        "the target is scaled down"
    );
    istio.routes_by_virtual_service().await;
    let settled = istio
        .sim
        .counts(&ns, "podinfo")
        .expect("the app is simulated");
    wait_until(
        "more requests reach the primary",
        Duration::from_secs(10),
        || async {
            istio
                .sim
                .counts(&ns, "podinfo")
                .is_some_and(|c| c.primary > settled.primary + 40)
        },
    )
    .await;
    let counts = istio
        .sim
        .counts(&ns, "podinfo")
        .expect("the app is simulated");
    assert_eq!(
        counts.errors, 0,
        "no request failed during onboarding: {counts:?}"
    );
    assert_eq!(counts.unrouted, 0, "{counts:?}");
    assert!(counts.primary > 0 && counts.canary > 0, "{counts:?}");
}

#[tokio::test]
async fn a_primary_that_never_starts_leaves_the_target_serving_until_a_new_revision_starts_over() {
    let istio = live_service(Duration::from_millis(200)).await;
    let (stage, ns) = (&istio.stage, istio.ns());
    stage.sim.hold_next_rollout(&ns, "podinfo-primary");
    // A 5 s progress deadline: the story goes well past it.
    stage.create_canary(&onboarding_canary(5)).await;
    let not_ready = format!("podinfo-primary.{ns} not ready: ");
    wait_until("the Canary says why", Duration::from_secs(30), || async {
        stage
            .story()
            .await
            .iter()
            .any(|m| m.starts_with(&not_ready))
    })
    .await;
    let before = istio
        .sim
        .counts(&ns, "podinfo")
        .expect("the app is simulated");
    tokio::time::sleep(Duration::from_secs(12)).await;
    let canary = stage.canaries.get("podinfo").await.expect("the Canary");
    let status = canary.status.expect("a status");
    assert_eq!(status.phase, CanaryPhase::Initializing, "it keeps trying");
    let condition = status
        .conditions
        .iter()
        .find(|c| c.type_ == "PrimaryReady")
        .unwrap_or_else(|| panic!("a PrimaryReady condition: {:#?}", status.conditions));
    assert_eq!(condition.status, fledge_api::canary::ConditionStatus::False);
    assert_eq!(
        stage.replicas("podinfo").await,
        Some(2),
        "the target is never scaled down"
    );
    assert_eq!(
        selector_of_users_service(&istio).await,
        json!({ "app": "podinfo" }),
        "the user's Service still selects the target"
    );
    let after = istio
        .sim
        .counts(&ns, "podinfo")
        .expect("the app is simulated");
    assert!(
        after.canary > before.canary + 100,
        "the target served: {after:?}"
    );
    assert_eq!(after.errors, 0, "no request failed: {after:?}");

    // A new revision of the target starts over: the primary follows its template.
    stage.sim.release(&ns, "podinfo-primary");
    stage.kubectl_apply(podinfo("podinfo:6.0.1", None)).await;
    stage.reaches(CanaryPhase::Initialized, 60).await;
    assert_eq!(
        stage.primary_image().await.as_deref(),
        Some("podinfo:6.0.1")
    );
    let counts = istio
        .sim
        .counts(&ns, "podinfo")
        .expect("the app is simulated");
    assert_eq!(counts.errors, 0, "{counts:?}");
}

#[tokio::test]
async fn a_promotion_whose_primary_gets_stuck_leaves_traffic_on_the_ready_canary() {
    let spec = format!("  progressDeadlineSeconds: 8\n{ANALYSIS}");
    let istio = IstioStage::set_up(&spec, |app| app).await;
    let (stage, ns) = (&istio.stage, istio.ns());
    stage.reaches(CanaryPhase::Initialized, 60).await;
    // The next rollout of the primary (the promotion) never becomes ready.
    stage.sim.hold_next_rollout(&ns, "podinfo-primary");
    stage.kubectl_apply(podinfo("podinfo:6.0.1", None)).await;
    let failed = stage.reaches(CanaryPhase::Failed, 150).await;
    assert_eq!(failed.status.map(|s| s.canary_weight), Some(100));
    assert_eq!(istio.weights().await, (0, 100), "all traffic on the canary");
    stage
        .tells(&[format!(
            "Copying podinfo.{ns} template spec to podinfo-primary.{ns}"
        )])
        .await;
    let promotion_failed = format!("Promotion of podinfo.{ns} failed, primary not ready: ");
    assert!(
        stage
            .story()
            .await
            .iter()
            .any(|m| m.starts_with(&promotion_failed)),
        "{:#?}",
        stage.story().await
    );
    assert_eq!(
        stage.replicas("podinfo").await,
        Some(2),
        "the canary keeps running"
    );

    // Two more intervals of paced ticks: drift repair keeps the split the engine chose.
    tokio::time::sleep(Duration::from_secs(22)).await;
    assert_eq!(
        istio.weights().await,
        (0, 100),
        "not repaired back onto the primary"
    );
    // A hand edit back onto the broken primary is drift from that split, and is repaired.
    istio.edit_weights(100, 0).await;
    wait_until("the split is repaired", Duration::from_secs(30), || async {
        istio.weights().await == (0, 100)
    })
    .await;
}

#[tokio::test]
async fn a_spec_that_turns_invalid_mid_rollout_sends_traffic_back_to_the_primary() {
    let spec = ANALYSIS.replace("maxWeight: 20", "maxWeight: 60");
    let istio = IstioStage::set_up(&spec, |app| app).await;
    let (stage, ns) = (&istio.stage, istio.ns());
    stage.reaches(CanaryPhase::Initialized, 60).await;
    stage.kubectl_apply(podinfo("podinfo:6.0.1", None)).await;
    wait_until("the canary takes 20%", Duration::from_secs(60), || async {
        istio.weights().await == (80, 20)
    })
    .await;
    make_invalid(stage).await;
    let failed = stage.reaches(CanaryPhase::Failed, 30).await;
    assert_eq!(
        istio.weights().await,
        (100, 0),
        "all traffic back on the primary"
    );
    assert_eq!(
        stage.replicas("podinfo").await,
        Some(0),
        "the canary is scaled down"
    );
    let status = failed.status.expect("a status");
    let valid = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Valid")
        .expect("a Valid condition");
    assert!(
        valid
            .message
            .as_deref()
            .is_some_and(|m| m.contains("spec.analysis.stepWeight")),
        "{valid:?}"
    );
    let story = stage
        .tells(&[format!("Canary failed! Scaling down podinfo.{ns}")])
        .await;
    let rolled_back =
        format!("Rolling back podinfo.{ns}: the spec is invalid: spec.analysis.stepWeight");
    assert!(
        story.iter().any(|m| m.starts_with(&rolled_back)),
        "{story:#?}"
    );
}

#[tokio::test]
async fn deleting_an_invalid_canary_with_revert_on_deletion_restores_the_target_first() {
    let istio = live_service(Duration::from_millis(200)).await;
    let (stage, ns) = (&istio.stage, istio.ns());
    stage
        .create_canary(&format!(
            "{}\n  revertOnDeletion: true",
            onboarding_canary(60)
        ))
        .await;
    stage.reaches(CanaryPhase::Initialized, 60).await;
    assert_eq!(stage.replicas("podinfo").await, Some(0));
    make_invalid(stage).await;
    wait_until(
        "the Canary is reported invalid",
        Duration::from_secs(20),
        || async {
            stage
                .story()
                .await
                .iter()
                .any(|m| m.starts_with(&format!("Invalid canary podinfo.{ns}")))
        },
    )
    .await;
    stage
        .canaries
        .delete("podinfo", &DeleteParams::default())
        .await
        .expect("the Canary is deleted");
    wait_until("the Canary is gone", Duration::from_secs(60), || async {
        stage
            .canaries
            .get_opt("podinfo")
            .await
            .ok()
            .flatten()
            .is_none()
    })
    .await;
    assert_eq!(
        stage.replicas("podinfo").await,
        Some(2),
        "the target runs again"
    );
    assert_eq!(
        selector_of_users_service(&istio).await,
        json!({ "app": "podinfo" }),
        "the user's Service selects the target again"
    );
}

#[tokio::test]
async fn a_hostile_canary_beside_a_healthy_one_does_not_stop_the_operator() {
    let analysis =
        "  analysis:\n    interval: 10s\n    threshold: 2\n    maxWeight: 20\n    stepWeight: 20\n";
    let istio = IstioStage::set_up(analysis, |app| app).await;
    let (stage, ns) = (&istio.stage, istio.ns());
    stage.reaches(CanaryPhase::Initialized, 60).await;
    // The hostile tenant's own app, ready to be released.
    let mut other = podinfo("other:1.0.0", Some(1));
    other["metadata"] = json!({ "name": "other", "labels": { "app": "other" } });
    other["spec"]["selector"] = json!({ "matchLabels": { "app": "other" } });
    other["spec"]["template"]["metadata"] = json!({ "labels": { "app": "other" } });
    stage
        .deployments
        .patch(
            "other",
            &PatchParams::apply("kubectl"),
            &Patch::Apply(other),
        )
        .await
        .expect("the other app is deployed");
    let hostile: fledge_api::Canary = fledge_api::yaml::from_str(&format!(
        "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {{ name: hostile, namespace: {ns} }}\nspec:\n  \
         provider: istio\n  targetRef: {{ apiVersion: apps/v1, kind: Deployment, name: other }}\n  \
         service: {{ port: 9898 }}\n  \
         analysis: {{ interval: 2562047788015216h, threshold: 2, maxWeight: 20, stepWeight: 20 }}\n"
    ))
    .expect("the hostile Canary parses");
    stage
        .canaries
        .create(&PostParams::default(), &hostile)
        .await
        .expect("the hostile Canary is created");
    stage.kubectl_apply(podinfo("podinfo:6.0.1", None)).await;
    stage.reaches(CanaryPhase::Succeeded, 120).await;
    assert_eq!(
        stage.primary_image().await.as_deref(),
        Some("podinfo:6.0.1")
    );
    let (code, _) = istio.operator.get("/healthz").await;
    assert_eq!(code, 200, "the operator is alive");
    let panicked = istio
        .operator
        .messages()
        .into_iter()
        .find(|m| m.contains("panicked"));
    assert_eq!(panicked, None, "no tick panicked");
}
