//! Writing workloads: server-side apply with field manager `fledge`, skipped when the
//! object already holds everything the apply would set, so a steady state makes no writes.

use std::time::Duration;

use fledge_api::Canary;
use fledge_router::holds;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::workload::autoscaler::{AutoscalingVersion, render_primary_autoscaler};
use crate::workload::config_tracking::{
    ConfigKind, ConfigReference, ConfigSources, PrimaryConfig, TrackedConfigs,
};
use crate::workload::labels::PRIMARY_SUFFIX;
use crate::workload::primary::{primary_replicas, render_primary};
use crate::workload::scaling::{ScaleChange, scale};
use crate::workload::service_target::{ServiceCopy, render_copy};
use crate::workload::{TargetKind, Workload, WorkloadSettings, canary_namespace, owner_reference};

/// The field manager of everything Fledge writes.
pub const FIELD_MANAGER: &str = "fledge";

/// How often a write that conflicts with a concurrent one is tried.
const ATTEMPTS: u32 = 4;

/// What a write did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The object was created or changed.
    Written,
    /// The object already was as desired; nothing was sent.
    Unchanged,
}

/// Reads and writes the workloads of canaries.
#[derive(Clone)]
pub struct WorkloadApplier {
    client: kube::Client,
    settings: WorkloadSettings,
}

impl std::fmt::Debug for WorkloadApplier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkloadApplier")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl WorkloadApplier {
    /// An applier writing through `client` with `settings`.
    pub fn new(client: kube::Client, settings: WorkloadSettings) -> Self {
        Self { client, settings }
    }

    /// The rendering settings.
    pub fn settings(&self) -> &WorkloadSettings {
        &self.settings
    }

    /// Reads a Deployment or DaemonSet (`None` when it does not exist).
    ///
    /// # Errors
    /// [`Error::Kube`] when the read fails.
    pub async fn get_workload(
        &self,
        kind: TargetKind,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Workload>> {
        let failed = |e| Error::kube("get", kind.as_str(), namespace, name, e);
        Ok(match kind {
            TargetKind::Deployment => Api::<Deployment>::namespaced(self.client.clone(), namespace)
                .get_opt(name)
                .await
                .map_err(failed)?
                .map(Workload::Deployment),
            TargetKind::DaemonSet => Api::<DaemonSet>::namespaced(self.client.clone(), namespace)
                .get_opt(name)
                .await
                .map_err(failed)?
                .map(Workload::DaemonSet),
        })
    }

    /// Reads the referenced ConfigMaps and Secrets and their `-primary` copies (what a
    /// watch cache would hold for them).
    ///
    /// # Errors
    /// [`Error::Kube`] when a read fails (a missing object is not an error).
    pub async fn get_config_sources(
        &self,
        namespace: &str,
        references: &[ConfigReference],
    ) -> Result<ConfigSources> {
        let config_maps: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let mut sources = ConfigSources::default();
        for reference in references {
            for name in [
                reference.name.clone(),
                format!("{}{PRIMARY_SUFFIX}", reference.name),
            ] {
                match reference.kind {
                    ConfigKind::ConfigMap => {
                        let found = config_maps
                            .get_opt(&name)
                            .await
                            .map_err(|e| Error::kube("get", "ConfigMap", namespace, &name, e))?;
                        sources.config_maps.extend(found.map(|c| (name, c)));
                    }
                    ConfigKind::Secret => {
                        let found = secrets
                            .get_opt(&name)
                            .await
                            .map_err(|e| Error::kube("get", "Secret", namespace, &name, e))?;
                        sources.secrets.extend(found.map(|s| (name, s)));
                    }
                }
            }
        }
        Ok(sources)
    }

    /// Creates the primary (and the copies of its configs) when `existing_primary` is
    /// `None`. An existing primary is left alone, as Flagger does: after initialization only
    /// a promotion changes it.
    ///
    /// # Errors
    /// As [`render_primary`], and [`Error::Kube`] when a write fails.
    pub async fn ensure_primary(
        &self,
        canary: &Canary,
        target: &Workload,
        configs: &TrackedConfigs,
        sources: &ConfigSources,
        existing_primary: Option<&Workload>,
    ) -> Result<Applied> {
        if existing_primary.is_some() {
            return Ok(Applied::Unchanged);
        }
        self.promote(canary, target, configs, sources, None).await
    }

    /// Makes the primary run the target's pod template: copies the tracked configs to their
    /// `-primary` names first, then applies the rendered primary.
    ///
    /// # Errors
    /// As [`WorkloadApplier::ensure_primary`].
    pub async fn promote(
        &self,
        canary: &Canary,
        target: &Workload,
        configs: &TrackedConfigs,
        sources: &ConfigSources,
        existing_primary: Option<&Workload>,
    ) -> Result<Applied> {
        let has_autoscaler = canary.spec.autoscaler_ref.is_some();
        let replicas = primary_replicas(target, existing_primary, has_autoscaler);
        let desired = render_primary(canary, target, configs, &self.settings, replicas)?;
        let configs_written = self.sync_primary_configs(canary, configs, sources).await?;
        let existing = existing_primary.map(Workload::to_json).transpose()?;
        let resource = workload_resource(target.kind());
        let primary = self
            .apply(
                &resource,
                canary_namespace(canary)?,
                desired.to_json()?,
                existing.as_ref(),
            )
            .await?;
        Ok(if configs_written > 0 {
            Applied::Written
        } else {
            primary
        })
    }

    /// Applies the `-primary` copies of the tracked configs whose copy in `sources` differs;
    /// returns how many were written.
    ///
    /// # Errors
    /// [`Error::CanaryMetadata`], [`Error::Kube`].
    pub async fn sync_primary_configs(
        &self,
        canary: &Canary,
        configs: &TrackedConfigs,
        sources: &ConfigSources,
    ) -> Result<usize> {
        if configs.is_empty() {
            return Ok(0);
        }
        let namespace = canary_namespace(canary)?;
        let owner = owner_reference(canary)?;
        let mut written = 0;
        for copy in configs.primary_copies(
            namespace,
            &owner,
            sources,
            &self.settings.include_label_prefixes,
        ) {
            let (resource, desired, existing) = match &copy {
                PrimaryConfig::ConfigMap(config_map) => {
                    let name = config_map.metadata.name.clone().unwrap_or_default();
                    (
                        ApiResource::erase::<ConfigMap>(&()),
                        to_json(config_map, &name)?,
                        sources
                            .config_maps
                            .get(&name)
                            .map(|c| to_json(c, &name))
                            .transpose()?,
                    )
                }
                PrimaryConfig::Secret(secret) => {
                    let name = secret.metadata.name.clone().unwrap_or_default();
                    (
                        ApiResource::erase::<Secret>(&()),
                        to_json(secret, &name)?,
                        sources
                            .secrets
                            .get(&name)
                            .map(|s| to_json(s, &name))
                            .transpose()?,
                    )
                }
            };
            if self
                .apply(&resource, namespace, desired, existing.as_ref())
                .await?
                == Applied::Written
            {
                written += 1;
            }
        }
        Ok(written)
    }

    /// Scales the target: a Deployment to `replicas`, a DaemonSet to zero or back onto its
    /// nodes.
    ///
    /// # Errors
    /// [`Error::Kube`] when the write fails.
    pub async fn scale_target(&self, target: &Workload, replicas: u32) -> Result<Applied> {
        let resource = workload_resource(target.kind());
        let namespace = target.namespace();
        match scale(target, replicas) {
            ScaleChange::None => Ok(Applied::Unchanged),
            ScaleChange::Apply(body) => self.apply(&resource, namespace, body, None).await,
            ScaleChange::MergePatch(body) => {
                let api: Api<DynamicObject> =
                    Api::namespaced_with(self.client.clone(), namespace, &resource);
                api.patch(
                    target.name(),
                    &PatchParams::apply(FIELD_MANAGER),
                    &Patch::Merge(&body),
                )
                .await
                .map_err(|e| {
                    Error::kube("patch", target.kind().as_str(), namespace, target.name(), e)
                })?;
                Ok(Applied::Written)
            }
        }
    }

    /// For a Service target: makes `<name>-canary` follow the target, and creates
    /// `<name>-primary` from it when `existing_primary` is `None` (after that only a
    /// promotion changes the primary), as Flagger's ServiceController does on every tick.
    ///
    /// # Errors
    /// As [`render_copy`], and [`Error::Kube`] when a write fails.
    pub async fn sync_service_copies(
        &self,
        canary: &Canary,
        target: &Service,
        existing_canary: Option<&Service>,
        existing_primary: Option<&Service>,
    ) -> Result<Applied> {
        let written = self
            .apply_service_copy(canary, target, ServiceCopy::Canary, existing_canary)
            .await?;
        if existing_primary.is_some() {
            return Ok(written);
        }
        self.apply_service_copy(canary, target, ServiceCopy::Primary, None)
            .await
    }

    /// For a Service target: gives `<name>-primary` the target's spec (a promotion).
    ///
    /// # Errors
    /// As [`WorkloadApplier::sync_service_copies`].
    pub async fn promote_service(
        &self,
        canary: &Canary,
        target: &Service,
        existing_primary: Option<&Service>,
    ) -> Result<Applied> {
        self.apply_service_copy(canary, target, ServiceCopy::Primary, existing_primary)
            .await
    }

    async fn apply_service_copy(
        &self,
        canary: &Canary,
        target: &Service,
        copy: ServiceCopy,
        existing: Option<&Service>,
    ) -> Result<Applied> {
        let desired = render_copy(canary, target, copy, &self.settings)?;
        let name = copy.name(target.metadata.name.as_deref().unwrap_or_default());
        let existing = existing.map(|s| to_json(s, &name)).transpose()?;
        self.apply(
            &ApiResource::erase::<Service>(&()),
            canary_namespace(canary)?,
            desired,
            existing.as_ref(),
        )
        .await
    }

    /// Applies the primary's autoscaler made from `target_hpa` (read in `version`).
    ///
    /// # Errors
    /// As [`render_primary_autoscaler`], and [`Error::Kube`] when the write fails.
    pub async fn reconcile_primary_autoscaler(
        &self,
        canary: &Canary,
        version: AutoscalingVersion,
        target_hpa: &DynamicObject,
        existing_primary_hpa: Option<&DynamicObject>,
    ) -> Result<Applied> {
        let desired = render_primary_autoscaler(canary, target_hpa, version, &self.settings)?;
        let name = desired["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let existing = existing_primary_hpa
            .map(|o| to_json(o, &name))
            .transpose()?;
        self.apply(
            &version.resource(),
            canary_namespace(canary)?,
            desired,
            existing.as_ref(),
        )
        .await
    }

    /// Server-side apply of `desired` unless `existing` already holds all of it; conflicts
    /// with concurrent writers are retried.
    async fn apply(
        &self,
        resource: &ApiResource,
        namespace: &str,
        desired: Value,
        existing: Option<&Value>,
    ) -> Result<Applied> {
        if existing.is_some_and(|existing| holds(existing, &desired)) {
            return Ok(Applied::Unchanged);
        }
        let name = desired["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), namespace, resource);
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let mut attempt = 1;
        loop {
            match api.patch(&name, &params, &Patch::Apply(&desired)).await {
                Ok(_) => {
                    tracing::debug!(kind = %resource.kind, %namespace, %name, "applied");
                    return Ok(Applied::Written);
                }
                Err(kube::Error::Api(status)) if status.code == 409 && attempt < ATTEMPTS => {
                    tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
                    attempt += 1;
                }
                Err(e) => {
                    return Err(Error::kube(
                        "apply",
                        resource.kind.clone(),
                        namespace,
                        &name,
                        e,
                    ));
                }
            }
        }
    }
}

/// The `apps/v1` resource of a workload kind.
pub fn workload_resource(kind: TargetKind) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk("apps", "v1", kind.as_str()))
}

fn to_json<T: serde::Serialize>(object: &T, name: &str) -> Result<Value> {
    serde_json::to_value(object).map_err(|e| Error::json(name.to_owned(), e))
}
