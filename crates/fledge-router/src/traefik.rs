//! Traefik: a TraefikService named after the apex Service, a weighted round robin over the
//! primary and canary Services, which the user's IngressRoute names as its service
//! (`kind: TraefikService`).
//!
//! As Flagger's `traefik.go`, the canary is listed only while it receives traffic. Unlike
//! Flagger, the primary's weight is written even when it is 0: Traefik reads a missing weight
//! as 1, so Flagger's `omitempty` left the primary a share of the traffic at full promotion.
//! Traefik has no request matching in a TraefikService, so A/B testing is refused, and Flagger
//! does not mirror with Traefik, so neither does Fledge.

use fledge_api::Canary;
use kube::api::{ApiResource, DynamicObject};
use serde_json::{Value, json};

use crate::capabilities::Capabilities;
use crate::error::{Error, Result};
use crate::metadata::{CanaryIdentity, generated_metadata};
use crate::object::{TrafficObject, resource};
use crate::provider::TraefikGroup;
use crate::router::{RenderedTraffic, TrafficRenderer};
use crate::routes::Routes;

const CAPABILITIES: Capabilities = Capabilities {
    provider: "traefik",
    matching: false,
};

/// Renders `v1alpha1` TraefikServices in one of Traefik's two API groups.
#[derive(Clone, Copy, Debug)]
pub struct Traefik {
    group: TraefikGroup,
}

impl Traefik {
    /// A renderer for TraefikServices of `group`.
    pub const fn new(group: TraefikGroup) -> Self {
        Self { group }
    }

    /// The TraefikService resource of this group.
    pub fn traefik_service_resource(&self) -> ApiResource {
        resource(
            self.group.as_str(),
            "v1alpha1",
            "TraefikService",
            "traefikservices",
        )
    }
}

impl TrafficRenderer for Traefik {
    fn routing_resource(&self) -> ApiResource {
        self.traefik_service_resource()
    }

    fn render(&self, canary: &Canary, routes: Routes) -> Result<RenderedTraffic> {
        CAPABILITIES.check(canary)?;
        let identity = CanaryIdentity::of(canary)?;
        let names = canary.spec.service_names();
        let port = canary.spec.service.port;
        let service = |name: &str, weight: u32| json!({ "name": name, "namespace": identity.namespace, "port": port, "weight": weight });
        let mut services = vec![service(&names.primary, routes.primary)];
        if routes.canary > 0 {
            services.push(service(&names.canary, routes.canary));
        }
        let (labels, annotations) = generated_metadata(canary.spec.service.apex.as_ref());
        let mut routing = TrafficObject::new(
            self.traefik_service_resource(),
            &identity.namespace,
            &names.apex,
            json!({ "spec": { "weighted": { "services": services } } }),
        );
        routing.object.metadata.labels = Some(labels).filter(|l| !l.is_empty());
        routing.object.metadata.annotations = Some(annotations);
        Ok(RenderedTraffic {
            routing,
            supporting: Vec::new(),
        })
    }

    fn read_routes(&self, canary: &Canary, routing: &DynamicObject) -> Result<Routes> {
        let names = canary.spec.service_names();
        let services = routing.data["spec"]["weighted"]["services"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        // Traefik's default weight is 1.
        let weight_of = |name: &str| {
            services
                .iter()
                .find(|s| s["name"] == name)
                .map(|s| weight(&s["weight"]))
        };
        match (weight_of(&names.primary), weight_of(&names.canary)) {
            (None, None) => Err(Error::missing_routes(
                "TraefikService",
                routing,
                names.primary,
                names.canary,
            )),
            (primary, canary_weight) => Ok(Routes::weighted(
                primary.unwrap_or(0),
                canary_weight.unwrap_or(0),
            )),
        }
    }

    fn mirrors(&self) -> bool {
        false
    }
}

/// A service weight, 1 when Traefik's default applies.
fn weight(value: &Value) -> u32 {
    value
        .as_u64()
        .map_or(1, |w| u32::try_from(w).unwrap_or(u32::MAX))
}
