//! What a canary releases, read from the watch caches: a Deployment or DaemonSet (with its
//! primary and tracked configs) or a Service (with its `-primary` and `-canary` copies), and
//! what the engine sees of it.

use std::sync::Arc;

use fledge_api::Canary;
use fledge_engine::{Revision, WorkloadState};
use k8s_openapi::api::core::v1::Service;
use kube::runtime::reflector::ObjectRef;

use crate::controller::Context;
use crate::error::Result;
use crate::workload::config_tracking::{ConfigSources, TrackedConfigs, referenced_configs};
use crate::workload::service_target::{self, ServiceCopy};
use crate::workload::state::workload_state;
use crate::workload::{TargetKind, Workload, primary_name, revision};

/// The kinds of target a Canary may name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A Deployment or DaemonSet.
    Workload(TargetKind),
    /// A core `v1` Service (Flagger's ServiceController).
    Service,
}

impl Kind {
    /// The kind `spec.targetRef` names.
    ///
    /// # Errors
    /// [`Error::UnsupportedTarget`](crate::error::Error::UnsupportedTarget) for other kinds, a Knative Service included.
    pub fn of(canary: &Canary) -> Result<Self> {
        let reference = &canary.spec.target_ref;
        let core = reference
            .api_version
            .as_deref()
            .is_none_or(|version| version == "v1");
        if reference.kind.as_deref() == Some("Service") && core {
            return Ok(Self::Service);
        }
        TargetKind::of(canary).map(Self::Workload)
    }

    /// The kind's name, as in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Workload(kind) => kind.as_str(),
            Self::Service => "Service",
        }
    }
}

/// A Deployment or DaemonSet target with what depends on it.
#[derive(Clone, Debug)]
pub struct WorkloadTarget {
    /// The target.
    pub target: Workload,
    /// `<name>-primary`, once it exists.
    pub primary: Option<Workload>,
    /// The ConfigMaps and Secrets the target uses.
    pub configs: TrackedConfigs,
    /// Those configs and their `-primary` copies as cached.
    pub sources: ConfigSources,
}

/// A target as read from the caches, with what depends on it.
#[derive(Clone, Debug)]
pub enum Target {
    /// A Deployment or DaemonSet.
    Workload(Box<WorkloadTarget>),
    /// A Service.
    Service(Box<ServiceTarget>),
}

/// A Service target and its copies.
#[derive(Clone, Debug)]
pub struct ServiceTarget {
    /// The target.
    pub target: Service,
    /// `<name>-primary`, once it exists.
    pub primary: Option<Service>,
    /// `<name>-canary`, once it exists.
    pub canary: Option<Service>,
}

impl Target {
    /// The target of `canary` in `namespace` of `kind` from the caches; `None` when it does
    /// not exist.
    ///
    /// # Errors
    /// [`Error::Json`](crate::error::Error::Json) when tracked configs cannot be resolved;
    /// [`Error::Kube`](crate::error::Error::Kube) when a referenced Secret cannot be read.
    pub async fn read(
        ctx: &Context,
        canary: &Canary,
        namespace: &str,
        kind: Kind,
    ) -> Result<Option<Self>> {
        let name = &canary.spec.target_ref.name;
        match kind {
            Kind::Workload(kind) => {
                let Some(target) = ctx.caches.workload(kind, namespace, name) else {
                    return Ok(None);
                };
                let (configs, sources) = tracked_configs(ctx, canary, namespace, &target).await?;
                let primary = ctx.caches.workload(kind, namespace, &primary_name(name));
                Ok(Some(Self::Workload(Box::new(WorkloadTarget {
                    target,
                    primary,
                    configs,
                    sources,
                }))))
            }
            Kind::Service => {
                let service = |name: &str| {
                    ctx.caches
                        .services
                        .get(&ObjectRef::new(name).within(namespace))
                        .map(Arc::unwrap_or_clone)
                };
                let Some(target) = service(name) else {
                    return Ok(None);
                };
                Ok(Some(Self::Service(Box::new(ServiceTarget {
                    target,
                    primary: service(&ServiceCopy::Primary.name(name)),
                    canary: service(&ServiceCopy::Canary.name(name)),
                }))))
            }
        }
    }

    /// The target's revision, compared with the status to detect a new one.
    ///
    /// # Errors
    /// [`Error::Json`](crate::error::Error::Json) when the hashed spec cannot be serialized.
    pub fn revision(&self) -> Result<Revision> {
        match self {
            Self::Workload(w) => revision::revision(&w.target, &w.configs),
            Self::Service(s) => service_target::revision(&s.target),
        }
    }

    /// The engine's view of the primary; `None` until it exists. A Service target's primary
    /// is always ready (its copy is made before the engine runs).
    pub fn primary_state(&self) -> Option<WorkloadState> {
        match self {
            Self::Workload(w) => w.primary.as_ref().map(workload_state),
            Self::Service(_) => Some(service_target::ready_state()),
        }
    }

    /// The engine's view of the target.
    pub fn canary_state(&self) -> WorkloadState {
        match self {
            Self::Workload(w) => workload_state(&w.target),
            Self::Service(_) => service_target::ready_state(),
        }
    }
}

async fn tracked_configs(
    ctx: &Context,
    canary: &Canary,
    namespace: &str,
    target: &Workload,
) -> Result<(TrackedConfigs, ConfigSources)> {
    if !ctx.applier.settings().config_tracking {
        return Ok((TrackedConfigs::default(), ConfigSources::default()));
    }
    let spec = target
        .template()
        .and_then(|t| t.spec.clone())
        .unwrap_or_default();
    let references = referenced_configs(&spec);
    let sources = ctx
        .caches
        .config_sources(&ObjectRef::from_obj(canary), namespace, &references)
        .await?;
    let configs = TrackedConfigs::resolve(namespace, &references, &sources)?;
    Ok((configs, sources))
}
