//! The APISIX canary ApisixRoute, cloned from the user's route, compared with Flagger's
//! `pkg/router/apisix.go` and its test.

mod common;

use common::canary;
use fledge_router::{Apisix, ClonedRenderer, Error, Routes};
use kube::api::DynamicObject;
use serde_json::{Value, json};

const APISIX: &str = "  provider: apisix\n  routeRef: {apiVersion: apisix.apache.org/v2, kind: ApisixRoute, name: podinfo}\n  service: {port: 80}\n  analysis: {interval: 1m, threshold: 5, maxWeight: 50, stepWeight: 10}";

/// Flagger's `newTestApisixRoute`, with a second HTTP route to another Service.
fn user_route(http: Option<Value>) -> DynamicObject {
    let http = http.unwrap_or_else(|| {
        json!([
            {
                "name": "method",
                "match": { "hosts": ["foobar.com"], "methods": ["GET"], "paths": ["/*"] },
                "plugins": [{ "name": "prometheus", "enable": true, "config": { "disable": "false", "prefer_name": "true" } }],
                "backends": [{ "serviceName": "podinfo", "servicePort": 80, "resolveGranularity": "service" }],
            },
            {
                "name": "static",
                "match": { "paths": ["/static/*"] },
                "backends": [{ "serviceName": "static-assets", "servicePort": 80 }],
            },
        ])
    });
    serde_json::from_value(json!({
        "apiVersion": "apisix.apache.org/v2",
        "kind": "ApisixRoute",
        "metadata": { "name": "podinfo", "namespace": "test", "labels": { "app": "podinfo" } },
        "spec": { "ingressClassName": "apisix", "http": http },
    }))
    .expect("an ApisixRoute")
}

fn spec_error(result: Result<impl std::fmt::Debug, Error>) -> (String, String) {
    match result {
        Err(Error::InvalidSpec { field, message }) => (field, message),
        other => panic!("expected an invalid spec, got {other:?}"),
    }
}

#[test]
fn the_canary_route_keeps_the_apex_route_at_top_priority_with_a_weighted_canary_backend() {
    let c = canary(APISIX);
    let source = user_route(None);
    let routing = Apisix
        .render(&c, Routes::INITIAL, &source)
        .expect("renders")
        .object;
    insta::assert_yaml_snapshot!("apisix_initial", routing);
    assert_eq!(
        routing.metadata.name.as_deref(),
        Some("podinfo-podinfo-canary")
    );
    assert_eq!(Apisix.routing_name(&c), "podinfo-podinfo-canary");
    let http = routing.data["spec"]["http"].as_array().expect("http");
    assert_eq!(
        http.len(),
        1,
        "only the route to the apex Service is cloned"
    );
    assert_eq!(http[0]["name"], "method");
    assert_eq!(http[0]["priority"], 10000);
    assert_eq!(http[0]["match"]["hosts"], json!(["foobar.com"]));
    assert_eq!(http[0]["plugins"][0]["name"], "prometheus");
    assert_eq!(
        http[0]["backends"],
        json!([
            { "serviceName": "podinfo-primary", "servicePort": 80, "resolveGranularity": "service", "weight": 100 },
            { "serviceName": "podinfo-canary", "servicePort": 80, "resolveGranularity": "service", "weight": 0 },
        ])
    );
    assert_eq!(routing.data["spec"]["ingressClassName"], "apisix");
    assert_eq!(
        source,
        user_route(None),
        "the user's route is read, never changed"
    );
}

#[test]
fn weights_follow_the_split_and_read_back_as_in_flaggers_get_set_routes_test() {
    let c = canary(APISIX);
    let source = user_route(None);
    for weight in (0..=100).step_by(10) {
        let routes = Routes::weighted(100 - weight, weight);
        let routing = Apisix.render(&c, routes, &source).expect("renders").object;
        let backends = &routing.data["spec"]["http"][0]["backends"];
        assert_eq!(backends[0]["weight"], 100 - weight);
        assert_eq!(backends[1]["weight"], weight);
        assert_eq!(Apisix.read_routes(&c, &routing).expect("reads"), routes);
    }
}

#[test]
fn a_user_route_that_cannot_be_split_is_refused_naming_route_ref() {
    let c = canary(APISIX);
    for (http, reason) in [
        (json!([]), "has no HTTP routes"),
        (
            json!([{ "name": "other", "match": { "paths": ["/*"] }, "backends": [{ "serviceName": "other", "servicePort": 80 }] }]),
            "has no HTTP route with a backend serviceName podinfo",
        ),
        (
            json!([{ "name": "two", "match": { "paths": ["/*"] }, "backends": [
                { "serviceName": "podinfo", "servicePort": 80 },
                { "serviceName": "legacy", "servicePort": 80 },
            ] }]),
            "routes podinfo to 2 backends in HTTP route two",
        ),
    ] {
        let (field, message) =
            spec_error(Apisix.render(&c, Routes::INITIAL, &user_route(Some(http))));
        assert_eq!(field, "spec.routeRef");
        assert!(
            message.starts_with(&format!("ApisixRoute test/podinfo {reason}")),
            "{message}"
        );
    }
}

#[test]
fn without_route_ref_there_is_no_source_and_ab_testing_is_refused() {
    let c = canary("  provider: apisix\n  service: {port: 80}\n  analysis: {stepWeight: 10}");
    let (field, message) = spec_error(Apisix.source(&c));
    assert_eq!(field, "spec.routeRef");
    assert!(message.contains("add `routeRef`"), "{message}");

    let c = canary(&APISIX.replace(
        "stepWeight: 10}",
        "iterations: 10, match: [{headers: {x-canary: {exact: insider}}}]}",
    ));
    let (field, message) = spec_error(Apisix.render(&c, Routes::INITIAL, &user_route(None)));
    assert_eq!(field, "spec.analysis.match");
    assert!(message.contains("apisix provider"), "{message}");
}
