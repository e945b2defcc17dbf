//! The cut-over from Flagger (docs/migrating-from-flagger.md) on a real kube-apiserver with
//! the operator binary: Canaries whose status Flagger wrote — revision hashes in Flagger's
//! form, which no other program can recompute — are taken over as they are.
//!
//! The routing objects and the primary come from a first Fledge run (they are the objects
//! Flagger makes, field for field: that is what the other e2e tests check); the status is
//! then rewritten as Flagger writes it, and a second operator process takes over:
//!
//! - mid-flight (Progressing at weight 20, last step a few seconds ago): no step is repeated
//!   early and no traffic moves before one interval has passed since Flagger's last step;
//!   then the walk goes on from 20, without "New revision detected! Restarting analysis";
//! - at rest (Initialized): nothing starts; a real new revision afterwards still does.

mod common;

use std::time::{Duration, Instant};

use common::istio::IstioStage;
use common::{Stage, podinfo};
use fledge_api::{Canary, CanaryPhase};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::json;

/// Revision hashes as Flagger's `ComputeHash` writes them (`SafeEncodeString` of an FNV-32a).
const FLAGGER_CANARY_HASH: &str = "5b6f7c8d9c";
const FLAGGER_PRIMARY_HASH: &str = "7c4f9d5b";

const ANALYSIS: &str =
    "  analysis:\n    interval: 20s\n    threshold: 2\n    maxWeight: 50\n    stepWeight: 10\n";

/// Rewrites the Canary's status as Flagger leaves it: `phase` at `weight`, the revision
/// hashes in Flagger's form, the last transition `ago`.
async fn flagger_wrote_status(
    canaries: &Api<Canary>,
    phase: &str,
    weight: i32,
    promoted: &str,
    ago: Duration,
) {
    let last = Timestamp::now()
        .checked_sub(SignedDuration::try_from(ago).expect("a short duration"))
        .expect("in range");
    let status = json!({ "status": {
        "phase": phase,
        "canaryWeight": weight,
        "failedChecks": 0,
        "iterations": 0,
        "lastAppliedSpec": FLAGGER_CANARY_HASH,
        "lastPromotedSpec": promoted,
        "lastTransitionTime": last.to_string(),
    }});
    canaries
        .patch_status("podinfo", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("the status is written as Flagger writes it");
}

fn virtual_services(istio: &IstioStage) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "networking.istio.io",
        "v1beta1",
        "VirtualService",
    ));
    Api::namespaced_with(istio.stage.cluster.client(), istio.stage.ns(), &resource)
}

#[tokio::test]
async fn a_canary_mid_flight_is_taken_over_without_a_step_repeated_or_traffic_moved() {
    let mut istio = IstioStage::set_up(ANALYSIS, |app| app).await;
    let ns = istio.ns();
    istio.stage.reaches(CanaryPhase::Initialized, 30).await;
    istio
        .stage
        .kubectl_apply(podinfo("podinfo:6.0.1", None))
        .await;
    // The first run walks to weight 20 and is stopped there, as Flagger scaled to zero.
    common::wait_until("weight 20", Duration::from_secs(90), || async {
        istio.weights().await == (80, 20)
    })
    .await;
    istio.operator.terminate();
    istio.operator.exit_status(Duration::from_secs(20)).await;
    assert_eq!(istio.weights().await, (80, 20), "stopped at 20");

    flagger_wrote_status(
        &istio.stage.canaries,
        "Progressing",
        20,
        FLAGGER_PRIMARY_HASH,
        Duration::from_secs(3),
    )
    .await;
    let routes_before = virtual_services(&istio)
        .get("podinfo")
        .await
        .expect("the VirtualService")
        .metadata
        .resource_version;
    let server = format!("-metrics-server={}", istio.prometheus.url());
    let taken_over = Instant::now();
    istio.operator = istio
        .stage
        .start_operator(&["-mesh-provider=istio", &server]);

    // Flagger's last step was 3 s ago and the interval is 20 s: for the next 12 s at least,
    // the routes are not written at all.
    while taken_over.elapsed() < Duration::from_secs(12) {
        let vs = virtual_services(&istio)
            .get("podinfo")
            .await
            .expect("the VirtualService");
        assert_eq!(
            vs.metadata.resource_version,
            routes_before,
            "the routes were written {:?} after the takeover: {}",
            taken_over.elapsed(),
            vs.data["spec"]
        );
        let canary = istio.stage.canaries.get("podinfo").await.expect("read");
        let status = canary.status.expect("a status");
        assert_eq!(
            (status.phase, status.canary_weight),
            (CanaryPhase::Progressing, 20)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Then the walk goes on from 20.
    common::wait_until("weight 30", Duration::from_secs(40), || async {
        istio.weights().await == (70, 30)
    })
    .await;
    let story = istio
        .stage
        .tells(&[format!("Advance podinfo.{ns} canary weight 30")])
        .await;
    assert!(
        !story
            .iter()
            .any(|m| m.starts_with("New revision detected! Restarting")),
        "{story:#?}"
    );
    let canary = istio.stage.canaries.get("podinfo").await.expect("read");
    let status = canary.status.expect("a status");
    assert_eq!(
        status.last_promoted_spec.as_deref(),
        Some(FLAGGER_PRIMARY_HASH),
        "the primary still runs the revision Flagger promoted"
    );
    assert!(
        status
            .last_applied_spec
            .as_deref()
            .is_some_and(|hash| hash != FLAGGER_CANARY_HASH && hash.len() == 16),
        "Fledge's own hash from its first step on: {:?}",
        status.last_applied_spec
    );
}

#[tokio::test]
async fn a_canary_at_rest_stays_at_rest_and_a_new_revision_still_starts_a_rollout() {
    let stage = Stage::set_up(
        "  provider: kubernetes\n  analysis: { interval: 10s, threshold: 2, iterations: 2 }\n",
    )
    .await;
    let ns = stage.ns().to_owned();
    let mut first = stage.start_operator(&["-mesh-provider=kubernetes"]);
    stage.reaches(CanaryPhase::Initialized, 60).await;
    first.terminate();
    first.exit_status(Duration::from_secs(20)).await;
    flagger_wrote_status(
        &stage.canaries,
        "Initialized",
        0,
        FLAGGER_CANARY_HASH,
        Duration::from_secs(600),
    )
    .await;

    let _second = stage.start_operator(&["-mesh-provider=kubernetes"]);
    // Several ticks' worth: nothing starts.
    let watching = Instant::now();
    while watching.elapsed() < Duration::from_secs(15) {
        let canary = stage.canaries.get("podinfo").await.expect("read");
        assert_eq!(
            canary.status.expect("a status").phase,
            CanaryPhase::Initialized
        );
        assert_eq!(
            stage.replicas("podinfo").await,
            Some(0),
            "the target stays at zero"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let story = stage.story().await;
    assert!(
        !story.iter().any(|m| m.starts_with("New revision detected")),
        "{story:#?}"
    );

    stage.kubectl_apply(podinfo("podinfo:6.0.1", None)).await;
    stage.reaches(CanaryPhase::Progressing, 60).await;
    stage
        .tells(&[format!("New revision detected! Scaling up podinfo.{ns}")])
        .await;
}
