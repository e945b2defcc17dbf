//! The Secrets canaries reference, and only those.
//!
//! The operator does not keep a watch cache of every Secret: that would hold every
//! credential of the cluster in its heap and grow with Secrets it never uses. Instead a
//! metadata-only watch (`PartialObjectMeta<Secret>`: names and resourceVersions, no data)
//! tells which Secrets changed, and the data of a Secret is read (one GET) only when a canary
//! references it and it is new to the cache or changed since it was read. A Secret is
//! referenced by the pod template of a canary's target (config tracking: env, envFrom,
//! volumes, projected volumes, and the `-primary` copies the operator writes), or as the
//! `secretRef` credentials of a MetricTemplate or an AlertProvider. An entry goes when
//! nothing references it any more.
//!
//! Secrets in namespaces the operator does not watch are read from the API server each time
//! (the metadata watch cannot say whether they changed), as before.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use fledge_api::Canary;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;

/// `(namespace, name)` of a Secret.
type Key = (String, String);

/// The referenced Secrets of one operator, their data as last read, and who references them.
pub struct ReferencedSecrets {
    client: kube::Client,
    /// The namespace the metadata watch covers (`None`: all).
    namespace: Option<String>,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<Key, Entry>,
    /// Referenced Secrets seen by a relist under way (`Init` … `InitDone`).
    relisting: Option<HashSet<Key>>,
}

#[derive(Default)]
struct Entry {
    /// What the last read found; `None`: not read yet.
    read: Option<Read>,
    /// What the metadata watch last said of it; `None`: nothing yet.
    seen: Option<Seen>,
    /// Canaries whose target's pod template uses it: ticked when it changes.
    tracking: HashSet<ObjectRef<Canary>>,
    /// Canaries that read it as the `-primary` copy of a tracked config.
    copying: HashSet<ObjectRef<Canary>>,
    /// Whether a MetricTemplate or an AlertProvider names it as credentials.
    credentials: bool,
}

/// What a read of a Secret found.
#[derive(Clone)]
enum Read {
    /// The Secret, with its data.
    Found(Arc<Secret>),
    /// It did not exist.
    Missing,
}

impl Read {
    fn of(answer: Option<Arc<Secret>>) -> Self {
        answer.map_or(Self::Missing, Self::Found)
    }

    fn secret(&self) -> Option<Arc<Secret>> {
        match self {
            Self::Found(secret) => Some(secret.clone()),
            Self::Missing => None,
        }
    }
}

/// What the metadata watch said of a Secret.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seen {
    /// It exists at this resourceVersion.
    At(String),
    /// It was deleted.
    Deleted,
}

impl Entry {
    /// What the last read found, when nothing changed since (by the metadata watch).
    fn fresh(&self) -> Option<&Read> {
        let read = self.read.as_ref()?;
        let current = match (&self.seen, read) {
            (None, _) | (Some(Seen::Deleted), Read::Missing) => true,
            (Some(Seen::At(version)), Read::Found(secret)) => {
                secret.metadata.resource_version.as_deref() == Some(version.as_str())
            }
            _ => false,
        };
        current.then_some(read)
    }

    fn referenced(&self) -> bool {
        self.credentials || !self.tracking.is_empty() || !self.copying.is_empty()
    }
}

/// The configs one canary's target references, as [`ReferencedSecrets::refer`] takes them.
#[derive(Debug, Default)]
pub struct SecretReferences {
    /// Secrets the pod template uses (a change ticks the canary).
    pub tracked: Vec<String>,
    /// Their `-primary` copies (read to compare, never ticking).
    pub copies: Vec<String>,
}

impl std::fmt::Debug for ReferencedSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReferencedSecrets")
            .field("namespace", &self.namespace)
            .field("entries", &self.len())
            .finish_non_exhaustive()
    }
}

impl ReferencedSecrets {
    /// An empty cache for an operator watching `namespace` (all namespaces when `None`).
    pub fn new(client: kube::Client, namespace: Option<String>) -> Self {
        Self {
            client,
            namespace,
            inner: Mutex::default(),
        }
    }

    /// How many Secrets are referenced (each with its data once read).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether no Secret is referenced.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `namespace/name` is referenced.
    pub fn holds(&self, namespace: &str, name: &str) -> bool {
        self.lock()
            .entries
            .contains_key(&(namespace.to_owned(), name.to_owned()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn watches(&self, namespace: &str) -> bool {
        self.namespace.as_deref().is_none_or(|ns| ns == namespace)
    }

    /// Records that `canary`'s target in `namespace` references exactly `references` now:
    /// Secrets it referenced before and no longer does are dropped unless something else
    /// references them.
    pub fn refer(
        &self,
        canary: &ObjectRef<Canary>,
        namespace: &str,
        references: &SecretReferences,
    ) {
        if !self.watches(namespace) {
            return;
        }
        let mut inner = self.lock();
        for (key, entry) in &mut inner.entries {
            if key.0 != namespace {
                continue;
            }
            if !references.tracked.contains(&key.1) {
                entry.tracking.remove(canary);
            }
            if !references.copies.contains(&key.1) {
                entry.copying.remove(canary);
            }
        }
        for name in &references.tracked {
            let key = (namespace.to_owned(), name.clone());
            let entry = inner.entries.entry(key).or_default();
            entry.tracking.insert(canary.clone());
        }
        for name in &references.copies {
            let key = (namespace.to_owned(), name.clone());
            let entry = inner.entries.entry(key).or_default();
            entry.copying.insert(canary.clone());
        }
        inner.entries.retain(|_, entry| entry.referenced());
    }

    /// Records that a MetricTemplate or an AlertProvider names `namespace/name` as its
    /// credentials.
    pub fn refer_as_credentials(&self, namespace: &str, name: &str) {
        if !self.watches(namespace) {
            return;
        }
        let key = (namespace.to_owned(), name.to_owned());
        self.lock().entries.entry(key).or_default().credentials = true;
    }

    /// Drops credentials no MetricTemplate or AlertProvider names any more (`named` says
    /// whether one does).
    pub fn sweep_credentials(&self, named: impl Fn(&str, &str) -> bool) {
        let mut inner = self.lock();
        for ((namespace, name), entry) in &mut inner.entries {
            if entry.credentials && !named(namespace, name) {
                entry.credentials = false;
            }
        }
        inner.entries.retain(|_, entry| entry.referenced());
    }

    /// Forgets every reference of a deleted `canary`.
    pub fn forget_canary(&self, canary: &ObjectRef<Canary>) {
        let mut inner = self.lock();
        for entry in inner.entries.values_mut() {
            entry.tracking.remove(canary);
            entry.copying.remove(canary);
        }
        inner.entries.retain(|_, entry| entry.referenced());
    }

    /// The Secret `namespace/name`: from the cache when it was read and has not changed
    /// since, else read from the API server (and kept when it is referenced).
    ///
    /// # Errors
    /// The API server's answer when the read fails.
    pub async fn get(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Arc<Secret>>, kube::Error> {
        let key = (namespace.to_owned(), name.to_owned());
        let api = Api::<Secret>::namespaced(self.client.clone(), namespace);
        // A change the watch reports while the read is under way makes the answer stale at
        // once, and nobody would tick the canary for it: read once more then.
        let mut read = None;
        for _ in 0..2 {
            let cached = self
                .lock()
                .entries
                .get(&key)
                .and_then(|e| e.fresh().cloned());
            if let Some(fresh) = cached {
                return Ok(fresh.secret());
            }
            let answer = api.get_opt(name).await?.map(Arc::new);
            match self.lock().entries.get_mut(&key) {
                Some(entry) => entry.read = Some(Read::of(answer.clone())),
                None => return Ok(answer),
            }
            read = answer;
        }
        Ok(read)
    }

    /// Takes in an event of the metadata watch over Secrets; the canaries to tick (those
    /// whose target uses a referenced Secret that changed since it was read).
    pub fn observe(
        &self,
        event: &watcher::Event<PartialObjectMeta<Secret>>,
    ) -> Vec<ObjectRef<Canary>> {
        let mut inner = self.lock();
        let mut seen: Vec<(Key, Seen)> = Vec::new();
        match event {
            watcher::Event::Apply(meta) | watcher::Event::InitApply(meta) => {
                if let Some(key) = key_of(meta).filter(|key| inner.entries.contains_key(key)) {
                    let version = meta.metadata.resource_version.clone().unwrap_or_default();
                    if let Some(relisting) = inner.relisting.as_mut() {
                        relisting.insert(key.clone());
                    }
                    seen.push((key, Seen::At(version)));
                }
            }
            watcher::Event::Delete(meta) => {
                seen.extend(key_of(meta).map(|key| (key, Seen::Deleted)));
            }
            watcher::Event::Init => inner.relisting = Some(HashSet::new()),
            watcher::Event::InitDone => {
                // Referenced Secrets the relist did not see were deleted while the watch was
                // down.
                let listed = inner.relisting.take().unwrap_or_default();
                seen.extend(
                    inner
                        .entries
                        .keys()
                        .filter(|key| !listed.contains(*key))
                        .map(|key| (key.clone(), Seen::Deleted)),
                );
            }
        }
        let mut canaries: Vec<ObjectRef<Canary>> = Vec::new();
        for (key, now) in seen {
            let Some(entry) = inner.entries.get_mut(&key) else {
                continue;
            };
            if entry.seen.as_ref() == Some(&now) {
                continue;
            }
            entry.seen = Some(now);
            // A Secret not read yet is read by the tick under way; one read at the version
            // now seen (the first list after a read) changed nothing.
            if entry.read.is_none() || entry.fresh().is_some() {
                continue;
            }
            for canary in &entry.tracking {
                if !canaries.contains(canary) {
                    canaries.push(canary.clone());
                }
            }
        }
        canaries
    }
}

fn key_of(meta: &PartialObjectMeta<Secret>) -> Option<Key> {
    Some((
        meta.metadata.namespace.clone()?,
        meta.metadata.name.clone()?,
    ))
}

/// The metadata-only watch over Secrets in `namespace` (all when `None`): names and
/// resourceVersions, never data. Nothing of an event is kept but the resourceVersion of a
/// referenced Secret.
pub fn watch_metadata(
    client: &kube::Client,
    namespace: Option<&str>,
) -> impl futures::Stream<Item = Result<watcher::Event<PartialObjectMeta<Secret>>, watcher::Error>>
+ Send
+ use<> {
    use kube::runtime::WatchStreamExt;
    // An `Api` of `PartialObjectMeta` asks for metadata only (`as=PartialObjectMetadata`).
    let api: Api<PartialObjectMeta<Secret>> = match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    };
    watcher(api, watcher::Config::default()).default_backoff()
}

/// The canaries to tick for the events of [`watch_metadata`]: those whose target uses a
/// referenced Secret that changed. A failed watch is logged and retried by the watcher.
pub fn changed_canaries(
    secrets: Arc<ReferencedSecrets>,
    events: impl futures::Stream<
        Item = Result<watcher::Event<PartialObjectMeta<Secret>>, watcher::Error>,
    > + Send,
) -> impl futures::Stream<Item = ObjectRef<Canary>> + Send {
    use futures::StreamExt;
    events
        .filter_map(|event| {
            std::future::ready(
                event
                    .inspect_err(|error| tracing::warn!(%error, "Secret metadata watch failed"))
                    .ok(),
            )
        })
        .flat_map(move |event| futures::stream::iter(secrets.observe(&event)))
}
