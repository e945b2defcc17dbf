//! Running the metric checks a tick needs: builtin queries of the canary's provider,
//! MetricTemplates (with their `secretRef` read from the template's namespace) and inline
//! queries, each answering a value, *no data* or an error, kept apart for the judges.
//!
//! A template's credentials go only to an address the template or the operator chose: a
//! template with a `secretRef` or headers and no address queries `-metrics-server`, never
//! the Canary's `spec.metricsServer` (see docs/metrics.md).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use fledge_api::Canary;
use fledge_api::canary::CanaryMetric;
use fledge_engine::MetricResult;
use fledge_metrics::{
    BuiltinMetric, DEFAULT_METRIC_INTERVAL_DURATION, MetricProvider, MetricTemplateModel,
    PrometheusProvider, ProviderSettings, QueryOutcome, RoutingProvider, provider_for,
    render_query,
};

use crate::controller::Context;
use crate::controller::check_budget::TickBudget;

/// The results of the metrics named in `names` (`spec.analysis.metrics[].name`), queried
/// one after the other within `budget` (a query still running when it runs out, and the
/// ones after it, are errors naming the budget).
pub(crate) async fn run_metric_checks(
    ctx: &Context,
    canary: &Canary,
    names: &[String],
    budget: &TickBudget,
) -> BTreeMap<String, MetricResult> {
    let mut results = BTreeMap::new();
    for name in names {
        let metric = canary
            .analysis()
            .and_then(|analysis| analysis.metrics.iter().find(|metric| &metric.name == name));
        let result = match metric {
            Some(metric) => match budget.run(query(ctx, canary, metric)).await {
                Ok(Ok(QueryOutcome::Value(value))) => MetricResult::Value(value),
                Ok(Ok(QueryOutcome::NoValues)) => MetricResult::NoData,
                Ok(Err(reason)) => MetricResult::Error(reason),
                Err(exceeded) => MetricResult::Error(exceeded.to_string()),
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

/// The server a Prometheus MetricTemplate without an address queries (other provider types
/// never query it: they use their API's public address or need one, see
/// `ProviderSettings::from_template_provider`). A template that carries
/// credentials (a `secretRef`, or headers, which hold API keys) uses `-metrics-server`
/// only: the Canary's `spec.metricsServer` is chosen by whoever writes the Canary, who
/// must not be able to send the template's Secret to an address of their choosing. Other
/// templates follow Flagger: the canary's server, else `-metrics-server`.
fn template_default_server<'a>(
    ctx: &'a Context,
    canary: &'a Canary,
    provider: &fledge_api::metric_template::MetricTemplateProvider,
) -> &'a str {
    if provider.secret_ref.is_some() || !provider.headers.is_empty() {
        &ctx.metrics_server
    } else {
        metrics_server(ctx, canary)
    }
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
            Some(template_default_server(
                ctx,
                canary,
                &template.spec.provider,
            )),
        )
        .map_err(|e| e.to_string())?
        // Datadog, New Relic and Dynatrace query a window derived from the interval.
        .with_metric_interval(metric.interval.as_ref().map_or(
            DEFAULT_METRIC_INTERVAL_DURATION,
            fledge_api::GoDuration::as_duration,
        ));
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

/// How many metrics servers' clients the pool keeps; the least recently used goes first.
pub const MAX_POOLED_CLIENTS: usize = 64;

/// One Prometheus client per metrics server, shared by every canary's builtin and inline
/// queries so that connections are reused (a new client per query is ten times slower).
/// At most [`MAX_POOLED_CLIENTS`] are kept: Canaries naming ever new servers cannot grow
/// the operator's memory.
#[derive(Debug, Default)]
pub struct PrometheusPool {
    clients: Mutex<PooledClients>,
}

#[derive(Debug, Default)]
struct PooledClients {
    /// Each server's client and when it was last used (a use counter).
    by_server: HashMap<String, (Arc<PrometheusProvider>, u64)>,
    uses: u64,
}

impl PrometheusPool {
    /// The client of `server`, made on first use.
    ///
    /// # Errors
    /// The provider's error when `server` is not a usable URL.
    pub fn get(&self, server: &str) -> fledge_metrics::Result<Arc<PrometheusProvider>> {
        if let Some(client) = self.lookup(server) {
            return Ok(client);
        }
        // Built outside the lock: loading TLS roots takes milliseconds, and other canaries'
        // ticks must not wait for it.
        let client = Arc::new(PrometheusProvider::new(ProviderSettings::new(server))?);
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        clients.uses += 1;
        let now = clients.uses;
        if let Some((raced, last_used)) = clients.by_server.get_mut(server) {
            *last_used = now;
            return Ok(Arc::clone(raced));
        }
        if clients.by_server.len() >= MAX_POOLED_CLIENTS {
            let least_recent = clients
                .by_server
                .iter()
                .min_by_key(|(_, (_, last_used))| *last_used)
                .map(|(server, _)| server.clone());
            if let Some(least_recent) = least_recent {
                clients.by_server.remove(&least_recent);
            }
        }
        clients
            .by_server
            .insert(server.to_owned(), (Arc::clone(&client), now));
        Ok(client)
    }

    /// The pooled client of `server`, marked as used now.
    fn lookup(&self, server: &str) -> Option<Arc<PrometheusProvider>> {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        clients.uses += 1;
        let now = clients.uses;
        let (client, last_used) = clients.by_server.get_mut(server)?;
        *last_used = now;
        Some(Arc::clone(client))
    }

    /// How many clients the pool holds.
    pub fn len(&self) -> usize {
        self.clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .by_server
            .len()
    }

    /// Whether the pool holds no client.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the pool holds a client for `server`.
    pub fn holds(&self, server: &str) -> bool {
        self.clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .by_server
            .contains_key(server)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_keeps_the_most_recently_used_servers_only() {
        let pool = PrometheusPool::default();
        let server = |n: usize| format!("http://prometheus-{n}.monitoring:9090");
        for n in 0..MAX_POOLED_CLIENTS {
            assert!(pool.get(&server(n)).is_ok());
        }
        // Server 0 is used again, so server 1 is now the least recently used.
        assert!(pool.get(&server(0)).is_ok());
        for n in MAX_POOLED_CLIENTS..MAX_POOLED_CLIENTS * 4 {
            assert!(pool.get(&server(n)).is_ok());
            assert!(pool.len() <= MAX_POOLED_CLIENTS);
            if n == MAX_POOLED_CLIENTS {
                assert!(pool.holds(&server(0)) && !pool.holds(&server(1)));
            }
        }
        assert_eq!(pool.len(), MAX_POOLED_CLIENTS);
        assert!(pool.holds(&server(MAX_POOLED_CLIENTS * 4 - 1)));
    }
}
