//! The `/metrics` endpoint Prometheus scrapes: a minimal HTTP/1.1 responder on loopback.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::State;
use crate::error::{Error, Result};

/// Binds a free loopback port and serves `GET /metrics` from the shared state.
pub(super) async fn serve(state: Arc<Mutex<State>>) -> Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .map_err(|e| {
            Error::io(
                "bind the traffic simulator's metrics port",
                "127.0.0.1:0",
                e,
            )
        })?;
    let addr = listener.local_addr().map_err(|e| {
        Error::io(
            "bind the traffic simulator's metrics port",
            "127.0.0.1:0",
            e,
        )
    })?;
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let state = state.clone();
            tokio::spawn(async move {
                let _ = answer(stream, &state).await;
            });
        }
    });
    Ok((addr, task))
}

async fn answer(mut stream: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    let mut request = Vec::new();
    let mut chunk = [0u8; 2048];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&request);
    let path = head.split_whitespace().nth(1).unwrap_or("/");
    let (status, body) = if path == "/metrics" || path.starts_with("/metrics?") {
        let body = state.lock().map(|s| s.metrics.render()).unwrap_or_default();
        ("200 OK", body)
    } else {
        ("404 Not Found", "only /metrics is served here\n".to_owned())
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
