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
//!
//! Rendering is a pure function of the Canary and the split ([`TrafficRenderer::render`],
//! [`render_services`]); [`MeshRouter`] applies the result with server-side apply (field
//! manager `fledge`), gives objects it creates the Canary as controller owner, adopts objects
//! users created first (keeping their spec in `flagger.kubernetes.io/original-configuration`
//! and restoring it on [`Router::finalize`]), and retries conflicts.
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

mod apply;
mod capabilities;
mod contour;
mod error;
mod gateway_api;
mod gloo;
mod istio;
mod kubernetes;
mod metadata;
mod object;
mod options;
mod provider;
mod router;
mod routes;
mod services;
pub mod session_affinity;
mod smi;
mod traefik;

pub use apply::{Applier, FIELD_MANAGER, holds};
pub use contour::Contour;
pub use error::{Error, Result};
pub use gateway_api::GatewayApi;
pub use gloo::{Gloo, GlooRouter};
pub use istio::Istio;
pub use kubernetes::KubernetesRouter;
pub use metadata::{
    CanaryIdentity, KUBECTL_LAST_APPLIED, ORIGINAL_CONFIGURATION, generated_metadata,
};
pub use object::TrafficObject;
pub use options::RouterOptions;
pub use provider::{GatewayApiVersion, Provider, SmiVersion, TraefikGroup};
pub use router::{MeshRouter, RenderedTraffic, Router, TrafficRenderer};
pub use routes::Routes;
pub use services::{CanaryServices, ServiceRouter, ServiceTarget, discover_ports, render_services};
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
    })
}
