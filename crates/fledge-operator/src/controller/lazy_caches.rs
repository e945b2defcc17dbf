//! Watch caches of resources known only at run time — routing objects (VirtualServices,
//! HTTPRoutes, TrafficSplits …) and HorizontalPodAutoscalers of the served version — one per
//! resource in use, started the first time a canary needs it. A tick reads from here instead
//! of GETting; until a cache holds its first list (or when the resource is not served), the
//! caller reads from the API server instead.
//!
//! Every change a cache sees after its first list is also sent as a [`Touched`] on one
//! channel, which the controller maps to the canaries it concerns
//! ([`CanaryIndex::of_touched`](super::canary_index::CanaryIndex::of_touched)), so an edited or deleted VirtualService or HPA ticks its canary.
//! The channel is bounded ([`TOUCH_CAPACITY`]) and coalescing: a touch of an object already
//! waiting in it is dropped (a touch only means "tick these canaries", and the one waiting
//! does that), and a full channel makes a watch task wait for the controller to catch up
//! rather than grow without limit.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use futures::channel::mpsc;
use futures::{FutureExt, SinkExt, Stream, StreamExt};
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};

/// The kind of the autoscalers the caches hold; every other kind is a routing object.
pub const AUTOSCALER_KIND: &str = "HorizontalPodAutoscaler";

/// The lazily started caches of one operator.
pub struct LazyCaches {
    client: kube::Client,
    namespace: Option<String>,
    stores: Mutex<HashMap<String, Store<DynamicObject>>>,
    touched: TouchSender,
}

/// How many distinct touches may wait for the controller: far more than the objects that
/// change in one watch burst, and a few hundred kilobytes at most.
pub const TOUCH_CAPACITY: usize = 1024;

/// The sending side of the bounded, coalescing channel of [`Touched`] objects.
#[derive(Clone)]
pub struct TouchSender {
    sender: mpsc::Sender<Touched>,
    /// The touches in the channel, not yet taken by the controller.
    waiting: Arc<Mutex<HashSet<Touched>>>,
}

impl TouchSender {
    /// Sends `touched` unless the same touch is still waiting; waits while the channel is
    /// full. `false` once nobody receives (the controller stopped).
    pub async fn send(&mut self, touched: Touched) -> bool {
        let fresh = self
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(touched.clone());
        if !fresh {
            return true;
        }
        // `feed`, not `send`: a send would also wait for room after the touch is queued.
        self.sender.feed(touched).await.is_ok()
    }
}

/// A bounded channel of touches holding at most `capacity` distinct ones (plus one per
/// sender waiting); duplicates of a waiting touch are coalesced into it.
pub fn touch_channel(capacity: usize) -> (TouchSender, impl Stream<Item = Touched> + Send) {
    let (sender, receiver) = mpsc::channel(capacity);
    let waiting = Arc::new(Mutex::new(HashSet::new()));
    let taken = waiting.clone();
    let receiver = receiver.map(move |touched: Touched| {
        taken
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&touched);
        touched
    });
    (TouchSender { sender, waiting }, receiver)
}

/// An object a lazy cache saw created, changed or deleted.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Touched {
    /// Its kind (`VirtualService`, `HorizontalPodAutoscaler` …).
    pub kind: String,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl Touched {
    fn of(kind: &str, object: &DynamicObject) -> Option<Self> {
        Some(Self {
            kind: kind.to_owned(),
            namespace: object.metadata.namespace.clone()?,
            name: object.metadata.name.clone()?,
        })
    }
}

impl std::fmt::Debug for LazyCaches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kinds: Vec<String> = self
            .stores
            .lock()
            .map(|stores| stores.keys().cloned().collect())
            .unwrap_or_default();
        f.debug_struct("LazyCaches")
            .field("kinds", &kinds)
            .finish_non_exhaustive()
    }
}

/// What a lazy cache knows of one object.
#[derive(Debug)]
pub enum Cached {
    /// The cache holds its list and the object is in it.
    Found(Arc<DynamicObject>),
    /// The cache holds its list and the object is not in it.
    Absent,
    /// The cache cannot answer (yet): read from the API server.
    Unknown,
}

impl LazyCaches {
    /// Caches of objects in `namespace` (all namespaces when `None`), started on demand;
    /// the changes they see go to `touched`.
    pub fn new(client: kube::Client, namespace: Option<String>, touched: TouchSender) -> Self {
        Self {
            client,
            namespace,
            stores: Mutex::new(HashMap::new()),
            touched,
        }
    }

    /// The object `namespace/name` of `resource`.
    pub fn get(&self, resource: &ApiResource, namespace: &str, name: &str) -> Cached {
        if self
            .namespace
            .as_deref()
            .is_some_and(|watched| watched != namespace)
        {
            return Cached::Unknown;
        }
        let store = self.store(resource);
        let ready = store.wait_until_ready().now_or_never();
        if !matches!(ready, Some(Ok(()))) {
            return Cached::Unknown;
        }
        match store.get(&ObjectRef::new_with(name, resource.clone()).within(namespace)) {
            Some(object) => Cached::Found(object),
            None => Cached::Absent,
        }
    }

    fn store(&self, resource: &ApiResource) -> Store<DynamicObject> {
        let key = format!("{}/{}", resource.api_version, resource.plural);
        let mut stores = self.stores.lock().unwrap_or_else(PoisonError::into_inner);
        stores
            .entry(key)
            .or_insert_with(|| self.start(resource))
            .clone()
    }

    fn start(&self, resource: &ApiResource) -> Store<DynamicObject> {
        let api: Api<DynamicObject> = match &self.namespace {
            Some(namespace) => Api::namespaced_with(self.client.clone(), namespace, resource),
            None => Api::all_with(self.client.clone(), resource),
        };
        let writer = reflector::store::Writer::new(resource.clone());
        let reader = writer.as_reader();
        let kind = resource.kind.clone();
        let mut touched = self.touched.clone();
        let stream = reflector::reflector(
            writer,
            watcher(api, watcher::Config::default()).default_backoff(),
        );
        tokio::spawn(async move {
            tracing::debug!(%kind, "watching");
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                match event {
                    // The first list (and a re-list) is what ticks read anyway; only
                    // changes after it tick canaries.
                    Ok(watcher::Event::Apply(object) | watcher::Event::Delete(object)) => {
                        if let Some(change) = Touched::of(&kind, &object)
                            && !touched.send(change).await
                        {
                            // Nobody listens once the controller stopped.
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(error) => crate::controller::warn_watch_failed(&kind, &error),
                }
            }
        });
        reader
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::canary_index::CanaryIndex;
    use fledge_api::Canary;

    fn canary(name: &str, service: &str, autoscaler: Option<&str>) -> Canary {
        let autoscaler = autoscaler
            .map(|hpa| format!("  autoscalerRef: {{apiVersion: autoscaling/v2, kind: HorizontalPodAutoscaler, name: {hpa}}}\n"))
            .unwrap_or_default();
        fledge_api::yaml::from_str(&format!(
            "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {{name: {name}, namespace: test}}\n\
             spec:\n  targetRef: {{apiVersion: apps/v1, kind: Deployment, name: {name}}}\n{autoscaler}\
             \x20 service: {{name: {service}, port: 9898}}\n"
        ))
        .expect("a valid canary")
    }

    fn touched(kind: &str, namespace: &str, name: &str) -> Touched {
        Touched {
            kind: kind.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }

    #[test]
    fn a_routing_object_ticks_the_canary_of_its_apex_and_an_hpa_the_canary_scaled_by_it() {
        let index = CanaryIndex::default();
        for c in [
            canary("podinfo", "web", Some("podinfo")),
            canary("other", "other", None),
        ] {
            index.apply(&watcher::Event::Apply(c));
        }
        let names = |t: Touched| -> Vec<String> {
            index.of_touched(&t).into_iter().map(|r| r.name).collect()
        };
        assert_eq!(names(touched("VirtualService", "test", "web")), ["podinfo"]);
        assert_eq!(names(touched("HTTPRoute", "test", "other")), ["other"]);
        assert!(names(touched("VirtualService", "test", "podinfo")).is_empty());
        assert!(names(touched("VirtualService", "elsewhere", "web")).is_empty());
        assert_eq!(
            names(touched(AUTOSCALER_KIND, "test", "podinfo")),
            ["podinfo"]
        );
        assert_eq!(
            names(touched(AUTOSCALER_KIND, "test", "podinfo-primary")),
            ["podinfo"]
        );
        assert!(names(touched(AUTOSCALER_KIND, "test", "other")).is_empty());
    }

    #[tokio::test]
    async fn touches_of_one_object_coalesce_and_a_full_channel_waits_for_the_controller() {
        // Room for two touches (plus one for the sender, as futures' channels have).
        let (mut sender, receiver) = touch_channel(2);
        let mut receiver = std::pin::pin!(receiver);
        // A burst of changes to one VirtualService while the controller is busy: one touch.
        for _ in 0..1000 {
            assert!(sender.send(touched("VirtualService", "test", "web")).await);
        }
        assert!(sender.send(touched("HTTPRoute", "test", "a")).await);
        assert!(sender.send(touched("HTTPRoute", "test", "b")).await);
        {
            // Full: the next distinct touch waits (it is neither dropped nor queued beyond
            // the bound) until the controller takes one.
            let mut overflow = Box::pin(sender.send(touched("HTTPRoute", "test", "c")));
            assert!(futures::poll!(overflow.as_mut()).is_pending());
            let first = receiver.next().await.map(|t| t.name);
            assert_eq!(first.as_deref(), Some("web"));
            assert!(overflow.await, "sent once there is room");
        }
        for expected in ["a", "b", "c"] {
            let next = receiver.next().await.map(|t| t.name);
            assert_eq!(next.as_deref(), Some(expected));
        }
        // A taken touch is not coalesced any more: a later change ticks again.
        assert!(sender.send(touched("VirtualService", "test", "web")).await);
        let next = receiver.next().await.map(|t| t.name);
        assert_eq!(next.as_deref(), Some("web"));
    }
}
