//! The metric providers beside Prometheus, one module per `provider.type`, each behind the
//! cargo feature of the same name (all on by default):
//!
//! | type        | module        | API                                                    |
//! |-------------|---------------|--------------------------------------------------------|
//! | `graphite`  | [`graphite`]  | render API, `format=json`, basic auth                   |
//! | `datadog`   | [`datadog`]   | `GET /api/v1/query`, `DD-API-KEY` / `DD-APPLICATION-KEY` |
//! | `newrelic`  | [`newrelic`]  | NRQL over the Insights query API, `X-Query-Key`          |
//! | `dynatrace` | [`dynatrace`] | `GET /api/v2/metrics/query`, `Api-Token`                |
//! | `influxdb`  | [`influxdb`]  | Flux over `POST /api/v2/query`, annotated CSV answer    |
//!
//! They share one HTTP layer (`api_client.rs`): the provider's headers, `insecureSkipVerify`, the timeout,
//! same-origin redirects, answers read up to [`MAX_RESPONSE_BYTES`](crate::MAX_RESPONSE_BYTES),
//! HTTP 429 retried with backoff, and errors naming the provider, the status and the API's
//! message with every credential scrubbed.

pub(crate) mod api_client;
#[cfg(feature = "datadog")]
pub mod datadog;
#[cfg(feature = "dynatrace")]
pub mod dynatrace;
#[cfg(feature = "graphite")]
pub mod graphite;
#[cfg(feature = "influxdb")]
pub mod influxdb;
#[cfg(feature = "newrelic")]
pub mod newrelic;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, now.
#[cfg_attr(
    not(any(feature = "datadog", feature = "dynatrace")),
    allow(dead_code, reason = "used by the providers that query a time window")
)]
pub(crate) fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}
