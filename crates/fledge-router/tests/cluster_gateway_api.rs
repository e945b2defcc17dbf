//! The Gateway API router against a real kube-apiserver with the upstream HTTPRoute schemas.

mod common;

use common::cluster::{Env, assert_kept, owned_by, version_of};
use fledge_router::{GatewayApi, GatewayApiVersion, MeshRouter, Router, Routes, TrafficRenderer};
use serde_json::json;

fn spec(version: &str) -> String {
    format!(
        r"  provider: gatewayapi:{version}
  service:
    port: 9898
    hosts: [www.example.com]
    gatewayRefs: [{{name: gateway, namespace: istio-ingress}}]
    timeout: 30s
    headers: {{request: {{set: {{x-fledge: 'yes'}}}}}}
  analysis: {{interval: 1m, threshold: 5, maxWeight: 50, stepWeight: 10}}"
    )
}

async fn weighted_story(version: GatewayApiVersion) {
    let env = Env::start("gwapi").await;
    let canary = env.create_canary(&spec(version.as_str())).await;
    let renderer = GatewayApi::new(version);
    let resource = renderer.http_route_resource();
    let router = MeshRouter::new(renderer, env.client.clone());
    router
        .reconcile(&canary)
        .await
        .expect("the router call succeeds");

    let route = env.get(&resource, "podinfo").await;
    let desired = renderer.render(&canary, Routes::INITIAL).expect("renders");
    assert_kept(&route.data["spec"], &desired.routing.object.data["spec"]);
    assert!(owned_by(&route, &canary));
    assert_eq!(
        router
            .get_routes(&canary)
            .await
            .expect("the router call succeeds"),
        Routes::INITIAL
    );

    router
        .set_routes(&canary, Routes::weighted(80, 20))
        .await
        .expect("the router call succeeds");
    assert_eq!(
        router
            .get_routes(&canary)
            .await
            .expect("the router call succeeds"),
        Routes::weighted(80, 20)
    );

    // A user's label survives; reconciling keeps the split and changes nothing (the schema's
    // defaults are rendered explicitly, otherwise every apply would bump the resourceVersion).
    env.merge_patch(
        &resource,
        "podinfo",
        json!({ "metadata": { "labels": { "team": "web" } } }),
    )
    .await;
    let before = version_of(&env.get(&resource, "podinfo").await);
    router
        .reconcile(&canary)
        .await
        .expect("the router call succeeds");
    router
        .set_routes(&canary, Routes::weighted(80, 20))
        .await
        .expect("the router call succeeds");
    let route = env.get(&resource, "podinfo").await;
    assert_eq!(version_of(&route), before);
    assert_eq!(
        route.metadata.labels.as_ref().expect("labels")["team"],
        "web"
    );
    assert_eq!(
        router
            .get_routes(&canary)
            .await
            .expect("the router call succeeds"),
        Routes::weighted(80, 20)
    );
}

#[tokio::test]
async fn gateway_api_v1_routes_are_reconciled_routed_and_idempotent() {
    weighted_story(GatewayApiVersion::V1).await;
}

#[tokio::test]
async fn gateway_api_v1beta1_routes_are_reconciled_routed_and_idempotent() {
    weighted_story(GatewayApiVersion::V1beta1).await;
}

#[tokio::test]
async fn gateway_api_ab_testing_mirroring_and_adoption() {
    let env = Env::start("gwapi-ab").await;
    let renderer = GatewayApi::new(GatewayApiVersion::V1);
    let resource = renderer.http_route_resource();
    let original = json!({
        "parentRefs": [{ "name": "gateway", "namespace": "istio-ingress" }],
        "rules": [{ "backendRefs": [{ "name": "podinfo", "port": 9898 }] }],
    });
    env.apply_as(
        "kubectl",
        &resource,
        json!({ "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": { "name": "podinfo" }, "spec": original }),
    )
    .await;
    let canary = env
        .create_canary(
            "  service: {port: 9898, gatewayRefs: [{name: gateway, namespace: istio-ingress}]}\n  analysis:\n    iterations: 5\n    \
             match: [{headers: {x-canary: {exact: insider}}}, {queryParams: {canary: {regex: '^t.*'}}}]",
        )
        .await;
    let router = MeshRouter::new(renderer, env.client.clone());
    router.reconcile(&canary).await.unwrap();
    assert!(!owned_by(&env.get(&resource, "podinfo").await, &canary));

    router
        .set_routes(&canary, Routes::weighted(0, 100))
        .await
        .unwrap();
    assert_eq!(
        router.get_routes(&canary).await.unwrap(),
        Routes::weighted(0, 100)
    );
    let route = env.get(&resource, "podinfo").await;
    assert_eq!(
        route.data["spec"]["rules"][0]["matches"][1]["queryParams"][0]["type"],
        "RegularExpression"
    );
    assert_eq!(
        route.data["spec"]["rules"][1]["backendRefs"][0]["weight"],
        100
    );

    let mut mirrored = canary.clone();
    let analysis = mirrored.spec.analysis.as_mut().unwrap();
    analysis.match_.clear();
    analysis.mirror = true;
    let mirroring = Routes::weighted(100, 0).with_mirror(true);
    router.set_routes(&mirrored, mirroring).await.unwrap();
    assert_eq!(router.get_routes(&mirrored).await.unwrap(), mirroring);

    router.finalize(&canary).await.unwrap();
    let route = env.get(&resource, "podinfo").await;
    assert_eq!(
        route.data["spec"]["rules"][0]["backendRefs"][0]["name"],
        "podinfo"
    );
    assert_eq!(route.data["spec"]["rules"].as_array().unwrap().len(), 1);
}
