//! The one error type of the engine: bad input, each with the field at fault and the fix.

/// Why the engine cannot decide. Never a panic: every bad input becomes one of these.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A field the engine needs is absent or empty.
    #[error("{field}: must be set ({fix})")]
    MissingField {
        /// JSON path of the field.
        field: &'static str,
        /// How to fix it.
        fix: &'static str,
    },
    /// Two checks share a name, so their results could not be told apart.
    #[error("{field}: the name {name:?} is used more than once; give each entry its own name")]
    DuplicateName {
        /// JSON path of the list.
        field: &'static str,
        /// The repeated name.
        name: String,
    },
    /// A canary-strategy analysis has no way to move traffic.
    #[error(
        "spec.analysis.stepWeight: must be between 1 and 100 when spec.analysis.stepWeights is empty, got {step_weight} (set stepWeight, stepWeights, or iterations for blue/green)"
    )]
    NoTrafficSteps {
        /// The stepWeight found.
        step_weight: u32,
    },
    /// The observation lacks a metric result the engine asked for in `needs`.
    #[error("observation.metrics: no result for metric {name:?}; run every metric `needs` returns")]
    MissingMetric {
        /// The metric's name.
        name: String,
    },
    /// The observation lacks a webhook outcome the engine asked for in `needs`.
    #[error(
        "observation.webhooks: no outcome for webhook {name:?}; call every webhook `needs` returns"
    )]
    MissingWebhook {
        /// The webhook's name.
        name: String,
    },
}

/// The engine's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
