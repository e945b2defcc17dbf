//! Routers whose routing object is a clone of an object the user owns: the NGINX and Skipper
//! canary Ingress (`<ingressRef>-canary`) and the APISIX canary route
//! (`<routeRef>-<apex>-canary`). The user's object is read on every write and never changed;
//! the clone is Fledge's, owned by the Canary.

use std::collections::BTreeMap;

use async_trait::async_trait;
use fledge_api::Canary;
use kube::Client;
use kube::api::{ApiResource, DynamicObject};

use crate::apply::{Applier, object_holds};
use crate::error::{Error, Result};
use crate::metadata::{CanaryIdentity, KUBECTL_LAST_APPLIED, ORIGINAL_CONFIGURATION};
use crate::object::TrafficObject;
use crate::router::Router;
use crate::routes::Routes;

/// The user's object a routing object is cloned from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceRef {
    /// Its resource (for the routers here, the routing object's resource too).
    pub resource: ApiResource,
    /// Its name, in the Canary's namespace.
    pub name: String,
    /// The Canary field that names it (`spec.ingressRef`, `spec.routeRef`).
    pub field: &'static str,
}

/// What happens to a cloned routing object when the Canary is finalized (revertOnDeletion).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloneOnFinalize {
    /// Left to the garbage collector, which removes it with its owner, the Canary (NGINX,
    /// APISIX: Flagger's `Finalize` does nothing either).
    Keep,
    /// Deleted at once, so that traffic returns to the user's object before the Canary goes
    /// (Skipper, as Flagger's `SkipperRouter.Finalize`).
    Delete,
}

/// The pure half of a router that clones a user's object: naming the source, rendering the
/// clone from it and reading the split back.
pub trait ClonedRenderer: Send + Sync {
    /// The resource of the routing object.
    fn routing_resource(&self) -> ApiResource;

    /// The name of the routing object.
    fn routing_name(&self, canary: &Canary) -> String;

    /// The object `canary` names as the source of the clone.
    ///
    /// # Errors
    /// [`Error::InvalidSpec`] naming the field when the Canary names none.
    fn source(&self, canary: &Canary) -> Result<SourceRef>;

    /// Refuses what the provider cannot express (mirroring, session affinity, matches).
    ///
    /// # Errors
    /// [`Error::InvalidSpec`] naming the field and the provider.
    fn check(&self, canary: &Canary) -> Result<()>;

    /// The routing object for `routes`, cloned from `source`. Calls [`ClonedRenderer::check`].
    ///
    /// # Errors
    /// As [`ClonedRenderer::check`]; [`Error::InvalidSpec`] naming the source field when the
    /// source does not route to the apex Service.
    fn render(
        &self,
        canary: &Canary,
        routes: Routes,
        source: &DynamicObject,
    ) -> Result<TrafficObject>;

    /// The split held by the routing object.
    ///
    /// # Errors
    /// [`Error::MissingRoutes`] when it routes to neither primary nor canary.
    fn read_routes(&self, canary: &Canary, routing: &DynamicObject) -> Result<Routes>;

    /// Whether `routing` holds what Fledge derives from the Canary alone for `routes` — the
    /// parts that do not come from the source (the NGINX canary annotations, the Skipper
    /// backend weights, the APISIX priority) — for when the source is not at hand.
    fn holds_canary_fields(&self, canary: &Canary, routing: &DynamicObject, routes: Routes)
    -> bool;

    /// What [`Router::finalize`] does with the routing object.
    fn on_finalize(&self) -> CloneOnFinalize {
        CloneOnFinalize::Keep
    }
}

/// A [`Router`] made of a [`ClonedRenderer`] and server-side apply: every write reads the
/// source first, so the clone follows the user's object.
#[derive(Clone, Debug)]
pub struct ClonedRouter<R> {
    renderer: R,
    applier: Applier,
}

impl<R: ClonedRenderer> ClonedRouter<R> {
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

    async fn source_object(
        &self,
        canary: &Canary,
        identity: &CanaryIdentity,
    ) -> Result<DynamicObject> {
        let source = self.renderer.source(canary)?;
        self.applier
            .get(&source.resource, &identity.namespace, &source.name)
            .await?
            .ok_or_else(|| Error::SourceNotFound {
                field: source.field,
                kind: source.resource.kind.clone(),
                namespace: identity.namespace.clone(),
                name: source.name.clone(),
            })
    }

    async fn routing_object(
        &self,
        canary: &Canary,
        identity: &CanaryIdentity,
    ) -> Result<Option<DynamicObject>> {
        let name = self.renderer.routing_name(canary);
        self.applier
            .get(
                &self.renderer.routing_resource(),
                &identity.namespace,
                &name,
            )
            .await
    }

    fn not_found(&self, canary: &Canary, identity: &CanaryIdentity) -> Error {
        Error::NotFound {
            kind: self.renderer.routing_resource().kind,
            namespace: identity.namespace.clone(),
            name: self.renderer.routing_name(canary),
        }
    }
}

#[async_trait]
impl<R: ClonedRenderer> Router for ClonedRouter<R> {
    async fn reconcile(&self, canary: &Canary) -> Result<()> {
        self.renderer.check(canary)?;
        let identity = CanaryIdentity::of(canary)?;
        let source = self.source_object(canary, &identity).await?;
        // Keep the split in force: reconciling must never move traffic.
        let routes = self
            .routing_object(canary, &identity)
            .await?
            .and_then(|current| self.renderer.read_routes(canary, &current).ok())
            .unwrap_or(Routes::INITIAL);
        let routing = self.renderer.render(canary, routes, &source)?;
        self.applier.apply(&identity, &routing, true).await?;
        tracing::debug!(canary = %identity.name, namespace = %identity.namespace, %routes,
            kind = %routing.kind(), name = %routing.name(), "cloned routing object reconciled");
        Ok(())
    }

    async fn set_routes(&self, canary: &Canary, routes: Routes) -> Result<()> {
        // `check` refuses a spec asking for mirroring; a mirrored split without it is set plain.
        let routes = routes.validate()?.with_mirror(false);
        self.renderer.check(canary)?;
        let identity = CanaryIdentity::of(canary)?;
        if self.routing_object(canary, &identity).await?.is_none() {
            return Err(self.not_found(canary, &identity));
        }
        let source = self.source_object(canary, &identity).await?;
        let routing = self.renderer.render(canary, routes, &source)?;
        self.applier.apply(&identity, &routing, true).await?;
        tracing::debug!(canary = %identity.name, namespace = %identity.namespace, %routes, "routes set");
        Ok(())
    }

    async fn get_routes(&self, canary: &Canary) -> Result<Routes> {
        let identity = CanaryIdentity::of(canary)?;
        let Some(routing) = self.routing_object(canary, &identity).await? else {
            return Err(self.not_found(canary, &identity));
        };
        self.renderer.read_routes(canary, &routing)
    }

    async fn finalize(&self, canary: &Canary) -> Result<()> {
        if self.renderer.on_finalize() == CloneOnFinalize::Keep {
            return Ok(());
        }
        let identity = CanaryIdentity::of(canary)?;
        let name = self.renderer.routing_name(canary);
        let deleted = self
            .applier
            .delete(
                &self.renderer.routing_resource(),
                &identity.namespace,
                &name,
            )
            .await?;
        tracing::debug!(canary = %identity.name, namespace = %identity.namespace, %name, deleted,
            "cloned routing object removed");
        Ok(())
    }

    fn routing_resource(&self) -> Option<ApiResource> {
        Some(self.renderer.routing_resource())
    }

    fn routing_name(&self, canary: &Canary) -> String {
        self.renderer.routing_name(canary)
    }

    fn routing_source(&self, canary: &Canary) -> Option<SourceRef> {
        self.renderer.source(canary).ok()
    }

    fn routes_in(&self, canary: &Canary, routing: &DynamicObject) -> Result<Routes> {
        self.renderer.read_routes(canary, routing)
    }

    /// Without the source, only what the Canary alone decides is compared: the provider's
    /// canary fields for the split in force, and that the clone still routes to primary and
    /// canary. [`Router::routing_in_sync_with_source`] compares the whole clone.
    fn routing_in_sync(&self, canary: &Canary, routing: &DynamicObject) -> Result<bool> {
        self.renderer.check(canary)?;
        let Ok(routes) = self.renderer.read_routes(canary, routing) else {
            return Ok(false);
        };
        Ok(self.renderer.holds_canary_fields(canary, routing, routes))
    }

    fn routing_in_sync_with_source(
        &self,
        canary: &Canary,
        routing: &DynamicObject,
        source: Option<&DynamicObject>,
    ) -> Result<bool> {
        let Some(source) = source else {
            return self.routing_in_sync(canary, routing);
        };
        if !self.routing_in_sync(canary, routing)? {
            return Ok(false);
        }
        let routes = self.renderer.read_routes(canary, routing)?;
        let rendered = self.renderer.render(canary, routes, source)?;
        Ok(object_holds(routing, &rendered.object))
    }
}

/// The labels and annotations a clone takes from its source: all of them but the records of
/// a previous configuration (`kubectl apply`'s and Fledge's own), which belong to the source.
pub(crate) fn cloned_metadata(
    source: &DynamicObject,
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let labels = source.metadata.labels.clone().unwrap_or_default();
    let mut annotations = source.metadata.annotations.clone().unwrap_or_default();
    annotations.remove(KUBECTL_LAST_APPLIED);
    annotations.remove(ORIGINAL_CONFIGURATION);
    (labels, annotations)
}

/// The name of `object`, for messages.
pub(crate) fn name_of(object: &DynamicObject) -> String {
    object.metadata.name.clone().unwrap_or_default()
}
