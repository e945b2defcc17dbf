//! Helpers shared by the integration tests.
#![allow(dead_code, reason = "each test file uses a different subset")]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use fledge_loadtester::{Config, LoadTester};
use serde_json::{Value, json};

/// A loadtester on a free loopback port.
pub async fn loadtester(configure: impl FnOnce(&mut Config)) -> LoadTester {
    let mut config = Config {
        address: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..Config::default()
    };
    configure(&mut config);
    LoadTester::start(config)
        .await
        .expect("the loadtester starts")
}

/// Flagger's payload for canary `podinfo.test` with `metadata`.
pub fn payload(metadata: &[(&str, &str)]) -> Value {
    payload_in("test", metadata)
}

/// Flagger's payload for canary `podinfo.<namespace>`.
pub fn payload_in(namespace: &str, metadata: &[(&str, &str)]) -> Value {
    let mut body = json!({
        "name": "podinfo",
        "namespace": namespace,
        "phase": "Progressing",
        "checksum": "6d8f5c7b9",
    });
    if !metadata.is_empty() {
        body["metadata"] = metadata
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
            .collect::<serde_json::Map<_, _>>()
            .into();
    }
    body
}

/// POSTs `body` (JSON when it is a value, raw bytes otherwise) and returns status and text.
pub async fn post(
    address: SocketAddr,
    path: &str,
    body: impl Into<reqwest::Body>,
) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(format!("http://{address}{path}"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("the loadtester answers");
    let status = response.status().as_u16();
    (status, response.text().await.expect("a text body"))
}

/// POSTs a JSON payload.
pub async fn post_json(address: SocketAddr, path: &str, body: &Value) -> (u16, String) {
    post(address, path, body.to_string()).await
}

/// Waits until `condition` holds, up to `limit`.
pub async fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    condition()
}
