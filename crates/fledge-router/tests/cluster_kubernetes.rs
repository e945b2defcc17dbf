//! The three Services and the `kubernetes` provider (blue/green without a mesh) against a real
//! kube-apiserver.

mod common;

use common::cluster::{Env, owned_by, version_of};
use fledge_router::{
    Error, KubernetesRouter, Router, RouterOptions, Routes, ServiceRouter, ServiceTarget,
    router_for,
};
use kube::api::ApiResource;
use serde_json::json;

fn services() -> ApiResource {
    ApiResource::erase::<k8s_openapi::api::core::v1::Service>(&())
}

const SPEC: &str = r"  provider: kubernetes
  service:
    port: 9898
    targetPort: http
    apex: {annotations: {prometheus.io/scrape: 'true'}}
  analysis: {interval: 1m, iterations: 5, threshold: 2}";

#[tokio::test]
async fn services_select_the_right_pods_are_idempotent_and_keep_user_edits() {
    let env = Env::start("services").await;
    let canary = env.create_canary(SPEC).await;
    let mut target = ServiceTarget::new("app", "podinfo");
    target.extra_ports.insert("http-metrics".into(), 9797);
    let router = ServiceRouter::new(env.client.clone());
    router.reconcile(&canary, &target).await.unwrap();

    let selector = |svc: &kube::api::DynamicObject| svc.data["spec"]["selector"]["app"].clone();
    let apex = env.get(&services(), "podinfo").await;
    assert_eq!(
        selector(&apex),
        "podinfo-primary",
        "clients keep reaching the primary"
    );
    assert_eq!(
        selector(&env.get(&services(), "podinfo-primary").await),
        "podinfo-primary"
    );
    let canary_svc = env.get(&services(), "podinfo-canary").await;
    assert_eq!(
        selector(&canary_svc),
        "podinfo",
        "the canary is reachable for tests through <svc>-canary"
    );
    assert_eq!(canary_svc.data["spec"]["ports"][0]["targetPort"], "http");
    assert_eq!(canary_svc.data["spec"]["ports"][1]["name"], "http-metrics");
    assert_eq!(
        apex.metadata.annotations.as_ref().unwrap()["prometheus.io/scrape"],
        "true"
    );
    assert!(owned_by(&apex, &canary) && owned_by(&canary_svc, &canary));

    // A field Fledge does not own survives; applying again changes nothing.
    env.merge_patch(&services(), "podinfo-canary", json!({ "metadata": { "labels": { "team": "web" } }, "spec": { "sessionAffinity": "ClientIP" } }))
        .await;
    let before = version_of(&env.get(&services(), "podinfo-canary").await);
    router.reconcile(&canary, &target).await.unwrap();
    let after = env.get(&services(), "podinfo-canary").await;
    assert_eq!(version_of(&after), before);
    assert_eq!(after.metadata.labels.as_ref().unwrap()["team"], "web");
    assert_eq!(after.data["spec"]["sessionAffinity"], "ClientIP");
}

#[tokio::test]
async fn an_apex_service_the_user_deployed_is_adopted_and_reverted_on_finalize() {
    let env = Env::start("services-adopt").await;
    env.apply_as(
        "kubectl",
        &services(),
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": { "name": "podinfo", "labels": { "owner": "team-web" } },
            "spec": {
                "type": "NodePort",
                "selector": { "app": "podinfo" },
                "ports": [{ "name": "http", "port": 9898, "protocol": "TCP", "targetPort": "http" }],
            },
        }),
    )
    .await;
    let canary = env.create_canary(SPEC).await;
    let target = ServiceTarget::new("app", "podinfo");
    let router = ServiceRouter::new(env.client.clone());
    router.reconcile(&canary, &target).await.unwrap();
    let apex = env.get(&services(), "podinfo").await;
    assert_eq!(apex.data["spec"]["selector"]["app"], "podinfo-primary");
    assert!(!owned_by(&apex, &canary));
    assert_eq!(apex.metadata.labels.as_ref().unwrap()["owner"], "team-web");
    assert_eq!(
        apex.data["spec"]["type"], "NodePort",
        "Fledge takes over the selector and ports only"
    );

    router.finalize(&canary, &target).await.unwrap();
    let apex = env.get(&services(), "podinfo").await;
    assert_eq!(
        apex.data["spec"]["selector"]["app"], "podinfo",
        "the apex leads to the target's pods again"
    );
}

#[tokio::test]
async fn the_kubernetes_provider_switches_traffic_only_all_at_once() {
    let env = Env::start("kubernetes").await;
    let canary = env.create_canary(SPEC).await;
    let router = router_for("kubernetes", env.client.clone(), &RouterOptions::default()).unwrap();
    router.reconcile(&canary).await.unwrap();
    assert_eq!(router.get_routes(&canary).await.unwrap(), Routes::INITIAL);
    router
        .set_routes(&canary, Routes::weighted(0, 100))
        .await
        .unwrap();
    router
        .set_routes(&canary, Routes::weighted(100, 0))
        .await
        .unwrap();
    let err = router
        .set_routes(&canary, Routes::weighted(80, 20))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::UnsupportedWeight { canary: 20 }),
        "{err}"
    );
    assert!(err.to_string().contains("routes 0% or 100% only"), "{err}");
    // No traffic objects: nothing but the Services lives in the namespace.
    assert!(
        env.get_opt(&fledge_router::Istio::virtual_service_resource(), "podinfo")
            .await
            .is_none()
    );
    KubernetesRouter.finalize(&canary).await.unwrap();
}
