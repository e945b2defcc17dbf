//! Watch caches of resources known only at run time — routing objects (VirtualServices,
//! HTTPRoutes, TrafficSplits …) and HorizontalPodAutoscalers of the served version — one per
//! resource in use, started the first time a canary needs it. A tick reads from here instead
//! of GETting; until a cache holds its first list (or when the resource is not served), the
//! caller reads from the API server instead.
//!
//! Every change a cache sees after its first list is also sent as a [`Touched`] on one
//! channel, which the controller maps to the canaries it concerns
//! ([`CanaryIndex::of_touched`](super::canary_index::CanaryIndex::of_touched)), so an edited or deleted VirtualService or HPA ticks its canary.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use futures::channel::mpsc::UnboundedSender;
use futures::{FutureExt, StreamExt};
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
    touched: UnboundedSender<Touched>,
}

/// An object a lazy cache saw created, changed or deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
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
    pub fn new(
        client: kube::Client,
        namespace: Option<String>,
        touched: UnboundedSender<Touched>,
    ) -> Self {
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
        let touched = self.touched.clone();
        let stream = reflector::reflector(
            writer,
            watcher(api, watcher::Config::default()).default_backoff(),
        );
        tokio::spawn(async move {
            tracing::debug!(%kind, "watching");
            stream
                .for_each(|event| {
                    match event {
                        // The first list (and a re-list) is what ticks read anyway; only
                        // changes after it tick canaries.
                        Ok(watcher::Event::Apply(object) | watcher::Event::Delete(object)) => {
                            if let Some(change) = Touched::of(&kind, &object) {
                                // Nobody listens once the controller stopped; nothing to do.
                                let _ = touched.unbounded_send(change);
                            }
                        }
                        Ok(_) => {}
                        Err(error) => crate::controller::warn_watch_failed(&kind, &error),
                    }
                    std::future::ready(())
                })
                .await;
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
}
