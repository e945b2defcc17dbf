//! Gloo RouteTables and Upstreams, compared with Flagger's `pkg/router/gloo.go` and
//! `gloo_test.go`.

mod common;

use common::{canary, rendered, round_trip};
use fledge_router::{Gloo, Routes, TrafficRenderer};
use kube::api::DynamicObject;
use serde_json::json;

const PODINFO: &str = r"  provider: gloo
  service: {port: 9898}
  analysis: {interval: 1m, threshold: 5, maxWeight: 50, stepWeight: 10}";

#[test]
fn the_route_table_splits_between_the_two_generated_upstreams() {
    let c = canary(PODINFO);
    let objects = rendered(&Gloo::new(), &c, Routes::INITIAL);
    insta::assert_yaml_snapshot!("gloo_initial", objects);
    // Flagger's TestGlooRouter_Sync: two destinations at 100 and 0.
    let destinations =
        &objects[0].data["spec"]["routes"][0]["routeAction"]["multi"]["destinations"];
    assert_eq!(destinations.as_array().unwrap().len(), 2);
    assert_eq!(
        destinations[0],
        json!({ "destination": { "upstream": { "name": "test-podinfo-primaryupstream-9898", "namespace": "test" } }, "weight": 100 })
    );
    assert_eq!(destinations[1]["weight"], 0);
    assert_eq!(
        objects[2].data["spec"],
        json!({ "kube": { "serviceName": "podinfo-canary", "serviceNamespace": "test", "servicePort": 9898 } })
    );
    assert_eq!(
        Gloo::upstream_names(&c).unwrap(),
        (
            "test-podinfo-primaryupstream-9898".to_owned(),
            "test-podinfo-canaryupstream-9898".to_owned()
        )
    );
    for canary_weight in (0..=100).step_by(10) {
        let routes = Routes::weighted(100 - canary_weight, canary_weight);
        assert_eq!(round_trip(&Gloo::new(), &c, routes), routes);
    }
}

#[test]
fn ab_testing_matches_each_condition_and_sends_the_rest_to_the_primary() {
    let spec = r#"  service: {port: 9898}
  analysis:
    iterations: 5
    match:
      - headers: {x-user-type: {exact: test}}
      - headers: {cookie: {regex: "^(.*?;)?(canary=always)(;.*)?$"}}
        method: {exact: GET}
      - queryParams: {canary: {prefix: "t"}}
        withoutHeaders: {x-bot: {exact: "yes"}}"#;
    let c = canary(spec);
    let table = &rendered(&Gloo::new(), &c, Routes::weighted(0, 100))[0];
    insta::assert_yaml_snapshot!("gloo_ab_testing", table);
    let routes = &table.data["spec"]["routes"];
    // Flagger's TestGlooRouter_SetRoutes A/B expectation.
    assert_eq!(
        routes[0]["matchers"][0]["headers"][0]["name"],
        "x-user-type"
    );
    assert_eq!(routes[0]["matchers"][0]["headers"][0]["value"], "test");
    assert_eq!(
        routes[0]["matchers"][1],
        json!({
            "headers": [{ "name": "cookie", "value": "^(.*?;)?(canary=always)(;.*)?$", "regex": true }],
            "methods": ["GET"],
        })
    );
    assert_eq!(
        routes[0]["matchers"][2],
        json!({
            "headers": [{ "name": "x-bot", "value": "yes", "invertMatch": true }],
            "queryParameters": [{ "name": "canary", "value": "t.*", "regex": true }],
        })
    );
    assert_eq!(
        routes[0]["routeAction"]["multi"]["destinations"][1]["weight"],
        100
    );
    assert!(routes[1].get("matchers").is_none());
    assert_eq!(
        routes[1]["routeAction"]["multi"]["destinations"][0]["weight"],
        100
    );
    assert_eq!(
        round_trip(&Gloo::new(), &c, Routes::weighted(0, 100)),
        Routes::weighted(0, 100)
    );
}

#[test]
fn the_referenced_upstream_lends_its_connection_settings() {
    let reference: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "gloo.solo.io/v1",
        "kind": "Upstream",
        "metadata": { "name": "config-upstream", "namespace": "gloo-system" },
        "spec": {
            "static": { "hosts": [{ "addr": "example.com", "port": 80 }] },
            "connectionConfig": { "connectTimeout": "2s", "maxRequestsPerConnection": 51 },
            "loadBalancerConfig": { "roundRobin": { "slowStartConfig": { "slowStartWindow": "2m", "minWeightPercent": 5 } } },
            "useHttp2": true,
        },
    }))
    .unwrap();
    let c = canary(PODINFO);
    let objects = rendered(&Gloo::configured_by(&reference), &c, Routes::INITIAL);
    // Flagger's e2e config-upstream: its settings, never its destination.
    assert_eq!(
        objects[1].data["spec"],
        json!({
            "kube": { "serviceName": "podinfo-primary", "serviceNamespace": "test", "servicePort": 9898 },
            "connectionConfig": { "connectTimeout": "2s", "maxRequestsPerConnection": 51 },
            "loadBalancerConfig": { "roundRobin": { "slowStartConfig": { "slowStartWindow": "2m", "minWeightPercent": 5 } } },
            "useHttp2": true,
        })
    );
    assert_eq!(objects[1].data["spec"], {
        let mut canary_spec = objects[2].data["spec"].clone();
        canary_spec["kube"]["serviceName"] = json!("podinfo-primary");
        canary_spec
    });
}

#[test]
fn what_gloo_cannot_match_is_an_error_naming_the_field() {
    let refused = |analysis: &str| {
        Gloo::new()
            .render(
                &canary(&format!("  service: {{port: 80}}\n  analysis: {analysis}")),
                Routes::INITIAL,
            )
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        refused("{iterations: 5, match: [{uri: {prefix: /beta}}]}"),
        "spec.analysis.match[0].uri: the gloo provider routes A/B tests by headers, withoutHeaders, queryParams and method only; remove `uri`"
    );
    assert_eq!(
        refused("{iterations: 5, match: [{method: {prefix: P}}]}"),
        "spec.analysis.match[0].method: Gloo matches methods by exact name only; use exact"
    );
    assert_eq!(
        refused("{iterations: 5, match: [{headers: {x: {}}}]}"),
        "spec.analysis.match[0].headers.x: set one of exact, prefix or regex"
    );
    assert_eq!(
        refused("{iterations: 5, mirror: true}"),
        "spec.analysis.mirror: the gloo provider cannot mirror traffic; remove `mirror` or use istio or gatewayapi"
    );
}
