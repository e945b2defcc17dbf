//! `status`: the only state of a canary. Everything the operator needs to resume lives here.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where a canary is in its life.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum CanaryPhase {
    /// The primary, the Services and the routes are being created.
    #[default]
    Initializing,
    /// Everything exists; all traffic goes to the primary.
    Initialized,
    /// A rollout waits for a confirm-rollout gate to open.
    Waiting,
    /// The analysis is under way.
    Progressing,
    /// The analysis passed; promotion waits for a confirm-promotion gate.
    WaitingPromotion,
    /// The canary's spec is being copied to the primary.
    Promoting,
    /// The primary runs the new version; traffic returns to it.
    Finalising,
    /// The rollout ended with the new version promoted.
    Succeeded,
    /// The rollout ended with the new version rolled back.
    Failed,
    /// The Canary is being deleted.
    Terminating,
    /// The Canary was deleted and its changes reverted.
    Terminated,
}

impl CanaryPhase {
    /// Every phase, in lifecycle order.
    pub const ALL: [Self; 11] = [
        Self::Initializing,
        Self::Initialized,
        Self::Waiting,
        Self::Progressing,
        Self::WaitingPromotion,
        Self::Promoting,
        Self::Finalising,
        Self::Succeeded,
        Self::Failed,
        Self::Terminating,
        Self::Terminated,
    ];

    /// The phase as written in `status.phase`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initializing => "Initializing",
            Self::Initialized => "Initialized",
            Self::Waiting => "Waiting",
            Self::Progressing => "Progressing",
            Self::WaitingPromotion => "WaitingPromotion",
            Self::Promoting => "Promoting",
            Self::Finalising => "Finalising",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
            Self::Terminating => "Terminating",
            Self::Terminated => "Terminated",
        }
    }

    /// Whether a rollout is under way (traffic may be split, the canary runs).
    pub fn is_active(self) -> bool {
        matches!(
            self,
            Self::Waiting
                | Self::Progressing
                | Self::WaitingPromotion
                | Self::Promoting
                | Self::Finalising
        )
    }

    /// The value of Flagger's `flagger_canary_status` gauge: 0 running, 1 succeeded, 2 failed.
    pub fn status_gauge(self) -> i64 {
        match self {
            Self::Succeeded => 1,
            Self::Failed => 2,
            _ => 0,
        }
    }
}

impl std::fmt::Display for CanaryPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Observed state of a Canary, written only by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStatus {
    /// Current phase.
    #[serde(default)]
    pub phase: CanaryPhase,
    /// Failed checks in the current analysis.
    #[serde(default)]
    pub failed_checks: i32,
    /// Current share of traffic sent to the canary, in percent.
    #[serde(default)]
    pub canary_weight: i32,
    /// Iterations passed in the current analysis.
    #[serde(default)]
    pub iterations: i32,
    /// Cookie of the previous rollout, still routed to the canary until it expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_session_affinity_cookie: Option<String>,
    /// Cookie that pins a user to the canary in this rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity_cookie: Option<String>,
    /// Cookie that pins a user to the primary in this rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_session_affinity_cookie: Option<String>,
    /// Checksums of the ConfigMaps and Secrets the target uses, by `kind/name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracked_configs: Option<BTreeMap<String, String>>,
    /// Hash of the target revision last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_spec: Option<String>,
    /// Hash of the target revision last promoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_promoted_spec: Option<String>,
    /// When the phase last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// Conditions; `Promoted` tells whether the last rollout was promoted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<CanaryCondition>,
}

/// Truth value of a condition.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// Not known yet.
    #[default]
    Unknown,
}

/// A condition of a canary (type `Promoted`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryCondition {
    /// Type of the condition (`Promoted`).
    #[serde(rename = "type")]
    pub type_: String,
    /// Whether it holds.
    pub status: ConditionStatus,
    /// When it was last written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<Time>,
    /// When its status last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// Machine-readable reason (the phase name, as Flagger).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
