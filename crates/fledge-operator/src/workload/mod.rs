//! The workload side of a canary: the `<name>-primary` Deployment or DaemonSet made from
//! the target, the tracked ConfigMaps and Secrets, the primary's autoscaler, the revision
//! hash and readiness the engine reads, and scaling the target to and from zero; for
//! `kind: Service` targets, the `-primary` and `-canary` copies of the Service.
//!
//! Everything but [`apply`] is pure: it takes objects the caller read (from watch caches)
//! and returns objects to write. [`apply`] writes them with server-side apply (field manager
//! `fledge`) and skips writes that would change nothing.

pub mod apply;
pub mod autoscaler;
pub mod checksum;
pub mod config_tracking;
pub mod labels;
pub mod primary;
pub mod revision;
pub mod scaling;
pub mod service_target;
pub mod state;

use std::collections::BTreeMap;

use fledge_api::Canary;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::error::{Error, Result};

/// How workloads are rendered: the operator's `-selector-labels`, `-include-label-prefix`
/// and `-enable-config-tracking`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadSettings {
    /// Labels looked for, in order, in the target's `spec.selector.matchLabels`.
    pub selector_labels: Vec<String>,
    /// Prefixes of the labels and annotations copied to `-primary` objects (`*` for all).
    pub include_label_prefixes: Vec<String>,
    /// Whether ConfigMaps and Secrets are tracked and copied.
    pub config_tracking: bool,
}

impl Default for WorkloadSettings {
    /// Flagger's defaults: `app,name,app.kubernetes.io/name`, nothing copied, tracking on.
    fn default() -> Self {
        Self {
            selector_labels: labels::DEFAULT_SELECTOR_LABELS.map(str::to_owned).to_vec(),
            include_label_prefixes: Vec::new(),
            config_tracking: true,
        }
    }
}

/// The kinds of target the workload side handles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TargetKind {
    /// `apps/v1` Deployment.
    Deployment,
    /// `apps/v1` DaemonSet.
    DaemonSet,
}

impl TargetKind {
    /// The kind `spec.targetRef` names (Deployment when it names none).
    ///
    /// # Errors
    /// [`Error::UnsupportedTarget`] for any other kind (Service targets: `controller::target`).
    pub fn of(canary: &Canary) -> Result<Self> {
        match canary.spec.target_ref.kind.as_deref() {
            None | Some("Deployment") => Ok(Self::Deployment),
            Some("DaemonSet") => Ok(Self::DaemonSet),
            Some(other) => Err(Error::UnsupportedTarget {
                namespace: canary.metadata.namespace.clone().unwrap_or_default(),
                name: canary.metadata.name.clone().unwrap_or_default(),
                kind: other.to_owned(),
            }),
        }
    }

    /// The kind's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deployment => "Deployment",
            Self::DaemonSet => "DaemonSet",
        }
    }
}

/// A target or primary workload as read from the API server.
#[derive(Clone, Debug, PartialEq)]
pub enum Workload {
    /// A Deployment.
    Deployment(Deployment),
    /// A DaemonSet.
    DaemonSet(DaemonSet),
}

impl Workload {
    /// Deployment or DaemonSet.
    pub fn kind(&self) -> TargetKind {
        match self {
            Self::Deployment(_) => TargetKind::Deployment,
            Self::DaemonSet(_) => TargetKind::DaemonSet,
        }
    }

    /// The object's metadata.
    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Self::Deployment(d) => &d.metadata,
            Self::DaemonSet(d) => &d.metadata,
        }
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or_default()
    }

    /// `metadata.namespace`.
    pub fn namespace(&self) -> &str {
        self.metadata().namespace.as_deref().unwrap_or_default()
    }

    /// The pod template, when the object has a spec.
    pub fn template(&self) -> Option<&PodTemplateSpec> {
        match self {
            Self::Deployment(d) => d.spec.as_ref().map(|s| &s.template),
            Self::DaemonSet(d) => d.spec.as_ref().map(|s| &s.template),
        }
    }

    /// `spec.selector.matchLabels`.
    pub fn match_labels(&self) -> Option<&BTreeMap<String, String>> {
        match self {
            Self::Deployment(d) => d.spec.as_ref()?.selector.match_labels.as_ref(),
            Self::DaemonSet(d) => d.spec.as_ref()?.selector.match_labels.as_ref(),
        }
    }

    /// The object as JSON, for server-side apply.
    ///
    /// # Errors
    /// [`Error::Json`] when it cannot be serialized (never for objects read from a server).
    pub fn to_json(&self) -> Result<serde_json::Value> {
        let what = || {
            format!(
                "{} {}/{}",
                self.kind().as_str(),
                self.namespace(),
                self.name()
            )
        };
        match self {
            Self::Deployment(d) => serde_json::to_value(d),
            Self::DaemonSet(d) => serde_json::to_value(d),
        }
        .map_err(|e| Error::json(what(), e))
    }
}

/// The name of the primary of a target (`podinfo-primary`).
pub fn primary_name(target_name: &str) -> String {
    format!("{target_name}{}", labels::PRIMARY_SUFFIX)
}

/// The controller owner reference that ties generated objects to `canary`, so they go
/// away with it.
///
/// # Errors
/// [`Error::CanaryMetadata`] when the Canary has no name or uid (not read from a server).
pub fn owner_reference(canary: &Canary) -> Result<OwnerReference> {
    let name = canary.metadata.name.clone().unwrap_or_default();
    if name.is_empty() {
        return Err(Error::CanaryMetadata {
            name,
            field: "name",
        });
    }
    let Some(uid) = canary.metadata.uid.clone().filter(|uid| !uid.is_empty()) else {
        return Err(Error::CanaryMetadata { name, field: "uid" });
    };
    Ok(OwnerReference {
        api_version: format!("{}/{}", fledge_api::GROUP, fledge_api::VERSION),
        kind: "Canary".to_owned(),
        name,
        uid,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

/// The Canary's namespace.
///
/// # Errors
/// [`Error::CanaryMetadata`] when it has none.
pub fn canary_namespace(canary: &Canary) -> Result<&str> {
    canary
        .metadata
        .namespace
        .as_deref()
        .filter(|ns| !ns.is_empty())
        .ok_or_else(|| Error::CanaryMetadata {
            name: canary.metadata.name.clone().unwrap_or_default(),
            field: "namespace",
        })
}
