//! Watch caches of resources known only at run time — routing objects (VirtualServices,
//! HTTPRoutes, TrafficSplits …) and HorizontalPodAutoscalers of the served version — one per
//! resource in use, started the first time a canary needs it. A tick reads from here instead
//! of GETting; until a cache holds its first list (or when the resource is not served), the
//! caller reads from the API server instead.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use futures::{FutureExt, StreamExt};
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};

/// The lazily started caches of one operator.
pub struct LazyCaches {
    client: kube::Client,
    namespace: Option<String>,
    stores: Mutex<HashMap<String, Store<DynamicObject>>>,
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
    /// Caches of objects in `namespace` (all namespaces when `None`), started on demand.
    pub fn new(client: kube::Client, namespace: Option<String>) -> Self {
        Self {
            client,
            namespace,
            stores: Mutex::new(HashMap::new()),
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
        let stream = reflector::reflector(
            writer,
            watcher(api, watcher::Config::default()).default_backoff(),
        )
        .applied_objects();
        tokio::spawn(async move {
            tracing::debug!(%kind, "watching");
            stream
                .for_each(|event| {
                    if let Err(error) = event {
                        tracing::debug!(%kind, %error, "watch");
                    }
                    std::future::ready(())
                })
                .await;
        });
        reader
    }
}
