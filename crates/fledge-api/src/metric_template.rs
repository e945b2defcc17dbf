//! The `MetricTemplate` resource: a reusable query against a metrics provider.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A query template and the provider it runs against.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "flagger.app",
    version = "v1beta1",
    kind = "MetricTemplate",
    namespaced,
    category = "all",
    doc = "MetricTemplate is a reusable metric query a Canary's analysis refers to.",
    printcolumn = r#"{"name":"Provider","type":"string","jsonPath":".spec.provider.type"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct MetricTemplateSpec {
    /// Where the query runs.
    pub provider: MetricTemplateProvider,
    /// The query, with `{{ namespace }}`, `{{ target }}`, `{{ interval }}`, `{{ variables.NAME }}` ... placeholders.
    pub query: String,
}

/// The kinds of metrics server a template can query.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MetricProviderType {
    /// Prometheus (and anything speaking its HTTP API).
    Prometheus,
    /// InfluxDB.
    Influxdb,
    /// Datadog.
    Datadog,
    /// The Kubernetes external metrics API.
    Externalmetrics,
    /// Google Cloud Monitoring.
    Stackdriver,
    /// Amazon CloudWatch.
    Cloudwatch,
    /// New Relic.
    Newrelic,
    /// Graphite.
    Graphite,
    /// Dynatrace.
    Dynatrace,
    /// Keptn.
    Keptn,
    /// Splunk.
    Splunk,
}

/// Connection settings of a metrics provider.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricTemplateProvider {
    /// Kind of provider.
    #[serde(rename = "type")]
    pub type_: MetricProviderType,
    /// Address of the provider's API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// HTTP headers sent with each query.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, Vec<String>>,
    /// Secret (in the template's namespace) holding credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretReference>,
    /// Cloud region (CloudWatch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Skip TLS verification of the provider.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure_skip_verify: bool,
}

/// A Secret in the referrer's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct SecretReference {
    /// Name of the Secret.
    pub name: String,
}
