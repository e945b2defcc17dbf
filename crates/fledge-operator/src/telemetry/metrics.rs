//! The metrics registry: Flagger's `flagger_*` metrics, with the names, labels and values of
//! Flagger's `pkg/metrics/recorder.go`, and Fledge's own `fledge_kube_requests_total`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use fledge_api::{Canary, CanaryPhase, CanaryStatus};
use kube::runtime::reflector::Store;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Prometheus' default histogram buckets (Go client's `prometheus.DefBuckets`), which
/// Flagger uses for `flagger_canary_duration_seconds`.
const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Flagger's analysis status label: the analysis ran, or `skipAnalysis` skipped it.
const ANALYSIS_COMPLETED: &str = "completed";
const ANALYSIS_SKIPPED: &str = "skipped";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InfoLabels {
    version: String,
    mesh_provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NamespaceLabels {
    namespace: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CanaryLabels {
    name: String,
    namespace: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkloadLabels {
    workload: String,
    namespace: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MetricLabels {
    name: String,
    namespace: String,
    metric: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    name: String,
    namespace: String,
    deployment_strategy: String,
    analysis_status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    verb: String,
    resource: String,
}

type DurationFamily = Family<CanaryLabels, Histogram, fn() -> Histogram>;

/// Whether `/readyz` answers 200.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// Connecting, or the watch caches are still loading: 503.
    Starting,
    /// Waiting to be elected leader, ready to take over: 200.
    Standby,
    /// The controller runs on synced watch caches: 200.
    Synced,
    /// A Flagger holds its leader Lease: Fledge does not act, 503 with the reason.
    WaitingForFlagger,
}

impl Readiness {
    /// Whether `/readyz` answers 200.
    pub fn is_ready(self) -> bool {
        !matches!(self, Self::Starting | Self::WaitingForFlagger)
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Standby => "standby",
            Self::Synced => "synced",
            Self::WaitingForFlagger => "waiting for Flagger to stop",
        }
    }
}

/// The operator's metrics and readiness, shared by the controller, the API client's layers
/// and the HTTP endpoint.
pub struct Telemetry {
    registry: Registry,
    canary_total: Family<NamespaceLabels, Gauge>,
    status: Family<CanaryLabels, Gauge>,
    weight: Family<WorkloadLabels, Gauge>,
    duration: DurationFamily,
    analysis: Family<MetricLabels, Gauge<f64, AtomicU64>>,
    successes: Family<OutcomeLabels, Counter>,
    failures: Family<OutcomeLabels, Counter>,
    kube_requests: Family<RequestLabels, Counter>,
    /// The metric names of `analysis` each canary has a series of, to remove them with it.
    analysed: Mutex<HashMap<CanaryLabels, HashSet<String>>>,
    readiness: Mutex<Readiness>,
    /// Why `/readyz` says what it says, when there is more to say than the state.
    readiness_reason: Mutex<String>,
    canaries: OnceLock<Store<Canary>>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("readiness", &self.readiness())
            .finish_non_exhaustive()
    }
}

impl Telemetry {
    /// A registry with `flagger_info{version, mesh_provider} 1` set, as Flagger sets it at
    /// start-up.
    pub fn new(version: &str, mesh_provider: &str) -> Self {
        let telemetry = Self {
            registry: Registry::default(),
            canary_total: Family::default(),
            status: Family::default(),
            weight: Family::default(),
            duration: Family::new_with_constructor(|| Histogram::new(DEFAULT_BUCKETS)),
            analysis: Family::default(),
            successes: Family::default(),
            failures: Family::default(),
            kube_requests: Family::default(),
            analysed: Mutex::default(),
            readiness: Mutex::new(Readiness::Starting),
            readiness_reason: Mutex::new(String::new()),
            canaries: OnceLock::new(),
        };
        let mut registry = Registry::default();
        let flagger = registry.sub_registry_with_prefix("flagger");
        let info = Family::<InfoLabels, Gauge>::default();
        info.get_or_create(&InfoLabels {
            version: version.to_owned(),
            mesh_provider: mesh_provider.to_owned(),
        })
        .set(1);
        flagger.register(
            "info",
            "Flagger version and mesh provider information",
            info,
        );
        flagger.register(
            "canary_duration_seconds",
            "Seconds spent performing canary analysis.",
            telemetry.duration.clone(),
        );
        flagger.register(
            "canary_total",
            "Total number of canary object",
            telemetry.canary_total.clone(),
        );
        flagger.register(
            "canary_status",
            "Last canary analysis result",
            telemetry.status.clone(),
        );
        flagger.register(
            "canary_weight",
            "The virtual service destination weight current value",
            telemetry.weight.clone(),
        );
        flagger.register(
            "canary_metric_analysis",
            "Last canary analysis result per metric",
            telemetry.analysis.clone(),
        );
        // The OpenMetrics encoder appends `_total` to counters.
        flagger.register(
            "canary_successes",
            "Total number of canary successes",
            telemetry.successes.clone(),
        );
        flagger.register(
            "canary_failures",
            "Total number of canary failures",
            telemetry.failures.clone(),
        );
        registry.sub_registry_with_prefix("fledge").register(
            "kube_requests",
            "Requests fledge-operator sent to the Kubernetes API server, by verb and resource (Fledge's own metric, not Flagger's)",
            telemetry.kube_requests.clone(),
        );
        // The families share their series with their registered clones.
        Self {
            registry,
            ..telemetry
        }
    }

    /// The metrics in the OpenMetrics text format (which Prometheus scrapes), ending with
    /// `# EOF`.
    pub fn encode(&self) -> String {
        self.refresh_canary_total();
        let mut text = String::new();
        // Writing to a String cannot fail; the encoder only fails on its writer's errors.
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::warn!(%error, "cannot encode the metrics");
        }
        text
    }

    /// Whether `/readyz` answers 200.
    pub fn readiness(&self) -> Readiness {
        self.readiness
            .lock()
            .map_or(Readiness::Starting, |readiness| *readiness)
    }

    /// Sets what `/readyz` answers.
    pub fn set_readiness(&self, readiness: Readiness) {
        self.set_readiness_because(readiness, String::new());
    }

    /// Sets what `/readyz` answers, and why (said after the state in its body).
    pub fn set_readiness_because(&self, readiness: Readiness, reason: String) {
        if let Ok(mut current) = self.readiness.lock() {
            *current = readiness;
        }
        if let Ok(mut current) = self.readiness_reason.lock() {
            *current = reason;
        }
    }

    /// What `/readyz` says in its body: the state, and the reason when there is one.
    pub fn readiness_text(&self) -> String {
        let state = self.readiness().as_str();
        match self.readiness_reason.lock() {
            Ok(reason) if !reason.is_empty() => format!("{state}: {reason}"),
            _ => state.to_owned(),
        }
    }

    /// Counts canaries per namespace from the controller's Canary cache at each scrape
    /// (`flagger_canary_total`), as Flagger counts its informer's.
    pub fn count_canaries(&self, store: Store<Canary>) {
        let _ = self.canaries.set(store);
    }

    fn refresh_canary_total(&self) {
        let Some(store) = self.canaries.get() else {
            return;
        };
        let mut totals: BTreeMap<String, i64> = BTreeMap::new();
        for canary in store.state() {
            *totals
                .entry(canary.metadata.namespace.clone().unwrap_or_default())
                .or_default() += 1;
        }
        // Namespaces whose last canary went away read 0 rather than their last count.
        self.canary_total.clear();
        for (namespace, total) in totals {
            self.canary_total
                .get_or_create(&NamespaceLabels { namespace })
                .set(total);
        }
    }

    /// Records what one tick of `canary` did, the way Flagger's scheduler does: the status
    /// (0 progressing, 2 failed, 1 otherwise), the primary and canary weights once
    /// initialized, a success or failure when the rollout ends, and the time an analysis
    /// tick took.
    pub fn observe_tick(
        &self,
        canary: &Canary,
        before: &CanaryStatus,
        after: &CanaryStatus,
        elapsed: Duration,
    ) {
        let name = canary.spec.target_ref.name.clone();
        let namespace = canary.metadata.namespace.clone().unwrap_or_default();
        let labels = CanaryLabels {
            name: name.clone(),
            namespace: namespace.clone(),
        };
        self.status
            .get_or_create(&labels)
            .set(status_value(after.phase));
        if after.phase != CanaryPhase::Initializing {
            let canary_weight = i64::from(after.canary_weight.clamp(0, 100));
            self.weight
                .get_or_create(&WorkloadLabels {
                    workload: format!("{name}-primary"),
                    namespace: namespace.clone(),
                })
                .set(100 - canary_weight);
            self.weight
                .get_or_create(&WorkloadLabels {
                    workload: name.clone(),
                    namespace: namespace.clone(),
                })
                .set(canary_weight);
        }
        if is_analysis(before.phase) {
            self.duration
                .get_or_create(&labels)
                .observe(elapsed.as_secs_f64());
        }
        let outcome = |analysis_status: &str| OutcomeLabels {
            name: name.clone(),
            namespace: namespace.clone(),
            deployment_strategy: deployment_strategy(canary).to_owned(),
            analysis_status: analysis_status.to_owned(),
        };
        if after.phase == CanaryPhase::Succeeded && before.phase != CanaryPhase::Succeeded {
            let status = if canary.spec.skip_analysis {
                ANALYSIS_SKIPPED
            } else {
                ANALYSIS_COMPLETED
            };
            self.successes.get_or_create(&outcome(status)).inc();
        }
        if after.phase == CanaryPhase::Failed && before.phase != CanaryPhase::Failed {
            self.failures
                .get_or_create(&outcome(ANALYSIS_COMPLETED))
                .inc();
        }
    }

    /// Records the last value of one of `canary`'s metrics (`flagger_canary_metric_analysis`).
    pub fn observe_metric(&self, canary: &Canary, metric: &str, value: f64) {
        let labels = CanaryLabels {
            name: canary.spec.target_ref.name.clone(),
            namespace: canary.metadata.namespace.clone().unwrap_or_default(),
        };
        self.analysis
            .get_or_create(&MetricLabels {
                name: labels.name.clone(),
                namespace: labels.namespace.clone(),
                metric: metric.to_owned(),
            })
            .set(value);
        self.analysed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(labels)
            .or_default()
            .insert(metric.to_owned());
    }

    /// Removes every series of a deleted canary whose target is `namespace/target`: its
    /// status, weights, analysis durations, metric values and outcome counts, so that
    /// `/metrics` does not grow with canaries that come and go.
    pub fn forget_canary(&self, namespace: &str, target: &str) {
        let labels = CanaryLabels {
            name: target.to_owned(),
            namespace: namespace.to_owned(),
        };
        self.status.remove(&labels);
        self.duration.remove(&labels);
        for workload in [format!("{target}-primary"), target.to_owned()] {
            self.weight.remove(&WorkloadLabels {
                workload,
                namespace: namespace.to_owned(),
            });
        }
        let metrics = self
            .analysed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&labels)
            .unwrap_or_default();
        for metric in metrics {
            self.analysis.remove(&MetricLabels {
                name: target.to_owned(),
                namespace: namespace.to_owned(),
                metric,
            });
        }
        for strategy in ["canary", "blue-green", "ab-testing"] {
            for analysis_status in [ANALYSIS_COMPLETED, ANALYSIS_SKIPPED] {
                let outcome = OutcomeLabels {
                    name: target.to_owned(),
                    namespace: namespace.to_owned(),
                    deployment_strategy: strategy.to_owned(),
                    analysis_status: analysis_status.to_owned(),
                };
                self.successes.remove(&outcome);
                self.failures.remove(&outcome);
            }
        }
    }

    /// Counts one request to the API server (`fledge_kube_requests_total`).
    pub fn count_kube_request(&self, verb: &str, resource: &str) {
        self.kube_requests
            .get_or_create(&RequestLabels {
                verb: verb.to_owned(),
                resource: resource.to_owned(),
            })
            .inc();
    }

    /// How many requests with `verb` on `resource` were sent so far.
    pub fn kube_requests(&self, verb: &str, resource: &str) -> u64 {
        self.kube_requests
            .get(&RequestLabels {
                verb: verb.to_owned(),
                resource: resource.to_owned(),
            })
            .map_or(0, |counter| counter.get())
    }
}

/// Flagger's `SetStatus`: 0 while progressing, 2 once failed, 1 for every other phase.
fn status_value(phase: CanaryPhase) -> i64 {
    match phase {
        CanaryPhase::Progressing => 0,
        CanaryPhase::Failed => 2,
        _ => 1,
    }
}

/// Ticks that run the analysis, whose duration Flagger records.
fn is_analysis(phase: CanaryPhase) -> bool {
    matches!(
        phase,
        CanaryPhase::Progressing
            | CanaryPhase::WaitingPromotion
            | CanaryPhase::Promoting
            | CanaryPhase::Finalising
    )
}

/// Flagger's `Canary.DeploymentStrategy()`, the `deployment_strategy` label: `ab-testing`
/// with `match` and `iterations`, `blue-green` with `iterations` alone, else `canary`
/// (whatever the provider).
fn deployment_strategy(canary: &Canary) -> &'static str {
    let Some(analysis) = canary.analysis() else {
        return "canary";
    };
    let iterations = analysis.iterations.unwrap_or(0) > 0;
    if iterations && !analysis.match_.is_empty() {
        "ab-testing"
    } else if iterations {
        "blue-green"
    } else {
        "canary"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary(analysis: &str) -> Canary {
        fledge_api::yaml::from_str(&format!(
            "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {{ name: podinfo-canary, namespace: test }}\nspec:\n  \
             targetRef: {{ apiVersion: apps/v1, kind: Deployment, name: podinfo }}\n  service: {{ port: 9898 }}\n  analysis: {analysis}\n"
        ))
        .expect("a valid Canary")
    }

    fn status(phase: CanaryPhase, canary_weight: i32) -> CanaryStatus {
        CanaryStatus {
            phase,
            canary_weight,
            ..CanaryStatus::default()
        }
    }

    fn lines(telemetry: &Telemetry, prefix: &str) -> Vec<String> {
        telemetry
            .encode()
            .lines()
            .filter(|line| line.starts_with(prefix))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn info_is_set_at_start_with_flaggers_names() {
        let telemetry = Telemetry::new("0.1.0", "kubernetes");
        let text = telemetry.encode();
        assert!(
            text.contains("flagger_info{version=\"0.1.0\",mesh_provider=\"kubernetes\"} 1"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn a_tick_sets_status_and_both_weights_labelled_by_the_target() {
        let telemetry = Telemetry::new("0.1.0", "istio");
        let podinfo = canary("{ interval: 10s, threshold: 2, maxWeight: 50, stepWeight: 10 }");
        telemetry.observe_tick(
            &podinfo,
            &status(CanaryPhase::Initialized, 0),
            &status(CanaryPhase::Progressing, 20),
            Duration::from_millis(30),
        );
        assert_eq!(
            lines(&telemetry, "flagger_canary_status{"),
            ["flagger_canary_status{name=\"podinfo\",namespace=\"test\"} 0"]
        );
        let mut weights = lines(&telemetry, "flagger_canary_weight{");
        weights.sort();
        assert_eq!(
            weights,
            [
                "flagger_canary_weight{workload=\"podinfo\",namespace=\"test\"} 20",
                "flagger_canary_weight{workload=\"podinfo-primary\",namespace=\"test\"} 80",
            ]
        );
        assert!(
            lines(&telemetry, "flagger_canary_duration_seconds_count").is_empty(),
            "only analysis ticks are timed"
        );
        telemetry.observe_tick(
            &podinfo,
            &status(CanaryPhase::Progressing, 20),
            &status(CanaryPhase::Failed, 0),
            Duration::from_millis(30),
        );
        assert_eq!(
            lines(&telemetry, "flagger_canary_status{"),
            ["flagger_canary_status{name=\"podinfo\",namespace=\"test\"} 2"]
        );
        assert_eq!(
            lines(&telemetry, "flagger_canary_duration_seconds_count"),
            ["flagger_canary_duration_seconds_count{name=\"podinfo\",namespace=\"test\"} 1"]
        );
        assert_eq!(
            lines(&telemetry, "flagger_canary_failures_total"),
            [
                "flagger_canary_failures_total{name=\"podinfo\",namespace=\"test\",deployment_strategy=\"canary\",analysis_status=\"completed\"} 1"
            ]
        );
    }

    #[test]
    fn an_initializing_canary_has_a_status_but_no_weights_yet() {
        let telemetry = Telemetry::new("0.1.0", "istio");
        telemetry.observe_tick(
            &canary("{ interval: 10s, threshold: 2, iterations: 2 }"),
            &CanaryStatus::default(),
            &status(CanaryPhase::Initializing, 0),
            Duration::ZERO,
        );
        assert_eq!(
            lines(&telemetry, "flagger_canary_status{"),
            ["flagger_canary_status{name=\"podinfo\",namespace=\"test\"} 1"]
        );
        assert!(lines(&telemetry, "flagger_canary_weight{").is_empty());
    }

    #[test]
    fn a_success_counts_once_with_flaggers_strategy_and_analysis_status() {
        let telemetry = Telemetry::new("0.1.0", "istio");
        let blue_green = canary("{ interval: 10s, threshold: 2, iterations: 2 }");
        let finalising = status(CanaryPhase::Finalising, 0);
        let succeeded = status(CanaryPhase::Succeeded, 0);
        telemetry.observe_tick(&blue_green, &finalising, &succeeded, Duration::ZERO);
        telemetry.observe_tick(&blue_green, &succeeded, &succeeded, Duration::ZERO);
        let mut skipped = canary(
            "{ interval: 10s, threshold: 2, iterations: 2, match: [{ headers: { x-canary: { exact: insider } } }] }",
        );
        skipped.spec.skip_analysis = true;
        telemetry.observe_tick(&skipped, &finalising, &succeeded, Duration::ZERO);
        let mut successes = lines(&telemetry, "flagger_canary_successes_total");
        successes.sort();
        assert_eq!(
            successes,
            [
                "flagger_canary_successes_total{name=\"podinfo\",namespace=\"test\",deployment_strategy=\"ab-testing\",analysis_status=\"skipped\"} 1",
                "flagger_canary_successes_total{name=\"podinfo\",namespace=\"test\",deployment_strategy=\"blue-green\",analysis_status=\"completed\"} 1",
            ]
        );
    }

    #[test]
    fn metric_values_and_api_requests_are_recorded() {
        let telemetry = Telemetry::new("0.1.0", "istio");
        telemetry.observe_metric(&canary("{ interval: 10s }"), "request-success-rate", 99.5);
        assert_eq!(
            lines(&telemetry, "flagger_canary_metric_analysis{"),
            [
                "flagger_canary_metric_analysis{name=\"podinfo\",namespace=\"test\",metric=\"request-success-rate\"} 99.5"
            ]
        );
        telemetry.count_kube_request("patch", "canaries/status");
        telemetry.count_kube_request("patch", "canaries/status");
        assert_eq!(telemetry.kube_requests("patch", "canaries/status"), 2);
        assert_eq!(telemetry.kube_requests("get", "canaries"), 0);
        assert_eq!(
            lines(&telemetry, "fledge_kube_requests_total"),
            ["fledge_kube_requests_total{verb=\"patch\",resource=\"canaries/status\"} 2"]
        );
    }

    #[test]
    fn readiness_starts_unready() {
        let telemetry = Telemetry::new("0.1.0", "istio");
        assert!(!telemetry.readiness().is_ready());
        telemetry.set_readiness(Readiness::Standby);
        assert!(telemetry.readiness().is_ready());
        assert_eq!(telemetry.readiness_text(), "standby");
    }

    #[test]
    fn waiting_for_flagger_is_unready_and_says_why() {
        let telemetry = Telemetry::new("0.1.0", "istio");
        telemetry.set_readiness_because(
            Readiness::WaitingForFlagger,
            "Flagger holds its leader-election Lease".to_owned(),
        );
        assert!(!telemetry.readiness().is_ready());
        assert_eq!(
            telemetry.readiness_text(),
            "waiting for Flagger to stop: Flagger holds its leader-election Lease"
        );
        telemetry.set_readiness(Readiness::Synced);
        assert_eq!(
            telemetry.readiness_text(),
            "synced",
            "the reason goes with its state"
        );
    }

    #[test]
    fn a_deleted_canary_leaves_no_series_behind() {
        let telemetry = Telemetry::new("0.1.0", "kubernetes");
        let kept = canary("{ interval: 1m, threshold: 5, iterations: 5 }");
        let mut gone = kept.clone();
        gone.spec.target_ref.name = "backend".to_owned();
        for c in [&kept, &gone] {
            telemetry.observe_tick(
                c,
                &status(CanaryPhase::Progressing, 10),
                &status(CanaryPhase::Failed, 0),
                Duration::from_millis(5),
            );
            telemetry.observe_metric(c, "request-success-rate", 99.0);
        }
        assert!(telemetry.encode().contains("name=\"backend\""));

        telemetry.forget_canary("test", "backend");

        let text = telemetry.encode();
        assert!(
            !text.contains("backend"),
            "series of the deleted canary remain:\n{text}"
        );
        for kept in [
            "flagger_canary_status{name=\"podinfo\"",
            "flagger_canary_weight{workload=\"podinfo-primary\"",
            "flagger_canary_duration_seconds_count{name=\"podinfo\"",
            "flagger_canary_metric_analysis{name=\"podinfo\"",
            "flagger_canary_failures_total{name=\"podinfo\"",
        ] {
            assert!(text.contains(kept), "{kept} is gone too:\n{text}");
        }
    }
}
