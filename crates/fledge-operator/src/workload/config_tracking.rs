//! Config tracking (Flagger's `ConfigTracker`): the ConfigMaps and Secrets a pod template
//! uses through volumes, projected volumes, `env` and `envFrom`; their checksums (what
//! `status.trackedConfigs` holds); their `-primary` copies; and the primary's pod spec
//! pointing at those copies. All pure: the caller reads the objects (from caches).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Container, PodSpec, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::error::{Error, Result};
use crate::workload::checksum::go_json_checksum;
use crate::workload::labels::{PRIMARY_SUFFIX, include_by_prefix};

/// The annotation that excludes a ConfigMap or Secret from tracking (any value starting
/// with `disable`).
pub const CONFIG_TRACKING_ANNOTATION: &str = "flagger.app/config-tracking";

/// Secret types that are tracked; others (registry credentials, service-account tokens)
/// belong to the service account, not to the release.
const TRACKED_SECRET_TYPES: [&str; 4] = [
    "Opaque",
    "kubernetes.io/basic-auth",
    "kubernetes.io/ssh-auth",
    "kubernetes.io/tls",
];

/// The two kinds of tracked config.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConfigKind {
    /// A ConfigMap.
    ConfigMap,
    /// A Secret.
    Secret,
}

impl ConfigKind {
    /// The word Flagger uses in `status.trackedConfigs` keys (`configmap`, `secret`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConfigMap => "configmap",
            Self::Secret => "secret",
        }
    }
}

/// One ConfigMap or Secret a pod spec refers to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConfigReference {
    /// ConfigMap or Secret.
    pub kind: ConfigKind,
    /// Its name.
    pub name: String,
    /// Whether the pod needs it (some reference lacks `optional: true`).
    pub required: bool,
}

/// Every ConfigMap and Secret `spec` refers to, once each, sorted by kind and name.
pub fn referenced_configs(spec: &PodSpec) -> Vec<ConfigReference> {
    let mut found: BTreeMap<(ConfigKind, String), bool> = BTreeMap::new();
    let mut note = |kind: ConfigKind, name: &str, optional: Option<bool>| {
        if name.is_empty() {
            return;
        }
        let required = optional != Some(true);
        *found.entry((kind, name.to_owned())).or_insert(false) |= required;
    };
    for volume in spec.volumes.iter().flatten() {
        if let Some(config_map) = &volume.config_map {
            note(ConfigKind::ConfigMap, &config_map.name, config_map.optional);
        }
        if let Some(secret) = &volume.secret {
            note(
                ConfigKind::Secret,
                secret.secret_name.as_deref().unwrap_or_default(),
                secret.optional,
            );
        }
        for source in volume
            .projected
            .iter()
            .flat_map(|p| p.sources.iter().flatten())
        {
            if let Some(config_map) = &source.config_map {
                note(ConfigKind::ConfigMap, &config_map.name, config_map.optional);
            }
            if let Some(secret) = &source.secret {
                note(ConfigKind::Secret, &secret.name, secret.optional);
            }
        }
    }
    for container in containers(spec) {
        for env in container.env.iter().flatten() {
            let Some(from) = &env.value_from else {
                continue;
            };
            if let Some(key) = &from.config_map_key_ref {
                note(ConfigKind::ConfigMap, &key.name, key.optional);
            } else if let Some(key) = &from.secret_key_ref {
                note(ConfigKind::Secret, &key.name, key.optional);
            }
        }
        for env_from in container.env_from.iter().flatten() {
            if let Some(source) = &env_from.config_map_ref {
                note(ConfigKind::ConfigMap, &source.name, source.optional);
            } else if let Some(source) = &env_from.secret_ref {
                note(ConfigKind::Secret, &source.name, source.optional);
            }
        }
    }
    found
        .into_iter()
        .map(|((kind, name), required)| ConfigReference {
            kind,
            name,
            required,
        })
        .collect()
}

fn containers(spec: &PodSpec) -> impl Iterator<Item = &Container> {
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
}

fn containers_mut(spec: &mut PodSpec) -> impl Iterator<Item = &mut Container> {
    spec.containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
}

/// The ConfigMaps and Secrets of a namespace that a tick may need, by name (read from caches).
#[derive(Clone, Debug, Default)]
pub struct ConfigSources {
    /// ConfigMaps by name.
    pub config_maps: BTreeMap<String, ConfigMap>,
    /// Secrets by name.
    pub secrets: BTreeMap<String, Secret>,
}

impl ConfigSources {
    /// Adds a ConfigMap (builder style).
    pub fn with_config_map(mut self, config_map: ConfigMap) -> Self {
        let name = config_map.metadata.name.clone().unwrap_or_default();
        self.config_maps.insert(name, config_map);
        self
    }

    /// Adds a Secret (builder style).
    pub fn with_secret(mut self, secret: Secret) -> Self {
        let name = secret.metadata.name.clone().unwrap_or_default();
        self.secrets.insert(name, secret);
        self
    }
}

/// One tracked config and the checksum of its data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackedConfig {
    /// ConfigMap or Secret.
    pub kind: ConfigKind,
    /// Its name (the target's, without `-primary`).
    pub name: String,
    /// Flagger's checksum of its data.
    pub checksum: String,
}

impl TrackedConfig {
    /// The key in `status.trackedConfigs` (`configmap/podinfo-config`).
    pub fn key(&self) -> String {
        format!("{}/{}", self.kind.as_str(), self.name)
    }
}

/// The configs of one target that are tracked, keyed as in `status.trackedConfigs`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrackedConfigs {
    entries: BTreeMap<String, TrackedConfig>,
}

impl TrackedConfigs {
    /// Resolves `references` against `sources`: configs that exist and are not opted out
    /// are tracked; optional ones that are missing are skipped.
    ///
    /// # Errors
    /// [`Error::MissingConfig`] when a required config does not exist (the target's pods
    /// could not start either).
    pub fn resolve(
        namespace: &str,
        references: &[ConfigReference],
        sources: &ConfigSources,
    ) -> Result<Self> {
        let mut entries = BTreeMap::new();
        for reference in references {
            let tracked = match reference.kind {
                ConfigKind::ConfigMap => sources
                    .config_maps
                    .get(&reference.name)
                    .map(track_config_map),
                ConfigKind::Secret => sources.secrets.get(&reference.name).map(track_secret),
            };
            match tracked {
                Some(Some(tracked)) => {
                    let tracked = tracked?;
                    entries.insert(tracked.key(), tracked);
                }
                Some(None) => {}
                None if reference.required => {
                    return Err(Error::MissingConfig {
                        kind: reference.kind.as_str(),
                        namespace: namespace.to_owned(),
                        name: reference.name.clone(),
                    });
                }
                None => {
                    tracing::debug!(kind = reference.kind.as_str(), name = %reference.name, %namespace,
                    "optional config not found, not tracked");
                }
            }
        }
        Ok(Self { entries })
    }

    /// Whether nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The tracked configs, by key.
    pub fn iter(&self) -> impl Iterator<Item = &TrackedConfig> {
        self.entries.values()
    }

    /// Checksums by key: `status.trackedConfigs` and the engine's `Revision::configs`.
    pub fn checksums(&self) -> BTreeMap<String, String> {
        self.entries
            .iter()
            .map(|(key, tracked)| (key.clone(), tracked.checksum.clone()))
            .collect()
    }

    fn tracks(&self, kind: ConfigKind, name: &str) -> bool {
        self.entries
            .contains_key(&format!("{}/{name}", kind.as_str()))
    }

    /// `spec` with every reference to a tracked config pointing at its `-primary` copy.
    pub fn rewrite(&self, mut spec: PodSpec) -> PodSpec {
        let rename = |kind: ConfigKind, name: &mut String| {
            if self.tracks(kind, name) {
                name.push_str(PRIMARY_SUFFIX);
            }
        };
        for volume in spec.volumes.iter_mut().flatten() {
            if let Some(config_map) = &mut volume.config_map {
                rename(ConfigKind::ConfigMap, &mut config_map.name);
            }
            if let Some(name) = volume.secret.as_mut().and_then(|s| s.secret_name.as_mut()) {
                rename(ConfigKind::Secret, name);
            }
            for source in volume
                .projected
                .iter_mut()
                .flat_map(|p| p.sources.iter_mut().flatten())
            {
                if let Some(config_map) = &mut source.config_map {
                    rename(ConfigKind::ConfigMap, &mut config_map.name);
                }
                if let Some(secret) = &mut source.secret {
                    rename(ConfigKind::Secret, &mut secret.name);
                }
            }
        }
        for container in containers_mut(&mut spec) {
            for env in container.env.iter_mut().flatten() {
                let Some(from) = &mut env.value_from else {
                    continue;
                };
                if let Some(key) = &mut from.config_map_key_ref {
                    rename(ConfigKind::ConfigMap, &mut key.name);
                } else if let Some(key) = &mut from.secret_key_ref {
                    rename(ConfigKind::Secret, &mut key.name);
                }
            }
            for env_from in container.env_from.iter_mut().flatten() {
                if let Some(source) = &mut env_from.config_map_ref {
                    rename(ConfigKind::ConfigMap, &mut source.name);
                } else if let Some(source) = &mut env_from.secret_ref {
                    rename(ConfigKind::Secret, &mut source.name);
                }
            }
        }
        spec
    }

    /// The `-primary` copies of the tracked configs, owned by the Canary, with labels copied
    /// by `include_label_prefixes`. Configs missing from `sources` are left out.
    pub fn primary_copies(
        &self,
        namespace: &str,
        owner: &OwnerReference,
        sources: &ConfigSources,
        include_label_prefixes: &[String],
    ) -> Vec<PrimaryConfig> {
        let metadata = |source: &ObjectMeta, name: &str| ObjectMeta {
            name: Some(format!("{name}{PRIMARY_SUFFIX}")),
            namespace: Some(namespace.to_owned()),
            labels: Some(include_by_prefix(
                source.labels.as_ref(),
                include_label_prefixes,
            )),
            owner_references: Some(vec![owner.clone()]),
            ..ObjectMeta::default()
        };
        self.iter()
            .filter_map(|tracked| match tracked.kind {
                ConfigKind::ConfigMap => sources.config_maps.get(&tracked.name).map(|source| {
                    PrimaryConfig::ConfigMap(ConfigMap {
                        metadata: metadata(&source.metadata, &tracked.name),
                        data: source.data.clone(),
                        binary_data: source.binary_data.clone(),
                        immutable: None,
                    })
                }),
                ConfigKind::Secret => sources.secrets.get(&tracked.name).map(|source| {
                    PrimaryConfig::Secret(Secret {
                        metadata: metadata(&source.metadata, &tracked.name),
                        data: source.data.clone(),
                        type_: source.type_.clone(),
                        immutable: None,
                        string_data: None,
                    })
                }),
            })
            .collect()
    }
}

/// A `-primary` copy of a tracked config.
#[derive(Clone, Debug, PartialEq)]
pub enum PrimaryConfig {
    /// A ConfigMap copy.
    ConfigMap(ConfigMap),
    /// A Secret copy.
    Secret(Secret),
}

fn tracking_disabled(metadata: &ObjectMeta) -> bool {
    metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CONFIG_TRACKING_ANNOTATION))
        .is_some_and(|value| value.starts_with("disable"))
}

/// The tracked view of a ConfigMap; `None` when it opted out of tracking.
fn track_config_map(config_map: &ConfigMap) -> Option<Result<TrackedConfig>> {
    if tracking_disabled(&config_map.metadata) {
        return None;
    }
    let name = config_map.metadata.name.clone().unwrap_or_default();
    Some(
        go_json_checksum(&config_map.data).map(|checksum| TrackedConfig {
            kind: ConfigKind::ConfigMap,
            name,
            checksum,
        }),
    )
}

/// The tracked view of a Secret; `None` when it opted out or is not an application secret.
fn track_secret(secret: &Secret) -> Option<Result<TrackedConfig>> {
    let secret_type = secret.type_.as_deref().unwrap_or("Opaque");
    if !TRACKED_SECRET_TYPES.contains(&secret_type) || tracking_disabled(&secret.metadata) {
        return None;
    }
    let name = secret.metadata.name.clone().unwrap_or_default();
    Some(
        go_json_checksum(&secret.data).map(|checksum| TrackedConfig {
            kind: ConfigKind::Secret,
            name,
            checksum,
        }),
    )
}

#[cfg(test)]
#[path = "config_tracking_tests.rs"]
mod tests;
