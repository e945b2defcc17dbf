//! A fault-injecting proxy in front of a [`LocalCluster`]'s kube-apiserver.
//!
//! It terminates TLS with the API server's own serving certificate (from the testkit's CA,
//! valid for `127.0.0.1`), forwards every request with its headers (the client's bearer
//! token included) to the API server, and streams the answer back. Rules set at run time
//! answer chosen requests (method + path pattern; N of them, a share, or all) with 429 and
//! `Retry-After`, with 500/503, or hold them unanswered (a blackhole); open watches can be
//! broken mid-stream on demand. Every request is logged with what it was answered, so a test
//! can count faults and measure the spacing of retries.

mod answers;

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use http::{Method, Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use regex::Regex;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::LocalCluster;
use crate::error::{Error, Result};
use crate::pki::{SERVING_CERT_FILE, SERVING_KEY_FILE};
use answers::{ProxyBody, forward, is_watch, status_answer};

/// What a rule answers instead of forwarding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `429 Too Many Requests` with `Retry-After` (and the API server's Status body, whose
    /// `details.retryAfterSeconds` says the same).
    TooManyRequests {
        /// The seconds `Retry-After` asks for.
        retry_after_seconds: u32,
    },
    /// A server error (`500`, `503`, ...) with a Status body.
    ServerError {
        /// The HTTP status.
        status: u16,
    },
    /// No answer: the request is held until the rule is removed (then answered 503), as a
    /// hung connection; the client's own timeout is what ends it.
    Blackhole,
}

/// How many of the requests a rule matches it answers.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Budget {
    All,
    Times(u64),
    Share(f64),
}

/// Requests matched by method and path, and what they are answered.
#[derive(Clone, Debug)]
pub struct FaultRule {
    method: Option<Method>,
    path: Regex,
    fault: Fault,
    budget: Budget,
}

impl FaultRule {
    /// Every request with `method` (`"*"`: any) whose path (without the query) matches the
    /// regular expression `path_pattern` is answered with `fault`.
    ///
    /// # Errors
    /// [`Error::Setting`] when the method or the pattern is invalid.
    pub fn new(method: &str, path_pattern: &str, fault: Fault) -> Result<Self> {
        let method = match method {
            "*" => None,
            method => Some(
                Method::from_bytes(method.to_ascii_uppercase().as_bytes()).map_err(|e| {
                    Error::Setting {
                        field: "fault rule method".to_owned(),
                        reason: format!("{method:?}: {e}; use GET, PATCH, ... or *"),
                    }
                })?,
            ),
        };
        let path = Regex::new(path_pattern).map_err(|e| Error::Setting {
            field: "fault rule path pattern".to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            method,
            path,
            fault,
            budget: Budget::All,
        })
    }

    /// Answers only the first `n` matching requests; later ones are forwarded.
    pub fn times(mut self, n: u64) -> Self {
        self.budget = Budget::Times(n);
        self
    }

    /// Answers a share (0–1) of the matching requests, evenly spread (0.5: every second
    /// one, starting with the second), so a test's outcome does not depend on chance.
    pub fn share(mut self, share: f64) -> Self {
        self.budget = Budget::Share(share.clamp(0.0, 1.0));
        self
    }

    fn matches(&self, method: &Method, path: &str) -> bool {
        self.method.as_ref().is_none_or(|m| m == method) && self.path.is_match(path)
    }
}

/// The handle of an added rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RuleId(u64);

/// One request that came through the proxy.
#[derive(Clone, Debug)]
pub struct ProxiedRequest {
    /// When it came (on the test's monotonic clock).
    pub at: Instant,
    /// Its method.
    pub method: Method,
    /// Its path, without the query.
    pub path: String,
    /// Whether it was a watch (`watch=true` / `watch=1`).
    pub watch: bool,
    /// The status it was answered: the API server's when forwarded, the fault's otherwise
    /// (0 for a blackholed request, 502 when the API server could not be reached).
    pub status: u16,
    /// Whether a rule answered it instead of the API server.
    pub faulted: bool,
}

/// How many requests the proxy handled, by what it answered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultCounters {
    /// Requests forwarded to the API server.
    pub forwarded: u64,
    /// Requests answered 429.
    pub too_many_requests: u64,
    /// Requests answered with a 5xx by a rule.
    pub server_errors: u64,
    /// Requests held unanswered.
    pub blackholed: u64,
    /// Open watches broken by [`FaultProxy::break_watches`].
    pub watches_broken: u64,
}

struct ActiveRule {
    id: RuleId,
    rule: FaultRule,
    matched: u64,
    answered: u64,
}

impl ActiveRule {
    /// Counts a matching request; whether this one is answered with the fault.
    fn take(&mut self) -> bool {
        self.matched += 1;
        let answer = match self.rule.budget {
            Budget::All => true,
            Budget::Times(n) => self.answered < n,
            Budget::Share(share) => {
                let due = (self.matched as f64 * share).floor() as u64;
                self.answered < due
            }
        };
        self.answered += u64::from(answer);
        answer
    }
}

#[derive(Default)]
struct Book {
    rules: Vec<ActiveRule>,
    next_id: u64,
    /// Rules removed, with how many requests they answered.
    retired: Vec<(RuleId, u64)>,
    counters: FaultCounters,
    log: Vec<ProxiedRequest>,
}

struct ProxyState {
    upstream: String,
    http: reqwest::Client,
    book: Mutex<Book>,
    /// Bumped to break every open watch.
    watch_breaks: watch::Sender<u64>,
    /// Bumped when rules are removed, to release blackholed requests.
    releases: watch::Sender<u64>,
    /// Set when the proxy is dropped: open connections end.
    closed: watch::Sender<bool>,
}

impl ProxyState {
    fn book(&self) -> MutexGuard<'_, Book> {
        // A test that panicked while holding the lock has failed anyway; keep serving.
        self.book
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A fault-injecting HTTPS proxy in front of one [`LocalCluster`]'s API server, with a
/// kubeconfig and a [`kube::Client`] that talk through it. Stops when dropped.
pub struct FaultProxy {
    state: Arc<ProxyState>,
    url: String,
    kubeconfig: PathBuf,
    operator_kubeconfig: PathBuf,
    client: kube::Client,
    accept: JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("url", &self.url)
            .field("upstream", &self.state.upstream)
            .field("counters", &self.counters())
            .finish_non_exhaustive()
    }
}

impl FaultProxy {
    /// Starts a proxy on a free loopback port in front of `cluster`'s API server.
    ///
    /// # Errors
    /// [`Error::Io`] when the certificate cannot be read or the port bound,
    /// [`Error::Setting`] when TLS cannot be set up, [`Error::Kubeconfig`] for the client.
    pub async fn start(cluster: &LocalCluster) -> Result<Self> {
        let tls = tls_acceptor(cluster.dir())?;
        let ca_path = cluster.ca_cert_path();
        let ca = std::fs::read(ca_path).map_err(|e| Error::io("read", ca_path, e))?;
        let ca = reqwest::Certificate::from_pem(&ca).map_err(|e| Error::Setting {
            field: format!("CA certificate {}", ca_path.display()),
            reason: e.to_string(),
        })?;
        let http = reqwest::Client::builder()
            .tls_certs_only([ca])
            .build()
            .map_err(|e| Error::Setting {
                field: "fault proxy's upstream client".to_owned(),
                reason: e.to_string(),
            })?;
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| Error::io("bind the fault proxy", "127.0.0.1:0", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| Error::io("read the fault proxy's address", "127.0.0.1:0", e))?
            .port();
        let url = format!("https://127.0.0.1:{port}");
        let state = Arc::new(ProxyState {
            upstream: cluster.server_url().to_owned(),
            http,
            book: Mutex::default(),
            watch_breaks: watch::channel(0).0,
            releases: watch::channel(0).0,
            closed: watch::channel(false).0,
        });
        let accept = tokio::spawn(accept_loop(listener, tls, state.clone()));
        let dir = tempfile::Builder::new()
            .prefix("fledge-fault-proxy-")
            .tempdir()
            .map_err(|e| Error::io("create temp dir", std::env::temp_dir(), e))?;
        let kubeconfig = dir.path().join("kubeconfig");
        write_kubeconfig(&kubeconfig, &url, ca_path, cluster.admin_token())?;
        let operator_kubeconfig = dir.path().join("operator.kubeconfig");
        write_kubeconfig(
            &operator_kubeconfig,
            &url,
            ca_path,
            cluster.operator_token(),
        )?;
        let client = crate::client_from_kubeconfig(&kubeconfig).await?;
        Ok(Self {
            state,
            url,
            kubeconfig,
            operator_kubeconfig,
            client,
            accept,
            _dir: dir,
        })
    }

    /// The proxy's URL (`https://127.0.0.1:<port>`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A kubeconfig (the cluster's CA and admin token) whose server is the proxy.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// A kubeconfig acting as the operator's ServiceAccount (see
    /// [`LocalCluster::operator_kubeconfig_path`]) whose server is the proxy.
    pub fn operator_kubeconfig_path(&self) -> &Path {
        &self.operator_kubeconfig
    }

    /// A client talking to the API server through the proxy.
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// Adds a rule; rules are tried in the order added, the first that answers wins.
    pub fn add(&self, rule: FaultRule) -> RuleId {
        let mut book = self.state.book();
        let id = RuleId(book.next_id);
        book.next_id += 1;
        book.rules.push(ActiveRule {
            id,
            rule,
            matched: 0,
            answered: 0,
        });
        id
    }

    /// Removes a rule (blackholed requests it held are answered 503).
    pub fn remove(&self, id: RuleId) {
        {
            let mut book = self.state.book();
            if let Some(at) = book.rules.iter().position(|r| r.id == id) {
                let rule = book.rules.remove(at);
                book.retired.push((id, rule.answered));
            }
        }
        self.state.releases.send_modify(|n| *n += 1);
    }

    /// Removes every rule: from now on every request is forwarded.
    pub fn clear(&self) {
        let ids: Vec<RuleId> = self.state.book().rules.iter().map(|r| r.id).collect();
        for id in ids {
            self.remove(id);
        }
    }

    /// How many requests the rule `id` answered so far.
    pub fn answered(&self, id: RuleId) -> u64 {
        let book = self.state.book();
        book.rules
            .iter()
            .find(|r| r.id == id)
            .map(|r| r.answered)
            .or_else(|| book.retired.iter().find(|(r, _)| *r == id).map(|(_, n)| *n))
            .unwrap_or(0)
    }

    /// Breaks every open watch now: its response ends mid-stream with an error (the
    /// connection is cut without the final chunk). Returns how many were open.
    pub fn break_watches(&self) -> usize {
        let open = self.state.watch_breaks.receiver_count();
        self.state.watch_breaks.send_modify(|n| *n += 1);
        open
    }

    /// What the proxy answered so far.
    pub fn counters(&self) -> FaultCounters {
        self.state.book().counters
    }

    /// Every request so far, in the order they came.
    pub fn requests(&self) -> Vec<ProxiedRequest> {
        self.state.book().log.clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        let _ = self.state.closed.send(true);
    }
}

/// TLS with the API server's serving certificate, which names `127.0.0.1`.
fn tls_acceptor(pki_dir: &Path) -> Result<TlsAcceptor> {
    let cert_path = pki_dir.join(SERVING_CERT_FILE);
    let key_path = pki_dir.join(SERVING_KEY_FILE);
    let cert = std::fs::read(&cert_path).map_err(|e| Error::io("read", &cert_path, e))?;
    let key = std::fs::read(&key_path).map_err(|e| Error::io("read", &key_path, e))?;
    let invalid = |path: &Path, e: &dyn std::fmt::Display| Error::Setting {
        field: path.display().to_string(),
        reason: e.to_string(),
    };
    let certs = CertificateDer::pem_slice_iter(&cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(&cert_path, &e))?;
    let key = PrivateKeyDer::from_pem_slice(&key).map_err(|e| invalid(&key_path, &e))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| invalid(&cert_path, &e))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn write_kubeconfig(path: &Path, server: &str, ca: &Path, token: &str) -> Result<()> {
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": "fault-proxy", "cluster": {
            "server": server, "certificate-authority": ca,
        }}],
        "users": [{ "name": "admin", "user": { "token": token } }],
        "contexts": [{ "name": "fault-proxy", "context": {
            "cluster": "fault-proxy", "user": "admin", "namespace": "default",
        }}],
        "current-context": "fault-proxy",
    });
    std::fs::write(path, config.to_string()).map_err(|e| Error::io("write kubeconfig", path, e))
}

async fn accept_loop(listener: TcpListener, tls: TlsAcceptor, state: Arc<ProxyState>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (tls, state) = (tls.clone(), state.clone());
        tokio::spawn(async move {
            let Ok(stream) = tls.accept(stream).await else {
                return;
            };
            let mut closed = state.closed.subscribe();
            let service = service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(&state, request).await) }
            });
            let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                _ = closed.wait_for(|closed| *closed) => {}
            }
        });
    }
}

async fn handle(state: &Arc<ProxyState>, request: Request<Incoming>) -> Response<ProxyBody> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let watch = is_watch(request.uri().query());
    let fault = {
        let mut book = state.book();
        let fault = book
            .rules
            .iter_mut()
            .filter(|r| r.rule.matches(&method, &path))
            .find_map(|r| r.take().then_some(r.rule.fault));
        let status = match fault {
            Some(Fault::TooManyRequests { .. }) => {
                book.counters.too_many_requests += 1;
                429
            }
            Some(Fault::ServerError { status }) => {
                book.counters.server_errors += 1;
                status
            }
            Some(Fault::Blackhole) => {
                book.counters.blackholed += 1;
                0
            }
            None => 0,
        };
        if fault.is_some() {
            book.log.push(ProxiedRequest {
                at: Instant::now(),
                method: method.clone(),
                path: path.clone(),
                watch,
                status,
                faulted: true,
            });
        }
        fault
    };
    match fault {
        Some(Fault::TooManyRequests {
            retry_after_seconds,
        }) => status_answer(429, "TooManyRequests", Some(retry_after_seconds)),
        Some(Fault::ServerError { status }) => status_answer(status, "InternalError", None),
        Some(Fault::Blackhole) => {
            let mut releases = state.releases.subscribe();
            let _ = releases.changed().await;
            status_answer(503, "ServiceUnavailable", None)
        }
        None => forward(state, request, method, path, watch).await,
    }
}
