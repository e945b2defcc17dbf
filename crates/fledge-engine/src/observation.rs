//! What the operator observed before a tick: the [`World`] (workloads, revision, routes),
//! and the results of the checks the engine asked for.

use std::collections::BTreeMap;

use crate::time::Timestamp;

/// Everything one tick's decision depends on, besides the spec, the status and `now`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observation {
    /// The cluster state: workloads, revision, routes.
    pub world: World,
    /// Metric results by metric name (`spec.analysis.metrics[].name`).
    pub metrics: BTreeMap<String, MetricResult>,
    /// Webhook outcomes by webhook name (`spec.analysis.webhooks[].name`).
    pub webhooks: BTreeMap<String, WebhookOutcome>,
}

impl Observation {
    /// An observation of `world` without any check results yet.
    pub fn of(world: World) -> Self {
        Self {
            world,
            metrics: BTreeMap::new(),
            webhooks: BTreeMap::new(),
        }
    }

    /// Adds a metric result (builder style).
    pub fn with_metric(mut self, name: impl Into<String>, result: MetricResult) -> Self {
        self.metrics.insert(name.into(), result);
        self
    }

    /// Adds a webhook outcome (builder style).
    pub fn with_webhook(mut self, name: impl Into<String>, outcome: WebhookOutcome) -> Self {
        self.webhooks.insert(name.into(), outcome);
        self
    }
}

/// The cluster state of one canary, read from watch caches.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct World {
    /// The primary workload (`podinfo-primary`); `None` until it exists.
    pub primary: Option<WorkloadState>,
    /// The target workload, which runs the canary (`podinfo`).
    pub canary: WorkloadState,
    /// The target's current revision.
    pub revision: Revision,
    /// The routes as they are now.
    pub routes: Routes,
    /// `minReplicas` of the target's autoscaler, when it has one.
    pub autoscaler_min_replicas: Option<u32>,
    /// The Canary is being deleted and `spec.revertOnDeletion` asks to restore the target.
    pub deleting: bool,
}

/// The target's revision: the hash of its pod template and the checksums of the ConfigMaps
/// and Secrets it uses. Compared with `status.lastAppliedSpec` / `lastPromotedSpec` and
/// `status.trackedConfigs` to detect a new revision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Revision {
    /// Hash of the target's pod template (any stable hash; the operator picks it).
    pub spec_hash: String,
    /// Checksums of tracked configs by `kind/name` (`configmap/podinfo-config`).
    pub configs: BTreeMap<String, String>,
}

impl Revision {
    /// A revision with a template hash and no tracked configs.
    pub fn new(spec_hash: impl Into<String>) -> Self {
        Self {
            spec_hash: spec_hash.into(),
            configs: BTreeMap::new(),
        }
    }
}

/// The rollout state of a Deployment (or DaemonSet) as Flagger reads it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkloadState {
    /// `spec.replicas` (desired replicas).
    pub desired_replicas: u32,
    /// `status.replicas` (all pods, old and new).
    pub replicas: u32,
    /// `status.updatedReplicas` (pods of the current template).
    pub updated_replicas: u32,
    /// `status.availableReplicas`.
    pub available_replicas: u32,
    /// `metadata.generation <= status.observedGeneration`.
    pub generation_observed: bool,
    /// The `Progressing` condition has reason `ProgressDeadlineExceeded`.
    pub progress_deadline_exceeded: bool,
    /// `lastUpdateTime` of the `Available=False` condition with reason
    /// `MinimumReplicasUnavailable`, when there is one.
    pub unavailable_since: Option<Timestamp>,
}

impl WorkloadState {
    /// A fully rolled-out workload with `replicas` ready pods.
    pub fn ready(replicas: u32) -> Self {
        Self {
            desired_replicas: replicas,
            replicas,
            updated_replicas: replicas,
            available_replicas: replicas,
            generation_observed: true,
            progress_deadline_exceeded: false,
            unavailable_since: None,
        }
    }

    /// A workload scaled to zero.
    pub fn scaled_to_zero() -> Self {
        Self::ready(0)
    }

    /// A workload rolling out `replicas` new pods of which `available` are available, unavailable
    /// since `since`.
    pub fn rolling_out(replicas: u32, available: u32, since: Timestamp) -> Self {
        Self {
            desired_replicas: replicas,
            replicas,
            updated_replicas: replicas,
            available_replicas: available,
            generation_observed: true,
            progress_deadline_exceeded: false,
            unavailable_since: Some(since),
        }
    }
}

/// Where traffic goes, in percent of requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Routes {
    /// Share of the primary.
    pub primary: u32,
    /// Share of the canary.
    pub canary: u32,
    /// A copy of the primary's traffic is mirrored to the canary.
    pub mirrored: bool,
}

impl Routes {
    /// All traffic to the primary, nothing mirrored.
    pub const ALL_TO_PRIMARY: Self = Self {
        primary: 100,
        canary: 0,
        mirrored: false,
    };
    /// All traffic to the canary.
    pub const ALL_TO_CANARY: Self = Self {
        primary: 0,
        canary: 100,
        mirrored: false,
    };

    /// `primary`/`canary` split without mirroring.
    pub fn split(primary: u32, canary: u32) -> Self {
        Self {
            primary,
            canary,
            mirrored: false,
        }
    }
}

impl Default for Routes {
    fn default() -> Self {
        Self::ALL_TO_PRIMARY
    }
}

/// The result of one metric query, keeping "no data" and "query error" apart from values.
#[derive(Clone, Debug, PartialEq)]
pub enum MetricResult {
    /// The query returned this value (success rate in %, duration in ms for the builtins).
    Value(f64),
    /// The query returned no series (Flagger's "no values found").
    NoData,
    /// The query failed; the text is the provider's error.
    Error(String),
}

/// The outcome of one webhook call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// The hook answered 2xx (Flagger: status ≤ 202).
    Passed,
    /// The hook failed; the text is the response body or the transport error.
    Failed(String),
}

impl WebhookOutcome {
    /// Whether the hook answered 2xx.
    pub fn passed(&self) -> bool {
        matches!(self, Self::Passed)
    }
}
