//! The port every metrics backend implements.

use async_trait::async_trait;

use crate::Result;

/// What a successful query found.
///
/// *No values* is kept apart from errors on purpose: Flagger halts the advancement with
/// "no values found … probably … is not receiving traffic" instead of counting a failed
/// check against a broken metrics server.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum QueryOutcome {
    /// The query produced exactly one number.
    Value(f64),
    /// The query produced no sample, or `NaN` (0/0: no requests in the window).
    NoValues,
}

impl QueryOutcome {
    /// The number, if there is one.
    pub fn value(self) -> Option<f64> {
        match self {
            Self::Value(value) => Some(value),
            Self::NoValues => None,
        }
    }

    /// `NaN` is no value: a ratio over an empty window is 0/0.
    pub(crate) fn from_sample(value: f64) -> Self {
        if value.is_nan() {
            Self::NoValues
        } else {
            Self::Value(value)
        }
    }
}

/// A metrics backend that runs a rendered query and answers with one number.
#[async_trait]
pub trait MetricProvider: Send + Sync {
    /// Runs a rendered query.
    ///
    /// # Errors
    /// Transport failures, timeouts, rejected credentials, the backend's own errors and
    /// answers with more than one series are errors; an empty answer is
    /// `Ok(QueryOutcome::NoValues)`.
    async fn query(&self, query: &str) -> Result<QueryOutcome>;

    /// Whether the backend answers a trivial query correctly.
    ///
    /// `Ok(false)` means it answered, but not with the expected value.
    async fn is_online(&self) -> Result<bool>;
}
