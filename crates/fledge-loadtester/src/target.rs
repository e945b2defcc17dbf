//! A small HTTP server to load: it answers every request `200` with a short body, counts the
//! requests and the most requests in flight at once, and remembers the last request. The
//! tests measure the built-in hey against it and `cargo xtask bench loadtester` loads it with
//! hey, wrk and the built-in generator.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The body of every answer.
pub const BODY: &[u8] = b"OK\n";

/// A request the target received.
#[derive(Clone, Debug)]
pub struct SeenRequest {
    /// Its method.
    pub method: Method,
    /// Path and query.
    pub target: String,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body.
    pub body: Bytes,
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
    connections: AtomicU64,
    last: Mutex<Option<SeenRequest>>,
}

/// The running target; stops when dropped.
#[derive(Debug)]
pub struct TargetServer {
    address: SocketAddr,
    counters: Arc<Counters>,
    accept: JoinHandle<()>,
}

impl TargetServer {
    /// Listens on `127.0.0.1` (a free port) and answers each request after `delay`.
    ///
    /// # Errors
    /// No port could be bound.
    pub async fn start(delay: Duration) -> std::io::Result<Self> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), delay).await
    }

    /// Listens on `address`.
    ///
    /// # Errors
    /// The address cannot be bound.
    pub async fn start_on(address: SocketAddr, delay: Duration) -> std::io::Result<Self> {
        let listener = TcpListener::bind(address).await?;
        let address = listener.local_addr()?;
        let counters = Arc::new(Counters::default());
        let shared = counters.clone();
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                shared.connections.fetch_add(1, Ordering::Relaxed);
                let counters = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let counters = counters.clone();
                        async move { Ok::<_, Infallible>(answer(&counters, request, delay).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self {
            address,
            counters,
            accept,
        })
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `http://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.address)
    }

    /// Requests answered (or being answered).
    pub fn requests(&self) -> u64 {
        self.counters.requests.load(Ordering::Relaxed)
    }

    /// The most requests that were in flight at once.
    pub fn max_in_flight(&self) -> u64 {
        self.counters.max_in_flight.load(Ordering::Relaxed)
    }

    /// TCP connections accepted.
    pub fn connections(&self) -> u64 {
        self.counters.connections.load(Ordering::Relaxed)
    }

    /// The last request received.
    pub fn last_request(&self) -> Option<SeenRequest> {
        self.counters
            .last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Forgets the counts (between two runs against the same server).
    pub fn reset(&self) {
        self.counters.requests.store(0, Ordering::Relaxed);
        self.counters.max_in_flight.store(0, Ordering::Relaxed);
        self.counters.connections.store(0, Ordering::Relaxed);
    }
}

impl Drop for TargetServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn answer(
    counters: &Counters,
    request: Request<Incoming>,
    delay: Duration,
) -> Response<Full<Bytes>> {
    counters.requests.fetch_add(1, Ordering::Relaxed);
    let now = counters.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
    counters.max_in_flight.fetch_max(now, Ordering::Relaxed);
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(http_body_util::Collected::to_bytes)
        .unwrap_or_default();
    *counters.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(SeenRequest {
        method: parts.method,
        target: parts
            .uri
            .path_and_query()
            .map(ToString::to_string)
            .unwrap_or_default(),
        headers: parts.headers,
        body,
    });
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    counters.in_flight.fetch_sub(1, Ordering::Relaxed);
    Response::new(Full::new(Bytes::from_static(BODY)))
}
