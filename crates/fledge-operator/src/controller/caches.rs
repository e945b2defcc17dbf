//! Watch caches of what canaries depend on, and which canaries a change concerns.
//!
//! One reflector per kind feeds both a [`Store`] (reads during a tick never GET) and the
//! controller's triggers (a change to a target is seen within a watch event's latency).

use std::sync::Arc;

use fledge_api::{AlertProvider, Canary, MetricTemplate};
use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde::de::DeserializeOwned;

use crate::controller::canary_index::CanaryIndex;
use crate::controller::referenced_secrets::{ReferencedSecrets, SecretReferences};
use crate::workload::config_tracking::{
    ConfigKind, ConfigReference, ConfigSources, referenced_configs,
};
use crate::workload::labels::PRIMARY_SUFFIX;
use crate::workload::{TargetKind, Workload};

/// The caches a tick reads.
#[derive(Clone)]
pub struct Caches {
    /// Deployments (targets and primaries).
    pub deployments: Store<Deployment>,
    /// DaemonSets (targets and primaries).
    pub daemon_sets: Store<DaemonSet>,
    /// ConfigMaps (tracked configs and their copies).
    pub config_maps: Store<ConfigMap>,
    /// The Secrets canaries reference (tracked configs and their copies, credentials of
    /// templates and providers), never every Secret of the cluster.
    pub secrets: Arc<ReferencedSecrets>,
    /// Services (targets of `kind: Service`, and the apex, primary and canary Services).
    pub services: Store<Service>,
    /// MetricTemplates.
    pub metric_templates: Store<MetricTemplate>,
    /// AlertProviders.
    pub alert_providers: Store<AlertProvider>,
    /// The namespace the caches hold (`None`: all). Objects elsewhere are read from the API.
    pub namespace: Option<String>,
    /// Set once every store above holds its first list (by [`Caches::wait_until_synced`]).
    pub synced: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for Caches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caches")
            .field("deployments", &self.deployments.state().len())
            .field("daemon_sets", &self.daemon_sets.state().len())
            .field("config_maps", &self.config_maps.state().len())
            .field("secrets", &self.secrets.len())
            .field("services", &self.services.state().len())
            .field("metric_templates", &self.metric_templates.state().len())
            .field("alert_providers", &self.alert_providers.state().len())
            .finish_non_exhaustive()
    }
}

/// A reflector's store and the stream of its changes (which must be polled to fill the store).
pub type Reflected<K> = (
    Store<K>,
    std::pin::Pin<Box<dyn Stream<Item = Result<K, watcher::Error>> + Send>>,
);

/// A reflector over `K` in `namespace` (all namespaces when `None`).
pub fn reflect<K>(client: &kube::Client, namespace: Option<&str>) -> Reflected<K>
where
    K: kube::Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let api: Api<K> = match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    };
    let (reader, writer) = reflector::store();
    let kind = K::kind(&()).into_owned();
    let stream = reflector::reflector(
        writer,
        watcher(api, watcher::Config::default()).default_backoff(),
    )
    .inspect_err(move |error| crate::controller::warn_watch_failed(&kind, error))
    .applied_objects()
    .boxed();
    (reader, stream)
}

impl Caches {
    /// Whether every cache holds its first list. Until then a tick would see a partial
    /// world (a primary missing after a restart, say) and must not act on it.
    pub fn synced(&self) -> bool {
        self.synced.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Waits until every cache holds its first list, then marks the caches synced; `false`
    /// when a reflector ended first.
    ///
    /// Only one task may wait: a store's readiness is a oneshot channel that wakes the last
    /// task that polled it, so a second poller (even a `now_or_never` check) would leave
    /// this one asleep for good. Ticks read [`Caches::synced`] instead.
    pub async fn wait_until_synced(&self) -> bool {
        // Secrets are not among them: they are read when referenced, not listed.
        let synced = futures::future::join(
            futures::future::join3(
                self.deployments.wait_until_ready(),
                self.daemon_sets.wait_until_ready(),
                self.config_maps.wait_until_ready(),
            ),
            futures::future::join3(
                self.services.wait_until_ready(),
                self.metric_templates.wait_until_ready(),
                self.alert_providers.wait_until_ready(),
            ),
        )
        .await;
        let all = matches!(synced, ((Ok(()), Ok(()), Ok(())), (Ok(()), Ok(()), Ok(()))));
        if all {
            self.synced
                .store(true, std::sync::atomic::Ordering::Release);
        }
        all
    }

    /// Whether `namespace` is cached, so that a miss means the object does not exist.
    pub fn holds(&self, namespace: &str) -> bool {
        self.namespace.as_deref().is_none_or(|ns| ns == namespace)
    }

    /// The object `namespace/name` from `store` when the caches hold `namespace`, else read
    /// from the API server (a template or provider in another namespace than the one
    /// watched). `what` names the kind in errors.
    ///
    /// # Errors
    /// The API server's answer when the object is read and the read fails.
    pub async fn get_or_read<K>(
        &self,
        store: &Store<K>,
        client: &kube::Client,
        namespace: &str,
        name: &str,
    ) -> Result<Option<K>, kube::Error>
    where
        K: kube::Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + std::fmt::Debug
            + DeserializeOwned,
    {
        if self.holds(namespace) {
            return Ok(store
                .get(&ObjectRef::new(name).within(namespace))
                .map(Arc::unwrap_or_clone));
        }
        Api::<K>::namespaced(client.clone(), namespace)
            .get_opt(name)
            .await
    }

    /// The decoded `data` of the Secret `namespace/name` (credentials of a MetricTemplate or
    /// an AlertProvider): read from the API server the first time and after it changed,
    /// else from the referenced Secrets.
    ///
    /// # Errors
    /// The API server's answer when the Secret is read and the read fails.
    pub async fn secret_data(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<std::collections::BTreeMap<String, Vec<u8>>>, kube::Error> {
        self.secrets.refer_as_credentials(namespace, name);
        let secret = self.secrets.get(namespace, name).await?;
        Ok(secret.map(|secret| {
            secret
                .data
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(|(key, value)| (key, value.0))
                .collect()
        }))
    }

    /// Drops the credentials in the referenced Secrets that no cached MetricTemplate or
    /// AlertProvider names any more.
    pub fn sweep_credentials(&self) {
        let templates = self.metric_templates.state();
        let providers = self.alert_providers.state();
        self.secrets.sweep_credentials(|namespace, name| {
            let names = |object_namespace: Option<&str>, secret: Option<&str>| {
                object_namespace == Some(namespace) && secret == Some(name)
            };
            templates.iter().any(|t| {
                names(
                    t.metadata.namespace.as_deref(),
                    t.spec.provider.secret_ref.as_ref().map(|r| r.name.as_str()),
                )
            }) || providers.iter().any(|p| {
                names(
                    p.metadata.namespace.as_deref(),
                    p.spec.secret_ref.as_ref().map(|r| r.name.as_str()),
                )
            })
        });
    }

    /// The Deployment or DaemonSet `namespace/name`, when cached.
    pub fn workload(&self, kind: TargetKind, namespace: &str, name: &str) -> Option<Workload> {
        match kind {
            TargetKind::Deployment => self
                .deployments
                .get(&ObjectRef::new(name).within(namespace))
                .map(|d| Workload::Deployment(Arc::unwrap_or_clone(d))),
            TargetKind::DaemonSet => self
                .daemon_sets
                .get(&ObjectRef::new(name).within(namespace))
                .map(|d| Workload::DaemonSet(Arc::unwrap_or_clone(d))),
        }
    }

    /// The configs `canary`'s target references and their `-primary` copies: ConfigMaps
    /// from the watch cache, Secrets from the referenced Secrets (read from the API server
    /// the first time and after a change). Records what the canary references now, so
    /// Secrets it no longer uses are dropped.
    ///
    /// # Errors
    /// [`Error::Kube`](crate::error::Error::Kube) when a Secret is read and the read fails.
    pub async fn config_sources(
        &self,
        canary: &ObjectRef<Canary>,
        namespace: &str,
        references: &[ConfigReference],
    ) -> crate::error::Result<ConfigSources> {
        let mut sources = ConfigSources::default();
        let mut secrets = SecretReferences::default();
        for reference in references {
            let copy = format!("{}{PRIMARY_SUFFIX}", reference.name);
            match reference.kind {
                ConfigKind::ConfigMap => {
                    for name in [reference.name.clone(), copy] {
                        if let Some(found) = self
                            .config_maps
                            .get(&ObjectRef::new(&name).within(namespace))
                        {
                            sources
                                .config_maps
                                .insert(name, Arc::unwrap_or_clone(found));
                        }
                    }
                }
                ConfigKind::Secret => {
                    secrets.tracked.push(reference.name.clone());
                    secrets.copies.push(copy);
                }
            }
        }
        self.secrets.refer(canary, namespace, &secrets);
        for name in secrets.tracked.into_iter().chain(secrets.copies) {
            let found = self.secrets.get(namespace, &name).await;
            let found = found
                .map_err(|e| crate::error::Error::kube("get", "Secret", namespace, &name, e))?;
            if let Some(found) = found {
                sources.secrets.insert(name, Arc::unwrap_or_clone(found));
            }
        }
        Ok(sources)
    }

    /// The canaries whose target uses the config `kind` `namespace/name`: the canaries of
    /// the namespace (from `index`) whose target's pod spec references it.
    pub fn canaries_of_config(
        &self,
        canaries: &Store<Canary>,
        index: &CanaryIndex,
        kind: ConfigKind,
        namespace: &str,
        name: &str,
    ) -> Vec<ObjectRef<Canary>> {
        index
            .in_namespace(namespace)
            .into_iter()
            .filter(|key| {
                let Some(canary) = canaries.get(key) else {
                    return false;
                };
                let Ok(target_kind) = TargetKind::of(&canary) else {
                    return false;
                };
                let Some(target) =
                    self.workload(target_kind, namespace, &canary.spec.target_ref.name)
                else {
                    return false;
                };
                let spec = target
                    .template()
                    .and_then(|t| t.spec.clone())
                    .unwrap_or_default();
                referenced_configs(&spec)
                    .iter()
                    .any(|r| r.kind == kind && r.name == name)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_caches_are_synced_once_every_store_holds_its_first_list() {
        let (deployments, mut deployment_writer) = reflector::store();
        let (daemon_sets, mut daemon_set_writer) = reflector::store();
        let (config_maps, mut config_map_writer) = reflector::store();
        let (mock, _handle) = tower_test::mock::pair::<
            http::Request<kube::client::Body>,
            http::Response<kube::client::Body>,
        >();
        let secrets = Arc::new(ReferencedSecrets::new(
            kube::Client::new(mock, "default"),
            None,
        ));
        let (services, mut service_writer) = reflector::store();
        let (metric_templates, mut template_writer) = reflector::store();
        let (alert_providers, mut provider_writer) = reflector::store();
        let caches = Caches {
            deployments,
            daemon_sets,
            config_maps,
            secrets,
            services,
            metric_templates,
            alert_providers,
            namespace: None,
            synced: Arc::default(),
        };
        let waiting = tokio::spawn({
            let caches = caches.clone();
            async move { caches.wait_until_synced().await }
        });
        tokio::task::yield_now().await;
        assert!(!caches.synced(), "no store holds its list yet");

        deployment_writer.apply_watcher_event(&watcher::Event::InitDone);
        daemon_set_writer.apply_watcher_event(&watcher::Event::InitDone);
        config_map_writer.apply_watcher_event(&watcher::Event::InitDone);
        service_writer.apply_watcher_event(&watcher::Event::InitDone);
        template_writer.apply_watcher_event(&watcher::Event::InitDone);
        // Ticks asking in between must not keep the waiting task from being woken (a store's
        // readiness wakes only the last task that polled it).
        for _ in 0..3 {
            assert!(!caches.synced(), "the AlertProviders are not listed yet");
            tokio::task::yield_now().await;
        }
        provider_writer.apply_watcher_event(&watcher::Event::InitDone);

        let synced = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("the waiting task is woken")
            .expect("it does not panic");
        assert!(synced);
        assert!(caches.synced());
    }
}
