//! Whether a routing object read from a watch cache still holds what the router renders
//! ([`Router::routing_in_sync`]): the operator repairs hand edits and deleted objects with it
//! without reading from the API server.

mod common;

use common::canary;
use fledge_api::Canary;
use fledge_router::{Istio, MeshRouter, Router, Routes, TrafficRenderer};
use http::{Request, Response};
use kube::api::DynamicObject;
use kube::client::Body;
use serde_json::{Value, json};

const GATEWAY: &str = r"  service:
    port: 9898
    gateways: [public-gateway.istio-system.svc.cluster.local]
    hosts: [app.example.com]
    match: [{uri: {prefix: /api}}]
    timeout: 30s
    apex: {labels: {team: web}}
  analysis: {interval: 1m, threshold: 5, maxWeight: 50, stepWeight: 10}";

/// An Istio router whose client answers nothing: the check must not make a request.
fn router() -> (
    MeshRouter<Istio>,
    tower_test::mock::Handle<Request<Body>, Response<Body>>,
) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    (MeshRouter::new(Istio, client), handle)
}

/// The VirtualService as the API server stores it after Fledge applied `routes`: with the
/// fields the server adds (resource version, managed fields, status) and the adopted-object
/// annotation.
fn stored(canary: &Canary, routes: Routes) -> Value {
    let rendered = Istio.render(canary, routes).expect("renders");
    let mut stored = serde_json::to_value(&rendered.routing.object).expect("serializes");
    stored["metadata"]["resourceVersion"] = json!("4711");
    stored["metadata"]["generation"] = json!(3);
    stored["metadata"]["uid"] = json!("d6f0-uid");
    stored["metadata"]["managedFields"] =
        json!([{ "manager": "fledge", "operation": "Apply", "fieldsType": "FieldsV1" }]);
    stored["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] =
        json!("{}");
    stored["status"] = json!({ "observedGeneration": 3, "validationMessages": [] });
    stored
}

/// A hand edit of a stored object.
type Edit = fn(&mut Value);

fn object(value: Value) -> DynamicObject {
    serde_json::from_value(value).expect("a valid object")
}

#[tokio::test]
async fn a_virtual_service_as_rendered_is_in_sync() {
    let (router, _handle) = router();
    let c = canary(GATEWAY);
    let vs = object(stored(&c, Routes::INITIAL));
    assert!(router.routing_in_sync(&c, &vs).expect("checks"));
}

#[tokio::test]
async fn another_split_than_the_render_is_in_sync_because_the_split_is_read_from_the_object() {
    let (router, _handle) = router();
    let c = canary(GATEWAY);
    for routes in [
        Routes::weighted(50, 50),
        Routes::weighted(0, 100),
        Routes::weighted(90, 10).with_mirror(true),
    ] {
        let vs = object(stored(&c, routes));
        assert!(router.routing_in_sync(&c, &vs).expect("checks"), "{routes}");
    }
}

#[tokio::test]
async fn a_hand_edited_host_gateway_or_match_is_out_of_sync() {
    let (router, _handle) = router();
    let c = canary(GATEWAY);
    let edits: [(&str, Edit); 5] = [
        ("hosts", |vs| {
            vs["spec"]["hosts"] = json!(["evil.example.com"]);
        }),
        ("gateways", |vs| {
            vs["spec"]["gateways"] = json!(["mesh"]);
        }),
        ("match", |vs| {
            vs["spec"]["http"][0]["match"] = json!([{ "uri": { "prefix": "/other" } }]);
        }),
        ("a route removed", |vs| {
            vs["spec"]["http"] = json!([]);
        }),
        ("a label removed", |vs| {
            vs["metadata"]["labels"] = json!({});
        }),
    ];
    for (what, edit) in edits {
        let mut vs = stored(&c, Routes::INITIAL);
        edit(&mut vs);
        assert!(
            !router.routing_in_sync(&c, &object(vs)).expect("checks"),
            "{what}"
        );
    }
}

#[tokio::test]
async fn a_canary_spec_edit_puts_the_object_out_of_sync() {
    let (router, _handle) = router();
    let before = canary(GATEWAY);
    let vs = object(stored(&before, Routes::INITIAL));
    let after = canary(&GATEWAY.replace("timeout: 30s", "timeout: 5s"));
    assert!(!router.routing_in_sync(&after, &vs).expect("checks"));
    let more_gateways = canary(&GATEWAY.replace(
        "gateways: [public-gateway.istio-system.svc.cluster.local]",
        "gateways: [public-gateway.istio-system.svc.cluster.local, mesh]",
    ));
    assert!(!router.routing_in_sync(&more_gateways, &vs).expect("checks"));
}

#[tokio::test]
async fn fields_the_server_or_others_add_are_no_drift() {
    let (router, _handle) = router();
    let c = canary(GATEWAY);
    let mut vs = stored(&c, Routes::INITIAL);
    vs["spec"]["exportTo"] = json!(["."]);
    vs["spec"]["http"][0]["route"][0]["destination"]["subset"] = Value::Null;
    vs["metadata"]["labels"]["added-by"] = json!("someone-else");
    assert!(router.routing_in_sync(&c, &object(vs)).expect("checks"));
}

#[tokio::test]
async fn a_virtual_service_routing_to_neither_version_is_out_of_sync() {
    let (router, _handle) = router();
    let c = canary(GATEWAY);
    let mut vs = stored(&c, Routes::INITIAL);
    vs["spec"]["http"][0]["route"] =
        json!([{ "destination": { "host": "elsewhere" }, "weight": 100 }]);
    assert!(!router.routing_in_sync(&c, &object(vs)).expect("checks"));
}

#[test]
fn routers_without_a_routing_object_are_always_in_sync() {
    let router = fledge_router::KubernetesRouter;
    let c = canary(GATEWAY);
    let vs = object(stored(&c, Routes::INITIAL));
    assert!(router.routing_in_sync(&c, &vs).expect("checks"));
}
