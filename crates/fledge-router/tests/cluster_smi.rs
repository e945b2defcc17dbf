//! The SMI router (Linkerd, OSM, SMI meshes) against a real kube-apiserver.

mod common;

use std::time::Duration;

use common::cluster::{Env, assert_kept, owned_by, version_of};
use fledge_router::{MeshRouter, Router, Routes, Smi, SmiVersion, TrafficRenderer};
use kube::api::{Api, DynamicObject};
use serde_json::json;

/// A TrafficSplit CRD serving every SMI version (upstream serves v1alpha3 only).
const ALL_VERSIONS_CRD: &str = include_str!("crds/smi-trafficsplit-all-versions.yaml");

async fn serve_every_smi_version(env: &Env) {
    env.cluster
        .apply_yaml(ALL_VERSIONS_CRD, "default")
        .await
        .expect("the CRD is accepted");
    for version in ["v1alpha1", "v1alpha2"] {
        let resource = Smi::new(SmiVersion::V1alpha1, "").traffic_split_resource();
        let resource = kube::api::ApiResource {
            version: version.into(),
            api_version: format!("split.smi-spec.io/{version}"),
            ..resource
        };
        let api: Api<DynamicObject> = Api::namespaced_with(env.client.clone(), env.ns(), &resource);
        let mut served = false;
        for _ in 0..50 {
            if api.list(&kube::api::ListParams::default()).await.is_ok() {
                served = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(served, "split.smi-spec.io/{version} is served");
    }
}

async fn split_story(env: &Env, provider: &str, version: SmiVersion) {
    let canary = env
        .create_canary(&format!("  provider: {provider}\n  service: {{port: 9898}}\n  analysis: {{stepWeight: 5, maxWeight: 50}}"))
        .await;
    let renderer = Smi::new(version, "linkerd");
    let resource = renderer.traffic_split_resource();
    let router = MeshRouter::new(renderer.clone(), env.client.clone());
    router.reconcile(&canary).await.expect("reconciles");

    let split = env.get(&resource, "podinfo").await;
    let desired = renderer.render(&canary, Routes::INITIAL).expect("renders");
    assert_kept(&split.data["spec"], &desired.routing.object.data["spec"]);
    assert!(owned_by(&split, &canary));
    assert_eq!(
        router.get_routes(&canary).await.expect("reads"),
        Routes::INITIAL
    );

    router
        .set_routes(&canary, Routes::weighted(80, 20))
        .await
        .expect("routes");
    assert_eq!(
        router.get_routes(&canary).await.expect("reads"),
        Routes::weighted(80, 20)
    );

    // SMI cannot mirror: a mirrored split is set without mirroring, as Flagger does.
    router
        .set_routes(&canary, Routes::weighted(80, 20).with_mirror(true))
        .await
        .expect("routes");
    assert_eq!(
        router.get_routes(&canary).await.expect("reads"),
        Routes::weighted(80, 20)
    );

    env.merge_patch(
        &resource,
        "podinfo",
        json!({ "metadata": { "labels": { "team": "web" } } }),
    )
    .await;
    let before = version_of(&env.get(&resource, "podinfo").await);
    router.reconcile(&canary).await.expect("reconciles");
    router
        .set_routes(&canary, Routes::weighted(80, 20))
        .await
        .expect("routes");
    let split = env.get(&resource, "podinfo").await;
    assert_eq!(version_of(&split), before, "applying twice changes nothing");
    assert_eq!(
        split.metadata.labels.as_ref().expect("labels")["team"],
        "web"
    );
    assert_eq!(
        router.get_routes(&canary).await.expect("reads"),
        Routes::weighted(80, 20)
    );
}

#[tokio::test]
async fn smi_v1alpha3_splits_are_accepted_by_the_upstream_schema() {
    let env = Env::start("smi").await;
    split_story(&env, "smi:v1alpha3:linkerd", SmiVersion::V1alpha3).await;
}

#[tokio::test]
async fn linkerd_writes_v1alpha1_splits() {
    let env = Env::start("linkerd").await;
    serve_every_smi_version(&env).await;
    split_story(&env, "linkerd", SmiVersion::V1alpha1).await;
}

#[tokio::test]
async fn osm_writes_v1alpha2_splits() {
    let env = Env::start("osm").await;
    serve_every_smi_version(&env).await;
    split_story(&env, "osm", SmiVersion::V1alpha2).await;
}

#[tokio::test]
async fn a_split_the_user_created_is_restored_on_finalize() {
    let env = Env::start("smi-adopt").await;
    let resource = Smi::new(SmiVersion::V1alpha3, "linkerd").traffic_split_resource();
    let original =
        json!({ "service": "podinfo", "backends": [{ "service": "podinfo-v1", "weight": 100 }] });
    env.apply_as(
        "kubectl",
        &resource,
        json!({ "apiVersion": "split.smi-spec.io/v1alpha3", "kind": "TrafficSplit", "metadata": { "name": "podinfo" }, "spec": original }),
    )
    .await;
    let canary = env
        .create_canary(
            "  provider: smi:v1alpha3:linkerd\n  service: {port: 9898}\n  revertOnDeletion: true",
        )
        .await;
    let router = fledge_router::router_for(
        "smi:v1alpha3:linkerd",
        env.client.clone(),
        &fledge_router::RouterOptions::default(),
    )
    .expect("a router");
    router.reconcile(&canary).await.expect("reconciles");
    router
        .set_routes(&canary, Routes::weighted(50, 50))
        .await
        .expect("routes");
    let split = env.get(&resource, "podinfo").await;
    assert!(!owned_by(&split, &canary));
    assert_eq!(
        split.data["spec"]["backends"][0]["service"],
        "podinfo-canary"
    );

    router.finalize(&canary).await.expect("finalizes");
    assert_eq!(env.get(&resource, "podinfo").await.data["spec"], original);
}
