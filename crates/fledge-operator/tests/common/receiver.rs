//! A webhook receiver for stories: answers each POST with the status set for its path (or
//! the default) and keeps the bodies, like a load tester or a gate service would.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A running receiver; its task ends with the test's runtime.
#[derive(Clone)]
pub struct Receiver {
    default_status: Arc<Mutex<u16>>,
    statuses: Arc<Mutex<HashMap<String, u16>>>,
    bodies: Arc<Mutex<Vec<(String, Value)>>>,
    heads: Arc<Mutex<Vec<(String, String)>>>,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
}

impl Receiver {
    /// Listens on a free port, answering `default_status` to every path.
    pub async fn start(default_status: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let url = format!("http://{}", listener.local_addr().expect("an address"));
        let receiver = Self {
            default_status: Arc::new(Mutex::new(default_status)),
            statuses: Arc::new(Mutex::new(HashMap::new())),
            bodies: Arc::new(Mutex::new(Vec::new())),
            heads: Arc::new(Mutex::new(Vec::new())),
            url,
        };
        let serving = receiver.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let serving = serving.clone();
                tokio::spawn(async move {
                    let Some((path, head, body)) = read_request(&mut stream).await else {
                        return;
                    };
                    serving
                        .heads
                        .lock()
                        .expect("not poisoned")
                        .push((path.clone(), head));
                    let status = serving.status_of(&path);
                    serving
                        .bodies
                        .lock()
                        .expect("not poisoned")
                        .push((path, body));
                    let answer = if (200..300).contains(&status) {
                        "open"
                    } else {
                        "closed"
                    };
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

    /// Answers `status` to every path without a status of its own.
    pub fn set_default_status(&self, status: u16) {
        *self.default_status.lock().expect("not poisoned") = status;
    }

    /// Answers `status` to `path`.
    pub fn set_status(&self, path: &str, status: u16) {
        self.statuses
            .lock()
            .expect("not poisoned")
            .insert(path.to_owned(), status);
    }

    fn status_of(&self, path: &str) -> u16 {
        let statuses = self.statuses.lock().expect("not poisoned");
        statuses
            .get(path)
            .copied()
            .unwrap_or_else(|| *self.default_status.lock().expect("not poisoned"))
    }

    /// The request lines and headers of the requests to `path`, oldest first.
    pub fn heads(&self, path: &str) -> Vec<String> {
        let heads = self.heads.lock().expect("not poisoned");
        heads
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, h)| h.clone())
            .collect()
    }

    /// The bodies POSTed to `path`, oldest first.
    pub fn bodies(&self, path: &str) -> Vec<Value> {
        let bodies = self.bodies.lock().expect("not poisoned");
        bodies
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, b)| b.clone())
            .collect()
    }
}

/// Reads one request until the body announced by Content-Length is complete.
async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<(String, String, Value)> {
    let mut request = Vec::new();
    let mut buffer = [0_u8; 4096];
    loop {
        let read = stream.read(&mut buffer).await.ok()?;
        if read == 0 {
            return None;
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
                return Some((
                    path,
                    head.to_owned(),
                    serde_json::from_str(body).unwrap_or(Value::Null),
                ));
            }
        }
    }
}
