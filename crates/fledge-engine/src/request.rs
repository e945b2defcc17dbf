//! What the engine needs observed for a tick: the answer of [`crate::Rollout::needs`].

use fledge_api::CanaryPhase;
use fledge_api::canary::HookType;

/// The checks a tick consults, in the order Flagger runs them. The operator runs them in this
/// order and puts the results into the [`crate::Observation`]. Like Flagger, it may stop at the
/// first check that halts the tick — a failing check, a closed gate, a rollback hook answering
/// 2xx: the engine never reads past it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObservationRequest {
    /// Metrics to query, by `spec.analysis.metrics[].name`.
    pub metrics: Vec<String>,
    /// Webhooks to call.
    pub webhooks: Vec<WebhookRequest>,
}

impl ObservationRequest {
    /// Whether the tick needs no checks at all.
    pub fn is_empty(&self) -> bool {
        self.metrics.is_empty() && self.webhooks.is_empty()
    }
}

/// One webhook call: which hook, and the phase its payload carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookRequest {
    /// `spec.analysis.webhooks[].name`.
    pub name: String,
    /// The hook's type.
    pub hook_type: HookType,
    /// The `phase` of the payload (Flagger sends `Progressing` for gates and checks).
    pub phase: CanaryPhase,
}
