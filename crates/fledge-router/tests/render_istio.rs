//! Istio VirtualService and DestinationRules, compared with Flagger's `pkg/router/istio.go`
//! and the Istio tutorials (canary, A/B testing, blue/green mirroring, session affinity).

mod common;

use common::{canary, canary_with_status, rendered, round_trip};
use fledge_router::{Istio, Routes, TrafficRenderer};

const PODINFO: &str = "  service:\n    port: 9898\n  analysis: {interval: 1m, threshold: 5, maxWeight: 50, stepWeight: 10}";

#[test]
fn a_canary_starts_with_all_traffic_on_the_primary_in_the_mesh() {
    let objects = rendered(&Istio, &canary(PODINFO), Routes::INITIAL);
    insta::assert_yaml_snapshot!("istio_initial", objects);
}

#[test]
fn the_gateway_tutorial_keeps_hosts_gateways_match_rewrite_retries_cors_headers_and_policy() {
    let spec = r#"  service:
    port: 9898
    portDiscovery: true
    gateways: [public-gateway.istio-system.svc.cluster.local]
    hosts: [app.example.com]
    trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
    match: [{uri: {prefix: /api}}]
    rewrite: {uri: /, authority: podinfo.test}
    timeout: 30s
    retries: {attempts: 3, perTryTimeout: 1s, retryOn: "gateway-error,connect-failure,refused-stream"}
    headers:
      request: {add: {x-envoy-upstream-rq-timeout-ms: "15000"}}
      response: {remove: [x-powered-by]}
    corsPolicy: {allowOrigin: [example.com], allowMethods: [GET], allowCredentials: false, maxAge: 24h}
    apex: {labels: {team: web}}
  analysis: {interval: 1m, threshold: 5, maxWeight: 50, stepWeight: 10}"#;
    let objects = rendered(&Istio, &canary(spec), Routes::weighted(80, 20));
    insta::assert_yaml_snapshot!("istio_gateway_80_20", objects[0]);
    insta::assert_yaml_snapshot!("istio_destination_rules", &objects[1..]);
}

#[test]
fn ab_testing_sends_matching_requests_to_the_canary_and_the_rest_to_the_primary() {
    let spec = r#"  service:
    port: 9898
    match: [{uri: {prefix: /}}]
  analysis:
    interval: 1m
    iterations: 10
    match:
      - headers: {x-canary: {exact: insider}}
      - headers: {cookie: {regex: "^(.*?;)?(canary=always)(;.*)?$"}}
      - sourceLabels: {app: frontend}"#;
    let c = canary(spec);
    let objects = rendered(&Istio, &c, Routes::weighted(0, 100));
    insta::assert_yaml_snapshot!("istio_ab_testing", objects[0]);
    assert_eq!(
        round_trip(&Istio, &c, Routes::weighted(0, 100)),
        Routes::weighted(0, 100)
    );
}

#[test]
fn blue_green_mirroring_copies_traffic_to_the_canary_at_the_mirror_weight() {
    let spec = "  service: {port: 9898}\n  analysis: {interval: 1m, iterations: 10, mirror: true, mirrorWeight: 50}";
    let c = canary(spec);
    let routes = Routes::weighted(100, 0).with_mirror(true);
    let objects = rendered(&Istio, &c, routes);
    insta::assert_yaml_snapshot!("istio_mirroring", objects[0]);
    assert_eq!(round_trip(&Istio, &c, routes), routes);
}

#[test]
fn session_affinity_pins_users_with_cookies_while_the_canary_has_traffic() {
    let spec = r"  service: {port: 9898}
  analysis:
    interval: 1m
    stepWeight: 10
    maxWeight: 50
    sessionAffinity: {cookieName: flagger-cookie, primaryCookieName: primary-cookie, maxAge: 21600}";
    let status = "{sessionAffinityCookie: flagger-cookie=LpsIaLdoNZ, primarySessionAffinityCookie: primary-cookie=mNhdOJMbGq}";
    let c = canary_with_status(spec, status);
    insta::assert_yaml_snapshot!(
        "istio_session_affinity_80_20",
        rendered(&Istio, &c, Routes::weighted(80, 20))[0]
    );
    assert_eq!(
        round_trip(&Istio, &c, Routes::weighted(80, 20)),
        Routes::weighted(80, 20)
    );
    // Back at weight 0 the rollout's cookie is expired, so pinned users return to the primary.
    insta::assert_yaml_snapshot!(
        "istio_session_affinity_expires_cookie",
        rendered(&Istio, &c, Routes::INITIAL)[0]
    );
    assert_eq!(round_trip(&Istio, &c, Routes::INITIAL), Routes::INITIAL);
}

#[test]
fn tcp_services_get_a_tcp_route() {
    let spec = "  service: {port: 9000, appProtocol: tcp, match: [{port: 9000}]}\n  analysis: {stepWeight: 10}";
    let c = canary(spec);
    insta::assert_yaml_snapshot!(
        "istio_tcp",
        rendered(&Istio, &c, Routes::weighted(70, 30))[0]
    );
    assert_eq!(
        round_trip(&Istio, &c, Routes::weighted(70, 30)),
        Routes::weighted(70, 30)
    );
}

#[test]
fn a_delegate_has_no_hosts_nor_gateways_and_names_the_port() {
    let c = canary(
        "  service: {port: 9898, delegation: true, portDiscovery: true}\n  analysis: {stepWeight: 10}",
    );
    insta::assert_yaml_snapshot!("istio_delegate", rendered(&Istio, &c, Routes::INITIAL)[0]);
    let bad = canary("  service: {port: 9898, delegation: true, hosts: [app.example.com]}");
    let err = Istio.render(&bad, Routes::INITIAL).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("spec.service.delegation: a delegate VirtualService cannot have hosts"),
        "{err}"
    );
}

#[test]
fn every_split_reads_back_as_it_was_set() {
    let c = canary(PODINFO);
    for canary_weight in (0..=100).step_by(5) {
        let routes = Routes::weighted(100 - canary_weight, canary_weight);
        assert_eq!(round_trip(&Istio, &c, routes), routes);
    }
}
