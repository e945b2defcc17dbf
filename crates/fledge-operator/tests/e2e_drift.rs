//! End-to-end stories of routing drift with the operator binary on a real kube-apiserver with
//! Istio's schemas: between rollouts (the canary Initialized, its analysis interval 30 s), a
//! VirtualService edited or deleted by hand, or a `spec.service` edit of the Canary, reaches
//! the cluster within seconds — a change to the VirtualService or the Canary ticks it, and
//! the tick repairs the VirtualService even though the next analysis step is not due.

mod common;

use std::time::{Duration, Instant};

use common::operator_process::Operator;
use common::{Stage, virtual_service_weights, wait_until};
use fledge_api::CanaryPhase;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams,
};
use serde_json::{Value, json};

/// Far longer than any assertion waits: a repair within it is not the interval's tick.
const ANALYSIS: &str = "  provider: istio\n  analysis:\n    interval: 30s\n    threshold: 5\n    maxWeight: 50\n    stepWeight: 10\n";

/// How soon a repair must be visible.
const PROMPTLY: Duration = Duration::from_secs(10);

fn virtual_services(stage: &Stage) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "networking.istio.io",
        "v1beta1",
        "VirtualService",
    ));
    Api::namespaced_with(stage.cluster.client(), stage.ns(), &resource)
}

/// The VirtualService's spec, if it exists.
async fn spec(stage: &Stage) -> Option<Value> {
    let vs = virtual_services(stage)
        .get_opt("podinfo")
        .await
        .expect("the VirtualService can be read");
    vs.map(|vs| vs.data["spec"].clone())
}

/// Waits (at most [`PROMPTLY`]) until the VirtualService's spec satisfies `ok`; the time taken.
async fn repaired(stage: &Stage, what: &str, ok: impl Fn(&Value) -> bool) -> Duration {
    let started = Instant::now();
    wait_until(what, PROMPTLY, || async {
        spec(stage).await.is_some_and(|spec| ok(&spec))
    })
    .await;
    let took = started.elapsed();
    println!("{what}: {took:?}");
    took
}

/// The operator's reads and writes of VirtualServices so far (not its list and watch).
async fn virtual_service_requests(operator: &Operator) -> u64 {
    let lines = operator.metrics("fledge_kube_requests_total{").await;
    lines
        .iter()
        .filter(|line| line.contains("resource=\"virtualservices\""))
        .filter(|line| !line.contains("verb=\"watch\"") && !line.contains("verb=\"list\""))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|count| count as u64)
        .sum()
}

fn at_rest(spec: &Value) -> bool {
    spec["hosts"] == json!(["podinfo"]) && virtual_service_weights(spec) == (100, 0)
}

#[tokio::test]
async fn hand_edits_deletions_and_service_edits_reach_the_virtual_service_between_rollouts() {
    let stage = Stage::set_up(ANALYSIS).await;
    stage
        .cluster
        .install_mesh_crds()
        .await
        .expect("Istio's CRDs install");
    let operator = stage.start_operator(&["-mesh-provider=istio"]);
    let ns = stage.ns().to_owned();
    stage.reaches(CanaryPhase::Initialized, 30).await;
    let vs = spec(&stage).await.expect("the VirtualService exists");
    assert!(at_rest(&vs), "{vs:#}");

    // (a) `kubectl edit`: another host and a 50/50 split.
    let mut edited = vs.clone();
    edited["hosts"] = json!(["podinfo.example.com"]);
    edited["http"][0]["route"][0]["weight"] = json!(50);
    edited["http"][0]["route"][1]["weight"] = json!(50);
    virtual_services(&stage)
        .patch(
            "podinfo",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": edited })),
        )
        .await
        .expect("the VirtualService is edited");
    repaired(&stage, "the hand edit is undone", at_rest).await;
    operator
        .wait_for_line(&format!("VirtualService podinfo.{ns} updated"), PROMPTLY)
        .await;

    // (b) `kubectl delete virtualservice podinfo`.
    virtual_services(&stage)
        .delete("podinfo", &DeleteParams::default())
        .await
        .expect("the VirtualService is deleted");
    repaired(&stage, "the VirtualService is recreated", at_rest).await;
    operator
        .wait_for_line(&format!("VirtualService podinfo.{ns} created"), PROMPTLY)
        .await;

    // (c) The Canary's `spec.service` gains a gateway and a timeout.
    stage
        .canaries
        .patch(
            "podinfo",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "service": {
                "gateways": ["mesh", "public-gateway.istio-system.svc.cluster.local"],
                "timeout": "7s",
            } } })),
        )
        .await
        .expect("the Canary is edited");
    repaired(&stage, "the service edit is applied", |spec| {
        spec["gateways"] == json!(["mesh", "public-gateway.istio-system.svc.cluster.local"])
            && spec["http"][0]["timeout"] == "7s"
            && virtual_service_weights(spec) == (100, 0)
    })
    .await;
    let canary = stage.canaries.get("podinfo").await.expect("the Canary");
    assert_eq!(
        canary.status.map(|s| s.phase),
        Some(CanaryPhase::Initialized),
        "an edit of the routing is no rollout"
    );

    // In sync, a change to the VirtualService still ticks the canary, but the tick reads
    // the VirtualService from the cache and writes nothing.
    // The operator counts a request when its answer arrives, after the API server shows the
    // write: wait until the count stands still for a second.
    let mut before = virtual_service_requests(&operator).await;
    let started = std::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = virtual_service_requests(&operator).await;
        if now == before {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the operator keeps writing the VirtualService"
        );
        before = now;
    }
    assert!(before > 0, "the repairs above are counted");
    virtual_services(&stage)
        .patch(
            "podinfo",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "labels": { "edited-by": "someone-else" } } })),
        )
        .await
        .expect("the VirtualService is labelled");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        virtual_service_requests(&operator).await,
        before,
        "no request for an object in sync"
    );
    drop(operator);
}
