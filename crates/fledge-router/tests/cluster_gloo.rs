//! The Gloo router against a real kube-apiserver with Gloo's own RouteTable and Upstream
//! schemas.

mod common;

use common::cluster::{Env, assert_kept, owned_by, version_of};
use fledge_router::{Gloo, GlooRouter, Router, RouterOptions, Routes, TrafficRenderer, router_for};
use serde_json::json;

/// Flagger's e2e config Upstream: settings for the generated Upstreams, its own destination
/// never used.
fn config_upstream(slow_start: &str) -> serde_json::Value {
    json!({
        "apiVersion": "gloo.solo.io/v1",
        "kind": "Upstream",
        "metadata": { "name": "config-upstream" },
        "spec": {
            "static": { "hosts": [{ "addr": "example.com", "port": 80 }] },
            "connectionConfig": { "connectTimeout": "2s", "maxRequestsPerConnection": 51 },
            "loadBalancerConfig": { "roundRobin": { "slowStartConfig": { "slowStartWindow": slow_start, "minWeightPercent": 5 } } },
        },
    })
}

#[tokio::test]
async fn gloo_route_table_and_upstreams_follow_the_canary_and_its_upstream_ref() {
    let env = Env::start("gloo").await;
    let upstreams = Gloo::upstream_resource();
    let tables = Gloo::route_table_resource();
    env.apply_as("kubectl", &upstreams, config_upstream("2m"))
        .await;
    let spec = format!(
        "  provider: gloo\n  upstreamRef: {{apiVersion: gloo.solo.io/v1, kind: Upstream, name: config-upstream, namespace: {}}}\n  \
         service: {{port: 80, targetPort: 9898}}\n  analysis: {{interval: 10s, threshold: 5, maxWeight: 50, stepWeight: 10}}",
        env.ns()
    );
    let canary = env.create_canary(&spec).await;
    let router = router_for("gloo", env.client.clone(), &RouterOptions::default()).unwrap();
    assert_eq!(router.routing_resource(), Some(tables.clone()));
    router.reconcile(&canary).await.unwrap();

    // The RouteTable as rendered, and two Upstreams with the referenced settings, all owned.
    let table = env.get(&tables, "podinfo").await;
    let config = env.get(&upstreams, "config-upstream").await;
    let rendered = Gloo::configured_by(&config)
        .render(&canary, Routes::INITIAL)
        .unwrap();
    assert_kept(&table.data["spec"], &rendered.routing.object.data["spec"]);
    assert!(owned_by(&table, &canary));
    let (primary, canary_upstream) = Gloo::upstream_names(&canary).unwrap();
    assert_eq!(primary, format!("{}-podinfo-primaryupstream-80", env.ns()));
    for (name, expected) in [&primary, &canary_upstream]
        .into_iter()
        .zip(&rendered.supporting)
    {
        let upstream = env.get(&upstreams, name).await;
        assert_kept(&upstream.data["spec"], &expected.object.data["spec"]);
        assert!(owned_by(&upstream, &canary));
        assert_eq!(
            upstream.data["spec"]["connectionConfig"]["maxRequestsPerConnection"],
            51
        );
        assert!(upstream.data["spec"].get("static").is_none());
    }
    assert_eq!(router.get_routes(&canary).await.unwrap(), Routes::INITIAL);

    for canary_weight in [10, 20, 30, 40, 50, 0] {
        let split = Routes::weighted(100 - canary_weight, canary_weight);
        router.set_routes(&canary, split).await.unwrap();
        assert_eq!(router.get_routes(&canary).await.unwrap(), split);
    }

    // Reconciling again writes nothing while the referenced Upstream is unchanged...
    let before = version_of(&env.get(&upstreams, &canary_upstream).await);
    let table_before = version_of(&env.get(&tables, "podinfo").await);
    router.reconcile(&canary).await.unwrap();
    assert_eq!(
        version_of(&env.get(&upstreams, &canary_upstream).await),
        before
    );
    assert_eq!(version_of(&env.get(&tables, "podinfo").await), table_before);
    // ...and carries its new load-balancer settings over when it changes, as Flagger does.
    env.apply_as("kubectl", &upstreams, config_upstream("5m"))
        .await;
    router.reconcile(&canary).await.unwrap();
    let upstream = env.get(&upstreams, &canary_upstream).await;
    assert_eq!(
        upstream.data["spec"]["loadBalancerConfig"]["roundRobin"]["slowStartConfig"]["slowStartWindow"],
        "5m"
    );

    // A reference to an Upstream that is not there names the field.
    let mut dangling = canary.clone();
    dangling.spec.upstream_ref.as_mut().unwrap().name = "missing".into();
    let err = GlooRouter::new(env.client.clone())
        .reconcile(&dangling)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "spec.upstreamRef: Upstream {}/missing not found; create it or remove upstreamRef",
            env.ns()
        )
    );
}

#[tokio::test]
async fn gloo_ab_testing_and_adoption_of_a_users_route_table_restored_on_finalize() {
    let env = Env::start("gloo-ab").await;
    let tables = Gloo::route_table_resource();
    let original = json!({
        "routes": [{
            "matchers": [{ "prefix": "/" }],
            "routeAction": { "single": { "upstream": { "name": "podinfo", "namespace": env.ns() } } },
        }],
    });
    env.apply_as(
        "kubectl",
        &tables,
        json!({ "apiVersion": "gateway.solo.io/v1", "kind": "RouteTable", "metadata": { "name": "podinfo" }, "spec": original }),
    )
    .await;
    let canary = env
        .create_canary(
            "  provider: gloo\n  service: {port: 9898}\n  analysis:\n    iterations: 5\n    match:\n      - headers: {x-canary: {exact: insider}}\n      - headers: {cookie: {regex: '^(.*?;)?(canary=always)(;.*)?$'}}\n        method: {exact: GET}",
        )
        .await;
    let router = GlooRouter::new(env.client.clone());
    router.reconcile(&canary).await.unwrap();
    let table = env.get(&tables, "podinfo").await;
    assert!(!owned_by(&table, &canary));

    router
        .set_routes(&canary, Routes::weighted(0, 100))
        .await
        .unwrap();
    assert_eq!(
        router.get_routes(&canary).await.unwrap(),
        Routes::weighted(0, 100)
    );
    let table = env.get(&tables, "podinfo").await;
    let rendered = Gloo::new()
        .render(&canary, Routes::weighted(0, 100))
        .unwrap();
    assert_kept(&table.data["spec"], &rendered.routing.object.data["spec"]);
    assert_eq!(
        table.data["spec"]["routes"][0]["matchers"][1]["methods"],
        json!(["GET"])
    );
    assert_eq!(
        table.data["spec"]["routes"][1]["routeAction"]["multi"]["destinations"][0]["weight"],
        100
    );
    assert!(router.routing_in_sync(&canary, &table).unwrap());

    router.finalize(&canary).await.unwrap();
    let table = env.get(&tables, "podinfo").await;
    assert_eq!(table.data["spec"]["routes"], original["routes"]);
}
