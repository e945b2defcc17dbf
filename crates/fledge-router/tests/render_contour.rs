//! Contour HTTPProxies, compared with Flagger's `pkg/router/contour.go` and `contour_test.go`
//! (whose fixture canary is PODINFO below).

mod common;

use common::{canary, rendered, round_trip};
use fledge_router::{Contour, Routes, TrafficRenderer};
use serde_json::json;

/// Flagger's test canary: port 9898, a `/podinfo` prefix, retries and (after its update) a
/// one-minute timeout.
const PODINFO: &str = r"  provider: contour
  service:
    port: 9898
    timeout: 1m
    match: [{uri: {prefix: /podinfo}, method: {exact: GET}}]
    retries: {attempts: 10, perTryTimeout: 30s, retryOn: 'connect-failure,gateway-error'}
  analysis: {interval: 1m, threshold: 5, maxWeight: 50, stepWeight: 10}";

fn contour() -> Contour {
    Contour::new(Some("contour".into()))
}

#[test]
fn the_proxy_splits_the_prefix_between_primary_and_canary_with_flaggers_policies() {
    let c = canary(PODINFO);
    let objects = rendered(&contour(), &c, Routes::weighted(80, 20));
    insta::assert_yaml_snapshot!("contour_80_20", objects);
    let spec = &objects[0].data["spec"];
    // Flagger's TestContourRouter_Reconcile expectations.
    assert_eq!(spec["ingressClassName"], "contour");
    let route = &spec["routes"][0];
    assert_eq!(route["services"][0]["name"], "podinfo-primary");
    assert_eq!(route["services"][0]["port"], 9898);
    assert_eq!(route["services"][0]["weight"], 80);
    assert_eq!(route["services"][1]["weight"], 20);
    assert_eq!(
        route["timeoutPolicy"],
        json!({ "response": "1m", "idle": "5m" })
    );
    assert_eq!(route["conditions"][0]["prefix"], "/podinfo");
    assert_eq!(route["retryPolicy"]["count"], 10);
    assert_eq!(
        route["retryPolicy"]["retryOn"],
        json!(["connect-failure", "gateway-error"])
    );
    assert_eq!(
        route["services"][1]["requestHeadersPolicy"]["set"][0],
        json!({ "name": "l5d-dst-override", "value": "podinfo-canary.test.svc.cluster.local:9898" })
    );
    for canary_weight in (0..=100).step_by(10) {
        let routes = Routes::weighted(100 - canary_weight, canary_weight);
        assert_eq!(round_trip(&contour(), &c, routes), routes);
    }
}

#[test]
fn without_an_ingress_class_or_policies_the_proxy_routes_everything_under_slash() {
    let c = canary("  service: {port: 80}\n  analysis: {stepWeight: 10}");
    let proxy = &rendered(&Contour::default(), &c, Routes::INITIAL)[0];
    let spec = &proxy.data["spec"];
    assert!(spec.get("ingressClassName").is_none());
    let route = &spec["routes"][0];
    assert_eq!(route["conditions"], json!([{ "prefix": "/" }]));
    assert!(route.get("timeoutPolicy").is_none());
    assert!(route.get("retryPolicy").is_none());
    assert_eq!(
        proxy
            .metadata
            .annotations
            .as_ref()
            .unwrap()
            .get("kustomize.toolkit.fluxcd.io/reconcile")
            .map(String::as_str),
        Some("disabled"),
        "Flux keeps its hands off generated objects"
    );
}

#[test]
fn ab_testing_routes_each_condition_to_the_split_and_the_rest_to_the_primary() {
    let spec = r#"  service: {port: 9898, match: [{uri: {prefix: /podinfo}}]}
  analysis:
    iterations: 10
    match:
      - headers: {x-user-type: {exact: test}}
      - headers: {cookie: {regex: "^(.*?;)?(canary=always)(;.*)?$"}, x-tier: {prefix: beta.}}
      - queryParams: {canary: {prefix: "tr"}}
        withoutHeaders: {x-bot: {exact: "yes"}}"#;
    let c = canary(spec);
    let objects = rendered(&contour(), &c, Routes::weighted(0, 100));
    insta::assert_yaml_snapshot!("contour_ab_testing", objects);
    let routes = objects[0].data["spec"]["routes"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(routes.len(), 4, "three A/B routes and the rest");
    // Flagger's expectation: the first route matches the header exactly.
    assert_eq!(routes[0]["conditions"][1]["header"]["exact"], "test");
    // One prefix per route, the header conditions beside it.
    assert_eq!(
        routes[1]["conditions"],
        json!([
            { "prefix": "/podinfo" },
            { "header": { "name": "cookie", "regex": "^(.*?;)?(canary=always)(;.*)?$" } },
            { "header": { "name": "x-tier", "regex": "beta\\..*" } },
        ])
    );
    assert_eq!(
        routes[2]["conditions"],
        json!([
            { "prefix": "/podinfo" },
            { "header": { "name": "x-bot", "notexact": "yes" } },
            { "queryParameter": { "name": "canary", "prefix": "tr" } },
        ])
    );
    for route in &routes[..3] {
        assert_eq!(route["services"][1]["weight"], 100);
    }
    assert_eq!(routes[3]["conditions"], json!([{ "prefix": "/podinfo" }]));
    assert_eq!(routes[3]["services"][0]["weight"], 100);
    assert_eq!(routes[3]["services"][1]["weight"], 0);
    assert_eq!(
        round_trip(&contour(), &c, Routes::weighted(0, 100)),
        Routes::weighted(0, 100)
    );
    assert_eq!(round_trip(&contour(), &c, Routes::INITIAL), Routes::INITIAL);
}

#[test]
fn status_codes_in_retry_on_become_retriable_status_codes() {
    let c = canary(
        "  service: {port: 80, retries: {attempts: 3, retryOn: 'gateway-error,503,504,gateway-error'}}\n  analysis: {stepWeight: 10}",
    );
    let proxy = &rendered(&contour(), &c, Routes::INITIAL)[0];
    assert_eq!(
        proxy.data["spec"]["routes"][0]["retryPolicy"],
        json!({
            "count": 3,
            "retryOn": ["gateway-error", "retriable-status-codes"],
            "retriableStatusCodes": [503, 504],
        })
    );
}

#[test]
fn what_contour_cannot_do_is_an_error_naming_the_field_and_the_provider() {
    let refused = |spec: &str| {
        contour()
            .render(&canary(spec), Routes::INITIAL)
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        refused("  service: {port: 80}\n  analysis: {iterations: 5, mirror: true}"),
        "spec.analysis.mirror: the contour provider cannot mirror traffic; remove `mirror` or use istio or gatewayapi"
    );
    assert_eq!(
        refused(
            "  service: {port: 80}\n  analysis: {stepWeight: 5, sessionAffinity: {cookieName: c}}"
        ),
        "spec.analysis.sessionAffinity: the contour provider has no cookie-based session affinity; remove sessionAffinity or use istio or gatewayapi"
    );
    assert_eq!(
        refused(
            "  service: {port: 80}\n  analysis: {iterations: 5, match: [{headers: {a: {exact: b}}}, {uri: {prefix: /beta}}]}"
        ),
        "spec.analysis.match[1].uri: the contour provider routes A/B tests by headers, withoutHeaders and queryParams only; remove `uri`"
    );
    assert_eq!(
        refused(
            "  service: {port: 80}\n  analysis: {iterations: 5, match: [{withoutHeaders: {a: {regex: b.*}}}]}"
        ),
        "spec.analysis.match[0].withoutHeaders.a: Contour excludes header values by exact value only; use exact"
    );
    let err = refused("  service: {port: 80, retries: {retryOn: 'connect-failure,5xx-ish'}}");
    assert!(
        err.starts_with(
            "spec.service.retries.retryOn: Contour cannot retry on \"5xx-ish\"; use status codes or 5xx, gateway-error"
        ),
        "{err}"
    );
}
