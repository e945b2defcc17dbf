//! Every router's builtin `request-success-rate` and `request-duration`, run against a real
//! Prometheus that scrapes known series: each query must find exactly the canary's numbers
//! and none of the look-alike series next to them.

#![allow(clippy::unwrap_used)] // Tests may unwrap (house rule).

mod telemetry;

use std::time::Duration;

use fledge_metrics::testing::{SeriesExporter, wait_for_value};
use fledge_metrics::{
    BuiltinMetric, MetricProvider, MetricTemplateModel, PrometheusProvider, ProviderSettings,
    QueryOutcome, RoutingProvider,
};
use fledge_testkit::LocalPrometheus;

fn podinfo() -> MetricTemplateModel {
    MetricTemplateModel {
        name: "podinfo".into(),
        namespace: "test".into(),
        target: "podinfo".into(),
        service: "podinfo".into(),
        ingress: "podinfo".into(),
        route: "podinfo".into(),
        interval: "30s".into(),
        variables: std::collections::BTreeMap::new(),
    }
}

/// What each router's builtins must report for `podinfo`: (success rate %, duration ms).
fn expectations() -> Vec<(RoutingProvider, MetricTemplateModel, f64, f64)> {
    let p99 = telemetry::P99_MS.trunc(); // 366.67ms, truncated to whole ms as Flagger does.
    let knative = podinfo().with_route("podinfo-00002");
    let skipper = MetricTemplateModel {
        ingress: "podinfo".into(),
        service: "podinfo".into(),
        ..podinfo()
    };
    vec![
        (RoutingProvider::Istio, podinfo(), 97.0, p99),
        (RoutingProvider::Linkerd, podinfo(), 99.0, p99),
        (RoutingProvider::AppMesh, podinfo(), 95.0, p99),
        (RoutingProvider::Contour, podinfo(), 98.0, p99),
        (RoutingProvider::Gloo, podinfo(), 96.0, p99),
        (RoutingProvider::Kuma, podinfo(), 97.5, p99),
        (RoutingProvider::Knative, knative, 93.0, p99),
        // 404s are successes; the duration is the mean, 42.5ms.
        (RoutingProvider::Nginx, podinfo(), 95.0, 42.0),
        // The duration is the mean, 87.3ms.
        (RoutingProvider::Skipper, skipper, 98.5, 87.0),
        (RoutingProvider::Traefik, podinfo(), 99.0, p99),
        (RoutingProvider::Apisix, podinfo(), 94.0, p99),
        (RoutingProvider::Osm, podinfo(), 99.9, p99),
        (RoutingProvider::Kubernetes, podinfo(), 92.0, p99),
        (RoutingProvider::GatewayApi, podinfo(), 92.0, p99),
    ]
}

async fn start() -> (SeriesExporter, LocalPrometheus, PrometheusProvider) {
    let exporter = SeriesExporter::start(telemetry::all()).expect("serve /metrics");
    let prometheus = LocalPrometheus::start(&[exporter.address()])
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    let provider =
        PrometheusProvider::new(ProviderSettings::new(prometheus.url())).expect("provider");
    // A rate needs two scrapes in its window; all series are scraped together.
    let ready = RoutingProvider::Istio
        .builtin(BuiltinMetric::RequestSuccessRate)
        .render(&podinfo())
        .unwrap();
    let outcome = wait_for_value(&provider, &ready, Duration::from_secs(30)).await;
    assert!(
        matches!(outcome, Ok(QueryOutcome::Value(_))),
        "no data after 30s: {outcome:?}\n{}",
        prometheus.log()
    );
    (exporter, prometheus, provider)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_routers_builtins_report_the_canarys_numbers_and_ignore_look_alikes() {
    let (_exporter, _prometheus, provider) = start().await;
    let mut wrong = Vec::new();
    for (router, model, success_rate, duration) in expectations() {
        let rate = router
            .builtin(BuiltinMetric::RequestSuccessRate)
            .run(&provider, &model)
            .await;
        match rate {
            Ok(QueryOutcome::Value(value)) if (value - success_rate).abs() < 1e-9 => {}
            other => wrong.push(format!(
                "{router} request-success-rate: expected {success_rate}, got {other:?}"
            )),
        }
        let latency = router
            .builtin(BuiltinMetric::RequestDuration)
            .run(&provider, &model)
            .await;
        match latency {
            Ok(QueryOutcome::Value(value)) if (value - duration).abs() < f64::EPSILON => {}
            other => wrong.push(format!(
                "{router} request-duration: expected {duration}ms, got {other:?}"
            )),
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_raw_p99_is_the_histograms_interpolated_quantile() {
    let (_exporter, _prometheus, provider) = start().await;
    let query = RoutingProvider::Istio
        .builtin(BuiltinMetric::RequestDuration)
        .render(&podinfo())
        .unwrap();
    let p99 = provider.query(&query).await.unwrap().value().unwrap();
    assert!((p99 - 366.666_666_7).abs() < 1e-6, "P99 {p99}");
    // Gateway API's histogram is in seconds; the builtin converts to milliseconds.
    let query = RoutingProvider::GatewayApi
        .builtin(BuiltinMetric::RequestDuration)
        .render(&podinfo())
        .unwrap();
    let seconds = provider.query(&query).await.unwrap().value().unwrap();
    assert!((seconds - 0.366_666_666_7).abs() < 1e-9, "P99 {seconds}s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_without_series_or_without_traffic_has_no_values() {
    let (_exporter, _prometheus, provider) = start().await;
    let absent = MetricTemplateModel {
        target: "not-deployed".into(),
        service: "not-deployed".into(),
        ingress: "not-deployed".into(),
        route: "not-deployed".into(),
        ..podinfo()
    };
    let idle = MetricTemplateModel {
        target: "idle".into(),
        ..podinfo()
    };
    for router in RoutingProvider::ALL {
        for metric in BuiltinMetric::ALL {
            let outcome = router.builtin(metric).run(&provider, &absent).await;
            assert!(
                matches!(outcome, Ok(QueryOutcome::NoValues)),
                "{router} {metric}: {outcome:?}"
            );
        }
    }
    // idle's counter never grows: 0 / 0 is NaN, which is no value, not 0%.
    let outcome = RoutingProvider::Istio
        .builtin(BuiltinMetric::RequestSuccessRate)
        .run(&provider, &idle)
        .await;
    assert_eq!(outcome.unwrap(), QueryOutcome::NoValues);
}
