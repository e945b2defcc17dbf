//! The built-in hey against a local HTTP server: request counts, rate, concurrency, duration,
//! timeouts and the request it sends.
//!
//! Tolerances: timing on a shared CI machine is noisy, so rates and durations are checked
//! within 25% (the rate of `-q` is exact on an idle machine; the first request of each worker
//! waits one period, as hey's ticker does), and counts with `-n` exactly.

use std::time::{Duration, Instant};

use fledge_loadtester::{Generator, TargetServer};
use pretty_assertions::assert_eq;

fn generator(line: &str) -> Generator {
    let words: Vec<&str> = line.split_whitespace().collect();
    Generator::from_command_line(&words).expect("a valid hey command line")
}

fn within(actual: f64, expected: f64, tolerance: f64) -> bool {
    (actual - expected).abs() <= expected * tolerance
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n_requests_are_sent_exactly_split_between_the_workers() {
    let target = TargetServer::start(Duration::ZERO).await.expect("target");
    let report = generator(&format!("hey -n 100 -c 4 {}", target.url()))
        .run()
        .await;
    assert_eq!((report.results, target.requests()), (100, 100));
    assert_eq!(report.status_codes.get(&200), Some(&100));
    assert_eq!(
        target.connections(),
        4,
        "one keep-alive connection per worker"
    );
    target.reset();
    let report = generator(&format!("hey -n 10 -c 3 {}", target.url()))
        .run()
        .await;
    assert_eq!(
        (report.results, target.requests()),
        (9, 9),
        "hey sends n / c per worker"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q_limits_each_worker_and_z_sets_the_duration() {
    let target = TargetServer::start(Duration::ZERO).await.expect("target");
    let started = Instant::now();
    // The tutorial's load test, shortened: 2 workers at 10 per second each.
    let report = generator(&format!("hey -z 2s -q 10 -c 2 -n 5 {}", target.url()))
        .run()
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    assert!(within(elapsed, 2.0, 0.25), "ran {elapsed}s for -z 2s");
    // 20 requests per second for 2 s, the first tick of each worker after 100 ms: 40.
    let sent = target.requests() as f64;
    assert!(
        within(sent, 40.0, 0.25),
        "{sent} requests, expected 40 ± 25%; -z wins over -n 5"
    );
    assert!(
        within(report.requests_per_second(), 20.0, 0.25),
        "{}",
        report.requests_per_second()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_workers_keep_c_requests_in_flight() {
    // Each answer takes 50 ms: 5 workers make 100 requests per second with 5 in flight.
    let target = TargetServer::start(Duration::from_millis(50))
        .await
        .expect("target");
    let report = generator(&format!("hey -z 1s -c 5 {}", target.url()))
        .run()
        .await;
    assert_eq!(target.max_in_flight(), 5);
    assert!(
        within(report.requests_per_second(), 100.0, 0.25),
        "{}",
        report.requests_per_second()
    );
    let median = report.percentiles()[2];
    assert_eq!(median.0, 50);
    assert!(
        (0.05..0.1).contains(&median.1),
        "median latency {}s for 50 ms answers",
        median.1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t_times_out_slow_requests_and_errors_are_counted() {
    let slow = TargetServer::start(Duration::from_secs(3))
        .await
        .expect("target");
    let started = Instant::now();
    let report = generator(&format!("hey -n 2 -c 2 -t 1 {}", slow.url()))
        .run()
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!((report.results, report.answered), (2, 0));
    let (error, count) = report.errors.iter().next().expect("an error");
    assert_eq!(*count, 2);
    assert!(
        error.starts_with(&format!("Get \"{}\": ", slow.url())) && error.contains("Timeout"),
        "{error}"
    );
    assert!(
        report.summary().contains("Error distribution:\n  [2]\tGet"),
        "{}",
        report.summary()
    );

    let closed = TargetServer::start(Duration::ZERO).await.expect("target");
    let url = closed.url();
    drop(closed);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let report = generator(&format!("hey -n 3 -c 1 {url}")).run().await;
    assert_eq!((report.results, report.answered), (3, 0));
    assert!(
        report.errors.keys().all(|e| e.contains("dial tcp")),
        "{:?}",
        report.errors
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_carries_heys_method_body_and_headers() {
    let target = TargetServer::start(Duration::ZERO).await.expect("target");
    let url = format!("{}api/echo?canary=1", target.url());
    let generator = Generator::from_command_line(&[
        "hey",
        "-n",
        "1",
        "-c",
        "1",
        "-m",
        "POST",
        "-d",
        "{\"ok\":true}",
        "-T",
        "application/json",
        "-H",
        "X-Canary: insider",
        "-host",
        "podinfo.test",
        "-A",
        "*/*",
        url.as_str(),
    ])
    .expect("valid");
    let report = generator.run().await;
    assert_eq!(report.answered, 1);
    let seen = target.last_request().expect("a request");
    assert_eq!(seen.method, http::Method::POST);
    assert_eq!(seen.target, "/api/echo?canary=1");
    assert_eq!(seen.body, bytes::Bytes::from_static(b"{\"ok\":true}"));
    for (name, value) in [
        ("content-type", "application/json"),
        ("x-canary", "insider"),
        ("host", "podinfo.test"),
        ("accept", "*/*"),
        ("user-agent", "hey/0.0.1"),
        ("accept-encoding", "gzip"),
    ] {
        assert_eq!(seen.headers[name], value, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_keepalive_opens_a_connection_per_request() {
    let target = TargetServer::start(Duration::ZERO).await.expect("target");
    generator(&format!(
        "hey -n 10 -c 1 -disable-keepalive {}",
        target.url()
    ))
    .run()
    .await;
    assert_eq!((target.requests(), target.connections()), (10, 10));
    let seen = target.last_request().expect("a request");
    assert_eq!(seen.headers["connection"], "close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_handle_ends_a_long_run_early() {
    let target = TargetServer::start(Duration::ZERO).await.expect("target");
    let generator = generator(&format!("hey -z 1h -q 50 -c 2 {}", target.url()));
    let stop = generator.stop_handle();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.stop();
    });
    let started = Instant::now();
    let report = generator.run().await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(report.results > 0);
}
