//! Repair of a canary's routing object between the engine's writes: a hand-edited or deleted
//! VirtualService (HTTPRoute, TrafficSplit …), or a `spec.service` edit, is put right at the
//! next tick, as Flagger's `meshRouter.Reconcile` on every tick does — but from the watch
//! cache, so a tick whose routing object is in sync makes no request at all.
//!
//! # When it runs
//!
//! [`repair`] runs after a tick's plan was carried out, and on a tick that
//! [`Pacing`](super::tick::Pacing) ends early. An edit of the routing object ticks its canary
//! at once (its lazy cache sends the change, see
//! [`CanaryIndex::of_touched`](super::canary_index::CanaryIndex::of_touched)), and so does an
//! edit of the Canary; but an idle canary's tick is paced to its
//! `analysis.interval`. Repairing on the paced tick as well keeps the repair within a watch
//! event's latency without running the engine off its schedule (which would advance a
//! rollout early); it needs no plan, since a paced tick writes nothing else that the cache
//! could be behind on.

use fledge_api::{Canary, CanaryPhase, CanaryStatus};
use fledge_engine::Action;
use fledge_router::{Router, Routes};

use crate::controller::Context;
use crate::controller::lazy_caches::Cached;

/// What a canary's routing object needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repair {
    /// Nothing: it holds what the router renders, or the cache cannot tell.
    None,
    /// It was deleted: create it ([`Router::reconcile`]).
    Create,
    /// Its content differs from the render: update it ([`Router::reconcile`], keeping the
    /// split it holds).
    Update,
    /// It is right but for the split, which at rest is the one the engine recorded in
    /// `status.canaryWeight` — all to the primary, or all to the canary after a failed
    /// promotion ([`Router::set_routes`]).
    Split(Routes),
}

/// Repairs `canary`'s routing object when the watch cache shows it deleted or drifted, for a
/// canary with `status` (the status after the tick) whose tick carried out `actions`. Nothing
/// is read from the API server unless there is something to repair; a failed repair is logged
/// and tried again at the next tick.
pub async fn repair(ctx: &Context, canary: &Canary, status: &CanaryStatus, actions: &[Action]) {
    if !repairs(status.phase, actions) {
        return;
    }
    let router = match ctx.router(canary) {
        Ok(router) => router,
        Err(error) => {
            tracing::debug!(%error, "no router");
            return;
        }
    };
    let Some(resource) = router.routing_resource() else {
        return;
    };
    let namespace = canary.metadata.namespace.as_deref().unwrap_or_default();
    let name = router.routing_name(canary);
    let cached = ctx.lazy.get(&resource, namespace, &name);
    let needed = needs(router.as_ref(), canary, status, &cached);
    let written = match needed {
        Repair::None => return,
        Repair::Create | Repair::Update => router.reconcile(canary).await,
        Repair::Split(split) => router.set_routes(canary, split).await,
    };
    let kind = &resource.kind;
    match written {
        // Flagger's words (`VirtualService podinfo.test updated`).
        Ok(()) if needed == Repair::Create => tracing::info!("{kind} {name}.{namespace} created"),
        Ok(()) => tracing::info!("{kind} {name}.{namespace} updated"),
        Err(error) => tracing::warn!(%error, "{kind} {name}.{namespace} repair failed: {error}"),
    }
}

/// Whether a tick in `phase` that carried out `actions` looks for drift: not before the
/// routing object exists nor while it is reverted, and not after the engine wrote it (the
/// cache would still show the object as it was).
fn repairs(phase: CanaryPhase, actions: &[Action]) -> bool {
    let routing_unsettled = matches!(
        phase,
        CanaryPhase::Initializing | CanaryPhase::Terminating | CanaryPhase::Terminated
    );
    let routing_written = actions.iter().any(|action| {
        matches!(
            action,
            Action::InitializeRouting | Action::SetRoutes(_) | Action::RevertRouting
        )
    });
    !routing_unsettled && !routing_written
}

/// What the routing object as cached needs, for a canary with `status`. Between rollouts
/// (Initialized, Succeeded, Failed) the split is the one the engine set last and recorded as
/// `status.canaryWeight` (all to the primary, except after a failed promotion, which leaves
/// all traffic on the ready canary), so another split is drift too; during a rollout the split
/// is the engine's, read back from the object.
pub fn needs(
    router: &dyn Router,
    canary: &Canary,
    status: &CanaryStatus,
    cached: &Cached,
) -> Repair {
    let object = match cached {
        Cached::Unknown => return Repair::None,
        Cached::Absent => return Repair::Create,
        Cached::Found(object) => object,
    };
    match router.routing_in_sync(canary, object) {
        Ok(true) => {}
        Ok(false) => return Repair::Update,
        Err(error) => {
            // The spec cannot be rendered; the engine's own writes report it.
            tracing::debug!(%error, "routing not checked");
            return Repair::None;
        }
    }
    let at_rest = matches!(
        status.phase,
        CanaryPhase::Initialized | CanaryPhase::Succeeded | CanaryPhase::Failed
    );
    let canary_weight = u32::try_from(status.canary_weight.clamp(0, 100)).unwrap_or(0);
    let recorded = Routes::weighted(100 - canary_weight, canary_weight);
    // A split that cannot be read (a Gateway not accepting the route yet) is left alone.
    let split = router.routes_in(canary, object).ok();
    if at_rest && split.is_some_and(|split| split != recorded) {
        return Repair::Split(recorded);
    }
    Repair::None
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use fledge_engine::RouteTarget;
    use fledge_router::{Istio, MeshRouter, TrafficRenderer};
    use http::{Request, Response};
    use kube::api::DynamicObject;
    use kube::client::Body;
    use serde_json::json;

    use super::*;

    fn canary() -> Canary {
        fledge_api::yaml::from_str(
            "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {name: podinfo, namespace: test, uid: u-1}\n\
             spec:\n  provider: istio\n  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}\n\
             \x20 service: {port: 9898, hosts: [app.example.com]}\n  analysis: {interval: 30s, threshold: 5, maxWeight: 50, stepWeight: 10}\n",
        )
        .expect("a valid canary")
    }

    fn at(phase: CanaryPhase) -> CanaryStatus {
        CanaryStatus {
            phase,
            ..CanaryStatus::default()
        }
    }

    fn router() -> MeshRouter<Istio> {
        let (service, _handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        MeshRouter::new(Istio, kube::Client::new(service, "test"))
    }

    fn cached(routes: Routes, edit: impl FnOnce(&mut serde_json::Value)) -> Cached {
        let rendered = Istio.render(&canary(), routes).expect("renders");
        let mut value = serde_json::to_value(&rendered.routing.object).expect("serializes");
        value["metadata"]["resourceVersion"] = json!("12");
        edit(&mut value);
        let object: DynamicObject = serde_json::from_value(value).expect("an object");
        Cached::Found(Arc::new(object))
    }

    #[tokio::test]
    async fn an_object_as_rendered_needs_nothing_and_the_cache_not_knowing_means_no_request() {
        let router = router();
        let c = canary();
        let in_sync = cached(Routes::INITIAL, |_| {});
        assert_eq!(
            needs(&router, &c, &at(CanaryPhase::Succeeded), &in_sync),
            Repair::None
        );
        assert_eq!(
            needs(&router, &c, &at(CanaryPhase::Succeeded), &Cached::Unknown),
            Repair::None
        );
        assert_eq!(
            needs(&router, &c, &at(CanaryPhase::Initialized), &Cached::Absent),
            Repair::Create
        );
    }

    #[tokio::test]
    async fn a_hand_edit_is_updated_and_a_hand_set_split_at_rest_is_set_back() {
        let router = router();
        let c = canary();
        let edited = cached(Routes::INITIAL, |vs| vs["spec"]["hosts"] = json!(["evil"]));
        assert_eq!(
            needs(&router, &c, &at(CanaryPhase::Initialized), &edited),
            Repair::Update
        );
        let split = cached(Routes::weighted(50, 50), |_| {});
        assert_eq!(
            needs(&router, &c, &at(CanaryPhase::Initialized), &split),
            Repair::Split(Routes::INITIAL)
        );
        assert_eq!(
            needs(&router, &c, &at(CanaryPhase::Progressing), &split),
            Repair::None,
            "during a rollout the split is the engine's"
        );
    }

    #[tokio::test]
    async fn after_a_failed_promotion_the_split_on_the_canary_is_kept_not_repaired() {
        let router = router();
        let c = canary();
        let failed_promotion = CanaryStatus {
            phase: CanaryPhase::Failed,
            canary_weight: 100,
            ..CanaryStatus::default()
        };
        let on_canary = cached(Routes::weighted(0, 100), |_| {});
        assert_eq!(
            needs(&router, &c, &failed_promotion, &on_canary),
            Repair::None,
            "the primary is the broken one: traffic stays on the canary"
        );
        let on_primary = cached(Routes::INITIAL, |_| {});
        assert_eq!(
            needs(&router, &c, &failed_promotion, &on_primary),
            Repair::Split(Routes::weighted(0, 100)),
            "a hand edit back to the primary is drift from what the engine chose"
        );
    }

    #[test]
    fn no_repair_before_initialization_on_deletion_or_after_the_engine_wrote_routes() {
        let none: &[Action] = &[];
        assert!(repairs(CanaryPhase::Initialized, none));
        assert!(repairs(
            CanaryPhase::Progressing,
            &[Action::ScaleCanaryToZero]
        ));
        assert!(!repairs(CanaryPhase::Initializing, none));
        assert!(!repairs(CanaryPhase::Terminating, none));
        assert!(!repairs(CanaryPhase::Terminated, none));
        let set_routes = Action::SetRoutes(RouteTarget {
            primary: 90,
            canary: 10,
            mirror: None,
            session_affinity: None,
        });
        assert!(!repairs(CanaryPhase::Progressing, &[set_routes]));
        assert!(!repairs(
            CanaryPhase::Initialized,
            &[Action::InitializeRouting]
        ));
        assert!(!repairs(CanaryPhase::Failed, &[Action::RevertRouting]));
    }
}
