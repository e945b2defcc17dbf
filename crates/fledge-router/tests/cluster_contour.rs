//! The Contour router against a real kube-apiserver with Contour's own HTTPProxy schema.

mod common;

use common::cluster::{Env, assert_kept, owned_by, version_of};
use fledge_router::{Contour, RouterOptions, Routes, TrafficRenderer, router_for};
use serde_json::json;

const SPEC: &str = r"  provider: contour
  service:
    port: 9898
    timeout: 30s
    match: [{uri: {prefix: /podinfo}}]
    retries: {attempts: 3, perTryTimeout: 5s, retryOn: 'gateway-error,connect-failure,503'}
  analysis: {interval: 1m, threshold: 5, maxWeight: 50, stepWeight: 10}";

fn options() -> RouterOptions {
    RouterOptions {
        ingress_class: Some("contour-external".into()),
        ..RouterOptions::default()
    }
}

#[tokio::test]
async fn contour_proxy_is_reconciled_routed_through_every_step_and_idempotent() {
    let env = Env::start("contour").await;
    let canary = env.create_canary(SPEC).await;
    let resource = Contour::http_proxy_resource();
    let router = router_for("contour", env.client.clone(), &options()).unwrap();
    assert_eq!(router.routing_resource(), Some(resource.clone()));
    router.reconcile(&canary).await.unwrap();

    // Exactly as rendered (nothing pruned by Contour's schema), owned by the Canary, with the
    // operator's ingress class.
    let proxy = env.get(&resource, "podinfo").await;
    let rendered = Contour::new(options().ingress_class)
        .render(&canary, Routes::INITIAL)
        .unwrap();
    assert_kept(&proxy.data["spec"], &rendered.routing.object.data["spec"]);
    assert!(owned_by(&proxy, &canary));
    assert_eq!(proxy.data["spec"]["ingressClassName"], "contour-external");
    assert_eq!(
        proxy.data["spec"]["routes"][0]["retryPolicy"]["retriableStatusCodes"],
        json!([503])
    );
    assert_eq!(router.get_routes(&canary).await.unwrap(), Routes::INITIAL);

    // A canary release's steps, then the promotion back to the primary.
    for canary_weight in [10, 20, 30, 40, 50, 0] {
        let split = Routes::weighted(100 - canary_weight, canary_weight);
        router.set_routes(&canary, split).await.unwrap();
        assert_eq!(router.get_routes(&canary).await.unwrap(), split);
    }
    router
        .set_routes(&canary, Routes::weighted(70, 30))
        .await
        .unwrap();

    // Reconciling keeps the split and writes nothing; the object as read is in sync.
    let before = env.get(&resource, "podinfo").await;
    router.reconcile(&canary).await.unwrap();
    let after = env.get(&resource, "podinfo").await;
    assert_eq!(version_of(&after), version_of(&before));
    assert!(router.routing_in_sync(&canary, &after).unwrap());
    assert_eq!(
        router.routes_in(&canary, &after).unwrap(),
        Routes::weighted(70, 30)
    );

    // A hand edit of what Fledge owns is drift; the next reconcile puts it back.
    env.merge_patch(
        &resource,
        "podinfo",
        json!({ "spec": { "ingressClassName": "other" } }),
    )
    .await;
    let edited = env.get(&resource, "podinfo").await;
    assert!(!router.routing_in_sync(&canary, &edited).unwrap());
    router.reconcile(&canary).await.unwrap();
    let repaired = env.get(&resource, "podinfo").await;
    assert_eq!(
        repaired.data["spec"]["ingressClassName"],
        "contour-external"
    );
    assert_eq!(
        router.get_routes(&canary).await.unwrap(),
        Routes::weighted(70, 30)
    );
}

#[tokio::test]
async fn contour_ab_testing_and_adoption_of_a_users_proxy_restored_on_finalize() {
    let env = Env::start("contour-ab").await;
    let resource = Contour::http_proxy_resource();
    let original = json!({
        "routes": [{ "conditions": [{ "prefix": "/" }], "services": [{ "name": "podinfo", "port": 9898 }] }],
    });
    env.apply_as(
        "kubectl",
        &resource,
        json!({ "apiVersion": "projectcontour.io/v1", "kind": "HTTPProxy", "metadata": { "name": "podinfo" }, "spec": original }),
    )
    .await;
    let canary = env
        .create_canary(
            "  provider: contour\n  service: {port: 9898}\n  analysis:\n    iterations: 5\n    match:\n      - headers: {x-canary: {exact: insider}}\n      - headers: {cookie: {regex: '^(.*?;)?(canary=always)(;.*)?$'}}\n        queryParams: {beta: {prefix: 'y'}}",
        )
        .await;
    let router = router_for("contour", env.client.clone(), &RouterOptions::default()).unwrap();
    router.reconcile(&canary).await.unwrap();

    let proxy = env.get(&resource, "podinfo").await;
    assert!(
        !owned_by(&proxy, &canary),
        "an adopted object must not be garbage-collected with the Canary"
    );
    let saved =
        &proxy.metadata.annotations.as_ref().unwrap()[fledge_router::ORIGINAL_CONFIGURATION];
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(saved).unwrap(),
        original
    );
    assert!(proxy.data["spec"].get("ingressClassName").is_none());

    // The A/B routes take every matching request; the last route keeps the rest on the primary.
    router
        .set_routes(&canary, Routes::weighted(0, 100))
        .await
        .unwrap();
    assert_eq!(
        router.get_routes(&canary).await.unwrap(),
        Routes::weighted(0, 100)
    );
    let proxy = env.get(&resource, "podinfo").await;
    let rendered = Contour::default()
        .render(&canary, Routes::weighted(0, 100))
        .unwrap();
    assert_kept(&proxy.data["spec"], &rendered.routing.object.data["spec"]);
    let proxy_routes = proxy.data["spec"]["routes"].as_array().unwrap();
    assert_eq!(proxy_routes.len(), 3);
    assert_eq!(
        proxy_routes[1]["conditions"][2],
        json!({ "queryParameter": { "name": "beta", "prefix": "y" } })
    );
    assert_eq!(proxy_routes[2]["services"][0]["weight"], 100);

    router.finalize(&canary).await.unwrap();
    let proxy = env.get(&resource, "podinfo").await;
    assert_eq!(proxy.data["spec"]["routes"], original["routes"]);
}
