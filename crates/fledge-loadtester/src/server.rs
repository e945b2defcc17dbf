//! The HTTP API, route for route as Flagger's loadtester (`pkg/loadtester/server.go`).
//!
//! | route | answer |
//! |---|---|
//! | `/healthz` | `200 OK` |
//! | `/metrics` | task counters, Prometheus text |
//! | `/gate/approve` | `200 OK` |
//! | `/gate/halt` | `403 Forbidden` |
//! | `/gate/check`, `/rollback/check` | `200 Approved` when open, `403 Forbidden` when closed |
//! | `/gate/open`, `/gate/close`, `/rollback/open`, `/rollback/close` | `202` |
//! | `/` (and any other path) | runs the task in `metadata` (see [`crate::task`]) |
//!
//! The routes that read a payload answer `400` with the reason when it is not JSON (Flagger
//! answers an empty 400), `413` when it is larger than `-max-body-bytes`, and `403 Forbidden`
//! when `-namespace-regexp` does not match the canary's namespace.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::gate::{GateStore, Switch};
use crate::payload::WebhookPayload;
use crate::task::{Task, TaskKind, TaskRunner};

/// The loadtester's version, logged at start.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// How long a client may take to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// What every connection shares.
#[derive(Debug)]
struct State {
    config: Config,
    gates: Arc<GateStore>,
    runner: Arc<TaskRunner>,
}

/// A loadtester serving its API; stop it with [`LoadTester::stop`] (dropping it stops the
/// accept loop too, without waiting).
#[derive(Debug)]
pub struct LoadTester {
    address: SocketAddr,
    state: Arc<State>,
    shutdown: watch::Sender<bool>,
    accept: JoinHandle<()>,
}

impl LoadTester {
    /// Binds `config.address` and serves the API in the background.
    ///
    /// # Errors
    /// The port cannot be bound.
    pub async fn start(config: Config) -> std::io::Result<Self> {
        let listener = TcpListener::bind(config.address).await?;
        let address = listener.local_addr()?;
        tracing::info!(
            "Starting load tester v{VERSION} API on port {}",
            address.port()
        );
        let state = Arc::new(State {
            runner: Arc::new(TaskRunner::new(config.timeout)),
            gates: Arc::new(GateStore::new()),
            config,
        });
        let (shutdown, stopped) = watch::channel(false);
        let accept = tokio::spawn(serve(listener, state.clone(), stopped));
        Ok(Self {
            address,
            state,
            shutdown,
            accept,
        })
    }

    /// The address the API listens on (its port when `-port=0` was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// The gate and rollback switches.
    pub fn gates(&self) -> &Arc<GateStore> {
        &self.state.gates
    }

    /// The task runner.
    pub fn runner(&self) -> &Arc<TaskRunner> {
        &self.state.runner
    }

    /// Stops accepting, lets the requests in progress finish (up to 10 s) and stops the
    /// background tasks.
    pub async fn stop(self) {
        let Self {
            shutdown,
            accept,
            state,
            ..
        } = self;
        shutdown.send_replace(true);
        let _ = tokio::time::timeout(Duration::from_secs(10), async {
            let _ = accept.await;
            // Every connection holds a receiver until its last request is answered.
            shutdown.closed().await;
        })
        .await;
        state.runner.shutdown();
        tracing::info!("HTTP server stopped");
    }
}

async fn serve(listener: TcpListener, state: Arc<State>, mut stopped: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = until_stopped(&mut stopped) => return,
        };
        let (stream, _) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let state = state.clone();
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(answer(&state, request).await) }
            });
            let mut builder = http1::Builder::new();
            builder
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                () = until_stopped(&mut stopped) => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
}

async fn answer(state: &State, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    match path.as_str() {
        "/healthz" | "/gate/approve" => return text(StatusCode::OK, "OK"),
        "/gate/halt" => return text(StatusCode::FORBIDDEN, "Forbidden"),
        "/metrics" => return metrics(state),
        _ => {}
    }
    let payload = match read_payload(state, request).await {
        Ok(payload) => payload,
        Err(response) => return response,
    };
    if let Some(pattern) = &state.config.namespace_regexp
        && !pattern.is_match(&payload.namespace)
    {
        return text(StatusCode::FORBIDDEN, "Forbidden");
    }
    let canary = payload.canary();
    match path.as_str() {
        "/gate/check" => check(state, Switch::Gate, &canary),
        "/rollback/check" => check(state, Switch::Rollback, &canary),
        "/gate/open" => flip(state, Switch::Gate, &canary, true),
        "/gate/close" => flip(state, Switch::Gate, &canary, false),
        "/rollback/open" => flip(state, Switch::Rollback, &canary, true),
        "/rollback/close" => flip(state, Switch::Rollback, &canary, false),
        _ => new_task(state, payload).await,
    }
}

async fn read_payload(
    state: &State,
    request: Request<Incoming>,
) -> Result<WebhookPayload, Response<Full<Bytes>>> {
    let limit = state.config.max_body_bytes;
    let body = match Limited::new(request.into_body(), limit).collect().await {
        Ok(body) => body.to_bytes(),
        Err(error) => {
            if error.is::<http_body_util::LengthLimitError>() {
                tracing::error!("reading the request body failed: larger than {limit} bytes");
                return Err(text(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("the request body is larger than {limit} bytes (-max-body-bytes)"),
                ));
            }
            tracing::error!(error = %error, "reading the request body failed");
            return Err(text(
                StatusCode::BAD_REQUEST,
                &format!("reading the request body failed: {error}"),
            ));
        }
    };
    WebhookPayload::from_json(&body).map_err(|error| {
        tracing::error!(error = %error, "decoding the request body failed");
        text(
            StatusCode::BAD_REQUEST,
            &format!("decoding the request body failed: {error}"),
        )
    })
}

fn check(state: &State, switch: Switch, canary: &str) -> Response<Full<Bytes>> {
    let key = switch.key(canary);
    let approved = state.gates.is_open(&key);
    match switch {
        Switch::Gate => tracing::info!("{key} gate check: approved {approved}"),
        Switch::Rollback => tracing::info!("{key} rollback check: approved {approved}"),
    }
    if approved {
        text(StatusCode::OK, "Approved")
    } else {
        text(StatusCode::FORBIDDEN, "Forbidden")
    }
}

fn flip(state: &State, switch: Switch, canary: &str, open: bool) -> Response<Full<Bytes>> {
    let key = switch.key(canary);
    if open {
        state.gates.open(&key);
    } else {
        state.gates.close(&key);
    }
    let what = match switch {
        Switch::Gate => "gate",
        Switch::Rollback => "rollback",
    };
    let how = if open { "opened" } else { "closed" };
    tracing::info!("{key} {what} {how}");
    text(StatusCode::ACCEPTED, "")
}

async fn new_task(state: &State, payload: WebhookPayload) -> Response<Full<Bytes>> {
    if payload.metadata.is_empty() {
        return text(StatusCode::BAD_REQUEST, "metadata not found in payload");
    }
    let metadata = &payload.metadata;
    let kind_name = metadata.get("type").map_or("cmd", String::as_str);
    let flag = |name: &str| {
        metadata
            .get(name)
            .and_then(|value| crate::goflag::parse_go_bool(value))
            .unwrap_or(false)
    };
    let return_output = flag("returnCmdOutput");
    if kind_name == "concord" {
        return crate::concord::run(state.runner.timeout(), &payload).await;
    }
    let Some(kind) = TaskKind::parse(kind_name) else {
        let reason = if kind_name == "ngrinder" {
            "task type ngrinder is not supported by fledge-loadtester; run nGrinder from a \
             `bash` task with curl, or keep Flagger's loadtester for it"
                .to_owned()
        } else {
            format!("unknown task type {kind_name}")
        };
        return text(StatusCode::BAD_REQUEST, &reason);
    };
    let command = match (kind, metadata.get("cmd")) {
        (_, Some(command)) => command.clone(),
        (TaskKind::Cmd, None) => {
            return text(StatusCode::BAD_REQUEST, "cmd not found in metadata");
        }
        (_, None) => String::new(),
    };
    let canary = payload.canary();
    let task = Task {
        canary: canary.clone(),
        kind,
        command,
        log_output: kind != TaskKind::Cmd || flag("logCmdOutput") || state.config.log_cmd_output,
    };
    if let Err(error) = TaskRunner::check(&task) {
        tracing::error!(canary = %canary, "command failed {} {error}", task.command);
        let status = match error {
            crate::task::TaskError::Hey(_) => StatusCode::BAD_REQUEST,
            crate::task::TaskError::MissingTool { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        return text(status, &error.to_string());
    }
    if kind == TaskKind::Cmd {
        state.runner.submit(task);
        return text(StatusCode::ACCEPTED, "");
    }
    if kind == TaskKind::Bash {
        tracing::info!(canary = %payload.name, "bash command {}", task.command);
    }
    let outcome = state.runner.run(&task).await;
    match outcome.error {
        Some(error) => text(StatusCode::INTERNAL_SERVER_ERROR, &error),
        None if return_output => {
            let mut response = Response::new(Full::new(Bytes::from(outcome.output)));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            response
        }
        None => text(StatusCode::OK, ""),
    }
}

fn metrics(state: &State) -> Response<Full<Bytes>> {
    let body = format!(
        "# HELP fledge_loadtester_tasks_total Tasks run since the start.\n\
         # TYPE fledge_loadtester_tasks_total counter\n\
         fledge_loadtester_tasks_total {}\n\
         # HELP fledge_loadtester_tasks_running Background tasks running now.\n\
         # TYPE fledge_loadtester_tasks_running gauge\n\
         fledge_loadtester_tasks_running {}\n",
        state.runner.total_executions(),
        state.runner.running().len()
    );
    let mut response = text(StatusCode::OK, &body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// A plain-text answer.
pub(crate) fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Returns once the watched flag is true (or its sender is gone); holds no borrow of the
/// flag across an await, so the future stays `Send`.
async fn until_stopped(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|stopped| *stopped).await;
}
