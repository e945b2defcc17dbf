//! Metric providers, Flagger-compatible query templating and the builtin metrics.
//!
//! A canary's analysis asks numbers of a metrics server. This crate
//!
//! - defines the port, [`MetricProvider`]: run a rendered query, answer with one value,
//!   *no values* ([`QueryOutcome::NoValues`]) or an [`Error`], kept apart;
//! - implements it for Prometheus ([`PrometheusProvider`]): `/api/v1/query`, basic and
//!   bearer auth, custom headers, `insecureSkipVerify`, timeouts, answers read up to
//!   [`MAX_RESPONSE_BYTES`] and redirects kept on the address' origin ([`bounded_http`],
//!   which the operator's webhooks use too);
//! - implements Graphite, Datadog, New Relic, Dynatrace and InfluxDB 2 ([`providers`], one
//!   module and one cargo feature each, all on by default), chosen by [`provider_for`];
//! - renders MetricTemplate queries exactly as Flagger does ([`render_query`] over a
//!   [`MetricTemplateModel`]);
//! - ships the builtin `request-success-rate` and `request-duration` queries for every
//!   routing provider ([`RoutingProvider::builtin`]).
//!
//! Provider settings are plain values ([`ProviderSettings`]): the caller reads the Secret,
//! so the crate needs no Kubernetes client.
//!
//! ```no_run
//! use fledge_metrics::{BuiltinMetric, MetricTemplateModel, PrometheusProvider, ProviderSettings, RoutingProvider};
//! # async fn run() -> fledge_metrics::Result<()> {
//! let prometheus = PrometheusProvider::new(ProviderSettings::new("http://prometheus.istio-system:9090"))?;
//! let model = MetricTemplateModel {
//!     namespace: "test".into(), target: "podinfo".into(), interval: "1m".into(),
//!     ..MetricTemplateModel::default()
//! };
//! let success_rate = RoutingProvider::Istio
//!     .builtin(BuiltinMetric::RequestSuccessRate)
//!     .run(&prometheus, &model)
//!     .await?;
//! println!("{success_rate:?}"); // Value(97.0) or NoValues
//! # Ok(()) }
//! ```

pub mod bounded_http;
mod builtin;
mod error;
mod factory;
mod prometheus;
mod provider;
pub mod providers;
mod settings;
mod template;
#[cfg(feature = "testing")]
pub mod testing;

pub use builtin::{BuiltinMetric, BuiltinQuery, RoutingProvider, metrics_provider_name};
pub use error::{Error, Result};
pub use factory::{ProviderSupport, provider_for, provider_support, provider_type_name};
pub use prometheus::{MAX_RESPONSE_BYTES, ONLINE_QUERY, PrometheusProvider};
pub use provider::{MetricProvider, QueryOutcome};
#[cfg(feature = "datadog")]
pub use providers::datadog::DatadogProvider;
#[cfg(feature = "dynatrace")]
pub use providers::dynatrace::DynatraceProvider;
#[cfg(feature = "graphite")]
pub use providers::graphite::GraphiteProvider;
#[cfg(feature = "influxdb")]
pub use providers::influxdb::InfluxDbProvider;
#[cfg(feature = "newrelic")]
pub use providers::newrelic::NewRelicProvider;
pub use settings::{
    Credentials, DEFAULT_METRIC_INTERVAL_DURATION, DEFAULT_TIMEOUT, ProviderSettings, RetryPolicy,
    SECRET_KEYS, SecretKeys,
};
pub use template::{DEFAULT_METRIC_INTERVAL, MetricTemplateModel, render_query};
