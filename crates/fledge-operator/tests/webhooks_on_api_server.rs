//! Webhooks in a running controller: a closed confirm-rollout gate holds a new version in
//! Waiting until it opens, and every event reaches `-event-webhook` with Flagger's payload.

mod common;

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Stage, capture_logs, messages, podinfo, wait_for_phase};
use fledge_api::CanaryPhase;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A webhook receiver: answers every POST with the current status and keeps the bodies.
#[derive(Clone)]
struct Receiver {
    status: Arc<AtomicU16>,
    bodies: Arc<Mutex<Vec<(String, Value)>>>,
    url: String,
}

impl Receiver {
    async fn start(status: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let url = format!("http://{}", listener.local_addr().expect("an address"));
        let receiver = Self {
            status: Arc::new(AtomicU16::new(status)),
            bodies: Arc::new(Mutex::new(Vec::new())),
            url,
        };
        let serving = receiver.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let serving = serving.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buffer = [0_u8; 4096];
                    // Read until the body announced by Content-Length is complete.
                    loop {
                        let Ok(read) = stream.read(&mut buffer).await else {
                            return;
                        };
                        if read == 0 {
                            return;
                        }
                        request.extend_from_slice(&buffer[..read]);
                        let text = String::from_utf8_lossy(&request).to_string();
                        if let Some((head, body)) = text.split_once("\r\n\r\n") {
                            let length = head
                                .lines()
                                .find_map(|l| {
                                    l.to_ascii_lowercase()
                                        .strip_prefix("content-length:")
                                        .map(|v| v.trim().to_owned())
                                })
                                .and_then(|v| v.parse::<usize>().ok())
                                .unwrap_or(0);
                            if body.len() >= length {
                                let path = head
                                    .split_whitespace()
                                    .nth(1)
                                    .unwrap_or_default()
                                    .to_owned();
                                let json = serde_json::from_str(body).unwrap_or(Value::Null);
                                serving
                                    .bodies
                                    .lock()
                                    .expect("not poisoned")
                                    .push((path, json));
                                break;
                            }
                        }
                    }
                    let status = serving.status.load(Ordering::SeqCst);
                    let answer = if status == 200 { "open" } else { "closed" };
                    let response = format!(
                        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                        answer.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                });
            }
        });
        receiver
    }

    fn bodies(&self, path: &str) -> Vec<Value> {
        let bodies = self.bodies.lock().expect("not poisoned");
        bodies
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, b)| b.clone())
            .collect()
    }
}

#[tokio::test]
async fn a_closed_gate_holds_the_canary_until_it_opens_and_events_reach_the_event_webhook() {
    let _logs = capture_logs();
    let receiver = Receiver::start(403).await;
    let stage = Stage::set_up(&format!(
        "  provider: kubernetes\n  analysis:\n    interval: 10s\n    threshold: 2\n    iterations: 1\n    webhooks:\n    \
         - name: gate\n      type: confirm-rollout\n      url: {}/gate\n      metadata: {{ team: checkout }}\n",
        receiver.url
    ))
    .await;
    let ns = stage.ns().to_owned();
    let event_webhook = format!("-event-webhook={}/events", receiver.url);
    let (stop, operator) = stage.run_operator(&["-mesh-provider=kubernetes", &event_webhook]);

    wait_for_phase(
        &stage.canaries,
        CanaryPhase::Initialized,
        Duration::from_secs(30),
    )
    .await;
    stage.kubectl_apply(podinfo("podinfo:6.0.1", None)).await;
    wait_for_phase(
        &stage.canaries,
        CanaryPhase::Waiting,
        Duration::from_secs(60),
    )
    .await;
    let held = messages(&stage.events).await;
    let halt = format!("Halt podinfo.{ns} advancement waiting for approval gate");
    assert!(held.contains(&halt), "{held:#?}");
    let gate_calls = receiver.bodies("/gate");
    assert!(!gate_calls.is_empty());
    assert_eq!(gate_calls[0]["name"], "podinfo");
    assert_eq!(gate_calls[0]["namespace"], ns.as_str());
    assert_eq!(gate_calls[0]["metadata"]["team"], "checkout");
    assert_eq!(
        stage.primary_image().await.as_deref(),
        Some("podinfo:6.0.0")
    );

    receiver.status.store(200, Ordering::SeqCst);
    wait_for_phase(
        &stage.canaries,
        CanaryPhase::Succeeded,
        Duration::from_secs(120),
    )
    .await;
    assert_eq!(
        stage.primary_image().await.as_deref(),
        Some("podinfo:6.0.1")
    );
    assert_eq!(stage.replicas("podinfo").await, Some(0));

    let events = receiver.bodies("/events");
    let sent: Vec<&str> = events
        .iter()
        .filter_map(|e| e["metadata"]["eventMessage"].as_str())
        .collect();
    let detected = format!("New revision detected! Scaling up podinfo.{ns}");
    assert!(sent.contains(&detected.as_str()), "{sent:#?}");
    assert!(sent.contains(&halt.as_str()), "{sent:#?}");
    assert!(
        events
            .iter()
            .all(|e| e["name"] == "podinfo" && e["metadata"]["eventType"].is_string())
    );

    let _ = stop.send(());
    let finished = tokio::time::timeout(Duration::from_secs(10), operator).await;
    assert!(
        matches!(finished, Ok(Ok(Ok(())))),
        "the controller stops cleanly: {finished:?}"
    );
}
