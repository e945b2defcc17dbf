//! APISIX: the canary route `<routeRef>-<apex>-canary`, an `apisix.apache.org/v2`
//! ApisixRoute cloned from `spec.routeRef` that keeps only the HTTP route leading to the apex
//! Service, raises its priority to 10000 so that APISIX prefers it to the user's route, and
//! splits it between a primary backend (the user's, renamed `<apex>-primary`) and a canary
//! backend `<apex>-canary` on the same port, by weight. The user's route is never changed.
//! As Flagger's `ApisixRouter`; like it, no A/B testing.

use fledge_api::Canary;
use kube::api::{ApiResource, DynamicObject};
use serde_json::{Map, Value, json};

use crate::capabilities::Capabilities;
use crate::cloned::{ClonedRenderer, SourceRef, cloned_metadata, name_of};
use crate::error::{Error, Result};
use crate::metadata::{CanaryIdentity, generated_metadata};
use crate::object::{TrafficObject, resource};
use crate::routes::Routes;

const PROVIDER: &str = "apisix";
/// The Canary field naming the ApisixRoute.
const ROUTE_REF: &str = "spec.routeRef";
/// The priority of the canary route, above any the user's route can have (Flagger's).
pub const CANARY_PRIORITY: i64 = 10_000;
/// The weight APISIX gives a backend that states none.
const DEFAULT_WEIGHT: u64 = 100;

/// Renders the APISIX canary ApisixRoute.
#[derive(Clone, Copy, Debug, Default)]
pub struct Apisix;

/// The `apisix.apache.org/v2` ApisixRoute resource.
pub fn apisix_route_resource() -> ApiResource {
    resource("apisix.apache.org", "v2", "ApisixRoute", "apisixroutes")
}

fn route_ref_name(canary: &Canary) -> String {
    canary
        .spec
        .route_ref
        .as_ref()
        .map(|r| r.name.clone())
        .unwrap_or_default()
}

/// The error for a user's route that cannot be cloned, with why.
fn unusable_source(source: &DynamicObject, reason: &str) -> Error {
    Error::spec(
        ROUTE_REF,
        format!(
            "ApisixRoute {}/{} {reason}",
            source.metadata.namespace.as_deref().unwrap_or_default(),
            name_of(source)
        ),
    )
}

/// The first HTTP route of `http` with a backend `service`, and its backends.
fn route_to<'a>(http: &'a [Value], service: &str) -> Option<&'a Value> {
    http.iter().find(|route| {
        route["backends"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|backend| backend["serviceName"] == service)
    })
}

impl Apisix {
    fn missing_routes(canary: &Canary, routing: &DynamicObject) -> Error {
        let names = canary.spec.service_names();
        Error::missing_routes("ApisixRoute", routing, names.primary, names.canary)
    }
}

impl ClonedRenderer for Apisix {
    fn routing_resource(&self) -> ApiResource {
        apisix_route_resource()
    }

    fn routing_name(&self, canary: &Canary) -> String {
        format!(
            "{}-{}-canary",
            route_ref_name(canary),
            canary.spec.service_names().apex
        )
    }

    fn source(&self, canary: &Canary) -> Result<SourceRef> {
        let name = route_ref_name(canary);
        if name.is_empty() {
            return Err(Error::spec(
                ROUTE_REF,
                "the apisix provider routes through an ApisixRoute; add `routeRef` naming it \
                 (routeRef: {apiVersion: apisix.apache.org/v2, kind: ApisixRoute, name: podinfo})",
            ));
        }
        Ok(SourceRef {
            resource: apisix_route_resource(),
            name,
            field: ROUTE_REF,
        })
    }

    fn check(&self, canary: &Canary) -> Result<()> {
        Capabilities {
            provider: PROVIDER,
            matching: false,
        }
        .check(canary)
    }

    fn render(
        &self,
        canary: &Canary,
        routes: Routes,
        source: &DynamicObject,
    ) -> Result<TrafficObject> {
        self.check(canary)?;
        let identity = CanaryIdentity::of(canary)?;
        let names = canary.spec.service_names();
        let http = source.data["spec"]["http"]
            .as_array()
            .filter(|http| !http.is_empty())
            .ok_or_else(|| unusable_source(source, "has no HTTP routes (spec.http is empty)"))?;
        let target = route_to(http, &names.apex).ok_or_else(|| {
            unusable_source(
                source,
                &format!(
                    "has no HTTP route with a backend serviceName {}; route one to the apex Service",
                    names.apex
                ),
            )
        })?;
        let backends = target["backends"].as_array().cloned().unwrap_or_default();
        let [user_backend] = backends.as_slice() else {
            return Err(unusable_source(
                source,
                &format!(
                    "routes {} to {} backends in HTTP route {}; the apisix provider splits a route with one backend only",
                    names.apex,
                    backends.len(),
                    target["name"].as_str().unwrap_or_default()
                ),
            ));
        };
        let mut primary = user_backend.clone();
        primary["serviceName"] = json!(names.primary);
        primary["weight"] = json!(routes.primary);
        let mut canary_backend = Map::new();
        canary_backend.insert("serviceName".into(), json!(names.canary));
        for field in ["servicePort", "resolveGranularity"] {
            if let Some(value) = user_backend.get(field) {
                canary_backend.insert(field.into(), value.clone());
            }
        }
        canary_backend.insert("weight".into(), json!(routes.canary));
        if let Some(subset) = user_backend.get("subset") {
            canary_backend.insert("subset".into(), subset.clone());
        }
        let mut route = target.clone();
        route["priority"] = json!(CANARY_PRIORITY);
        route["backends"] = json!([primary, Value::Object(canary_backend)]);
        let mut spec = source.data["spec"].clone();
        spec["http"] = json!([route]);
        let (labels, mut annotations) = cloned_metadata(source);
        annotations.extend(generated_metadata(None).1);
        let mut routing = TrafficObject::new(
            apisix_route_resource(),
            &identity.namespace,
            &self.routing_name(canary),
            json!({ "spec": spec }),
        );
        routing.object.metadata.labels = Some(labels).filter(|l| !l.is_empty());
        routing.object.metadata.annotations = Some(annotations);
        Ok(routing)
    }

    fn read_routes(&self, canary: &Canary, routing: &DynamicObject) -> Result<Routes> {
        let names = canary.spec.service_names();
        let http = routing.data["spec"]["http"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let route =
            route_to(&http, &names.primary).ok_or_else(|| Self::missing_routes(canary, routing))?;
        let primary = route["backends"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|backend| backend["serviceName"] == names.primary.as_str())
            .map(|backend| backend["weight"].as_u64().unwrap_or(DEFAULT_WEIGHT))
            .and_then(|w| u32::try_from(w).ok())
            .filter(|w| *w <= 100)
            .ok_or_else(|| Self::missing_routes(canary, routing))?;
        Ok(Routes::weighted(primary, 100 - primary))
    }

    fn holds_canary_fields(
        &self,
        canary: &Canary,
        routing: &DynamicObject,
        routes: Routes,
    ) -> bool {
        let names = canary.spec.service_names();
        let http = routing.data["spec"]["http"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let [route] = http.as_slice() else {
            return false;
        };
        let weights: Vec<(Option<&str>, Option<u64>)> = route["backends"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|b| (b["serviceName"].as_str(), b["weight"].as_u64()))
            .collect();
        route["priority"] == json!(CANARY_PRIORITY)
            && weights
                == [
                    (
                        Some(names.primary.as_str()),
                        Some(u64::from(routes.primary)),
                    ),
                    (Some(names.canary.as_str()), Some(u64::from(routes.canary))),
                ]
    }
}
