//! Servers that answer too much or send the query elsewhere: the answer is read up to
//! 4 MiB, redirects stay on the address' origin, and no error shows the address' secrets.

#![allow(clippy::unwrap_used)] // Tests may unwrap (house rule).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fledge_metrics::{
    Credentials, Error, MAX_RESPONSE_BYTES, MetricProvider, PrometheusProvider, ProviderSettings,
    QueryOutcome,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const ONE_SAMPLE: &str = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"99.5"]}]}}"#;

/// Reads a request's head and returns its first line, lower-cased head included.
async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&head).to_lowercase()
}

async fn answer(stream: &mut TcpStream, status: &str, extra_headers: &str, body: &str) {
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{extra_headers}\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
}

/// A server answering every request with `respond(head, stream)`; counts the requests.
async fn serve<F, Fut>(respond: F) -> (u16, Arc<AtomicUsize>)
where
    F: Fn(String, TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = requests.clone();
    let respond = Arc::new(respond);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let respond = respond.clone();
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let head = read_head(&mut stream).await;
                respond(head, stream).await;
            });
        }
    });
    (port, requests)
}

#[tokio::test]
async fn an_answer_of_100_mb_is_cut_at_the_limit_and_named_in_the_error() {
    let written = Arc::new(AtomicUsize::new(0));
    let counter = written.clone();
    // Chunked, so no Content-Length tells the client in advance: it must stop reading.
    let (port, _) = serve(move |_, mut stream| {
        let counter = counter.clone();
        async move {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let chunk = vec![b' '; 64 * 1024];
            let framed = [
                format!("{:x}\r\n", chunk.len()).into_bytes(),
                chunk,
                b"\r\n".to_vec(),
            ]
            .concat();
            for _ in 0..1600 {
                if stream.write_all(&framed).await.is_err() {
                    return;
                }
                counter.fetch_add(64 * 1024, Ordering::SeqCst);
            }
            let _ = stream.write_all(b"0\r\n\r\n").await;
        }
    })
    .await;
    let address = format!("http://127.0.0.1:{port}");
    let provider = PrometheusProvider::new(
        ProviderSettings::new(&address).with_timeout(Duration::from_secs(30)),
    )
    .unwrap();

    let started = Instant::now();
    let err = provider.query("vector(1)").await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        matches!(err, Error::ResponseTooLarge { limit, .. } if limit == MAX_RESPONSE_BYTES),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "response from {address} exceeds the 4 MiB limit: aggregate the query to one series (for example with sum())"
        )
    );
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    // The client hung up: the server could not push the 100 MB (socket buffers take a few).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = written.load(Ordering::SeqCst);
    eprintln!("answered in {elapsed:?}; the server could write {sent} bytes of its 100 MB");
    assert!(sent < 32 * 1024 * 1024, "the server wrote {sent} bytes");
}

#[tokio::test]
async fn an_announced_length_over_the_limit_is_not_read() {
    let (port, _) = serve(|_, mut stream| async move {
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 104857600\r\n\r\n";
        let _ = stream.write_all(head.as_bytes()).await;
        // Never sends the body: a client that waits for it would time out instead.
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await;
    let provider = PrometheusProvider::new(
        ProviderSettings::new(format!("http://127.0.0.1:{port}"))
            .with_timeout(Duration::from_secs(20)),
    )
    .unwrap();
    let started = Instant::now();
    let err = provider.query("vector(1)").await.unwrap_err();
    assert!(matches!(err, Error::ResponseTooLarge { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_redirect_to_another_host_is_refused_and_the_credentials_stay_home() {
    let (elsewhere, elsewhere_requests) = serve(|_, mut stream| async move {
        answer(&mut stream, "200 OK", "", ONE_SAMPLE).await;
    })
    .await;
    // `localhost` is another host than `127.0.0.1`, as a browser's origin says.
    let (port, _) = serve(move |_, mut stream| async move {
        let location = format!(
            "Location: http://localhost:{elsewhere}/api/v1/query?query=vector(1)&secret=abc123\r\n"
        );
        answer(&mut stream, "307 Temporary Redirect", &location, "").await;
    })
    .await;
    let provider = PrometheusProvider::new(
        ProviderSettings::new(format!("http://admin:hunter2@127.0.0.1:{port}/?tenant=t1"))
            .with_credentials(Credentials::Bearer {
                token: "t0k3n".into(),
            }),
    )
    .unwrap();

    let err = provider.query("vector(1)").await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Unreachable { .. }), "{text}");
    assert_eq!(
        text,
        format!(
            "request to http://127.0.0.1:{port}/ failed: redirect from http://127.0.0.1:{port}/api/v1/query to \
             http://localhost:{elsewhere}/api/v1/query refused: only redirects to the same scheme, host and port are followed"
        )
    );
    for secret in ["hunter2", "admin", "tenant", "abc123", "t0k3n"] {
        assert!(!text.contains(secret), "{secret} in {text}");
        assert!(!format!("{err:?}").contains(secret), "{secret} in {err:?}");
    }
    assert_eq!(elsewhere_requests.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_redirect_within_the_server_is_followed() {
    let (port, requests) = serve(|head, mut stream| async move {
        if head.starts_with("get /old/api/v1/query") {
            let location = "Location: /new/api/v1/query?query=vector%281%29\r\n";
            answer(&mut stream, "308 Permanent Redirect", location, "").await;
        } else {
            answer(&mut stream, "200 OK", "", ONE_SAMPLE).await;
        }
    })
    .await;
    let provider = PrometheusProvider::new(ProviderSettings::new(format!(
        "http://127.0.0.1:{port}/old"
    )))
    .unwrap();
    assert_eq!(
        provider.query("vector(1)").await.unwrap(),
        QueryOutcome::Value(99.5)
    );
    assert_eq!(requests.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_unreachable_server_is_named_without_its_secrets() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let provider = PrometheusProvider::new(ProviderSettings::new(format!(
        "http://admin:hunter2@127.0.0.1:{port}/prom?token=abc123#x"
    )))
    .unwrap();
    let err = provider.query("vector(1)").await.unwrap_err();
    let shown = format!("{err} {err:?} {provider:?}");
    assert!(
        err.to_string()
            .starts_with(&format!("request to http://127.0.0.1:{port}/prom failed: ")),
        "{err}"
    );
    for secret in ["hunter2", "admin", "abc123"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
}
