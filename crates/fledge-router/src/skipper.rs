//! Skipper: the canary Ingress `<ingress>-canary`, a clone of `spec.ingressRef` in which every
//! path to the apex Service leads to `<apex>-primary` and a copy of it to `<apex>-canary`;
//! `zalando.org/backend-weights` splits them. The `zalando.org/skipper-predicate` annotation
//! starts with `Weight(100)`, so that Skipper prefers these routes to the identical ones of the
//! user's Ingress, or with `False()` while the canary gets nothing, so that the user's Ingress
//! serves alone. The user's Ingress is never changed. As Flagger's `SkipperRouter`; like it,
//! no A/B testing.

use std::collections::BTreeMap;

use fledge_api::Canary;
use kube::api::{ApiResource, DynamicObject};
use serde_json::{Value, json};

use crate::capabilities::Capabilities;
use crate::cloned::{CloneOnFinalize, ClonedRenderer, SourceRef, cloned_metadata};
use crate::error::{Error, Result};
use crate::ingress::{
    backend_service, canary_ingress_name, for_each_rule_paths, ingress_resource, ingress_source,
    no_apex_backend, set_backend_service,
};
use crate::metadata::{CanaryIdentity, generated_metadata};
use crate::object::TrafficObject;
use crate::routes::Routes;

const PROVIDER: &str = "skipper";

/// The annotation holding the weight of each backend Service (a JSON object).
pub const BACKEND_WEIGHTS: &str = "zalando.org/backend-weights";
/// The annotation holding Skipper's route predicates, joined by `&&`.
pub const PREDICATE: &str = "zalando.org/skipper-predicate";
/// The predicate that makes the canary Ingress' routes win over the user's.
const ROUTE_WEIGHT: &str = "Weight(100)";
/// The predicate that switches the canary Ingress' routes off.
const ROUTE_DISABLED: &str = "False()";

/// Renders the Skipper canary Ingress.
#[derive(Clone, Copy, Debug, Default)]
pub struct Skipper;

/// `insert` as the first of the `&&`-joined `predicates`, dropping an earlier `Weight(100)`
/// or `False()` and empty terms (Flagger's `insertPredicate`).
pub fn insert_predicate(predicates: &str, insert: &str) -> String {
    std::iter::once(insert)
        .chain(
            predicates
                .split("&&")
                .map(str::trim)
                .filter(|p| !p.is_empty() && *p != ROUTE_WEIGHT && *p != ROUTE_DISABLED),
        )
        .collect::<Vec<_>>()
        .join(" && ")
}

/// `{"<canary>": c, "<primary>": p}`, keys in order as Flagger's JSON encoder writes them.
fn backend_weights(canary: &Canary, routes: Routes) -> String {
    let names = canary.spec.service_names();
    let weights = BTreeMap::from([
        (names.primary, routes.primary),
        (names.canary, routes.canary),
    ]);
    json!(weights).to_string()
}

/// The predicate for `routes` given what the user's Ingress asks for.
fn predicate(routes: Routes, user_predicates: &str) -> String {
    let first = if routes.canary == 0 {
        ROUTE_DISABLED
    } else {
        ROUTE_WEIGHT
    };
    insert_predicate(user_predicates, first)
}

impl Skipper {
    fn missing_routes(canary: &Canary, routing: &DynamicObject) -> Error {
        let names = canary.spec.service_names();
        Error::missing_routes("Ingress", routing, names.primary, names.canary)
    }
}

impl ClonedRenderer for Skipper {
    fn routing_resource(&self) -> ApiResource {
        ingress_resource()
    }

    fn routing_name(&self, canary: &Canary) -> String {
        canary_ingress_name(canary)
    }

    fn source(&self, canary: &Canary) -> Result<SourceRef> {
        ingress_source(canary, PROVIDER)
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
        let mut spec = source.data["spec"].clone();
        let mut split = false;
        for_each_rule_paths(&mut spec, |paths| {
            let mut canary_paths = Vec::new();
            for path in paths.iter_mut() {
                if backend_service(path) == Some(names.apex.as_str()) {
                    set_backend_service(path, &names.primary);
                    let mut copy = path.clone();
                    set_backend_service(&mut copy, &names.canary);
                    canary_paths.push(copy);
                }
            }
            split |= !canary_paths.is_empty();
            paths.extend(canary_paths);
        });
        if !split {
            return Err(no_apex_backend(PROVIDER, source, &names.apex));
        }
        let (labels, mut annotations) = cloned_metadata(source);
        let user_predicates = annotations.remove(PREDICATE).unwrap_or_default();
        annotations.extend(generated_metadata(None).1);
        annotations.insert(BACKEND_WEIGHTS.to_owned(), backend_weights(canary, routes));
        annotations.insert(PREDICATE.to_owned(), predicate(routes, &user_predicates));
        let mut routing = TrafficObject::new(
            ingress_resource(),
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
        let weights: BTreeMap<String, Value> = routing
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(BACKEND_WEIGHTS))
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or_default();
        // Skipper reads weights as ratios, integers or not.
        let weight = |service: &str| {
            weights
                .get(service)
                .and_then(Value::as_f64)
                .filter(|w| (0.0..=100.0).contains(w))
                .map(|w| w.round() as u32)
        };
        match (weight(&names.primary), weight(&names.canary)) {
            (Some(primary), Some(canary_weight)) => Ok(Routes::weighted(primary, canary_weight)),
            _ => Err(Self::missing_routes(canary, routing)),
        }
    }

    fn holds_canary_fields(
        &self,
        canary: &Canary,
        routing: &DynamicObject,
        routes: Routes,
    ) -> bool {
        let annotations = routing.metadata.annotations.clone().unwrap_or_default();
        let held_predicate = annotations.get(PREDICATE).map_or("", String::as_str);
        annotations.get(BACKEND_WEIGHTS) == Some(&backend_weights(canary, routes))
            && held_predicate == predicate(routes, held_predicate)
    }

    fn on_finalize(&self) -> CloneOnFinalize {
        CloneOnFinalize::Delete
    }
}
