//! The `Router` trait and the machinery every mesh router shares: read the current split,
//! render the desired objects, apply them, restore adopted objects on finalize. Routers that
//! clone a user's object share theirs in [`ClonedRouter`](crate::ClonedRouter).

use async_trait::async_trait;
use fledge_api::Canary;
use kube::Client;
use kube::api::{ApiResource, DynamicObject};

use crate::apply::{Applier, object_holds};
use crate::cloned::SourceRef;
use crate::error::{Error, Result};
use crate::metadata::CanaryIdentity;
use crate::object::TrafficObject;
use crate::routes::Routes;

/// Moves a canary's traffic. Every operation is idempotent: it states the desired result
/// ("primary 80, canary 20"), never a change, so it can be repeated after a crash.
#[async_trait]
pub trait Router: Send + Sync {
    /// Creates or updates the traffic objects of `canary`, keeping the split currently set.
    async fn reconcile(&self, canary: &Canary) -> Result<()>;

    /// Sets the split between primary and canary and whether traffic is mirrored.
    ///
    /// # Errors
    /// [`Error::InvalidRoutes`] when the weights do not add up to 100 (nothing is written).
    async fn set_routes(&self, canary: &Canary, routes: Routes) -> Result<()>;

    /// The split currently in force.
    async fn get_routes(&self, canary: &Canary) -> Result<Routes>;

    /// Gives back what Fledge adopted (revertOnDeletion): objects users created keep their
    /// original spec; objects Fledge created are left to the garbage collector.
    async fn finalize(&self, canary: &Canary) -> Result<()>;

    /// The resource of the object that holds the split, for callers that keep it in a watch
    /// cache; `None` when no object holds it (the `kubernetes` provider).
    fn routing_resource(&self) -> Option<ApiResource> {
        None
    }

    /// The name of the object that holds the split, in the Canary's namespace: the apex
    /// Service's name for most providers, the clone's for the routers that clone a user's
    /// object (`<ingressRef>-canary` for NGINX and Skipper, `<routeRef>-<apex>-canary` for
    /// APISIX).
    fn routing_name(&self, canary: &Canary) -> String {
        canary.spec.service_names().apex
    }

    /// The split held by `routing`, the routing object read from a watch cache; what
    /// [`Router::get_routes`] answers for the same object.
    ///
    /// # Errors
    /// As [`Router::get_routes`]; [`Error::NotFound`] from routers without a routing object.
    fn routes_in(&self, canary: &Canary, routing: &DynamicObject) -> Result<Routes> {
        let _ = routing;
        Err(Error::NotFound {
            kind: "routing object".to_owned(),
            namespace: canary.metadata.namespace.clone().unwrap_or_default(),
            name: self.routing_name(canary),
        })
    }

    /// Whether `routing`, the routing object read from a watch cache, already holds all that
    /// [`Router::reconcile`] would write for `canary` with the split `routing` holds — a
    /// server-side apply would change nothing. So a hand-edited host, gateway or match is a
    /// difference, while another split than the last one set is not (the split is the
    /// engine's business), and neither are fields only the server or others set (status,
    /// defaults). A field Fledge wrote before and no longer renders is not seen here; the next
    /// write of the object removes it. `true` for routers without a routing object.
    ///
    /// # Errors
    /// [`Error::InvalidSpec`] when the Canary asks for something the provider cannot express.
    fn routing_in_sync(&self, canary: &Canary, routing: &DynamicObject) -> Result<bool> {
        let _ = (canary, routing);
        Ok(true)
    }

    /// The user's object the routing object is cloned from — NGINX's and Skipper's
    /// `spec.ingressRef`, APISIX's `spec.routeRef` ([`ClonedRouter`](crate::ClonedRouter)) — for callers that keep
    /// it in a watch cache (it is of the routing object's resource, so the cache of
    /// [`Router::routing_resource`] holds it too); `None` for routers that render the routing
    /// object from the Canary alone, and when the Canary names no source.
    fn routing_source(&self, canary: &Canary) -> Option<SourceRef> {
        let _ = canary;
        None
    }

    /// [`Router::routing_in_sync`] given `source`, the [`Router::routing_source`] object read
    /// from a watch cache (`None` when it is not at hand): for a cloned routing object an edit
    /// of the user's object is then a difference too. Routers without a source answer as
    /// [`Router::routing_in_sync`].
    ///
    /// # Errors
    /// As [`Router::routing_in_sync`]; [`Error::InvalidSpec`] naming the source field when the
    /// source no longer routes to the apex Service.
    fn routing_in_sync_with_source(
        &self,
        canary: &Canary,
        routing: &DynamicObject,
        source: Option<&DynamicObject>,
    ) -> Result<bool> {
        let _ = source;
        self.routing_in_sync(canary, routing)
    }
}

/// The objects a mesh router renders for one canary.
#[derive(Clone, Debug)]
pub struct RenderedTraffic {
    /// The object that holds the weights (VirtualService, HTTPRoute, TrafficSplit).
    pub routing: TrafficObject,
    /// Objects that do not depend on the split (DestinationRules).
    pub supporting: Vec<TrafficObject>,
}

/// The pure half of a mesh router: rendering objects and reading the split back.
pub trait TrafficRenderer: Send + Sync {
    /// The resource of the object holding the weights.
    fn routing_resource(&self) -> ApiResource;

    /// The name of the object holding the weights: the apex Service's name unless the
    /// provider names it otherwise.
    fn routing_name(&self, canary: &Canary) -> String {
        canary.spec.service_names().apex
    }

    /// Renders every object of `canary` with the split `routes`.
    ///
    /// # Errors
    /// [`Error::InvalidSpec`] when the Canary asks for something the provider cannot express.
    fn render(&self, canary: &Canary, routes: Routes) -> Result<RenderedTraffic>;

    /// The split held by the routing object.
    ///
    /// # Errors
    /// [`Error::MissingRoutes`] when the object routes to neither primary nor canary.
    fn read_routes(&self, canary: &Canary, routing: &DynamicObject) -> Result<Routes>;

    /// Whether the routing object is in force (e.g. accepted by its Gateways); `Ok` by default.
    fn check_ready(&self, _canary: &Canary, _routing: &DynamicObject) -> Result<()> {
        Ok(())
    }

    /// Whether mirroring is something this provider does; when not, `mirrored` is ignored.
    fn mirrors(&self) -> bool {
        true
    }
}

/// A [`Router`] made of a [`TrafficRenderer`] and server-side apply.
#[derive(Clone, Debug)]
pub struct MeshRouter<R> {
    renderer: R,
    applier: Applier,
}

impl<R: TrafficRenderer> MeshRouter<R> {
    /// A router rendering with `renderer` and writing through `client`.
    pub fn new(renderer: R, client: Client) -> Self {
        Self {
            renderer,
            applier: Applier::new(client),
        }
    }

    /// The renderer.
    pub fn renderer(&self) -> &R {
        &self.renderer
    }

    async fn routing_object(
        &self,
        canary: &Canary,
        identity: &CanaryIdentity,
    ) -> Result<Option<DynamicObject>> {
        let resource = self.renderer.routing_resource();
        let name = self.renderer.routing_name(canary);
        self.applier
            .get(&resource, &identity.namespace, &name)
            .await
    }

    async fn apply_routing(
        &self,
        canary: &Canary,
        identity: &CanaryIdentity,
        routes: Routes,
    ) -> Result<RenderedTraffic> {
        let rendered = self.renderer.render(canary, routes)?;
        self.applier
            .apply(identity, &rendered.routing, true)
            .await?;
        Ok(rendered)
    }
}

#[async_trait]
impl<R: TrafficRenderer> Router for MeshRouter<R> {
    async fn reconcile(&self, canary: &Canary) -> Result<()> {
        let identity = CanaryIdentity::of(canary)?;
        // Keep the split in force: reconciling must never move traffic.
        let current = self.routing_object(canary, &identity).await?;
        let routes = current
            .as_ref()
            .and_then(|object| self.renderer.read_routes(canary, object).ok())
            .unwrap_or(Routes::INITIAL);
        let rendered = self.renderer.render(canary, routes)?;
        for object in &rendered.supporting {
            self.applier.apply(&identity, object, false).await?;
        }
        self.applier
            .apply(&identity, &rendered.routing, true)
            .await?;
        tracing::debug!(canary = %identity.name, namespace = %identity.namespace, %routes,
            kind = %rendered.routing.kind(), "traffic objects reconciled");
        Ok(())
    }

    async fn set_routes(&self, canary: &Canary, routes: Routes) -> Result<()> {
        let routes = routes.validate()?;
        let routes = if self.renderer.mirrors() {
            routes
        } else {
            routes.with_mirror(false)
        };
        let identity = CanaryIdentity::of(canary)?;
        if self.routing_object(canary, &identity).await?.is_none() {
            return Err(not_found(
                &self.renderer.routing_resource(),
                self.renderer.routing_name(canary),
                &identity,
            ));
        }
        self.apply_routing(canary, &identity, routes).await?;
        tracing::debug!(canary = %identity.name, namespace = %identity.namespace, %routes, "routes set");
        Ok(())
    }

    async fn get_routes(&self, canary: &Canary) -> Result<Routes> {
        let identity = CanaryIdentity::of(canary)?;
        let Some(object) = self.routing_object(canary, &identity).await? else {
            return Err(not_found(
                &self.renderer.routing_resource(),
                self.renderer.routing_name(canary),
                &identity,
            ));
        };
        self.renderer.check_ready(canary, &object)?;
        self.renderer.read_routes(canary, &object)
    }

    fn routing_resource(&self) -> Option<ApiResource> {
        Some(self.renderer.routing_resource())
    }

    fn routing_name(&self, canary: &Canary) -> String {
        self.renderer.routing_name(canary)
    }

    fn routes_in(&self, canary: &Canary, routing: &DynamicObject) -> Result<Routes> {
        self.renderer.check_ready(canary, routing)?;
        self.renderer.read_routes(canary, routing)
    }

    fn routing_in_sync(&self, canary: &Canary, routing: &DynamicObject) -> Result<bool> {
        // As `reconcile`: the split in force, or the initial one when none can be read.
        let routes = self
            .renderer
            .read_routes(canary, routing)
            .unwrap_or(Routes::INITIAL);
        let rendered = self.renderer.render(canary, routes)?;
        Ok(object_holds(routing, &rendered.routing.object))
    }

    async fn finalize(&self, canary: &Canary) -> Result<()> {
        let identity = CanaryIdentity::of(canary)?;
        let name = self.renderer.routing_name(canary);
        self.applier
            .restore_original(&identity, &self.renderer.routing_resource(), &name)
            .await?;
        Ok(())
    }
}

fn not_found(resource: &ApiResource, name: String, identity: &CanaryIdentity) -> Error {
    Error::NotFound {
        kind: resource.kind.clone(),
        namespace: identity.namespace.clone(),
        name,
    }
}
