//! Hooks that misbehave, called as a tick calls them: one that never answers, one that
//! answers 5xx, one that answers 100 MB, one that redirects elsewhere or within itself, an
//! event hook that hangs.
//! Each call is bounded (timeout, retries, the tick's budget, the answer's size) and its
//! outcome names the hook's URL only without its secrets.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fledge_api::{Canary, CanaryPhase};
use fledge_engine::{ObservationRequest, WebhookOutcome, WebhookRequest};
use fledge_operator::controller::check_budget::TickBudget;
use fledge_operator::controller::webhooks::{WebhookCaller, run_webhook_checks};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A canary with one `pre-rollout` hook `check` (its spec lines after `name`).
fn canary_with_hook(hook: &str) -> Canary {
    fledge_api::yaml::from_str(&format!(
        "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {{ name: podinfo, namespace: test }}\n\
         spec:\n  targetRef: {{ apiVersion: apps/v1, kind: Deployment, name: podinfo }}\n  service: {{ port: 9898 }}\n  \
         analysis:\n    interval: 10s\n    threshold: 2\n    iterations: 1\n    webhooks:\n    - name: check\n      type: pre-rollout\n{hook}"
    ))
    .unwrap_or_else(|e| panic!("{e}"))
}

async fn call(hook: &str) -> WebhookOutcome {
    let caller = WebhookCaller::new().expect("the webhook clients");
    caller
        .call_named(&canary_with_hook(hook), "check", CanaryPhase::Progressing)
        .await
}

fn failure(outcome: WebhookOutcome) -> String {
    match outcome {
        WebhookOutcome::Failed(text) => text,
        WebhookOutcome::Passed => panic!("the hook passed"),
    }
}

/// Reads one request (head and the body its Content-Length announces); returns the head.
async fn read_request(stream: &mut TcpStream) -> String {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&request[..end]).to_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if request.len() >= end + 4 + length {
                return head;
            }
        }
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return String::from_utf8_lossy(&request).to_lowercase(),
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
}

/// A server answering each request with `respond(head, stream)`; counts the requests.
async fn serve<F, Fut>(respond: F) -> (u16, Arc<AtomicUsize>)
where
    F: Fn(String, TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let port = listener.local_addr().expect("an address").port();
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = requests.clone();
    let respond = Arc::new(respond);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let (respond, counted) = (respond.clone(), counted.clone());
            tokio::spawn(async move {
                let head = read_request(&mut stream).await;
                counted.fetch_add(1, Ordering::SeqCst);
                respond(head, stream).await;
            });
        }
    });
    (port, requests)
}

async fn answer(stream: &mut TcpStream, status: &str, headers: &str, body: &str) {
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
}

/// A server that reads each request and never answers.
async fn silent() -> (u16, Arc<AtomicUsize>) {
    serve(|_, stream| async move {
        tokio::time::sleep(Duration::from_secs(600)).await;
        drop(stream);
    })
    .await
}

#[tokio::test]
async fn a_hook_that_never_answers_fails_at_its_timeout_after_its_retries() {
    let (port, requests) = silent().await;
    let started = Instant::now();
    let text = failure(
        call(&format!(
            "      url: http://bot:hunter2@127.0.0.1:{port}/hook?token=abc123\n      timeout: 1s\n      retries: 2\n"
        ))
        .await,
    );
    let elapsed = started.elapsed();
    assert_eq!(
        text,
        format!("no answer within 1s from http://127.0.0.1:{port}/hook")
    );
    // Three attempts of 1 s with pauses of 1 s and 2 s between them.
    assert!(
        elapsed >= Duration::from_secs(6) && elapsed < Duration::from_secs(15),
        "took {elapsed:?}"
    );
    assert_eq!(requests.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_hanging_hook_with_a_long_timeout_is_cut_by_the_tick_budget() {
    let (port, _) = silent().await;
    let canary = fledge_api::yaml::from_str::<Canary>(&format!(
        "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {{ name: podinfo, namespace: test }}\n\
         spec:\n  targetRef: {{ apiVersion: apps/v1, kind: Deployment, name: podinfo }}\n  service: {{ port: 9898 }}\n  \
         analysis:\n    interval: 10s\n    threshold: 2\n    iterations: 1\n    webhooks:\n    \
         - {{ name: slow, type: rollout, url: 'http://127.0.0.1:{port}/slow', timeout: 5m, retries: 3 }}\n    \
         - {{ name: next, type: rollout, url: 'http://127.0.0.1:{port}/next' }}\n"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let request = |name: &str| WebhookRequest {
        name: name.to_owned(),
        hook_type: fledge_api::canary::HookType::Rollout,
        phase: CanaryPhase::Progressing,
    };
    let needs = ObservationRequest {
        metrics: Vec::new(),
        webhooks: vec![request("slow"), request("next")],
    };
    let caller = WebhookCaller::new().expect("the webhook clients");
    let started = Instant::now();
    let budget = TickBudget::for_interval(Duration::from_secs(10));
    let outcomes = run_webhook_checks(&caller, &canary, &needs, &budget).await;
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(10) && elapsed < Duration::from_secs(15),
        "took {elapsed:?}"
    );
    let exceeded = WebhookOutcome::Failed("tick time budget of 10s exceeded".to_owned());
    assert_eq!(outcomes.get("slow"), Some(&exceeded));
    assert_eq!(outcomes.get("next"), Some(&exceeded), "not even started");
}

#[tokio::test]
async fn a_hook_answering_5xx_is_retried_as_often_as_it_says_then_fails_with_its_answer() {
    let (port, requests) = serve(|_, mut stream| async move {
        answer(&mut stream, "503 Service Unavailable", "", "overloaded").await;
    })
    .await;
    let started = Instant::now();
    let outcome = call(&format!(
        "      url: http://127.0.0.1:{port}/hook\n      retries: 2\n"
    ))
    .await;
    assert_eq!(outcome, WebhookOutcome::Failed("overloaded".to_owned()));
    assert_eq!(requests.load(Ordering::SeqCst), 3);
    // Pauses of 1 s and 2 s: retried with backoff, not in a tight loop.
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(3) && elapsed < Duration::from_secs(10),
        "took {elapsed:?}"
    );
}

/// A server answering `status` with a 100 MB chunked body; counts the bytes it could write.
async fn hundred_megabytes(status: &'static str) -> (u16, Arc<AtomicUsize>) {
    let written = Arc::new(AtomicUsize::new(0));
    let counter = written.clone();
    let (port, _) = serve(move |_, mut stream| {
        let counter = counter.clone();
        async move {
            let head = format!("HTTP/1.1 {status}\r\nTransfer-Encoding: chunked\r\n\r\n");
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let chunk = vec![b'x'; 64 * 1024];
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
    (port, written)
}

#[tokio::test]
async fn a_hook_answering_100_mb_is_read_up_to_64_kib_and_its_status_decides() {
    let (port, written) = hundred_megabytes("500 Internal Server Error").await;
    let started = Instant::now();
    let text = failure(call(&format!("      url: http://127.0.0.1:{port}/hook\n")).await);
    let elapsed = started.elapsed();
    eprintln!("a 500 with 100 MB answered in {elapsed:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(
        text,
        format!(
            "{}… (500 Internal Server Error, answer of more than 64 KiB truncated)",
            "x".repeat(512)
        )
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = written.load(Ordering::SeqCst);
    eprintln!("the hook could write {sent} bytes of its 100 MB");
    assert!(sent < 32 * 1024 * 1024, "the hook could write {sent} bytes");

    let (port, written) = hundred_megabytes("200 OK").await;
    let started = Instant::now();
    let outcome = call(&format!("      url: http://127.0.0.1:{port}/hook\n")).await;
    assert_eq!(outcome, WebhookOutcome::Passed);
    assert!(started.elapsed() < Duration::from_secs(5));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = written.load(Ordering::SeqCst);
    assert!(sent < 32 * 1024 * 1024, "the hook could write {sent} bytes");
}

#[tokio::test]
async fn a_redirect_to_another_host_is_refused_once_and_named_without_secrets() {
    let (elsewhere, elsewhere_requests) = serve(|_, mut stream| async move {
        answer(&mut stream, "200 OK", "", "").await;
    })
    .await;
    let (port, requests) = serve(move |_, mut stream| async move {
        let location = format!("Location: http://localhost:{elsewhere}/collect?key=s3cret\r\n");
        answer(&mut stream, "307 Temporary Redirect", &location, "").await;
    })
    .await;
    let text = failure(
        call(&format!(
            "      url: http://127.0.0.1:{port}/services/T0123/B0456/XXXXXXXXXXXXXXXXXXXXXXXX\n      retries: 3\n"
        ))
        .await,
    );
    let hook = format!("http://127.0.0.1:{port}/services/<redacted>/<redacted>/<redacted>");
    assert_eq!(
        text,
        format!(
            "redirect from {hook} to http://localhost:{elsewhere}/collect refused: \
             only redirects to the same scheme, host and port are followed ({hook})"
        )
    );
    assert_eq!(elsewhere_requests.load(Ordering::SeqCst), 0);
    assert_eq!(
        requests.load(Ordering::SeqCst),
        1,
        "a refused redirect is not retried"
    );
}

#[tokio::test]
async fn a_redirect_within_the_hook_server_is_followed() {
    let (port, requests) = serve(|head, mut stream| async move {
        if head.starts_with("post /old") {
            answer(
                &mut stream,
                "307 Temporary Redirect",
                "Location: /new\r\n",
                "",
            )
            .await;
        } else if head.starts_with("post /new") {
            answer(&mut stream, "200 OK", "", "").await;
        } else {
            answer(&mut stream, "400 Bad Request", "", "expected a POST").await;
        }
    })
    .await;
    let outcome = call(&format!("      url: http://127.0.0.1:{port}/old\n")).await;
    assert_eq!(outcome, WebhookOutcome::Passed);
    assert_eq!(requests.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_answer_echoing_the_url_is_scrubbed_of_its_secrets() {
    let (port, _) = serve(|head, mut stream| async move {
        let first_line = head.lines().next().unwrap_or_default().to_owned();
        answer(
            &mut stream,
            "403 Forbidden",
            "",
            &format!("denied: {first_line}"),
        )
        .await;
    })
    .await;
    let text = failure(
        call(&format!(
            "      url: http://127.0.0.1:{port}/hooks/abcdef0123456789?token=abc123\n"
        ))
        .await,
    );
    assert_eq!(text, "denied: post /hooks/<redacted>?<redacted> http/1.1");
}

#[tokio::test]
async fn an_event_hook_that_hangs_holds_the_tick_for_30_seconds_at_most() {
    let (port, _) = silent().await;
    let canary = canary_with_hook(&format!(
        "      url: http://127.0.0.1:{port}/events?key=s3cret\n      timeout: 5m\n      retries: 10\n"
    ));
    let hook = canary
        .analysis()
        .and_then(|analysis| analysis.webhooks.first())
        .expect("the hook")
        .clone();
    let caller = WebhookCaller::new().expect("the webhook clients");
    let started = Instant::now();
    let text = failure(
        caller
            .send_event(&canary, &hook, "New revision detected!", "Normal")
            .await,
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(30) && elapsed < Duration::from_secs(40),
        "took {elapsed:?}"
    );
    assert_eq!(
        text,
        format!("event not delivered within 30s to http://127.0.0.1:{port}/events")
    );
}
