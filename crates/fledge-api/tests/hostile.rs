//! Hostile manifests: every duration, count and text a Canary, MetricTemplate or AlertProvider
//! holds is bounded, each refusal names the field, the bound and the fix, and no document —
//! huge, negative, zero, non-finite, overflowing, empty, very long or of the wrong type —
//! makes validation panic. What validation accepts is safe to do arithmetic with.

use std::time::Duration;

use fledge_api::Canary;
use fledge_api::canary::CanaryThresholdRange;
use fledge_api::validation::bounds::{
    MAX_ANALYSIS_INTERVAL, MAX_ITERATIONS, MAX_THRESHOLD, MAX_THRESHOLD_MAGNITUDE,
};
use fledge_api::validation::{Verdict, check_canary, validate_document};
use proptest::prelude::*;
use serde_json::{Value, json};

fn canary() -> Value {
    json!({
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test"},
        "spec": {
            "provider": "istio",
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "autoscalerRef": {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "name": "podinfo",
                "primaryScalerReplicas": {"minReplicas": 2, "maxReplicas": 4}},
            "progressDeadlineSeconds": 60,
            "service": {"port": 9898, "timeout": "15s", "backendTimeout": "10s",
                "retries": {"attempts": 3, "perTryTimeout": "5s"},
                "corsPolicy": {"maxAge": "24h"},
                "match": [{"port": 9898, "uri": {"prefix": "/"}}]},
            "analysis": {
                "interval": "1m", "threshold": 5, "maxWeight": 50, "stepWeight": 10,
                "stepWeightPromotion": 50,
                "sessionAffinity": {"cookieName": "canary-ck", "maxAge": 21600},
                "metrics": [
                    {"name": "request-success-rate", "thresholdRange": {"min": 99}, "interval": "1m"},
                    {"name": "latency", "templateRef": {"name": "latency"},
                        "templateVariables": {"route": "/api"},
                        "thresholdRange": {"min": 0, "max": 500}, "interval": "30s"}
                ],
                "webhooks": [
                    {"name": "load-test", "url": "http://loadtester.test/", "timeout": "5s", "retries": 2,
                        "metadata": {"cmd": "hey -z 1m http://podinfo-canary.test:9898/"}}
                ],
                "alerts": [{"name": "on-call", "providerRef": {"name": "slack"}}]
            }
        }
    })
}

fn metric_template() -> Value {
    json!({
        "apiVersion": "flagger.app/v1beta1",
        "kind": "MetricTemplate",
        "metadata": {"name": "latency", "namespace": "test"},
        "spec": {
            "provider": {"type": "prometheus", "address": "http://prometheus.istio-system:9090",
                "headers": {"X-Scope-OrgID": ["tenant"]}},
            "query": "histogram_quantile(0.99, sum(rate(x[{{ interval }}])) by (le))"
        }
    })
}

fn alert_provider() -> Value {
    json!({
        "apiVersion": "flagger.app/v1beta1",
        "kind": "AlertProvider",
        "metadata": {"name": "slack", "namespace": "test"},
        "spec": {"type": "slack", "channel": "general", "username": "fledge",
            "address": "https://hooks.slack.com/services/T/B/X", "proxy": "http://proxy:3128"}
    })
}

/// Sets the value at a JSON pointer, creating the objects on the way.
fn set(document: &mut Value, pointer: &str, value: Value) {
    let mut at = document;
    let parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    let (last, parents) = parts.split_last().expect("a pointer has a field");
    for part in parents {
        at = match at {
            Value::Array(items) => {
                let index: usize = part.parse().expect("an index");
                if items.len() <= index {
                    items.resize(index + 1, json!({}));
                }
                &mut items[index]
            }
            other => {
                if !other.is_object() {
                    *other = json!({});
                }
                other
                    .as_object_mut()
                    .expect("an object")
                    .entry((*part).to_owned())
                    .or_insert_with(|| json!({}))
            }
        };
    }
    if let Some(fields) = at.as_object_mut() {
        fields.insert((*last).to_owned(), value);
    }
}

fn problems_with(document: &Value, pointer: &str, value: Value) -> Vec<String> {
    let mut document = document.clone();
    set(&mut document, pointer, value);
    validate_document(0, &document)
        .problems
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn the_shipped_shapes_are_within_every_bound() {
    for document in [canary(), metric_template(), alert_provider()] {
        let report = validate_document(0, &document);
        assert_eq!(report.verdict, Verdict::Valid, "{:?}", report.problems);
    }
}

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one row per bound: a table read top to bottom"
)]
fn every_bound_names_the_field_the_bound_and_the_fix() {
    let long = |n: usize| json!("x".repeat(n));
    let cases: Vec<(Value, &str, Value, &str)> = vec![
        (
            canary(),
            "/spec/analysis/interval",
            json!("2562047788015216h"),
            "spec.analysis.interval: must be at most 24h, got 2562047788015216h; write a shorter duration",
        ),
        (
            canary(),
            "/spec/analysis/interval",
            json!("24h0m1s"),
            "spec.analysis.interval: must be at most 24h, got 24h0m1s",
        ),
        (
            canary(),
            "/spec/progressDeadlineSeconds",
            json!(i32::MAX),
            "spec.progressDeadlineSeconds: must be at most 604800 seconds, got 2147483647",
        ),
        (
            canary(),
            "/spec/analysis/threshold",
            json!(1001),
            "spec.analysis.threshold: must be at most 1000 failed checks, got 1001",
        ),
        (
            canary(),
            "/spec/analysis/iterations",
            json!(i32::MAX),
            "spec.analysis.iterations: must be at most 10000 iterations, got 2147483647",
        ),
        (
            canary(),
            "/spec/analysis/stepWeights",
            json!((1..=101).collect::<Vec<i32>>()),
            "spec.analysis.stepWeights: has 101 entries, at most 100 are allowed; remove some",
        ),
        (
            canary(),
            "/spec/analysis/metrics/1/interval",
            json!("721h"),
            "spec.analysis.metrics[1].interval: must be at most 720h, got 721h",
        ),
        (
            canary(),
            "/spec/analysis/metrics/1/thresholdRange/max",
            json!(1e300),
            "spec.analysis.metrics[1].thresholdRange.max: must be a finite number between -1e15 and 1e15, got 1e300",
        ),
        (
            canary(),
            "/spec/analysis/webhooks/0/timeout",
            json!("1h1s"),
            "spec.analysis.webhooks[0].timeout: must be at most 1h, got 1h1s",
        ),
        (
            canary(),
            "/spec/analysis/webhooks/0/retries",
            json!(101),
            "spec.analysis.webhooks[0].retries: must be at most 100 retries, got 101",
        ),
        (
            canary(),
            "/spec/analysis/webhooks/0/url",
            json!(format!("http://{}", "a".repeat(9000))),
            "spec.analysis.webhooks[0].url: is 9007 bytes long, at most 8192 are allowed; shorten it",
        ),
        (
            canary(),
            "/spec/analysis/sessionAffinity/maxAge",
            json!(i32::MAX),
            "spec.analysis.sessionAffinity.maxAge: must be at most 34560000 seconds, got 2147483647",
        ),
        (
            canary(),
            "/spec/service/timeout",
            json!("25h"),
            "spec.service.timeout: must be at most 24h, got 25h",
        ),
        (
            canary(),
            "/spec/service/backendTimeout",
            json!("25h"),
            "spec.service.backendTimeout: must be at most 24h, got 25h",
        ),
        (
            canary(),
            "/spec/service/retries/perTryTimeout",
            json!("25h"),
            "spec.service.retries.perTryTimeout: must be at most 24h, got 25h",
        ),
        (
            canary(),
            "/spec/service/retries/attempts",
            json!(-1),
            "spec.service.retries.attempts: must be between 0 and 100 attempts, got -1",
        ),
        (
            canary(),
            "/spec/service/corsPolicy/maxAge",
            json!("9999h"),
            "spec.service.corsPolicy.maxAge: must be at most 24h, got 9999h",
        ),
        (
            canary(),
            "/spec/service/match/0/port",
            json!(70000),
            "spec.service.match[0].port: must be between 1 and 65535 (a port), got 70000",
        ),
        (
            canary(),
            "/spec/autoscalerRef/primaryScalerReplicas/maxReplicas",
            json!(i32::MAX),
            "spec.autoscalerRef.primaryScalerReplicas.maxReplicas: must be between 1 and 100000 replicas, got 2147483647",
        ),
        (
            canary(),
            "/spec/autoscalerRef/primaryScalerReplicas/minReplicas",
            json!(5),
            "spec.autoscalerRef.primaryScalerReplicas.maxReplicas: must be at least minReplicas (5), got 4",
        ),
        (
            canary(),
            "/spec/targetRef/name",
            long(254),
            "spec.targetRef.name: is 254 bytes long, at most 253 are allowed; shorten it",
        ),
        (
            canary(),
            "/spec/analysis/metrics/1/templateVariables/route",
            long(70_000),
            "spec.analysis.metrics[1].templateVariables.route: is 70000 bytes long, at most 65536 are allowed; shorten it",
        ),
        (
            canary(),
            "/metadata/name",
            json!(""),
            "metadata.name: is empty; name the resource",
        ),
        (
            metric_template(),
            "/spec/query",
            long(65_537),
            "spec.query: is 65537 bytes long, at most 65536 are allowed; shorten it",
        ),
        (
            metric_template(),
            "/spec/provider/address",
            json!(format!("http://{}", "p".repeat(8190))),
            "spec.provider.address: is 8197 bytes long, at most 8192 are allowed; shorten it",
        ),
        (
            alert_provider(),
            "/spec/proxy",
            json!(format!("http://{}", "p".repeat(8190))),
            "spec.proxy: is 8197 bytes long, at most 8192 are allowed; shorten it",
        ),
        (
            alert_provider(),
            "/spec/channel",
            long(65_537),
            "spec.channel: is 65537 bytes long, at most 65536 are allowed; shorten it",
        ),
    ];
    for (document, pointer, value, expected) in cases {
        let problems = problems_with(&document, pointer, value);
        assert!(
            problems.iter().any(|p| p.starts_with(expected)),
            "{pointer}: expected `{expected}`, got {problems:#?}"
        );
    }
}

#[test]
fn a_typed_canary_with_non_finite_thresholds_is_refused() {
    // JSON cannot carry NaN, but a Canary built in code (or read from YAML's `.nan`) can.
    let mut canary: Canary = serde_json::from_value(canary()).expect("a typed canary");
    let analysis = canary.spec.analysis.as_mut().expect("an analysis");
    analysis.metrics[0].threshold_range = Some(CanaryThresholdRange {
        min: Some(f64::NAN),
        max: Some(f64::INFINITY),
    });
    let problems: Vec<String> = check_canary(&canary)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        problems.iter().any(|p| p
            .starts_with("spec.analysis.metrics[0].thresholdRange.min: must be a finite number")),
        "{problems:#?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("spec.analysis.metrics[0].thresholdRange.max")),
        "{problems:#?}"
    );
}

const CANARY_FIELDS: [&str; 24] = [
    "/metadata/name",
    "/spec/targetRef/name",
    "/spec/progressDeadlineSeconds",
    "/spec/service/port",
    "/spec/service/timeout",
    "/spec/service/retries/attempts",
    "/spec/service/mirror/0/fraction/denominator",
    "/spec/service/gatewayRefs/0/port",
    "/spec/autoscalerRef/primaryScalerReplicas/maxReplicas",
    "/spec/analysis/interval",
    "/spec/analysis/threshold",
    "/spec/analysis/iterations",
    "/spec/analysis/maxWeight",
    "/spec/analysis/stepWeight",
    "/spec/analysis/stepWeights",
    "/spec/analysis/stepWeightPromotion",
    "/spec/analysis/mirrorWeight",
    "/spec/analysis/canaryReadyThreshold",
    "/spec/analysis/sessionAffinity/maxAge",
    "/spec/analysis/metrics/1/interval",
    "/spec/analysis/metrics/1/thresholdRange/min",
    "/spec/analysis/webhooks/0/timeout",
    "/spec/analysis/webhooks/0/retries",
    "/spec/analysis/webhooks/0/url",
];

const TEMPLATE_FIELDS: [&str; 5] = [
    "/metadata/name",
    "/spec/query",
    "/spec/provider/address",
    "/spec/provider/type",
    "/spec/provider/headers/X-Scope-OrgID",
];

const PROVIDER_FIELDS: [&str; 6] = [
    "/metadata/name",
    "/spec/type",
    "/spec/address",
    "/spec/proxy",
    "/spec/channel",
    "/spec/secretRef/name",
];

fn hostile_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!(i64::MAX)),
        Just(json!(i64::MIN)),
        Just(json!(u64::MAX)),
        Just(json!(i32::MAX)),
        Just(json!(i32::MIN)),
        Just(json!(-1)),
        Just(json!(0)),
        Just(json!(f64::MAX)),
        Just(json!(-0.0)),
        any::<i32>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|n| json!(n)),
        Just(json!("2562047788015216h")),
        Just(json!("18446744073709551615s")),
        Just(json!("340282366920938463463374607431768211455h")),
        Just(json!("1.9999999999999999999999h")),
        Just(json!("-1s")),
        Just(json!("1e99h")),
        Just(json!("1h".repeat(5_000))),
        (
            any::<u64>(),
            prop_oneof![Just("h"), Just("m"), Just("s"), Just("ns")]
        )
            .prop_map(|(n, unit)| json!(format!("{n}{unit}"))),
        Just(json!("")),
        Just(json!("x".repeat(70_000))),
        Just(json!("ü".repeat(200))),
        "\\PC{0,20}".prop_map(|s| json!(s)),
        Just(json!([])),
        Just(json!((0..1_000).collect::<Vec<i32>>())),
        Just(json!({})),
        Just(json!(true)),
        Just(Value::Null),
    ]
}

fn hostile_document() -> impl Strategy<Value = Value> {
    let changes = |fields: &'static [&'static str]| {
        prop::collection::vec((0..fields.len(), hostile_value()), 1..5).prop_map(move |changes| {
            changes
                .into_iter()
                .map(|(field, value)| (fields[field], value))
                .collect::<Vec<_>>()
        })
    };
    prop_oneof![
        changes(&CANARY_FIELDS).prop_map(|c| (canary(), c)),
        changes(&TEMPLATE_FIELDS).prop_map(|c| (metric_template(), c)),
        changes(&PROVIDER_FIELDS).prop_map(|c| (alert_provider(), c)),
    ]
    .prop_map(|(mut document, changes)| {
        for (pointer, value) in changes {
            set(&mut document, pointer, value);
        }
        document
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn no_document_panics_validation_and_every_refusal_names_a_field(document in hostile_document()) {
        let report = validate_document(0, &document);
        prop_assert_ne!(report.verdict, Verdict::Skipped);
        prop_assert_eq!(report.verdict == Verdict::Invalid, !report.problems.is_empty());
        for problem in &report.problems {
            prop_assert!(
                problem.path.starts_with("spec") || problem.path.starts_with("metadata"),
                "{problem:?}"
            );
            prop_assert!(!problem.message.is_empty());
        }
    }

    #[test]
    fn what_validation_accepts_is_safe_arithmetic(document in hostile_document()) {
        let report = validate_document(0, &document);
        let is_canary = document["kind"] == "Canary";
        if report.verdict == Verdict::Valid && is_canary {
            let canary: Canary = serde_json::from_value(document).expect("a valid canary reads");
            let settings = canary.spec.resolved(Some("istio"));
            prop_assert!(settings.interval <= MAX_ANALYSIS_INTERVAL);
            // Any tick count times the interval fits a Duration.
            prop_assert!(settings.interval.checked_mul(u32::MAX).is_some());
            prop_assert!(settings.threshold <= MAX_THRESHOLD.unsigned_abs());
            prop_assert!(settings.iterations <= MAX_ITERATIONS.unsigned_abs());
            prop_assert!(settings.progress_deadline <= Duration::from_secs(7 * 24 * 3600));
            prop_assert!(settings.max_weight <= 100 && settings.step_weight <= 100);
            prop_assert!(settings.step_weights.iter().all(|w| *w <= 100));
            for metric in &canary.spec.analysis().expect("an analysis").metrics {
                for bound in metric.threshold_range.iter().flat_map(|r| [r.min, r.max]).flatten() {
                    prop_assert!(bound.abs() <= MAX_THRESHOLD_MAGNITUDE);
                }
            }
        }
    }
}

#[test]
fn megabytes_of_text_where_a_name_is_expected_are_answered_at_once() {
    // "Did you mean" compares what was written with each known name; a quadratic comparison
    // of megabytes of text took minutes.
    let huge = "x".repeat(2 << 20);
    let mut provider = canary();
    set(&mut provider, "/spec/provider", json!(huge));
    let mut field = canary();
    set(&mut field, &format!("/spec/analysis/{huge}"), json!(1));
    let mut metric = canary();
    set(&mut metric, "/spec/analysis/metrics/0/name", json!(huge));
    for (what, document) in [("provider", provider), ("field", field), ("metric", metric)] {
        let began = std::time::Instant::now();
        let report = validate_document(0, &document);
        let took = began.elapsed();
        assert_eq!(report.verdict, Verdict::Invalid, "{what}");
        assert!(
            took < Duration::from_secs(10),
            "{what}: validation took {took:?}"
        );
    }
}
