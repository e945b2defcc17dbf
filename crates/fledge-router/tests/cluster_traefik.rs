//! The Traefik router against a real kube-apiserver with Traefik's own schemas, in both API
//! groups: `traefik.io` (Traefik 2.10 and later, Flagger 1.42 and later) and
//! `traefik.containo.us` (seed 003's tutorial and older Traefik).

mod common;

use common::cluster::{Env, assert_kept, owned_by, version_of};
use fledge_router::{RouterOptions, Routes, Traefik, TraefikGroup, TrafficRenderer, router_for};
use serde_json::json;

/// Seed 003's Canary.
const SPEC: &str = r"  provider: traefik
  progressDeadlineSeconds: 60
  service: {port: 80, targetPort: 9898}
  analysis: {interval: 10s, threshold: 10, maxWeight: 50, stepWeight: 5}";

/// Seed 003's IngressRoute, which the user writes and which names the generated TraefikService.
fn ingress_route(group: TraefikGroup) -> serde_json::Value {
    json!({
        "apiVersion": format!("{}/v1alpha1", group.as_str()),
        "kind": "IngressRoute",
        "metadata": { "name": "podinfo" },
        "spec": {
            "entryPoints": ["web"],
            "routes": [{
                "match": "Host(`app.example.com`)",
                "kind": "Rule",
                "services": [{ "name": "podinfo", "kind": "TraefikService", "port": 80 }],
            }],
        },
    })
}

async fn weighted_story(provider: &str, group: TraefikGroup) {
    let env = Env::start("traefik").await;
    let renderer = Traefik::new(group);
    let resource = renderer.traefik_service_resource();
    let ingress_route_resource = kube::api::ApiResource::from_gvk_with_plural(
        &kube::core::GroupVersionKind::gvk(group.as_str(), "v1alpha1", "IngressRoute"),
        "ingressroutes",
    );
    let user_route = env
        .apply_as("kubectl", &ingress_route_resource, ingress_route(group))
        .await;
    let canary = env.create_canary(SPEC).await;
    let router =
        router_for(provider, env.client.clone(), &RouterOptions::default()).expect("a router");
    assert_eq!(router.routing_resource(), Some(resource.clone()));
    router
        .reconcile(&canary)
        .await
        .expect("the router call succeeds");

    let service = env.get(&resource, "podinfo").await;
    let desired = renderer.render(&canary, Routes::INITIAL).expect("renders");
    assert_kept(&service.data["spec"], &desired.routing.object.data["spec"]);
    assert!(owned_by(&service, &canary));
    assert_eq!(
        router
            .get_routes(&canary)
            .await
            .expect("the router call succeeds"),
        Routes::INITIAL
    );

    // Seed 003's steps: 5% at a time up to 50%, then everything back on the promoted primary;
    // and a full switch to the canary, where the primary's weight 0 must be written.
    for canary_weight in (5..=50).step_by(5).chain([0, 100]) {
        let split = Routes::weighted(100 - canary_weight, canary_weight);
        router
            .set_routes(&canary, split)
            .await
            .expect("the router call succeeds");
        assert_eq!(
            router
                .get_routes(&canary)
                .await
                .expect("the router call succeeds"),
            split
        );
    }
    let service = env.get(&resource, "podinfo").await;
    assert_eq!(
        service.data["spec"]["weighted"]["services"],
        json!([
            { "name": "podinfo-primary", "namespace": env.ns(), "port": 80, "weight": 0 },
            { "name": "podinfo-canary", "namespace": env.ns(), "port": 80, "weight": 100 },
        ])
    );
    router
        .set_routes(&canary, Routes::INITIAL)
        .await
        .expect("the router call succeeds");
    let service = env.get(&resource, "podinfo").await;
    assert_eq!(
        service.data["spec"]["weighted"]["services"]
            .as_array()
            .expect("present")
            .len(),
        1,
        "the canary leaves the list when it gets no traffic"
    );

    // Reconciling changes nothing; the user's IngressRoute was never touched.
    router
        .set_routes(&canary, Routes::weighted(75, 25))
        .await
        .expect("present");
    let before = env.get(&resource, "podinfo").await;
    router
        .reconcile(&canary)
        .await
        .expect("the router call succeeds");
    let after = env.get(&resource, "podinfo").await;
    assert_eq!(version_of(&after), version_of(&before));
    assert!(router.routing_in_sync(&canary, &after).expect("present"));
    assert_eq!(
        router
            .get_routes(&canary)
            .await
            .expect("the router call succeeds"),
        Routes::weighted(75, 25)
    );
    assert_eq!(
        version_of(&env.get(&ingress_route_resource, "podinfo").await),
        version_of(&user_route)
    );
}

#[tokio::test]
async fn traefik_io_service_is_reconciled_routed_through_every_step_and_idempotent() {
    weighted_story("traefik", TraefikGroup::TraefikIo).await;
}

#[tokio::test]
async fn seed_003_containo_us_service_is_reconciled_routed_through_every_step_and_idempotent() {
    weighted_story("traefik:traefik.containo.us", TraefikGroup::ContainoUs).await;
}

#[tokio::test]
async fn traefik_adopts_a_users_service_and_restores_it_on_finalize() {
    let env = Env::start("traefik-adopt").await;
    let resource = Traefik::new(TraefikGroup::TraefikIo).traefik_service_resource();
    let original =
        json!({ "weighted": { "services": [{ "name": "podinfo-v1", "port": 80, "weight": 1 }] } });
    env.apply_as(
        "kubectl",
        &resource,
        json!({ "apiVersion": "traefik.io/v1alpha1", "kind": "TraefikService", "metadata": { "name": "podinfo" }, "spec": original }),
    )
    .await;
    let canary = env.create_canary(SPEC).await;
    let router = router_for("traefik", env.client.clone(), &RouterOptions::default()).unwrap();
    router.reconcile(&canary).await.unwrap();
    let service = env.get(&resource, "podinfo").await;
    assert!(!owned_by(&service, &canary));
    assert_eq!(
        service.data["spec"]["weighted"]["services"][0]["name"],
        "podinfo-primary"
    );
    router
        .set_routes(&canary, Routes::weighted(90, 10))
        .await
        .unwrap();
    assert_eq!(
        router.get_routes(&canary).await.unwrap(),
        Routes::weighted(90, 10)
    );

    router.finalize(&canary).await.unwrap();
    let service = env.get(&resource, "podinfo").await;
    assert_eq!(service.data["spec"], original);
}
