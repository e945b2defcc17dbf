//! `spec.analysis`: the schedule, the traffic steps, the checks and the alerts of a canary.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::CrossNamespaceObjectReference;
use super::service::HttpMatchRequest;
use crate::duration::GoDuration;

/// How a canary is analysed and how traffic moves while it is.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryAnalysis {
    /// Time between two analysis ticks (default 60s, at least 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<GoDuration>,
    /// Number of checks before promotion (A/B testing and blue/green).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iterations: Option<i32>,
    /// Mirror traffic to the canary (blue/green on Istio and Gateway API).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mirror: bool,
    /// Percentage of traffic mirrored (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_weight: Option<i32>,
    /// Highest canary weight before promotion (canary strategy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_weight: Option<i32>,
    /// Canary weight added each tick (canary strategy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_weight: Option<i32>,
    /// Explicit ascending canary weights (canary strategy); wins over stepWeight.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub step_weights: Vec<i32>,
    /// Weight moved to the primary each tick during promotion (staged promotion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_weight_promotion: Option<i32>,
    /// Failed checks tolerated before rollback (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<i32>,
    /// Percentage of primary pods that must be ready (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_ready_threshold: Option<i32>,
    /// Percentage of canary pods that must be ready (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_ready_threshold: Option<i32>,
    /// Notifications sent during the analysis.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<CanaryAlert>,
    /// Metric checks run each tick.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<CanaryMetric>,
    /// Webhooks called at their stage of the rollout.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhooks: Vec<CanaryWebhook>,
    /// Conditions that send a request to the canary (A/B testing).
    #[serde(rename = "match", default, skip_serializing_if = "Vec::is_empty")]
    pub match_: Vec<HttpMatchRequest>,
    /// Pin a user to the version they first reached, by cookie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity: Option<SessionAffinity>,
}

/// Cookie-based session affinity during a canary rollout.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionAffinity {
    /// Name of the cookie that pins a user to the canary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie_name: Option<String>,
    /// Name of the cookie that pins a user to the primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_cookie_name: Option<String>,
    /// Cookie domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Cookie HttpOnly attribute.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub http_only: bool,
    /// Cookie lifetime in seconds (default 86400).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<i32>,
    /// Cookie Partitioned attribute.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partitioned: bool,
    /// Cookie path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Cookie SameSite attribute (`Strict`, `Lax`, `None`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_site: Option<String>,
    /// Cookie Secure attribute.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub secure: bool,
}

/// A metric check: a builtin metric or a MetricTemplate, and the range its value must stay in.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryMetric {
    /// Name of the check; `request-success-rate` and `request-duration` are builtin.
    pub name: String,
    /// Window the query looks back over (default 1m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<GoDuration>,
    /// Deprecated single bound (v1alpha3): a minimum for the success rate, a maximum otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// The range the value must stay in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold_range: Option<CanaryThresholdRange>,
    /// Deprecated inline PromQL query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// The MetricTemplate that holds the query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_ref: Option<CrossNamespaceObjectReference>,
    /// Values for `{{ variables.NAME }}` in the template.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub template_variables: BTreeMap<String, String>,
}

/// Bounds a metric value must stay within; either may be absent.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, JsonSchema)]
pub struct CanaryThresholdRange {
    /// Lowest acceptable value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Highest acceptable value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

/// Which events reach an alert provider.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AlertSeverity {
    /// Everything.
    #[default]
    Info,
    /// Warnings and errors.
    Warn,
    /// Errors only.
    Error,
}

/// A notification target of a canary.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryAlert {
    /// Name of the alert.
    pub name: String,
    /// Lowest severity sent (default info).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<AlertSeverity>,
    /// The AlertProvider to send through.
    pub provider_ref: CrossNamespaceObjectReference,
}

/// When a webhook is called and what its answer means.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum HookType {
    /// Called each analysis tick; a failure counts as a failed check.
    Rollout,
    /// Called before traffic reaches the canary; a failure counts as a failed check.
    PreRollout,
    /// Called after promotion or rollback; its answer is only logged.
    PostRollout,
    /// A gate before the rollout starts: the canary waits until it answers 2xx.
    ConfirmRollout,
    /// A gate before promotion: the canary waits until it answers 2xx.
    ConfirmPromotion,
    /// Receives every event of the canary.
    Event,
    /// Rolls the canary back when it answers 2xx.
    Rollback,
    /// A gate before each traffic increase.
    ConfirmTrafficIncrease,
}

impl HookType {
    /// Every hook type, in the order of a rollout.
    pub const ALL: [Self; 8] = [
        Self::ConfirmRollout,
        Self::PreRollout,
        Self::Rollout,
        Self::ConfirmTrafficIncrease,
        Self::ConfirmPromotion,
        Self::PostRollout,
        Self::Rollback,
        Self::Event,
    ];

    /// The name written in manifests (`pre-rollout`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rollout => "rollout",
            Self::PreRollout => "pre-rollout",
            Self::PostRollout => "post-rollout",
            Self::ConfirmRollout => "confirm-rollout",
            Self::ConfirmPromotion => "confirm-promotion",
            Self::Event => "event",
            Self::Rollback => "rollback",
            Self::ConfirmTrafficIncrease => "confirm-traffic-increase",
        }
    }
}

impl std::fmt::Display for HookType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An external check or gate called during the rollout.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryWebhook {
    /// When the hook is called (default `rollout`).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<HookType>,
    /// Name of the hook, for logs and events.
    pub name: String,
    /// URL the payload is POSTed to.
    pub url: String,
    /// Do not alert when this hook fails.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mute_alert: bool,
    /// Timeout of the call (default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<GoDuration>,
    /// Extra fields sent in the payload's `metadata`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Retries of a failed call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i32>,
    /// Skip TLS verification.
    #[serde(
        rename = "disableTLS",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub disable_tls: bool,
}

impl CanaryWebhook {
    /// The hook's type, `rollout` when not written (as Flagger).
    pub fn hook_type(&self) -> HookType {
        self.type_.unwrap_or(HookType::Rollout)
    }
}
