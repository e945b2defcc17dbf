//! Running the metric checks a tick needs: builtin queries of the canary's provider,
//! MetricTemplates (with their `secretRef` read from the template's namespace) and inline
//! queries, each answering a value, *no data* or an error, kept apart for the judges.

use std::collections::BTreeMap;

use fledge_api::Canary;
use fledge_api::canary::CanaryMetric;
use fledge_engine::MetricResult;
use fledge_metrics::{
    BuiltinMetric, MetricProvider, MetricTemplateModel, PrometheusProvider, ProviderSettings,
    QueryOutcome, RoutingProvider, provider_for, render_query,
};

use crate::controller::Context;

/// The results of the metrics named in `names` (`spec.analysis.metrics[].name`).
pub(crate) async fn run_metric_checks(
    ctx: &Context,
    canary: &Canary,
    names: &[String],
) -> BTreeMap<String, MetricResult> {
    let mut results = BTreeMap::new();
    for name in names {
        let metric = canary
            .analysis()
            .and_then(|analysis| analysis.metrics.iter().find(|metric| &metric.name == name));
        let result = match metric {
            Some(metric) => match query(ctx, canary, metric).await {
                Ok(QueryOutcome::Value(value)) => MetricResult::Value(value),
                Ok(QueryOutcome::NoValues) => MetricResult::NoData,
                Err(reason) => MetricResult::Error(reason),
            },
            None => MetricResult::Error(format!(
                "spec.analysis.metrics has no metric named {name:?}"
            )),
        };
        tracing::debug!(metric = %name, ?result, "metric checked");
        if let (Some(metric), MetricResult::Value(value)) = (metric, &result) {
            ctx.telemetry
                .observe_metric(canary, name, analysis_value(metric, *value));
        }
        results.insert(name.clone(), result);
    }
    results
}

/// The value `flagger_canary_metric_analysis` shows: the builtin `request-duration` in
/// seconds (as Flagger records it; its threshold is in milliseconds), others as queried.
fn analysis_value(metric: &CanaryMetric, value: f64) -> f64 {
    let builtin = metric
        .template_ref
        .is_none()
        .then(|| BuiltinMetric::from_name(&metric.name));
    if builtin.flatten() == Some(BuiltinMetric::RequestDuration) {
        value / 1000.0
    } else {
        value
    }
}

/// The metrics server of builtin and inline queries: the canary's, else `-metrics-server`.
fn metrics_server<'a>(ctx: &'a Context, canary: &'a Canary) -> &'a str {
    canary
        .spec
        .metrics_server
        .as_deref()
        .filter(|server| !server.is_empty())
        .unwrap_or(&ctx.metrics_server)
}

async fn query(
    ctx: &Context,
    canary: &Canary,
    metric: &CanaryMetric,
) -> Result<QueryOutcome, String> {
    let model = MetricTemplateModel::for_canary(canary, metric);
    if let Some(reference) = &metric.template_ref {
        let namespace = reference
            .namespace
            .as_deref()
            .or(canary.metadata.namespace.as_deref())
            .unwrap_or_default();
        let caches = &ctx.caches;
        let template = caches
            .get_or_read(&caches.metric_templates, &ctx.client, namespace, &reference.name)
            .await
            .map_err(|e| format!("MetricTemplate {}.{namespace}: {e}", reference.name))?
            .ok_or_else(|| {
                format!(
                    "MetricTemplate {}.{namespace} not found: create it or fix spec.analysis.metrics[{:?}].templateRef",
                    reference.name, metric.name
                )
            })?;
        let secret = match &template.spec.provider.secret_ref {
            Some(secret_ref) => Some(
                caches
                    .secret_data(namespace, &secret_ref.name)
                    .await
                    .map_err(|e| {
                        format!(
                            "Secret {}.{namespace} of MetricTemplate {}: {e}",
                            secret_ref.name, reference.name
                        )
                    })?
                    .ok_or_else(|| {
                        format!(
                            "Secret {}.{namespace} of MetricTemplate {} not found",
                            secret_ref.name, reference.name
                        )
                    })?,
            ),
            None => None,
        };
        let settings = ProviderSettings::from_template_provider(
            &template.spec.provider,
            secret.as_ref(),
            Some(metrics_server(ctx, canary)),
        )
        .map_err(|e| e.to_string())?;
        let provider =
            provider_for(template.spec.provider.type_, settings).map_err(|e| e.to_string())?;
        let query = render_query(&template.spec.query, &model).map_err(|e| e.to_string())?;
        return provider.query(&query).await.map_err(|e| e.to_string());
    }
    let prometheus = ctx
        .prometheus
        .get(metrics_server(ctx, canary))
        .map_err(|e| e.to_string())?;
    if let Some(builtin) = BuiltinMetric::from_name(&metric.name) {
        let routing = RoutingProvider::for_canary(&ctx.default_provider, canary);
        return routing
            .builtin(builtin)
            .run(prometheus.as_ref(), &model)
            .await
            .map_err(|e| e.to_string());
    }
    match &metric.query {
        Some(inline) => {
            let query = render_query(inline, &model).map_err(|e| e.to_string())?;
            prometheus.query(&query).await.map_err(|e| e.to_string())
        }
        None => Err(format!(
            "metric {:?} is neither builtin nor has a templateRef or query",
            metric.name
        )),
    }
}

/// One Prometheus client per metrics server, shared by every canary's builtin and inline
/// queries so that connections are reused (a new client per query is ten times slower).
#[derive(Debug, Default)]
pub struct PrometheusPool {
    clients:
        std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<PrometheusProvider>>>,
}

impl PrometheusPool {
    /// The client of `server`, made on first use.
    ///
    /// # Errors
    /// The provider's error when `server` is not a usable URL.
    pub fn get(&self, server: &str) -> fledge_metrics::Result<std::sync::Arc<PrometheusProvider>> {
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(client) = clients.get(server) {
            return Ok(std::sync::Arc::clone(client));
        }
        let client = std::sync::Arc::new(PrometheusProvider::new(ProviderSettings::new(server))?);
        clients.insert(server.to_owned(), std::sync::Arc::clone(&client));
        Ok(client)
    }
}
