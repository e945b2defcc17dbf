//! A real Prometheus fed with known series, for tests and benchmarks (feature `testing`).
//!
//! [`SeriesExporter`] serves `/metrics` on 127.0.0.1 with counters that grow by a fixed
//! amount per scrape, so every `rate()` over them has an exactly known ratio;
//! [`LocalPrometheus`] runs the `prometheus` binary scraping it every second and kills it
//! when dropped (or when the test process dies).

mod exporter;
mod local_prometheus;

use std::time::{Duration, Instant};

pub use exporter::{Series, SeriesExporter};
pub use local_prometheus::{LocalPrometheus, LocalPrometheusBuilder, PROMETHEUS_ENV};

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
