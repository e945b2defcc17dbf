//! `cargo xtask bench metrics`: query round trips against a local Prometheus.
//!
//! A local Prometheus scrapes Istio series for N canaries; N tasks then run their canary's
//! two builtin queries (request-success-rate, request-duration) back to back for a fixed
//! time through one shared, pooled provider. The table reports queries per second and the
//! latency of one query, as in docs/benchmarks.md ("Metrics").

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use fledge_metrics::testing::{Series, SeriesExporter, wait_for_value};
use fledge_metrics::{
    BuiltinMetric, MetricTemplateModel, PrometheusProvider, ProviderSettings, QueryOutcome,
    RoutingProvider,
};
use fledge_testkit::LocalPrometheus;

const CANARY_COUNTS: [usize; 4] = [1, 10, 50, 100];
const MAX_CANARIES: usize = 100;

/// Runs the benchmark; `--seconds N` sets the time per row (default 5).
pub fn run(args: &[String]) -> Result<()> {
    let seconds = match args {
        [] => 5,
        [flag, value] if flag == "--seconds" => {
            value.parse().context("--seconds takes a whole number")?
        }
        _ => bail!("usage: cargo xtask bench metrics [--seconds N]"),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(bench(Duration::from_secs(seconds)))
}

async fn bench(window: Duration) -> Result<()> {
    let exporter = SeriesExporter::start(canary_series(MAX_CANARIES))?;
    let prometheus = LocalPrometheus::start(&[exporter.address()]).await?;
    let provider = PrometheusProvider::new(ProviderSettings::new(prometheus.url()))?;
    let warm = RoutingProvider::Istio
        .builtin(BuiltinMetric::RequestSuccessRate)
        .render(&model(MAX_CANARIES - 1))?;
    match wait_for_value(&provider, &warm, Duration::from_secs(30)).await? {
        QueryOutcome::Value(_) => {}
        QueryOutcome::NoValues => bail!("no data after 30s; prometheus log:\n{}", prometheus.log()),
    }

    println!(
        "Prometheus at {}, {}s per row, {} cores",
        prometheus.url(),
        window.as_secs(),
        cores()
    );
    println!();
    println!("| canaries | connections | queries/s | p50 ms | p99 ms | errors |");
    println!("|---:|---|---:|---:|---:|---:|");
    for canaries in CANARY_COUNTS {
        print_row(
            canaries,
            "pooled",
            &run_row(&provider, canaries, window, Reuse::Pooled).await,
        );
    }
    print_row(
        10,
        "new per query",
        &run_row(&provider, 10, window, Reuse::NewClientPerQuery).await,
    );
    drop(prometheus);
    drop(exporter);
    Ok(())
}

#[derive(Clone, Copy)]
enum Reuse {
    Pooled,
    NewClientPerQuery,
}

struct Row {
    latencies: Vec<Duration>,
    errors: usize,
    elapsed: Duration,
}

async fn run_row(
    provider: &PrometheusProvider,
    canaries: usize,
    window: Duration,
    reuse: Reuse,
) -> Row {
    let started = Instant::now();
    let deadline = started + window;
    let tasks: Vec<_> = (0..canaries)
        .map(|canary| {
            let shared = provider.clone();
            let address = provider
                .query_url()
                .as_str()
                .trim_end_matches("/api/v1/query")
                .to_owned();
            tokio::spawn(async move {
                let model = model(canary);
                let (mut latencies, mut errors) = (Vec::new(), 0);
                while Instant::now() < deadline {
                    for metric in BuiltinMetric::ALL {
                        let query = RoutingProvider::Istio.builtin(metric);
                        let begun = Instant::now();
                        let outcome = match reuse {
                            Reuse::Pooled => query.run(&shared, &model).await,
                            Reuse::NewClientPerQuery => {
                                match PrometheusProvider::new(ProviderSettings::new(&address)) {
                                    Ok(fresh) => query.run(&fresh, &model).await,
                                    Err(err) => Err(err),
                                }
                            }
                        };
                        latencies.push(begun.elapsed());
                        if !matches!(outcome, Ok(QueryOutcome::Value(_))) {
                            errors += 1;
                        }
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut row = Row {
        latencies: Vec::new(),
        errors: 0,
        elapsed: Duration::ZERO,
    };
    for task in tasks {
        if let Ok((latencies, errors)) = task.await {
            row.latencies.extend(latencies);
            row.errors += errors;
        }
    }
    row.elapsed = started.elapsed();
    row
}

fn print_row(canaries: usize, connections: &str, row: &Row) {
    let mut sorted = row.latencies.clone();
    sorted.sort();
    let at = |q: f64| {
        sorted
            .get(((sorted.len() as f64 - 1.0) * q).round() as usize)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let rate = sorted.len() as f64 / row.elapsed.as_secs_f64();
    println!(
        "| {canaries} | {connections} | {rate:.0} | {:.2} | {:.2} | {} |",
        at(0.50),
        at(0.99),
        row.errors
    );
}

fn model(canary: usize) -> MetricTemplateModel {
    let name = format!("app-{canary}");
    MetricTemplateModel {
        name: name.clone(),
        namespace: "bench".into(),
        target: name.clone(),
        service: name.clone(),
        ingress: name.clone(),
        route: name,
        interval: "30s".into(),
        variables: std::collections::BTreeMap::new(),
    }
}

/// Istio request counters (970 OK, 30 errors per scrape) and a latency histogram per canary.
fn canary_series(canaries: usize) -> Vec<Series> {
    let mut series = Vec::new();
    for canary in 0..canaries {
        let workload = format!("app-{canary}");
        let base = [
            ("reporter", "destination"),
            ("destination_workload_namespace", "bench"),
            ("destination_workload", workload.as_str()),
        ];
        for (code, count) in [("200", 970.0), ("500", 30.0)] {
            let mut labels = base.to_vec();
            labels.push(("response_code", code));
            series.push(Series::counter("istio_requests_total", &labels, count));
        }
        let buckets = [("25", 900.0), ("100", 80.0), ("500", 15.0), ("1000", 5.0)];
        series.extend(Series::histogram(
            "istio_request_duration_milliseconds",
            &base,
            &buckets,
            0.0,
        ));
    }
    series
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}
