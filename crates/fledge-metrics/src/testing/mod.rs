//! Known series for a real Prometheus to scrape, for tests and benchmarks (feature `testing`).
//!
//! [`SeriesExporter`] serves `/metrics` on 127.0.0.1 with counters that grow by a fixed
//! amount per scrape, so every `rate()` over them has an exactly known ratio. The Prometheus
//! that scrapes it is fledge-testkit's `LocalPrometheus`; [`wait_for_value`] waits through a
//! provider until enough scrapes have landed.

mod exporter;

use std::time::{Duration, Instant};

pub use exporter::{Series, SeriesExporter};

use crate::{MetricProvider, QueryOutcome, Result};

/// Runs `query` until it yields a value (enough scrapes have landed) or `timeout` passes.
///
/// # Errors
/// The last error if the query never succeeded; a query that keeps answering *no values*
/// ends with `Ok(QueryOutcome::NoValues)`.
pub async fn wait_for_value(
    provider: &dyn MetricProvider,
    query: &str,
    timeout: Duration,
) -> Result<QueryOutcome> {
    let deadline = Instant::now() + timeout;
    loop {
        let outcome = provider.query(query).await;
        if matches!(outcome, Ok(QueryOutcome::Value(_))) || Instant::now() >= deadline {
            return outcome;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
