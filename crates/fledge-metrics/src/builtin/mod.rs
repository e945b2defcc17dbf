//! The builtin metrics `request-success-rate` and `request-duration`, per routing provider.
//!
//! A canary may name these two metrics without a `templateRef`; the query then depends on
//! the canary's provider (mesh or ingress), with the same series, labels and arithmetic as
//! Flagger's observers. `request-success-rate` is the percentage of non-5xx responses;
//! `request-duration` is the P99 in milliseconds (the mean for NGINX and Skipper, as in
//! Flagger), truncated to whole milliseconds as Flagger does before comparing.

mod apisix;
mod appmesh;
mod contour;
mod gloo;
mod http;
mod istio;
mod knative;
mod kuma;
mod linkerd;
mod nginx;
mod osm;
mod skipper;
mod traefik;

use std::fmt;

use fledge_api::Canary;

use crate::{MetricProvider, MetricTemplateModel, QueryOutcome, Result, render_query};

/// The two metrics a canary can use without a template.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BuiltinMetric {
    /// `request-success-rate`: percentage (0–100) of responses that are not 5xx.
    RequestSuccessRate,
    /// `request-duration`: P99 latency in milliseconds.
    RequestDuration,
}

impl BuiltinMetric {
    /// Both builtin metrics.
    pub const ALL: [Self; 2] = [Self::RequestSuccessRate, Self::RequestDuration];

    /// The builtin metric a canary's `metrics[].name` refers to, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "request-success-rate" => Some(Self::RequestSuccessRate),
            "request-duration" => Some(Self::RequestDuration),
            _ => None,
        }
    }

    /// The name as written in a canary.
    pub fn name(self) -> &'static str {
        match self {
            Self::RequestSuccessRate => "request-success-rate",
            Self::RequestDuration => "request-duration",
        }
    }
}

impl fmt::Display for BuiltinMetric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The mesh or ingress whose telemetry the builtin metrics read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RoutingProvider {
    /// Istio (also Flagger's fallback for unknown providers).
    Istio,
    /// Linkerd.
    Linkerd,
    /// AWS App Mesh (`appmesh`, `appmesh:v1beta2`).
    AppMesh,
    /// Contour.
    Contour,
    /// Gloo Edge (`gloo`, `gloo:…`).
    Gloo,
    /// NGINX ingress controller.
    Nginx,
    /// Skipper.
    Skipper,
    /// Traefik.
    Traefik,
    /// Kuma.
    Kuma,
    /// Apache APISIX.
    Apisix,
    /// Gateway API (`gatewayapi:v1`, `gatewayapi:v1beta1`).
    GatewayApi,
    /// Open Service Mesh.
    Osm,
    /// Knative.
    Knative,
    /// Plain Kubernetes Services (blue/green).
    Kubernetes,
}

impl RoutingProvider {
    /// Every provider with builtin metrics.
    pub const ALL: [Self; 14] = [
        Self::Istio,
        Self::Linkerd,
        Self::AppMesh,
        Self::Contour,
        Self::Gloo,
        Self::Nginx,
        Self::Skipper,
        Self::Traefik,
        Self::Kuma,
        Self::Apisix,
        Self::GatewayApi,
        Self::Osm,
        Self::Knative,
        Self::Kubernetes,
    ];

    /// Flagger's observer choice for a metrics-provider name: prefixes for `appmesh`, `gloo`
    /// and `gatewayapi`, exact names otherwise, Istio for anything else (including the
    /// `linkerd:service`-style names Flagger builds for Service targets).
    pub fn from_name(provider: &str) -> Self {
        match provider {
            p if p.starts_with("appmesh") => Self::AppMesh,
            "linkerd" => Self::Linkerd,
            "contour" => Self::Contour,
            p if p.starts_with("gloo") => Self::Gloo,
            "nginx" => Self::Nginx,
            "kubernetes" => Self::Kubernetes,
            p if p.starts_with("gatewayapi") => Self::GatewayApi,
            "skipper" => Self::Skipper,
            // Fledge's names for the TraefikService group read the same Traefik metrics.
            "traefik" | "traefik:traefik.io" | "traefik:traefik.containo.us" => Self::Traefik,
            "osm" => Self::Osm,
            "kuma" => Self::Kuma,
            "apisix" => Self::Apisix,
            "knative" => Self::Knative,
            _ => Self::Istio,
        }
    }

    /// The provider a canary's builtin metrics use, given the operator's default mesh
    /// provider (Flagger's `-mesh-provider`), with Flagger's rules: the canary's
    /// `spec.provider` wins unless the default is Linkerd; `crossover` defaults stay;
    /// Service targets (not Knative) get the `:service` suffix.
    pub fn for_canary(default_provider: &str, canary: &Canary) -> Self {
        Self::from_name(&metrics_provider_name(default_provider, canary))
    }

    /// The provider's name as written in `spec.provider`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Istio => "istio",
            Self::Linkerd => "linkerd",
            Self::AppMesh => "appmesh",
            Self::Contour => "contour",
            Self::Gloo => "gloo",
            Self::Nginx => "nginx",
            Self::Skipper => "skipper",
            Self::Traefik => "traefik",
            Self::Kuma => "kuma",
            Self::Apisix => "apisix",
            Self::GatewayApi => "gatewayapi",
            Self::Osm => "osm",
            Self::Knative => "knative",
            Self::Kubernetes => "kubernetes",
        }
    }

    /// The builtin query for one metric.
    pub fn builtin(self, metric: BuiltinMetric) -> BuiltinQuery {
        BuiltinQuery {
            provider: self,
            metric,
        }
    }

    fn queries(self) -> &'static BuiltinQueries {
        match self {
            Self::Istio => &istio::QUERIES,
            Self::Linkerd => &linkerd::QUERIES,
            Self::AppMesh => &appmesh::QUERIES,
            Self::Contour => &contour::QUERIES,
            Self::Gloo => &gloo::QUERIES,
            Self::Nginx => &nginx::QUERIES,
            Self::Skipper => &skipper::QUERIES,
            Self::Traefik => &traefik::QUERIES,
            Self::Kuma => &kuma::QUERIES,
            Self::Apisix => &apisix::QUERIES,
            Self::GatewayApi | Self::Kubernetes => &http::QUERIES,
            Self::Osm => &osm::QUERIES,
            Self::Knative => &knative::QUERIES,
        }
    }
}

impl fmt::Display for RoutingProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The metrics-provider name Flagger's `runBuiltinMetricChecks` computes for a canary.
pub fn metrics_provider_name(default_provider: &str, canary: &Canary) -> String {
    let mut provider = if default_provider.contains("crossover") {
        "crossover".to_owned()
    } else {
        default_provider.to_owned()
    };
    if let Some(own) = canary.spec.provider.as_deref().filter(|p| !p.is_empty()) {
        provider = if default_provider.contains("linkerd") {
            "linkerd".to_owned()
        } else {
            own.to_owned()
        };
    }
    let target = &canary.spec.target_ref;
    let is_knative_service = target.kind.as_deref() == Some("Service")
        && target.api_version.as_deref() == Some("serving.knative.dev/v1");
    if target.kind.as_deref() == Some("Service") && !is_knative_service {
        provider.push_str(":service");
    }
    provider
}

/// The unit a builtin duration query answers in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DurationUnit {
    Milliseconds,
    Seconds,
}

/// One provider's pair of query templates.
struct BuiltinQueries {
    request_success_rate: &'static str,
    request_duration: &'static str,
    duration_unit: DurationUnit,
}

/// A builtin metric of one provider: its template, how to render it and how to read the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuiltinQuery {
    provider: RoutingProvider,
    metric: BuiltinMetric,
}

impl BuiltinQuery {
    /// The routing provider.
    pub fn provider(self) -> RoutingProvider {
        self.provider
    }

    /// The metric.
    pub fn metric(self) -> BuiltinMetric {
        self.metric
    }

    /// The query template, in MetricTemplate syntax.
    pub fn template(self) -> &'static str {
        let queries = self.provider.queries();
        match self.metric {
            BuiltinMetric::RequestSuccessRate => queries.request_success_rate,
            BuiltinMetric::RequestDuration => queries.request_duration,
        }
    }

    /// Renders the query for a canary (Skipper first encodes names the way Skipper does).
    ///
    /// # Errors
    /// Only if the model lacks a field, which [`MetricTemplateModel`] always has.
    pub fn render(self, model: &MetricTemplateModel) -> Result<String> {
        if self.provider == RoutingProvider::Skipper {
            render_query(self.template(), &skipper::encode_model(model))
        } else {
            render_query(self.template(), model)
        }
    }

    /// Renders and runs the query; durations come back in whole milliseconds.
    ///
    /// # Errors
    /// The provider's errors; *no values* is `Ok(QueryOutcome::NoValues)`.
    pub async fn run(
        self,
        provider: &dyn MetricProvider,
        model: &MetricTemplateModel,
    ) -> Result<QueryOutcome> {
        let outcome = provider.query(&self.render(model)?).await?;
        Ok(match (self.metric, outcome) {
            (BuiltinMetric::RequestDuration, QueryOutcome::Value(value)) => {
                QueryOutcome::Value(self.to_whole_millis(value))
            }
            (_, outcome) => outcome,
        })
    }

    /// Flagger converts with `time.Duration(int64(value))`: the fraction of a millisecond is dropped.
    fn to_whole_millis(self, value: f64) -> f64 {
        let millis = match self.provider.queries().duration_unit {
            DurationUnit::Milliseconds => value,
            DurationUnit::Seconds => value * 1000.0,
        };
        millis.trunc()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (house rule).
mod tests;
