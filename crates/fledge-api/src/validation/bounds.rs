//! Upper bounds on every duration, count and text of a manifest.
//!
//! No real manifest comes near these; they exist so that a typo (`2562047788015216h`) or a
//! hostile document is refused by validation with the field, the bound and the fix, instead
//! of overflowing arithmetic in the engine or the operator. docs/compatibility.md lists them.

use std::time::Duration;

use serde_json::Value;

use super::{JsonPath, Problem};
use crate::canary::{
    AutoscalerReference, CanaryAnalysis, CanaryMetric, CanaryService, CanaryWebhook,
    HttpMatchRequest,
};
use crate::{AlertProviderSpec, CanarySpec, GoDuration, MetricTemplateSpec};

const HOUR: Duration = Duration::from_secs(3600);

/// Longest `analysis.interval`: a rollout of a few steps would already take days.
pub const MAX_ANALYSIS_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// Longest `progressDeadlineSeconds` (7 days).
pub const MAX_PROGRESS_DEADLINE_SECONDS: i32 = 7 * 24 * 3600;
/// Most failed checks tolerated (`analysis.threshold`).
pub const MAX_THRESHOLD: i32 = 1000;
/// Most checks before promotion (`analysis.iterations`).
pub const MAX_ITERATIONS: i32 = 10_000;
/// Most entries of `stepWeights` (weights are distinct percentages, so 100 is every one).
pub const MAX_STEP_WEIGHTS: usize = 100;
/// Longest metric query window (`metrics[].interval`, 30 days).
pub const MAX_METRIC_INTERVAL: Duration = Duration::from_secs(30 * 24 * 3600);
/// Largest magnitude of a threshold bound; every float beyond is a typo or infinite.
pub const MAX_THRESHOLD_MAGNITUDE: f64 = 1e15;
/// Longest webhook timeout (`webhooks[].timeout`).
pub const MAX_WEBHOOK_TIMEOUT: Duration = HOUR;
/// Most retries of a webhook call (`webhooks[].retries`).
pub const MAX_WEBHOOK_RETRIES: i32 = 100;
/// Longest session-affinity cookie lifetime (400 days, the cap browsers apply, RFC 6265bis).
pub const MAX_COOKIE_MAX_AGE_SECONDS: i32 = 400 * 24 * 3600;
/// Longest route timeout (`service.timeout`, `backendTimeout`, `retries.perTryTimeout`,
/// `corsPolicy.maxAge`).
pub const MAX_ROUTE_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// Most retry attempts of a route (`service.retries.attempts`).
pub const MAX_ROUTE_RETRY_ATTEMPTS: i32 = 100;
/// Most replicas of the primary's autoscaler (`primaryScalerReplicas`).
pub const MAX_SCALER_REPLICAS: i32 = 100_000;
/// Most entries of a list of checks, alerts or match conditions.
pub const MAX_LIST_ENTRIES: usize = 100;
/// Longest name (a Kubernetes object name: 253 characters).
pub const MAX_NAME_LENGTH: usize = 253;
/// Longest URL (webhooks, metrics servers, providers, proxies).
pub const MAX_URL_LENGTH: usize = 8 * 1024;
/// Longest text of any other field (queries, metadata, header values): 64 KiB.
pub const MAX_TEXT_LENGTH: usize = 64 * 1024;

/// Collects the problems of one manifest.
#[derive(Default)]
struct Bounds {
    problems: Vec<Problem>,
}

impl Bounds {
    fn duration(&mut self, path: &JsonPath, value: Option<&GoDuration>, max: Duration) {
        if let Some(d) = value.filter(|d| d.as_duration() > max) {
            self.problems.push(Problem::new(
                path.clone(),
                format!(
                    "must be at most {}, got {d}; write a shorter duration",
                    GoDuration::from_duration(max)
                ),
            ));
        }
    }

    /// An upper bound on a number whose lower bound another rule checks.
    fn at_most(&mut self, path: &JsonPath, value: Option<i32>, max: i32, unit: &str) {
        if let Some(v) = value.filter(|v| *v > max) {
            self.problems.push(Problem::new(
                path.clone(),
                format!("must be at most {max} {unit}, got {v}"),
            ));
        }
    }

    fn between(&mut self, path: &JsonPath, value: Option<i32>, low: i32, max: i32, unit: &str) {
        if let Some(v) = value.filter(|v| !(low..=max).contains(v)) {
            self.problems.push(Problem::new(
                path.clone(),
                format!("must be between {low} and {max} {unit}, got {v}"),
            ));
        }
    }

    fn entries(&mut self, path: &JsonPath, len: usize, max: usize) {
        if len > max {
            self.problems.push(Problem::new(
                path.clone(),
                format!("has {len} entries, at most {max} are allowed; remove some"),
            ));
        }
    }

    fn text(&mut self, path: &JsonPath, value: Option<&str>, max: usize) {
        if let Some(text) = value.filter(|t| t.len() > max) {
            self.problems.push(Problem::new(
                path.clone(),
                format!(
                    "is {} bytes long, at most {max} are allowed; shorten it",
                    text.len()
                ),
            ));
        }
    }

    fn finite(&mut self, path: &JsonPath, value: Option<f64>) {
        if let Some(v) = value.filter(|v| !v.is_finite() || v.abs() > MAX_THRESHOLD_MAGNITUDE) {
            self.problems.push(Problem::new(
                path.clone(),
                format!(
                    "must be a finite number between -{MAX_THRESHOLD_MAGNITUDE:e} and {MAX_THRESHOLD_MAGNITUDE:e}, got {v:e}"
                ),
            ));
        }
    }
}

/// The bounds of a Canary's spec.
pub(super) fn canary(spec: &CanarySpec, path: &JsonPath) -> Vec<Problem> {
    let mut b = Bounds::default();
    b.text(
        &path.field("targetRef").field("name"),
        Some(&spec.target_ref.name),
        MAX_NAME_LENGTH,
    );
    b.text(
        &path.field("service").field("name"),
        spec.service.name.as_deref(),
        MAX_NAME_LENGTH,
    );
    b.text(
        &path.field("metricsServer"),
        spec.metrics_server.as_deref(),
        MAX_URL_LENGTH,
    );
    b.at_most(
        &path.field("progressDeadlineSeconds"),
        spec.progress_deadline_seconds,
        MAX_PROGRESS_DEADLINE_SECONDS,
        "seconds",
    );
    if let Some(autoscaler) = &spec.autoscaler_ref {
        scaler(&mut b, autoscaler, &path.field("autoscalerRef"));
    }
    service(&mut b, &spec.service, &path.field("service"));
    if let Some(analysis) = &spec.analysis {
        self::analysis(&mut b, analysis, &path.field("analysis"));
    }
    if let Some(analysis) = &spec.canary_analysis {
        self::analysis(&mut b, analysis, &path.field("canaryAnalysis"));
    }
    b.problems
}

fn scaler(b: &mut Bounds, autoscaler: &AutoscalerReference, path: &JsonPath) {
    let Some(replicas) = &autoscaler.primary_scaler_replicas else {
        return;
    };
    let path = path.field("primaryScalerReplicas");
    let (min, max) = (replicas.min_replicas, replicas.max_replicas);
    b.between(
        &path.field("minReplicas"),
        min,
        0,
        MAX_SCALER_REPLICAS,
        "replicas",
    );
    b.between(
        &path.field("maxReplicas"),
        max,
        1,
        MAX_SCALER_REPLICAS,
        "replicas",
    );
    if let (Some(min), Some(max)) = (min, max)
        && min > max
    {
        b.problems.push(Problem::new(
            path.field("maxReplicas"),
            format!("must be at least minReplicas ({min}), got {max}"),
        ));
    }
}

fn service(b: &mut Bounds, service: &CanaryService, path: &JsonPath) {
    b.duration(
        &path.field("timeout"),
        service.timeout.as_ref(),
        MAX_ROUTE_TIMEOUT,
    );
    b.duration(
        &path.field("backendTimeout"),
        service.backend_timeout.as_ref(),
        MAX_ROUTE_TIMEOUT,
    );
    if let Some(retries) = &service.retries {
        let at = path.field("retries");
        b.between(
            &at.field("attempts"),
            retries.attempts,
            0,
            MAX_ROUTE_RETRY_ATTEMPTS,
            "attempts",
        );
        b.duration(
            &at.field("perTryTimeout"),
            retries.per_try_timeout.as_ref(),
            MAX_ROUTE_TIMEOUT,
        );
    }
    if let Some(cors) = &service.cors_policy {
        b.duration(
            &path.field("corsPolicy").field("maxAge"),
            cors.max_age.as_ref(),
            MAX_ROUTE_TIMEOUT,
        );
    }
    for (index, parent) in service.gateway_refs.iter().enumerate() {
        b.between(
            &path.field("gatewayRefs").index(index).field("port"),
            parent.port,
            1,
            65535,
            "(a port)",
        );
    }
    for (index, mirror) in service.mirror.iter().enumerate() {
        let at = path.field("mirror").index(index);
        b.between(
            &at.field("percent"),
            mirror.percent,
            0,
            100,
            "(a percentage)",
        );
        if let Some(fraction) = &mirror.fraction {
            let denominator = fraction.denominator.unwrap_or(100);
            if denominator < 1 {
                b.problems.push(Problem::new(
                    at.field("fraction").field("denominator"),
                    format!("must be at least 1, got {denominator}"),
                ));
            }
            b.between(
                &at.field("fraction").field("numerator"),
                Some(fraction.numerator),
                0,
                denominator.max(0),
                "(at most the denominator)",
            );
        }
    }
    b.entries(&path.field("match"), service.match_.len(), MAX_LIST_ENTRIES);
    for (index, condition) in service.match_.iter().enumerate() {
        match_port(b, condition, &path.field("match").index(index));
    }
}

fn match_port(b: &mut Bounds, condition: &HttpMatchRequest, path: &JsonPath) {
    b.between(&path.field("port"), condition.port, 1, 65535, "(a port)");
}

fn analysis(b: &mut Bounds, analysis: &CanaryAnalysis, path: &JsonPath) {
    b.duration(
        &path.field("interval"),
        analysis.interval.as_ref(),
        MAX_ANALYSIS_INTERVAL,
    );
    b.at_most(
        &path.field("threshold"),
        analysis.threshold,
        MAX_THRESHOLD,
        "failed checks",
    );
    b.at_most(
        &path.field("iterations"),
        analysis.iterations,
        MAX_ITERATIONS,
        "iterations",
    );
    b.entries(
        &path.field("stepWeights"),
        analysis.step_weights.len(),
        MAX_STEP_WEIGHTS,
    );
    b.entries(
        &path.field("metrics"),
        analysis.metrics.len(),
        MAX_LIST_ENTRIES,
    );
    b.entries(
        &path.field("webhooks"),
        analysis.webhooks.len(),
        MAX_LIST_ENTRIES,
    );
    b.entries(
        &path.field("alerts"),
        analysis.alerts.len(),
        MAX_LIST_ENTRIES,
    );
    b.entries(
        &path.field("match"),
        analysis.match_.len(),
        MAX_LIST_ENTRIES,
    );
    for (index, condition) in analysis.match_.iter().enumerate() {
        match_port(b, condition, &path.field("match").index(index));
    }
    if let Some(affinity) = &analysis.session_affinity {
        b.at_most(
            &path.field("sessionAffinity").field("maxAge"),
            affinity.max_age,
            MAX_COOKIE_MAX_AGE_SECONDS,
            "seconds",
        );
    }
    for (index, metric) in analysis.metrics.iter().enumerate() {
        self::metric(b, metric, &path.field("metrics").index(index));
    }
    for (index, hook) in analysis.webhooks.iter().enumerate() {
        webhook(b, hook, &path.field("webhooks").index(index));
    }
    for (index, alert) in analysis.alerts.iter().enumerate() {
        let at = path.field("alerts").index(index);
        b.text(&at.field("name"), Some(&alert.name), MAX_NAME_LENGTH);
        b.text(
            &at.field("providerRef").field("name"),
            Some(&alert.provider_ref.name),
            MAX_NAME_LENGTH,
        );
    }
}

fn metric(b: &mut Bounds, metric: &CanaryMetric, path: &JsonPath) {
    b.text(&path.field("name"), Some(&metric.name), MAX_NAME_LENGTH);
    b.duration(
        &path.field("interval"),
        metric.interval.as_ref(),
        MAX_METRIC_INTERVAL,
    );
    b.finite(&path.field("threshold"), metric.threshold);
    if let Some(range) = &metric.threshold_range {
        let at = path.field("thresholdRange");
        b.finite(&at.field("min"), range.min);
        b.finite(&at.field("max"), range.max);
    }
    if let Some(template) = &metric.template_ref {
        b.text(
            &path.field("templateRef").field("name"),
            Some(&template.name),
            MAX_NAME_LENGTH,
        );
    }
}

fn webhook(b: &mut Bounds, hook: &CanaryWebhook, path: &JsonPath) {
    b.text(&path.field("name"), Some(&hook.name), MAX_NAME_LENGTH);
    b.text(&path.field("url"), Some(&hook.url), MAX_URL_LENGTH);
    b.duration(
        &path.field("timeout"),
        hook.timeout.as_ref(),
        MAX_WEBHOOK_TIMEOUT,
    );
    b.at_most(
        &path.field("retries"),
        hook.retries,
        MAX_WEBHOOK_RETRIES,
        "retries",
    );
}

/// The bounds of a MetricTemplate's spec.
pub(super) fn metric_template(spec: &MetricTemplateSpec, path: &JsonPath) -> Vec<Problem> {
    let mut b = Bounds::default();
    b.text(
        &path.field("provider").field("address"),
        spec.provider.address.as_deref(),
        MAX_URL_LENGTH,
    );
    b.text(&path.field("query"), Some(&spec.query), MAX_TEXT_LENGTH);
    b.problems
}

/// The bounds of an AlertProvider's spec.
pub(super) fn alert_provider(spec: &AlertProviderSpec, path: &JsonPath) -> Vec<Problem> {
    let mut b = Bounds::default();
    b.text(
        &path.field("address"),
        spec.address.as_deref(),
        MAX_URL_LENGTH,
    );
    b.text(&path.field("proxy"), spec.proxy.as_deref(), MAX_URL_LENGTH);
    b.problems
}

/// `metadata.name`: every resource needs one, and it is a Kubernetes object name.
pub(super) fn metadata_name(document: &Value) -> Option<Problem> {
    let path = JsonPath::root().field("metadata").field("name");
    let message = match document.pointer("/metadata/name") {
        None | Some(Value::Null) => "required field is missing; name the resource".to_owned(),
        Some(Value::String(name)) if name.trim().is_empty() => {
            "is empty; name the resource".to_owned()
        }
        Some(Value::String(name)) if name.len() > MAX_NAME_LENGTH => format!(
            "is {} bytes long, at most {MAX_NAME_LENGTH} are allowed; shorten it",
            name.len()
        ),
        Some(Value::String(_)) => return None,
        Some(other) => format!("must be a string, got {other}"),
    };
    Some(Problem::new(path, message))
}

/// Every text of a document longer than [`MAX_TEXT_LENGTH`], wherever it is (labels,
/// metadata, header values, keys): one problem per text.
pub(super) fn long_texts(value: &Value, path: &JsonPath, problems: &mut Vec<Problem>) {
    let mut b = Bounds::default();
    walk(value, path, &mut b);
    problems.append(&mut b.problems);
}

fn walk(value: &Value, path: &JsonPath, b: &mut Bounds) {
    match value {
        Value::String(text) => b.text(path, Some(text), MAX_TEXT_LENGTH),
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                walk(item, &path.index(index), b);
            }
        }
        Value::Object(fields) => {
            for (key, item) in fields {
                let at = if key.len() > MAX_TEXT_LENGTH {
                    b.problems.push(Problem::new(
                        path.clone(),
                        format!(
                            "has a key {} bytes long, at most {MAX_TEXT_LENGTH} are allowed; shorten it",
                            key.len()
                        ),
                    ));
                    path.field("…")
                } else {
                    path.field(key)
                };
                walk(item, &at, b);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}
