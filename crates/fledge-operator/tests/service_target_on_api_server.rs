//! A Canary whose target is a Service (Flagger's ServiceController), on a real API server
//! with Istio's schemas and the operator's controller running in the test:
//!
//! - initialization copies the target to `podinfo-primary` and `podinfo-canary`, leaves the
//!   user's Service as it is and routes the apex 100/0 between the copies;
//! - a new selector on the target is a new revision: the canary copy follows it at once, the
//!   weights step, and the promotion gives the primary copy the new selector.

mod common;

use std::time::Duration;

use common::{Stage, capture_logs, virtual_service_weights, wait_until};
use fledge_api::CanaryPhase;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::{Value, json};

fn target_service(version: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": { "name": "podinfo", "labels": { "app": "podinfo", "team": "a" } },
        "spec": {
            "selector": { "app": "podinfo", "version": version },
            "ports": [{ "name": "http", "port": 9898, "protocol": "TCP", "targetPort": "http" }],
        },
    })
}

async fn selector_version(services: &Api<Service>, name: &str) -> Option<String> {
    let service = services.get_opt(name).await.expect("read")?;
    service.spec?.selector?.get("version").cloned()
}

/// (primary, canary) weights of the VirtualService's default route.
async fn weights(stage: &Stage) -> Option<(i64, i64)> {
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "networking.istio.io",
        "v1beta1",
        "VirtualService",
    ));
    let api: Api<DynamicObject> =
        Api::namespaced_with(stage.cluster.client(), stage.ns(), &resource);
    let vs = api.get_opt("podinfo").await.expect("read")?;
    Some(virtual_service_weights(&vs.data["spec"]))
}

#[tokio::test]
async fn a_service_target_is_copied_split_and_promoted() {
    let _logs = capture_logs();
    let stage = Stage::set_up_targeting(
        "{ apiVersion: v1, kind: Service, name: podinfo }",
        "  provider: istio\n  analysis: { interval: 10s, threshold: 2, maxWeight: 50, stepWeight: 50 }\n",
    )
    .await;
    stage
        .cluster
        .install_mesh_crds()
        .await
        .expect("Istio's CRDs install");
    let ns = stage.ns().to_owned();
    let services: Api<Service> = Api::namespaced(stage.cluster.client(), &ns);
    let apply = PatchParams::apply("kubectl").force();
    services
        .patch("podinfo", &apply, &Patch::Apply(target_service("v1")))
        .await
        .expect("the target Service is applied");
    let (stop, operator) = stage.run_operator(&["-mesh-provider=istio"]);

    // Initialization: two copies, the user's Service untouched, the apex routed 100/0.
    stage.reaches(CanaryPhase::Initialized, 30).await;
    for copy in ["podinfo-primary", "podinfo-canary"] {
        let service = services.get(copy).await.expect("the copy exists");
        assert_eq!(
            selector_version(&services, copy).await.as_deref(),
            Some("v1"),
            "{copy}"
        );
        let owner = &service.metadata.owner_references.unwrap_or_default()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("Canary", "podinfo")
        );
        let spec = service.spec.expect("a spec");
        assert_ne!(spec.cluster_ip, None, "the copy got an address of its own");
    }
    let user = services.get("podinfo").await.expect("the target");
    assert_eq!(
        user.metadata.owner_references, None,
        "the user's Service is not adopted"
    );
    assert_eq!(
        selector_version(&services, "podinfo").await.as_deref(),
        Some("v1")
    );
    assert_eq!(weights(&stage).await, Some((100, 0)));

    // A new selector: the canary copy follows at once; the primary copy waits for promotion.
    services
        .patch("podinfo", &apply, &Patch::Apply(target_service("v2")))
        .await
        .expect("the target Service is changed");
    wait_until(
        "the canary copy selects v2",
        Duration::from_secs(10),
        || async {
            selector_version(&services, "podinfo-canary")
                .await
                .as_deref()
                == Some("v2")
        },
    )
    .await;
    wait_until(
        "half the traffic on the canary copy",
        Duration::from_secs(40),
        || async { weights(&stage).await == Some((50, 50)) },
    )
    .await;
    assert_eq!(
        selector_version(&services, "podinfo-primary")
            .await
            .as_deref(),
        Some("v1"),
        "the primary copy keeps the promoted selector during the analysis"
    );

    stage.reaches(CanaryPhase::Succeeded, 60).await;
    assert_eq!(
        selector_version(&services, "podinfo-primary")
            .await
            .as_deref(),
        Some("v2")
    );
    assert_eq!(weights(&stage).await, Some((100, 0)));
    stage
        .tells(&[
            format!("Initialization done! podinfo.{ns}"),
            format!("New revision detected! Scaling up podinfo.{ns}"),
            format!("Starting canary analysis for podinfo.{ns}"),
            format!("Advance podinfo.{ns} canary weight 50"),
            format!("Copying podinfo.{ns} template spec to podinfo-primary.{ns}"),
            "Routing all traffic to primary".to_owned(),
            format!("Promotion completed! Scaling down podinfo.{ns}"),
        ])
        .await;

    stop.send(()).expect("the operator runs");
    operator
        .await
        .expect("the operator task")
        .expect("the operator stops cleanly");
}
