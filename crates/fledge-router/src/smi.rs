//! SMI (Linkerd, OSM and other SMI meshes): a TrafficSplit named after the apex Service that
//! divides it between the canary and primary Services.

use std::collections::BTreeMap;

use fledge_api::Canary;
use kube::api::{ApiResource, DynamicObject};
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::metadata::CanaryIdentity;
use crate::object::{TrafficObject, resource};
use crate::provider::SmiVersion;
use crate::router::{RenderedTraffic, TrafficRenderer};
use crate::routes::Routes;

/// Renders `split.smi-spec.io` TrafficSplits in the chosen version, for the named mesh.
#[derive(Clone, Debug)]
pub struct Smi {
    version: SmiVersion,
    mesh: String,
}

impl Smi {
    /// A renderer for TrafficSplits of `version` read by `mesh` (`linkerd`, `osm`, `istio`...).
    pub fn new(version: SmiVersion, mesh: impl Into<String>) -> Self {
        Self {
            version,
            mesh: mesh.into(),
        }
    }

    /// The TrafficSplit resource of this version.
    pub fn traffic_split_resource(&self) -> ApiResource {
        resource(
            "split.smi-spec.io",
            self.version.as_str(),
            "TrafficSplit",
            "trafficsplits",
        )
    }
}

impl TrafficRenderer for Smi {
    fn routing_resource(&self) -> ApiResource {
        self.traffic_split_resource()
    }

    fn render(&self, canary: &Canary, routes: Routes) -> Result<RenderedTraffic> {
        let identity = CanaryIdentity::of(canary)?;
        let service = &canary.spec.service;
        let names = canary.spec.service_names();
        let host = service
            .hosts
            .first()
            .cloned()
            .unwrap_or_else(|| names.apex.clone());
        // Weights are written as integers: v1alpha1 reads them as quantities, which accept a
        // plain number, and the later versions as integers.
        let spec = json!({
            "service": host,
            "backends": [
                { "service": names.canary, "weight": routes.canary },
                { "service": names.primary, "weight": routes.primary },
            ],
        });
        let mut routing = TrafficObject::new(
            self.traffic_split_resource(),
            &identity.namespace,
            &names.apex,
            json!({ "spec": spec }),
        );
        if self.mesh == "istio" && !service.gateways.is_empty() {
            let gateways =
                serde_json::to_string(&service.gateways).map_err(|source| Error::Encode {
                    kind: "TrafficSplit".to_owned(),
                    name: names.apex.clone(),
                    source,
                })?;
            routing.object.metadata.annotations = Some(BTreeMap::from([(
                "VirtualService.v1alpha3.networking.istio.io/spec.gateways".to_owned(),
                gateways,
            )]));
        }
        Ok(RenderedTraffic {
            routing,
            supporting: Vec::new(),
        })
    }

    fn read_routes(&self, canary: &Canary, routing: &DynamicObject) -> Result<Routes> {
        let names = canary.spec.service_names();
        let mut routes = Routes::weighted(0, 0);
        for backend in routing.data["spec"]["backends"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let weight = weight_of(&backend["weight"]);
            if backend["service"] == names.primary.as_str() {
                routes.primary = weight;
            } else if backend["service"] == names.canary.as_str() {
                routes.canary = weight;
            }
        }
        if routes.primary == 0 && routes.canary == 0 {
            return Err(Error::missing_routes(
                "TrafficSplit",
                routing,
                names.primary,
                names.canary,
            ));
        }
        Ok(routes)
    }

    fn mirrors(&self) -> bool {
        false
    }
}

/// A backend weight written as a number or, by v1alpha1 clients, as a quantity string.
fn weight_of(value: &Value) -> u32 {
    match value {
        Value::Number(n) => n
            .as_f64()
            .map_or(0, |w| w.round().clamp(0.0, f64::from(u32::MAX)) as u32),
        Value::String(s) => s.trim().parse::<u32>().unwrap_or(0),
        _ => 0,
    }
}
