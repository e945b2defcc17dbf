//! What the NGINX and Skipper routers share: the `networking.k8s.io/v1` Ingress named by
//! `spec.ingressRef`, its canary clone `<ingress>-canary`, and walking its paths' backends.

use fledge_api::Canary;
use kube::api::{ApiResource, DynamicObject};
use serde_json::Value;

use crate::cloned::{SourceRef, name_of};
use crate::error::{Error, Result};
use crate::object::resource;

/// The Canary field naming the Ingress.
pub(crate) const INGRESS_REF: &str = "spec.ingressRef";

/// The built-in `networking.k8s.io/v1` Ingress resource.
pub fn ingress_resource() -> ApiResource {
    resource("networking.k8s.io", "v1", "Ingress", "ingresses")
}

/// The user's Ingress, `spec.ingressRef`.
pub(crate) fn ingress_source(canary: &Canary, provider: &str) -> Result<SourceRef> {
    let name = ingress_ref_name(canary);
    if name.is_empty() {
        return Err(Error::spec(
            INGRESS_REF,
            format!(
                "the {provider} provider routes through an Ingress; add `ingressRef` naming it \
                 (ingressRef: {{apiVersion: networking.k8s.io/v1, kind: Ingress, name: podinfo}})"
            ),
        ));
    }
    Ok(SourceRef {
        resource: ingress_resource(),
        name,
        field: INGRESS_REF,
    })
}

/// `<ingressRef.name>-canary`, the Ingress holding the split.
pub(crate) fn canary_ingress_name(canary: &Canary) -> String {
    format!("{}-canary", ingress_ref_name(canary))
}

fn ingress_ref_name(canary: &Canary) -> String {
    canary
        .spec
        .ingress_ref
        .as_ref()
        .map(|r| r.name.clone())
        .unwrap_or_default()
}

/// The Service a path's backend names (`backend.service.name`).
pub(crate) fn backend_service(path: &Value) -> Option<&str> {
    path["backend"]["service"]["name"].as_str()
}

/// Points a path's backend at `service`.
pub(crate) fn set_backend_service(path: &mut Value, service: &str) {
    path["backend"]["service"]["name"] = Value::String(service.to_owned());
}

/// Calls `edit` with the paths of every HTTP rule of an Ingress spec.
pub(crate) fn for_each_rule_paths(spec: &mut Value, mut edit: impl FnMut(&mut Vec<Value>)) {
    let Some(rules) = spec.get_mut("rules").and_then(Value::as_array_mut) else {
        return;
    };
    for rule in rules {
        if let Some(paths) = rule
            .get_mut("http")
            .and_then(|http| http.get_mut("paths"))
            .and_then(Value::as_array_mut)
        {
            edit(paths);
        }
    }
}

/// Whether some path of the Ingress `routing` has `service` as its backend.
pub(crate) fn routes_to(routing: &DynamicObject, service: &str) -> bool {
    routing.data["spec"]["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|rule| rule["http"]["paths"].as_array().into_iter().flatten())
        .any(|path| backend_service(path) == Some(service))
}

/// The error for a user's Ingress none of whose paths leads to the apex Service.
pub(crate) fn no_apex_backend(provider: &str, source: &DynamicObject, apex: &str) -> Error {
    Error::spec(
        INGRESS_REF,
        format!(
            "Ingress {}/{} has no path whose backend is the Service {apex}; the {provider} provider \
             splits the traffic of the paths that lead to {apex}, so route at least one to it \
             (spec.rules[].http.paths[].backend.service.name: {apex})",
            source.metadata.namespace.as_deref().unwrap_or_default(),
            name_of(source),
        ),
    )
}
