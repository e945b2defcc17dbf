//! Gateway API HTTPRoutes, compared with Flagger's `pkg/router/gateway_api.go` and the
//! Gateway API progressive-delivery tutorial.

mod common;

use common::{canary, canary_with_status, rendered, round_trip};
use fledge_router::{GatewayApi, GatewayApiVersion, Routes, TrafficRenderer};

const V1: GatewayApi = GatewayApi::new(GatewayApiVersion::V1);

const PODINFO: &str = r"  provider: gatewayapi:v1
  service:
    port: 9898
    hosts: [www.example.com]
    gatewayRefs: [{name: gateway, namespace: istio-ingress}]
  analysis: {interval: 1m, threshold: 5, maxWeight: 50, stepWeight: 10}";

#[test]
fn the_tutorial_route_splits_between_primary_and_canary() {
    let c = canary(PODINFO);
    insta::assert_yaml_snapshot!(
        "gateway_api_80_20",
        rendered(&V1, &c, Routes::weighted(80, 20))
    );
    for canary_weight in (0..=100).step_by(10) {
        let routes = Routes::weighted(100 - canary_weight, canary_weight);
        assert_eq!(round_trip(&V1, &c, routes), routes);
    }
}

#[test]
fn v1beta1_writes_the_same_route_under_its_own_api_version() {
    let c = canary(PODINFO);
    let v1beta1 = GatewayApi::new(GatewayApiVersion::V1beta1);
    let route = &rendered(&v1beta1, &c, Routes::INITIAL)[0];
    let v1_route = &rendered(&V1, &c, Routes::INITIAL)[0];
    assert_eq!(
        route.types.as_ref().unwrap().api_version,
        "gateway.networking.k8s.io/v1beta1"
    );
    assert_eq!(route.data, v1_route.data);
}

#[test]
fn service_options_become_matches_filters_and_timeouts() {
    let spec = r#"  service:
    port: 9898
    gatewayRefs: [{name: gateway, namespace: istio-ingress, sectionName: https}]
    match: [{uri: {prefix: /api}, method: {exact: GET}, headers: {x-tenant: {exact: acme}}}]
    rewrite: {uri: /, type: ReplacePrefixMatch, authority: podinfo.internal}
    timeout: 30s
    backendTimeout: 10s
    headers:
      request: {set: {x-b: "2", x-a: "1"}, remove: [x-debug]}
      response: {add: {x-served-by: fledge}}
    mirror: [{backendRef: {name: podinfo-shadow, port: 9898}, percent: 10}]
    corsPolicy: {allowOrigin: ["https://example.com"], allowMethods: [GET, POST], allowCredentials: true, maxAge: 24h}
  analysis: {stepWeight: 10}"#;
    insta::assert_yaml_snapshot!(
        "gateway_api_service_options",
        rendered(&V1, &canary(spec), Routes::INITIAL)[0]
    );
}

#[test]
fn ab_testing_routes_matching_headers_and_query_params_to_the_canary() {
    let spec = r#"  service:
    port: 9898
    gatewayRefs: [{name: gateway, namespace: istio-ingress}]
  analysis:
    iterations: 10
    match:
      - headers: {x-canary: {exact: insider}}
      - headers: {cookie: {regex: "^(.*?;)?(canary=always)(;.*)?$"}}
      - queryParams: {canary: {exact: "true"}}"#;
    let c = canary(spec);
    insta::assert_yaml_snapshot!(
        "gateway_api_ab_testing",
        rendered(&V1, &c, Routes::weighted(0, 100))[0]
    );
    assert_eq!(
        round_trip(&V1, &c, Routes::weighted(0, 100)),
        Routes::weighted(0, 100)
    );
}

#[test]
fn blue_green_mirroring_adds_a_request_mirror_filter() {
    let spec = r"  service:
    port: 9898
    gatewayRefs: [{name: gateway, namespace: istio-ingress}]
  analysis: {iterations: 10, mirror: true, mirrorWeight: 50}";
    let c = canary(spec);
    let routes = Routes::weighted(100, 0).with_mirror(true);
    insta::assert_yaml_snapshot!("gateway_api_mirroring", rendered(&V1, &c, routes)[0]);
    assert_eq!(round_trip(&V1, &c, routes), routes);
}

#[test]
fn session_affinity_hands_out_cookies_from_the_backends() {
    let spec = r"  service:
    port: 9898
    gatewayRefs: [{name: gateway, namespace: istio-ingress}]
  analysis:
    interval: 1m
    stepWeight: 10
    sessionAffinity: {cookieName: flagger-cookie, maxAge: 21600, sameSite: Strict, httpOnly: true}";
    let c = canary_with_status(spec, "{sessionAffinityCookie: flagger-cookie=LpsIaLdoNZ}");
    insta::assert_yaml_snapshot!(
        "gateway_api_session_affinity",
        rendered(&V1, &c, Routes::weighted(90, 10))[0]
    );
    assert_eq!(
        round_trip(&V1, &c, Routes::weighted(90, 10)),
        Routes::weighted(90, 10)
    );
}

#[test]
fn what_gateway_api_cannot_express_is_refused_with_the_field_to_fix() {
    let no_gateway = canary("  service: {port: 9898}");
    let err = V1.render(&no_gateway, Routes::INITIAL).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("spec.service.gatewayRefs: must name at least one Gateway"),
        "{err}"
    );

    let prefix_header = canary(
        "  service: {port: 9898, gatewayRefs: [{name: gw}]}\n  analysis: {iterations: 5, match: [{headers: {x-user: {prefix: a}}}]}",
    );
    let err = V1.render(&prefix_header, Routes::INITIAL).unwrap_err();
    assert!(err.to_string().starts_with("spec.analysis.match[0].headers.x-user: Gateway API matches by exact value or regex only"), "{err}");
}
