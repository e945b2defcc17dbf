//! The Prometheus provider against a real Prometheus: what one query answers, and how
//! Prometheus' own errors come back.

#![allow(clippy::unwrap_used)] // Tests may unwrap (house rule).

mod telemetry;

use std::time::Duration;

use fledge_metrics::testing::{SeriesExporter, wait_for_value};
use fledge_metrics::{Error, MetricProvider, PrometheusProvider, ProviderSettings, QueryOutcome};
use fledge_testkit::LocalPrometheus;

const SUCCESS_RATE: &str = r#"
    sum(rate(istio_requests_total{reporter="destination",destination_workload="podinfo",response_code!~"5.*"}[30s]))
    /
    sum(rate(istio_requests_total{reporter="destination",destination_workload="podinfo"}[30s])) * 100"#;

async fn start() -> (SeriesExporter, LocalPrometheus, PrometheusProvider) {
    let exporter = SeriesExporter::start(telemetry::istio()).expect("serve /metrics");
    let prometheus = LocalPrometheus::start(&[exporter.address()])
        .await
        .unwrap_or_else(|err| panic!("{err}"));
    let provider =
        PrometheusProvider::new(ProviderSettings::new(prometheus.url())).expect("provider");
    let outcome = wait_for_value(&provider, SUCCESS_RATE, Duration::from_secs(30)).await;
    assert!(
        matches!(outcome, Ok(QueryOutcome::Value(_))),
        "no data after 30s: {outcome:?}\n{}",
        prometheus.log()
    );
    (exporter, prometheus, provider)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_answers_one_value_no_values_or_names_how_many_series_came_back() {
    let (_exporter, _prometheus, provider) = start().await;

    // 970 OK + 30 errors per scrape.
    let rate = provider.query(SUCCESS_RATE).await.unwrap().value().unwrap();
    assert!((rate - 97.0).abs() < 1e-9, "{rate}");

    let absent = provider
        .query(r#"sum(rate(istio_requests_total{destination_workload="absent"}[30s]))"#)
        .await;
    assert_eq!(absent.unwrap(), QueryOutcome::NoValues);

    // istio_requests_total has five series; Flagger's analysis needs one number.
    let err = provider.query("istio_requests_total").await.unwrap_err();
    assert!(matches!(err, Error::MultipleSeries { count: 5 }), "{err}");
    assert!(err.to_string().contains("5 series"), "{err}");

    let scalar = provider.query("scalar(vector(6)) * 7").await.unwrap();
    assert_eq!(scalar, QueryOutcome::Value(42.0));

    let err = provider
        .query("istio_requests_total[1m]")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::UnsupportedResultType { result_type } if result_type == "matrix"),
        "{err}"
    );

    assert!(provider.is_online().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_own_error_text_is_surfaced() {
    let (_exporter, _prometheus, provider) = start().await;
    let err = provider
        .query("sum(rate(istio_requests_total[30s])")
        .await
        .unwrap_err();
    match &err {
        Error::Prometheus {
            status,
            error_type,
            message,
        } => {
            assert_eq!((*status, error_type.as_str()), (400, "bad_data"), "{err}");
            assert!(message.contains("parse error"), "{message}");
        }
        other => panic!("expected Prometheus' error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_too_long_for_a_url_is_posted_and_still_answers() {
    let (_exporter, _prometheus, provider) = start().await;
    // About 6 KiB of PromQL: beyond what proxies accept in a request line.
    let padding = " + 0 * vector(0)".repeat(400);
    let long = format!("{SUCCESS_RATE}{padding}");
    assert!(long.len() > 6000);
    let rate = provider.query(&long).await.unwrap().value().unwrap();
    assert!((rate - 97.0).abs() < 1e-9, "{rate}");
}
