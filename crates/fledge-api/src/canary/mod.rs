//! The `Canary` resource: what to release, how traffic reaches it and how it is judged.

mod analysis;
mod service;
mod status;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use analysis::{
    AlertSeverity, CanaryAlert, CanaryAnalysis, CanaryMetric, CanaryThresholdRange, CanaryWebhook,
    HookType, SessionAffinity,
};
pub use service::{
    BackendObjectReference, CanaryService, CorsPolicy, CustomMetadata, HeaderOperations, Headers,
    HttpMatchRequest, HttpRequestMirrorFilter, HttpRetry, HttpRewrite, MirrorFraction,
    ParentReference, StringMatch, UnmanagedMetadata,
};
pub use status::{CanaryCondition, CanaryPhase, CanaryStatus, ConditionStatus};

/// Desired state of a Canary: the workload to release and how to release it.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "flagger.app",
    version = "v1beta1",
    kind = "Canary",
    plural = "canaries",
    namespaced,
    status = "CanaryStatus",
    category = "all",
    doc = "Canary is the Schema for the Canary API.",
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Weight","type":"string","jsonPath":".status.canaryWeight"}"#,
    printcolumn = r#"{"name":"Suspended","type":"boolean","jsonPath":".spec.suspend","priority":1}"#,
    printcolumn = r#"{"name":"FailedChecks","type":"string","jsonPath":".status.failedChecks","priority":1}"#,
    printcolumn = r#"{"name":"Interval","type":"string","jsonPath":".spec.analysis.interval","priority":1}"#,
    printcolumn = r#"{"name":"Mirror","type":"boolean","jsonPath":".spec.analysis.mirror","priority":1}"#,
    printcolumn = r#"{"name":"StepWeight","type":"string","jsonPath":".spec.analysis.stepWeight","priority":1}"#,
    printcolumn = r#"{"name":"StepWeights","type":"string","jsonPath":".spec.analysis.stepWeights","priority":1}"#,
    printcolumn = r#"{"name":"MaxWeight","type":"string","jsonPath":".spec.analysis.maxWeight","priority":1}"#,
    printcolumn = r#"{"name":"LastTransitionTime","type":"string","jsonPath":".status.lastTransitionTime"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct CanarySpec {
    /// Service mesh or ingress controller that routes the traffic (`istio`, `linkerd`,
    /// `gatewayapi:v1`, `kubernetes`, ...); the operator's `-mesh-provider` when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,

    /// Address of the metrics server the builtin metrics query; the operator's when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_server: Option<String>,

    /// The workload under release (Deployment, DaemonSet or Service).
    pub target_ref: LocalObjectReference,

    /// The autoscaler of the target (HorizontalPodAutoscaler or KEDA ScaledObject).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaler_ref: Option<AutoscalerReference>,

    /// The Ingress that exposes the target (NGINX provider).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_ref: Option<LocalObjectReference>,

    /// The route that exposes the target (Skipper, Gateway API ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_ref: Option<LocalObjectReference>,

    /// The upstream (Gloo).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_ref: Option<CrossNamespaceObjectReference>,

    /// How the target is exposed: ports, hosts, gateways and routing options
    /// (required for every provider but Knative, which routes by revision).
    #[serde(default, skip_serializing_if = "CanaryService::is_unset")]
    pub service: CanaryService,

    /// How the canary is judged and how traffic moves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<CanaryAnalysis>,

    /// Deprecated name of `analysis` (Flagger v1alpha3); read when `analysis` is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_analysis: Option<CanaryAnalysis>,

    /// Seconds a canary may take to make progress before it is rolled back (default 600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline_seconds: Option<i32>,

    /// Promote without analysis.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skip_analysis: bool,

    /// Restore the target and the routes when the Canary is deleted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub revert_on_deletion: bool,

    /// Pause all work on this canary.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
}

/// A reference to an object in the Canary's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalObjectReference {
    /// API version of the referent (`apps/v1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Kind of the referent (`Deployment`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name of the referent.
    pub name: String,
}

/// A reference to an object that may live in another namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CrossNamespaceObjectReference {
    /// API version of the referent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Kind of the referent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name of the referent.
    pub name: String,
    /// Namespace of the referent; the referrer's namespace when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// A reference to the target's autoscaler.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalerReference {
    /// API version of the autoscaler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Kind of the autoscaler (`HorizontalPodAutoscaler`, `ScaledObject`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name of the autoscaler.
    pub name: String,
    /// Queries for the primary's ScaledObject, by trigger name (KEDA).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub primary_scaler_queries: std::collections::BTreeMap<String, String>,
    /// Replica bounds for the primary's autoscaler, when they differ from the target's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_scaler_replicas: Option<ScalerReplicas>,
}

/// Replica bounds of an autoscaler.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScalerReplicas {
    /// Lower bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_replicas: Option<i32>,
    /// Upper bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replicas: Option<i32>,
}

impl Canary {
    /// The analysis block, whichever of `analysis` or the deprecated `canaryAnalysis` holds it.
    pub fn analysis(&self) -> Option<&CanaryAnalysis> {
        self.spec.analysis()
    }
}

impl CanarySpec {
    /// The analysis block, whichever of `analysis` or the deprecated `canaryAnalysis` holds it.
    pub fn analysis(&self) -> Option<&CanaryAnalysis> {
        self.analysis.as_ref().or(self.canary_analysis.as_ref())
    }

    /// The apex, primary and canary Service names (`podinfo`, `podinfo-primary`, `podinfo-canary`).
    pub fn service_names(&self) -> ServiceNames {
        let apex = self
            .service
            .name
            .clone()
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| self.target_ref.name.clone());
        ServiceNames {
            primary: format!("{apex}-primary"),
            canary: format!("{apex}-canary"),
            apex,
        }
    }
}

/// The three ClusterIP Services every canary gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceNames {
    /// The name clients use; routes decide where it leads.
    pub apex: String,
    /// The Service selecting the primary pods.
    pub primary: String,
    /// The Service selecting the canary pods.
    pub canary: String,
}
