//! The NGINX and Skipper canary Ingresses, cloned from the user's Ingress, compared with
//! Flagger's `pkg/router/ingress.go`, `skipper.go` and their tests.

mod common;

use std::collections::BTreeMap;

use common::canary;
use fledge_api::Canary;
use fledge_router::{ClonedRenderer, Error, Nginx, Routes, Skipper, insert_predicate};
use kube::api::DynamicObject;
use serde_json::json;

const NGINX: &str = "  provider: nginx\n  ingressRef: {apiVersion: networking.k8s.io/v1, kind: Ingress, name: podinfo}\n  service: {port: 9898}\n  analysis: {interval: 1m, threshold: 5, maxWeight: 50, stepWeight: 10}";
const SKIPPER: &str = "  provider: skipper\n  ingressRef: {apiVersion: networking.k8s.io/v1, kind: Ingress, name: podinfo}\n  service: {port: 9898}\n  analysis: {interval: 1m, threshold: 5, maxWeight: 50, stepWeight: 10}";

/// The user's Ingress as Flagger's tests write it (`newTestIngress`), with a second path to
/// another Service and the annotations a `kubectl apply` and Flux leave.
fn user_ingress(annotations: &serde_json::Value) -> DynamicObject {
    let mut metadata_annotations = json!({
        "kubernetes.io/ingress.class": "nginx",
        "kustomize.toolkit.fluxcd.io/checksum": "0a40893bfdc545d62125bd3e74eeb2ebaa7097c2",
        "kubectl.kubernetes.io/last-applied-configuration": "{\"kind\":\"Ingress\"}",
    });
    for (key, value) in annotations.as_object().into_iter().flatten() {
        metadata_annotations[key] = value.clone();
    }
    serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": "podinfo", "namespace": "test", "labels": { "app": "podinfo" },
            "annotations": metadata_annotations,
        },
        "spec": { "rules": [{ "host": "app.example.com", "http": { "paths": [
            { "path": "/", "pathType": "Prefix", "backend": { "service": { "name": "podinfo", "port": { "number": 9898 } } } },
            { "path": "/static", "pathType": "Prefix", "backend": { "service": { "name": "static-assets", "port": { "number": 80 } } } },
        ] } }] },
    }))
    .expect("an Ingress")
}

fn annotations(object: &DynamicObject) -> BTreeMap<String, String> {
    object.metadata.annotations.clone().unwrap_or_default()
}

fn ab_canary(header: &str) -> Canary {
    canary(&format!(
        "  provider: nginx\n  ingressRef: {{apiVersion: networking.k8s.io/v1, kind: Ingress, name: podinfo}}\n  service: {{port: 9898}}\n  analysis: {{interval: 1m, threshold: 5, iterations: 10, match: [{{headers: {header}}}]}}"
    ))
}

fn spec_error(result: Result<impl std::fmt::Debug, Error>) -> (String, String) {
    match result {
        Err(Error::InvalidSpec { field, message }) => (field, message),
        other => panic!("expected an invalid spec, got {other:?}"),
    }
}

#[test]
fn the_nginx_canary_ingress_clones_the_users_ingress_and_leads_to_the_canary_service() {
    let c = canary(NGINX);
    let source = user_ingress(&json!({}));
    let routing = Nginx::default()
        .render(&c, Routes::INITIAL, &source)
        .expect("renders");
    insta::assert_yaml_snapshot!("nginx_initial", routing.object);
    assert_eq!(routing.name(), "podinfo-canary");
    assert_eq!(Nginx::default().routing_name(&c), "podinfo-canary");
    let paths = &routing.object.data["spec"]["rules"][0]["http"]["paths"];
    assert_eq!(paths[0]["backend"]["service"]["name"], "podinfo-canary");
    assert_eq!(
        paths[1]["backend"]["service"]["name"], "static-assets",
        "paths to other Services are cloned as they are"
    );
    assert_eq!(
        routing.object.data["spec"]["rules"][0]["host"],
        "app.example.com"
    );
    let a = annotations(&routing.object);
    assert_eq!(a["nginx.ingress.kubernetes.io/canary"], "true");
    assert_eq!(a["nginx.ingress.kubernetes.io/canary-weight"], "0");
    assert_eq!(a["kubernetes.io/ingress.class"], "nginx");
    assert_eq!(a["kustomize.toolkit.fluxcd.io/reconcile"], "disabled");
    assert!(!a.contains_key("kubectl.kubernetes.io/last-applied-configuration"));
    assert_eq!(
        routing.object.metadata.labels.as_ref().expect("labels")["app"],
        "podinfo"
    );
    // The source is read, never changed.
    assert_eq!(source, user_ingress(&json!({})));
}

#[test]
fn nginx_weights_follow_the_split_and_read_back() {
    let c = canary(NGINX);
    let nginx = Nginx::default();
    let source = user_ingress(&json!({}));
    for weight in (0..=100).step_by(10) {
        let routes = Routes::weighted(100 - weight, weight);
        let routing = nginx.render(&c, routes, &source).expect("renders").object;
        let a = annotations(&routing);
        assert_eq!(a["nginx.ingress.kubernetes.io/canary"], "true");
        assert_eq!(
            a["nginx.ingress.kubernetes.io/canary-weight"],
            weight.to_string()
        );
        assert_eq!(nginx.read_routes(&c, &routing).expect("reads"), routes);
    }
}

#[test]
fn the_annotations_prefix_names_every_canary_annotation_and_stale_ones_are_not_cloned() {
    let c = canary(NGINX);
    let custom = Nginx::new("custom.ingress.kubernetes.io");
    let source = user_ingress(&json!({
        "custom.ingress.kubernetes.io/canary": "true",
        "custom.ingress.kubernetes.io/canary-by-header": "x-left-over",
        "custom.ingress.kubernetes.io/rewrite-target": "/",
    }));
    let routing = custom
        .render(&c, Routes::weighted(50, 50), &source)
        .expect("renders")
        .object;
    let canary_annotations: BTreeMap<_, _> = annotations(&routing)
        .into_iter()
        .filter(|(key, _)| key.contains("canary") && key.contains("ingress.kubernetes.io"))
        .collect();
    assert_eq!(
        canary_annotations,
        BTreeMap::from([
            (
                "custom.ingress.kubernetes.io/canary".to_owned(),
                "true".to_owned()
            ),
            (
                "custom.ingress.kubernetes.io/canary-weight".to_owned(),
                "50".to_owned()
            ),
        ])
    );
    assert_eq!(
        annotations(&routing)["custom.ingress.kubernetes.io/rewrite-target"],
        "/"
    );
    assert_eq!(
        custom.read_routes(&c, &routing).expect("reads"),
        Routes::weighted(50, 50)
    );
}

#[test]
fn nginx_ab_testing_selects_by_header_value_pattern_or_cookie_while_the_canary_is_tested() {
    let nginx = Nginx::default();
    let source = user_ingress(&json!({}));
    for (header, expected) in [
        (
            "{x-user-type: {exact: test}}",
            vec![
                ("canary-by-header", "x-user-type"),
                ("canary-by-header-value", "test"),
            ],
        ),
        (
            "{x-user-type: {regex: test}}",
            vec![
                ("canary-by-header", "x-user-type"),
                ("canary-by-header-pattern", "test"),
            ],
        ),
        (
            "{cookie: {exact: test}}",
            vec![("canary-by-cookie", "test")],
        ),
    ] {
        let c = ab_canary(header);
        let tested = nginx
            .render(&c, Routes::weighted(0, 100), &source)
            .expect("renders")
            .object;
        let a = annotations(&tested);
        assert_eq!(a["nginx.ingress.kubernetes.io/canary"], "true", "{header}");
        for (suffix, value) in &expected {
            assert_eq!(
                a[&format!("nginx.ingress.kubernetes.io/{suffix}")],
                *value,
                "{header}"
            );
        }
        assert_eq!(
            nginx.read_routes(&c, &tested).expect("reads"),
            Routes::weighted(0, 100)
        );

        // At rest the selectors go: no request reaches the canary.
        let at_rest = nginx
            .render(&c, Routes::INITIAL, &source)
            .expect("renders")
            .object;
        let a = annotations(&at_rest);
        assert!(
            !a.keys().any(|k| k.contains("canary-by-")),
            "{header}: {a:?}"
        );
        assert_eq!(a["nginx.ingress.kubernetes.io/canary-weight"], "0");
        assert_eq!(
            nginx.read_routes(&c, &at_rest).expect("reads"),
            Routes::INITIAL
        );
    }
}

#[test]
fn what_nginx_annotations_cannot_express_is_refused_naming_the_field_and_the_provider() {
    let nginx = Nginx::default();
    let source = user_ingress(&json!({}));
    let base = "  provider: nginx\n  ingressRef: {name: podinfo}\n  service: {port: 9898}\n";
    for (analysis, field) in [
        ("{iterations: 10, mirror: true}", "spec.analysis.mirror"),
        (
            "{stepWeight: 10, sessionAffinity: {cookieName: user}}",
            "spec.analysis.sessionAffinity",
        ),
        (
            "{iterations: 10, match: [{uri: {prefix: /api}}]}",
            "spec.analysis.match[0].uri",
        ),
        (
            "{iterations: 10, match: [{headers: {x-a: {exact: a}}}, {headers: {x-b: {exact: b}}}]}",
            "spec.analysis.match[1].headers.x-b",
        ),
    ] {
        let c = canary(&format!("{base}  analysis: {analysis}"));
        let (at, message) = spec_error(nginx.render(&c, Routes::INITIAL, &source));
        assert_eq!(at, field);
        assert!(message.contains("nginx provider"), "{message}");
        assert!(nginx.check(&c).is_err());
    }
}

#[test]
fn a_user_ingress_without_a_path_to_the_apex_service_is_refused_naming_ingress_ref() {
    let c = canary(&NGINX.replace("port: 9898}", "port: 9898, name: frontend}"));
    for renderer in [&Nginx::default() as &dyn ClonedRenderer, &Skipper] {
        let (field, message) =
            spec_error(renderer.render(&c, Routes::INITIAL, &user_ingress(&json!({}))));
        assert_eq!(field, "spec.ingressRef");
        assert!(
            message.starts_with(
                "Ingress test/podinfo has no path whose backend is the Service frontend"
            ),
            "{message}"
        );
    }
}

#[test]
fn without_ingress_ref_there_is_no_source_to_clone() {
    let c = canary("  provider: nginx\n  service: {port: 9898}\n  analysis: {stepWeight: 10}");
    let (field, message) = spec_error(Nginx::default().source(&c));
    assert_eq!(field, "spec.ingressRef");
    assert!(message.contains("add `ingressRef`"), "{message}");
    let (field, _) = spec_error(Skipper.source(&c));
    assert_eq!(field, "spec.ingressRef");
}

#[test]
fn the_skipper_canary_ingress_splits_every_apex_path_between_primary_and_canary() {
    let c = canary(SKIPPER);
    let source = user_ingress(&json!({ "zalando.org/skipper-predicate": "Method(\"GET\")" }));
    let routing = Skipper
        .render(&c, Routes::INITIAL, &source)
        .expect("renders")
        .object;
    insta::assert_yaml_snapshot!("skipper_initial", routing);
    assert_eq!(routing.metadata.name.as_deref(), Some("podinfo-canary"));
    let paths = routing.data["spec"]["rules"][0]["http"]["paths"]
        .as_array()
        .expect("paths");
    let services: Vec<&str> = paths
        .iter()
        .map(|p| p["backend"]["service"]["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        services,
        ["podinfo-primary", "static-assets", "podinfo-canary"]
    );
    assert_eq!(
        paths[0]["backend"]["service"]["port"], paths[2]["backend"]["service"]["port"],
        "the canary backend is a copy of the primary's"
    );
    let a = annotations(&routing);
    assert_eq!(
        a["zalando.org/backend-weights"],
        r#"{"podinfo-canary":0,"podinfo-primary":100}"#
    );
    assert_eq!(
        a["zalando.org/skipper-predicate"], "False() && Method(\"GET\")",
        "at rest the canary routes are off and the user's Ingress serves"
    );
}

#[test]
fn skipper_weights_follow_the_split_as_in_flaggers_get_set_routes_test() {
    let c = canary(SKIPPER);
    let source = user_ingress(&json!({}));
    for (primary, canary_weight) in [(100, 0), (90, 10), (80, 20), (70, 30), (15, 85), (0, 100)] {
        let routes = Routes::weighted(primary, canary_weight);
        let routing = Skipper.render(&c, routes, &source).expect("renders").object;
        let a = annotations(&routing);
        let weights: serde_json::Value =
            serde_json::from_str(&a["zalando.org/backend-weights"]).expect("JSON");
        assert_eq!(
            weights,
            json!({ "podinfo-primary": primary, "podinfo-canary": canary_weight })
        );
        let predicate = if canary_weight == 0 {
            "False()"
        } else {
            "Weight(100)"
        };
        assert_eq!(a["zalando.org/skipper-predicate"], predicate);
        assert_eq!(Skipper.read_routes(&c, &routing).expect("reads"), routes);
    }
}

#[test]
fn skipper_weights_written_as_ratios_read_back_as_percentages() {
    let c = canary(SKIPPER);
    let mut routing = Skipper
        .render(&c, Routes::INITIAL, &user_ingress(&json!({})))
        .expect("renders")
        .object;
    routing.metadata.annotations.get_or_insert_default().insert(
        "zalando.org/backend-weights".to_owned(),
        r#"{"podinfo-primary": 66.6, "podinfo-canary": 33.4}"#.to_owned(),
    );
    assert_eq!(
        Skipper.read_routes(&c, &routing).expect("reads"),
        Routes::weighted(67, 33)
    );
    routing.metadata.annotations.get_or_insert_default().insert(
        "zalando.org/backend-weights".to_owned(),
        r#"{"podinfo-primary": 100}"#.to_owned(),
    );
    assert!(matches!(
        Skipper.read_routes(&c, &routing),
        Err(Error::MissingRoutes { .. })
    ));
}

#[test]
fn skipper_predicates_are_inserted_first_as_in_flaggers_test() {
    let host = r"Host(/^my-host-header\.example\.org$/)";
    for (raw, insert, want) in [
        (
            format!(r#"{host} && Method("GET") && Path("/hello")"#),
            "Weight(100)",
            format!(r#"Weight(100) && {host} && Method("GET") && Path("/hello")"#),
        ),
        (String::new(), "Weight(100)", "Weight(100)".to_owned()),
        (
            format!(r#"Weight(100) && {host} && Method("GET") && Path("/hello")"#),
            "Weight(100)",
            format!(r#"Weight(100) && {host} && Method("GET") && Path("/hello")"#),
        ),
        (
            format!(r#"{host} && Method("GET") && Path("/hello")&&False()"#),
            "False()",
            format!(r#"False() && {host} && Method("GET") && Path("/hello")"#),
        ),
        (
            format!(r#"{host} &&  False() && Method("GET") && Path("/hello")"#),
            "Weight(100)",
            format!(r#"Weight(100) && {host} && Method("GET") && Path("/hello")"#),
        ),
    ] {
        assert_eq!(insert_predicate(&raw, insert), want, "{raw}");
    }
}

#[test]
fn skipper_refuses_ab_testing_and_mirroring_naming_the_provider() {
    let source = user_ingress(&json!({}));
    for (analysis, field) in [
        (
            "{iterations: 10, match: [{headers: {x-canary: {exact: insider}}}]}",
            "spec.analysis.match",
        ),
        ("{iterations: 10, mirror: true}", "spec.analysis.mirror"),
    ] {
        let c = canary(&format!(
            "  provider: skipper\n  ingressRef: {{name: podinfo}}\n  service: {{port: 9898}}\n  analysis: {analysis}"
        ));
        let (at, message) = spec_error(Skipper.render(&c, Routes::INITIAL, &source));
        assert_eq!(at, field);
        assert!(message.contains("skipper provider"), "{message}");
    }
}
