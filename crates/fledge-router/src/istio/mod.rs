//! Istio: a VirtualService named after the apex Service that splits traffic between the
//! primary and canary Services, and a DestinationRule for each of them.

mod virtual_service;

use fledge_api::Canary;
use kube::api::{ApiResource, DynamicObject};
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::metadata::{CanaryIdentity, generated_metadata};
use crate::object::{TrafficObject, resource};
use crate::router::{RenderedTraffic, TrafficRenderer};
use crate::routes::Routes;

/// Renders Istio `networking.istio.io/v1beta1` VirtualServices and DestinationRules.
#[derive(Clone, Copy, Debug, Default)]
pub struct Istio;

impl Istio {
    /// The VirtualService resource.
    pub fn virtual_service_resource() -> ApiResource {
        resource(
            "networking.istio.io",
            "v1beta1",
            "VirtualService",
            "virtualservices",
        )
    }

    /// The DestinationRule resource.
    pub fn destination_rule_resource() -> ApiResource {
        resource(
            "networking.istio.io",
            "v1beta1",
            "DestinationRule",
            "destinationrules",
        )
    }
}

impl TrafficRenderer for Istio {
    fn routing_resource(&self) -> ApiResource {
        Self::virtual_service_resource()
    }

    fn render(&self, canary: &Canary, routes: Routes) -> Result<RenderedTraffic> {
        let identity = CanaryIdentity::of(canary)?;
        let names = canary.spec.service_names();
        let spec = virtual_service::render_spec(canary, routes)?;
        let (labels, annotations) = generated_metadata(canary.spec.service.apex.as_ref());
        let mut routing = TrafficObject::new(
            Self::virtual_service_resource(),
            &identity.namespace,
            &names.apex,
            json!({ "spec": spec }),
        );
        routing.object.metadata.labels = Some(labels).filter(|l| !l.is_empty());
        routing.object.metadata.annotations = Some(annotations);
        let supporting = [&names.canary, &names.primary]
            .into_iter()
            .map(|host| {
                let mut spec = json!({ "host": host });
                if let Some(policy) = &canary.spec.service.traffic_policy {
                    spec["trafficPolicy"] = policy.clone();
                }
                TrafficObject::new(
                    Self::destination_rule_resource(),
                    &identity.namespace,
                    host,
                    json!({ "spec": spec }),
                )
            })
            .collect();
        Ok(RenderedTraffic {
            routing,
            supporting,
        })
    }

    fn read_routes(&self, canary: &Canary, routing: &DynamicObject) -> Result<Routes> {
        let names = canary.spec.service_names();
        let spec = &routing.data["spec"];
        let section = if virtual_service::is_tcp(&canary.spec.service) {
            "tcp"
        } else {
            "http"
        };
        let rules = spec[section].as_array().cloned().unwrap_or_default();
        let has_host = |rule: &Value, host: &str| {
            rule["route"]
                .as_array()
                .is_some_and(|r| r.iter().any(|d| d["destination"]["host"] == host))
        };
        // As Flagger: the last rule that routes to the canary holds the split.
        let rule = rules.iter().rev().find(|r| has_host(r, &names.canary));
        let mut routes = Routes::weighted(0, 0);
        let mut read = |dest: &Value| {
            let weight = dest["weight"].as_u64().unwrap_or(0) as u32;
            if dest["destination"]["host"] == names.primary.as_str() {
                routes.primary = weight;
            } else if dest["destination"]["host"] == names.canary.as_str() {
                routes.canary = weight;
            }
        };
        if let Some(rule) = rule {
            rule["route"]
                .as_array()
                .into_iter()
                .flatten()
                .for_each(&mut read);
        }
        let sticky = canary
            .analysis()
            .and_then(|a| a.session_affinity.as_ref())
            .is_some();
        if sticky && section == "http" {
            // The rule whose destinations hand out cookies is the weighted one.
            for dest in rules
                .iter()
                .flat_map(|r| r["route"].as_array().into_iter().flatten())
            {
                if !dest["headers"].is_null() {
                    read(dest);
                }
            }
        }
        routes.mirrored = section == "http"
            && rule.is_some_and(|r| r["mirror"]["host"].as_str().is_some_and(|h| !h.is_empty()));
        if routes.primary == 0 && routes.canary == 0 {
            return Err(Error::missing_routes(
                "VirtualService",
                routing,
                names.primary,
                names.canary,
            ));
        }
        Ok(routes)
    }
}
