//! Whether a cloned routing object read from a watch cache still holds what the router would
//! write ([`Router::routing_in_sync`], [`Router::routing_in_sync_with_source`]): without the
//! user's object only what the Canary decides can be judged; with it, the whole clone.

mod common;

use common::canary;
use fledge_api::Canary;
use fledge_router::{
    Apisix, ClonedRenderer, ClonedRouter, Nginx, Router, Routes, Skipper, ingress_resource,
};
use http::{Request, Response};
use kube::api::DynamicObject;
use kube::client::Body;
use serde_json::{Value, json};

const NGINX: &str = "  provider: nginx\n  ingressRef: {name: podinfo}\n  service: {port: 9898}\n  analysis: {interval: 1m, threshold: 5, maxWeight: 50, stepWeight: 10}";

/// A router whose client answers nothing: the checks must not make a request.
fn router<R: ClonedRenderer>(
    renderer: R,
) -> (
    ClonedRouter<R>,
    tower_test::mock::Handle<Request<Body>, Response<Body>>,
) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (
        ClonedRouter::new(renderer, kube::Client::new(service, "default")),
        handle,
    )
}

fn user_ingress(host: &str) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": { "name": "podinfo", "namespace": "test", "resourceVersion": "17",
            "annotations": { "kubernetes.io/ingress.class": "nginx" } },
        "spec": { "rules": [{ "host": host, "http": { "paths": [
            { "path": "/", "pathType": "Prefix", "backend": { "service": { "name": "podinfo", "port": { "number": 9898 } } } },
        ] } }] },
    }))
    .expect("an Ingress")
}

/// The clone as the API server stores it after Fledge applied it for `routes`.
fn stored(
    renderer: &impl ClonedRenderer,
    c: &Canary,
    routes: Routes,
    source: &DynamicObject,
) -> Value {
    let clone = renderer.render(c, routes, source).expect("renders");
    let mut stored = serde_json::to_value(&clone.object).expect("serializes");
    stored["metadata"]["resourceVersion"] = json!("4711");
    stored["metadata"]["uid"] = json!("c10e-uid");
    stored["metadata"]["managedFields"] =
        json!([{ "manager": "fledge", "operation": "Apply", "fieldsType": "FieldsV1" }]);
    stored["status"] = json!({ "loadBalancer": {} });
    stored
}

/// A hand edit of a stored clone.
type Edit = fn(&mut Value);

fn object(value: Value) -> DynamicObject {
    serde_json::from_value(value).expect("a valid object")
}

#[tokio::test]
async fn the_source_is_named_by_ingress_ref_and_lives_in_the_routing_objects_resource() {
    let (nginx, _handle) = router(Nginx::default());
    let c = canary(NGINX);
    let source = nginx.routing_source(&c).expect("a source");
    assert_eq!(
        (source.name.as_str(), source.field, &source.resource),
        ("podinfo", "spec.ingressRef", &ingress_resource())
    );
    assert_eq!(nginx.routing_resource(), Some(ingress_resource()));
    assert_eq!(nginx.routing_name(&c), "podinfo-canary");
    let (apisix, _handle) = router(Apisix);
    let c = canary(
        "  provider: apisix\n  routeRef: {name: web}\n  service: {port: 80}\n  analysis: {stepWeight: 10}",
    );
    assert_eq!(apisix.routing_source(&c).expect("a source").name, "web");
    assert_eq!(apisix.routing_name(&c), "web-podinfo-canary");
    assert!(fledge_router::KubernetesRouter.routing_source(&c).is_none());
}

#[tokio::test]
async fn a_clone_as_rendered_is_in_sync_with_and_without_its_source_at_any_split() {
    let (nginx, _handle) = router(Nginx::default());
    let c = canary(NGINX);
    let source = user_ingress("app.example.com");
    for routes in [
        Routes::INITIAL,
        Routes::weighted(70, 30),
        Routes::weighted(0, 100),
    ] {
        let clone = object(stored(nginx.renderer(), &c, routes, &source));
        assert!(
            nginx.routing_in_sync(&c, &clone).expect("checks"),
            "{routes}"
        );
        assert!(
            nginx
                .routing_in_sync_with_source(&c, &clone, Some(&source))
                .expect("checks"),
            "{routes}"
        );
    }
}

#[tokio::test]
async fn an_edit_of_the_users_ingress_or_of_the_clones_host_is_seen_only_with_the_source() {
    let (nginx, _handle) = router(Nginx::default());
    let c = canary(NGINX);
    let source = user_ingress("app.example.com");
    let clone = object(stored(
        nginx.renderer(),
        &c,
        Routes::weighted(90, 10),
        &source,
    ));

    let moved = user_ingress("www.example.com");
    assert!(nginx.routing_in_sync(&c, &clone).expect("checks"));
    assert!(
        !nginx
            .routing_in_sync_with_source(&c, &clone, Some(&moved))
            .expect("checks"),
        "the clone must follow the user's new host"
    );

    let mut edited = stored(nginx.renderer(), &c, Routes::weighted(90, 10), &source);
    edited["spec"]["rules"][0]["host"] = json!("evil.example.com");
    let edited = object(edited);
    assert!(
        !nginx
            .routing_in_sync_with_source(&c, &edited, Some(&source))
            .expect("checks")
    );
    assert!(
        nginx
            .routing_in_sync_with_source(&c, &edited, None)
            .expect("checks"),
        "without the source only the Canary's part is judged"
    );
}

#[tokio::test]
async fn canary_annotations_that_differ_from_the_canary_spec_are_out_of_sync_without_the_source() {
    let (nginx, _handle) = router(Nginx::default());
    let c = canary(NGINX);
    let source = user_ingress("app.example.com");
    let edits: [(&str, Edit); 3] = [
        ("a selector left over from A/B testing", |clone| {
            clone["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-by-header"] =
                json!("x-canary");
        }),
        ("the canary marker removed", |clone| {
            clone["metadata"]["annotations"]
                .as_object_mut()
                .expect("annotations")
                .remove("nginx.ingress.kubernetes.io/canary");
        }),
        ("the backend moved away from the canary Service", |clone| {
            clone["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] =
                json!("podinfo");
        }),
    ];
    for (what, edit) in edits {
        let mut clone = stored(nginx.renderer(), &c, Routes::weighted(90, 10), &source);
        edit(&mut clone);
        assert!(
            !nginx.routing_in_sync(&c, &object(clone)).expect("checks"),
            "{what}"
        );
    }

    // The Canary switched to A/B testing: the clone at rest has no selectors, which is right.
    let ab = canary(&NGINX.replace(
        "maxWeight: 50, stepWeight: 10}",
        "iterations: 10, match: [{headers: {x-canary: {exact: insider}}}]}",
    ));
    let tested = object(stored(
        nginx.renderer(),
        &c,
        Routes::weighted(0, 100),
        &source,
    ));
    assert!(
        !nginx.routing_in_sync(&ab, &tested).expect("checks"),
        "a weighted clone carries no header selector"
    );
    let at_rest = object(stored(nginx.renderer(), &c, Routes::INITIAL, &source));
    assert!(nginx.routing_in_sync(&ab, &at_rest).expect("checks"));
}

#[tokio::test]
async fn skipper_and_apisix_clones_judge_their_weights_predicates_and_priority() {
    let (skipper, _handle) = router(Skipper);
    let c = canary(&NGINX.replace("nginx", "skipper"));
    let source = user_ingress("app.example.com");
    let mut clone = stored(&Skipper, &c, Routes::weighted(60, 40), &source);
    assert!(
        skipper
            .routing_in_sync(&c, &object(clone.clone()))
            .expect("checks")
    );
    clone["metadata"]["annotations"]["zalando.org/skipper-predicate"] = json!("False()");
    assert!(
        !skipper.routing_in_sync(&c, &object(clone)).expect("checks"),
        "the canary routes switched off while the canary has 40%"
    );

    let (apisix, _handle) = router(Apisix);
    let c = canary(
        "  provider: apisix\n  routeRef: {name: podinfo}\n  service: {port: 80}\n  analysis: {stepWeight: 10}",
    );
    let route: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "apisix.apache.org/v2", "kind": "ApisixRoute",
        "metadata": { "name": "podinfo", "namespace": "test" },
        "spec": { "http": [{ "name": "web", "match": { "paths": ["/*"] },
            "backends": [{ "serviceName": "podinfo", "servicePort": 80 }] }] },
    }))
    .expect("a route");
    let mut clone = stored(&Apisix, &c, Routes::weighted(60, 40), &route);
    assert!(
        apisix
            .routing_in_sync(&c, &object(clone.clone()))
            .expect("checks")
    );
    assert!(
        apisix
            .routing_in_sync_with_source(&c, &object(clone.clone()), Some(&route))
            .expect("checks")
    );
    clone["spec"]["http"][0]["priority"] = json!(1);
    assert!(!apisix.routing_in_sync(&c, &object(clone)).expect("checks"));
}

#[tokio::test]
async fn a_spec_the_provider_cannot_express_is_an_error_not_a_difference() {
    let (nginx, _handle) = router(Nginx::default());
    let c = canary(NGINX);
    let clone = object(stored(
        nginx.renderer(),
        &c,
        Routes::INITIAL,
        &user_ingress("app.example.com"),
    ));
    let mirrored = canary(&NGINX.replace("stepWeight: 10}", "iterations: 5, mirror: true}"));
    let err = nginx.routing_in_sync(&mirrored, &clone).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("spec.analysis.mirror: the nginx provider"),
        "{err}"
    );
}
