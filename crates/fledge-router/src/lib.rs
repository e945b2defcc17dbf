//! Traffic routers of Fledge: where a canary decision becomes real traffic.
//!
//! Every canary gets three ClusterIP Services ([`ServiceRouter`]): the apex `<svc>` that
//! clients call, `<svc>-primary` and `<svc>-canary`. A provider's [`Router`] then splits the
//! apex traffic between the two:
//!
//! | `spec.provider` | objects |
//! |---|---|
//! | `kubernetes` | none: blue/green, the apex keeps selecting the primary ([`KubernetesRouter`]) |
//! | `istio` | VirtualService + two DestinationRules ([`Istio`]) |
//! | `gatewayapi:v1`, `gatewayapi:v1beta1` | HTTPRoute ([`GatewayApi`]) |
//! | `linkerd`, `osm`, `smi:v1alpha{1,2,3}:<mesh>` | TrafficSplit ([`Smi`]) |
//! | `contour` | HTTPProxy ([`Contour`]) |
//! | `traefik`, `traefik:traefik.containo.us` | TraefikService ([`Traefik`]) |
//! | `gloo` | RouteTable + two Upstreams ([`Gloo`], [`GlooRouter`]) |
//! | `nginx` | Ingress `<ingressRef>-canary`, cloned from `spec.ingressRef` ([`Nginx`]) |
//! | `skipper` | Ingress `<ingressRef>-canary`, cloned from `spec.ingressRef` ([`Skipper`]) |
//! | `apisix` | ApisixRoute `<routeRef>-<apex>-canary`, cloned from `spec.routeRef` ([`Apisix`]) |
//!
//! Rendering is a pure function of the Canary and the split ([`TrafficRenderer::render`],
//! [`render_services`]); [`MeshRouter`] applies the result with server-side apply (field
//! manager `fledge`), gives objects it creates the Canary as controller owner, adopts objects
//! users created first (keeping their spec in `flagger.kubernetes.io/original-configuration`
//! and restoring it on [`Router::finalize`]), and retries conflicts.
//!
//! ## Routers that clone a user's object
//!
//! The NGINX, Skipper and APISIX routing objects are not written from the Canary alone: they
//! are clones of an Ingress or ApisixRoute the user owns, with the backends switched to the
//! canary (and primary) Services. Their renderers are [`ClonedRenderer`]s, whose
//! [`render`](ClonedRenderer::render) takes that source object, and [`ClonedRouter`] (not
//! [`MeshRouter`]) reads it from the API server before every write, so the clone follows edits
//! of the user's object. The user's object is never written; the clone is Fledge's own, owned
//! by the Canary and removed with it (Skipper's at once on [`Router::finalize`], as Flagger
//! does). A missing source is [`Error::SourceNotFound`], naming `spec.ingressRef` or
//! `spec.routeRef`. The two router kinds are separate types because a renderer either needs
//! the source or does not: no renderer carries a method it cannot honour.
//!
//! The split is read from the clone alone ([`Router::routes_in`]). Whether a clone is in sync
//! depends on its source too: [`Router::routing_source`] names the source (an object of
//! [`Router::routing_resource`], so a watch cache of that resource holds it) and
//! [`Router::routing_in_sync_with_source`] compares the clone with what the source renders;
//! [`Router::routing_in_sync`] alone checks what the Canary decides (the canary annotations,
//! backend weights, priority).
//!
//! ```no_run
//! # async fn run(client: kube::Client, canary: fledge_api::Canary) -> fledge_router::Result<()> {
//! use fledge_router::{RouterOptions, Routes, ServiceRouter, ServiceTarget, router_for};
//!
//! ServiceRouter::new(client.clone()).reconcile(&canary, &ServiceTarget::new("app", "podinfo")).await?;
//! let router = router_for(canary.spec.effective_provider(None), client, &RouterOptions::default())?;
//! router.reconcile(&canary).await?;
//! router.set_routes(&canary, Routes::weighted(80, 20)).await?;
//! assert_eq!(router.get_routes(&canary).await?, Routes::weighted(80, 20));
//! # Ok(()) }
//! ```

mod apisix;
mod apply;
mod capabilities;
mod cloned;
mod contour;
mod error;
mod gateway_api;
mod gloo;
mod ingress;
mod istio;
mod kubernetes;
mod metadata;
mod nginx;
mod object;
mod options;
mod provider;
mod router;
mod routes;
mod services;
pub mod session_affinity;
mod skipper;
mod smi;
mod traefik;

pub use apisix::{Apisix, apisix_route_resource};
pub use apply::{Applier, FIELD_MANAGER, holds};
pub use cloned::{CloneOnFinalize, ClonedRenderer, ClonedRouter, SourceRef};
pub use contour::Contour;
pub use error::{Error, Result};
pub use gateway_api::GatewayApi;
pub use gloo::{Gloo, GlooRouter};
pub use ingress::ingress_resource;
pub use istio::Istio;
pub use kubernetes::KubernetesRouter;
pub use metadata::{
    CanaryIdentity, KUBECTL_LAST_APPLIED, ORIGINAL_CONFIGURATION, generated_metadata,
};
pub use nginx::Nginx;
pub use object::TrafficObject;
pub use options::RouterOptions;
pub use provider::{GatewayApiVersion, Provider, SmiVersion, TraefikGroup};
pub use router::{MeshRouter, RenderedTraffic, Router, TrafficRenderer};
pub use routes::Routes;
pub use services::{CanaryServices, ServiceRouter, ServiceTarget, discover_ports, render_services};
pub use skipper::{Skipper, insert_predicate};
pub use smi::Smi;
pub use traefik::Traefik;

/// The router for a provider name (`spec.provider`, or the operator's default), with the
/// operator-wide `options`.
///
/// # Errors
/// [`Error::UnknownProvider`] for a provider this crate does not route.
pub fn router_for(
    provider: &str,
    client: kube::Client,
    options: &RouterOptions,
) -> Result<Box<dyn Router>> {
    Ok(match Provider::parse(provider)? {
        Provider::Kubernetes => Box::new(KubernetesRouter),
        Provider::Istio => Box::new(MeshRouter::new(Istio, client)),
        Provider::GatewayApi(version) => {
            Box::new(MeshRouter::new(GatewayApi::new(version), client))
        }
        Provider::Smi { version, mesh } => {
            Box::new(MeshRouter::new(Smi::new(version, mesh), client))
        }
        Provider::Contour => Box::new(MeshRouter::new(
            Contour::new(options.ingress_class.clone()),
            client,
        )),
        Provider::Traefik(group) => Box::new(MeshRouter::new(Traefik::new(group), client)),
        Provider::Gloo => Box::new(GlooRouter::new(client)),
        Provider::Nginx => Box::new(ClonedRouter::new(
            Nginx::new(options.ingress_annotations_prefix.clone()),
            client,
        )),
        Provider::Skipper => Box::new(ClonedRouter::new(Skipper, client)),
        Provider::Apisix => Box::new(ClonedRouter::new(Apisix, client)),
    })
}
