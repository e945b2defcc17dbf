//! Canaries for the router tests, written the way users write them.

#![allow(dead_code)]

use fledge_api::Canary;
use fledge_router::{Routes, TrafficRenderer};

/// A Canary `podinfo` in namespace `test` with the given `spec` (YAML, indented by 2).
pub fn canary(spec: &str) -> Canary {
    canary_with_status(spec, "{}")
}

/// As [`canary`], with a status.
pub fn canary_with_status(spec: &str, status: &str) -> Canary {
    let text = format!(
        "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {{name: podinfo, namespace: test, uid: 7a1c-uid}}\n\
         spec:\n  targetRef: {{apiVersion: apps/v1, kind: Deployment, name: podinfo}}\n{spec}\nstatus: {status}\n"
    );
    fledge_api::yaml::from_str(&text).expect("a valid canary")
}

/// Every object a renderer writes for `routes`, routing object first.
pub fn rendered(
    renderer: &impl TrafficRenderer,
    canary: &Canary,
    routes: Routes,
) -> Vec<kube::api::DynamicObject> {
    let traffic = renderer.render(canary, routes).expect("renders");
    std::iter::once(traffic.routing.object)
        .chain(traffic.supporting.into_iter().map(|o| o.object))
        .collect()
}

/// Renders `routes` and reads them back from the routing object.
pub fn round_trip(renderer: &impl TrafficRenderer, canary: &Canary, routes: Routes) -> Routes {
    let traffic = renderer.render(canary, routes).expect("renders");
    renderer
        .read_routes(canary, &traffic.routing.object)
        .expect("reads back")
}

pub mod cluster;
