//! What goes over the wire, and servers that misbehave: down, silent, slow.

#![allow(clippy::unwrap_used)] // Tests may unwrap (house rule).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use fledge_metrics::{
    Credentials, Error, MetricProvider, PrometheusProvider, ProviderSettings, QueryOutcome,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const ONE_SAMPLE: &str = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"99.5"]}]}}"#;

/// Answers one request with `ONE_SAMPLE` and hands back the request (head and body), lower-cased.
async fn capture_one_request() -> (String, tokio::task::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}/prometheus", listener.local_addr().unwrap());
    let handle = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        let end = loop {
            if let Some(at) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            let n = stream.read(&mut buf).await.unwrap();
            head.extend_from_slice(&buf[..n]);
        };
        let text = String::from_utf8_lossy(&head[..end]).to_lowercase();
        let length: usize = text
            .lines()
            .find_map(|line| line.strip_prefix("content-length: "))
            .map_or(0, |n| n.trim().parse().unwrap());
        while head.len() < end + length {
            let n = stream.read(&mut buf).await.unwrap();
            head.extend_from_slice(&buf[..n]);
        }
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{ONE_SAMPLE}",
            ONE_SAMPLE.len()
        );
        stream.write_all(response.as_bytes()).await.unwrap();
        String::from_utf8_lossy(&head).to_lowercase()
    });
    (address, handle)
}

#[tokio::test]
async fn the_query_goes_to_the_api_path_with_headers_and_the_bearer_token() {
    let (address, request) = capture_one_request().await;
    let mut settings = ProviderSettings::new(address).with_credentials(Credentials::Bearer {
        token: "t0k".into(),
    });
    settings.headers = BTreeMap::from([("X-Scope-OrgID".to_owned(), vec!["tenant-a".to_owned()])]);
    let provider = PrometheusProvider::new(settings).unwrap();

    let outcome = provider
        .query("sum(\n  rate(x{a=\"b\"}[1m])\n)")
        .await
        .unwrap();
    assert_eq!(outcome, QueryOutcome::Value(99.5));

    let head = request.await.unwrap();
    // Whitespace collapsed as Flagger does, then URL-encoded under the address' path prefix.
    assert!(head.starts_with("get /prometheus/api/v1/query?query=sum%28+rate%28x%7ba%3d%22b%22%7d%5b1m%5d%29+%29 http/1.1"), "{head}");
    assert!(head.contains("authorization: bearer t0k\r\n"), "{head}");
    assert!(head.contains("x-scope-orgid: tenant-a\r\n"), "{head}");
}

#[tokio::test]
async fn a_long_query_is_posted_as_a_form() {
    let (address, request) = capture_one_request().await;
    let provider = PrometheusProvider::new(ProviderSettings::new(address)).unwrap();
    let long = format!("vector(1){}", " + vector(0)".repeat(300));
    assert_eq!(
        provider.query(&long).await.unwrap(),
        QueryOutcome::Value(99.5)
    );
    let request = request.await.unwrap();
    assert!(
        request.starts_with("post /prometheus/api/v1/query http/1.1\r\n"),
        "{}",
        &request[..200]
    );
    assert!(request.contains("content-type: application/x-www-form-urlencoded\r\n"));
    let body = request.split("\r\n\r\n").nth(1).unwrap();
    assert!(
        body.starts_with("query=vector%281%29+%2b+vector%280%29+%2b+"),
        "{body}"
    );
    assert_eq!(
        body.len(),
        "query=vector%281%29".len() + 300 * "+%2b+vector%280%29".len()
    );
}

#[tokio::test]
async fn a_server_that_is_down_is_an_error_not_a_hang() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let settings = ProviderSettings::new(format!("http://127.0.0.1:{port}"))
        .with_timeout(Duration::from_secs(2));
    let provider = PrometheusProvider::new(settings).unwrap();
    let started = Instant::now();
    let err = provider.query("vector(1)").await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    match &err {
        Error::Unreachable { detail, .. } => {
            assert!(detail.to_lowercase().contains("refused"), "{detail}");
        }
        other => panic!("expected connection refused, got {other:?}"),
    }
    assert!(provider.is_online().await.is_err());
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_at_the_configured_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    // Accepts, reads, and says nothing.
    let silent = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = stream.read(&mut buf).await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let timeout = Duration::from_millis(400);
    let provider =
        PrometheusProvider::new(ProviderSettings::new(&address).with_timeout(timeout)).unwrap();
    let started = Instant::now();
    let err = provider.query("vector(1)").await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        elapsed >= timeout && elapsed < Duration::from_secs(2),
        "took {elapsed:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("query to {address} timed out after 400ms")
    );
    silent.abort();
}

#[tokio::test]
async fn a_server_that_stalls_mid_body_times_out_too() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let stalling = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = stream.read(&mut buf).await;
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"status\":";
        stream.write_all(head.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let provider = PrometheusProvider::new(
        ProviderSettings::new(&address).with_timeout(Duration::from_millis(400)),
    )
    .unwrap();
    let started = Instant::now();
    let err = provider.query("vector(1)").await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
    stalling.abort();
}
