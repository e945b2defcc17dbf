//! The built-in `hey`: an HTTP load generator with rakyll/hey's flags and semantics, so the
//! tutorials' load tests (`hey -z 1m -q 10 -c 2 http://podinfo-canary.test:9898/`) run with no
//! Go binary in the image.
//!
//! Semantics kept from hey:
//! - `-c` workers each send requests one after the other on their own connection;
//! - `-n` is split evenly between the workers (`n / c` each, so `-n 10 -c 3` sends 9);
//! - `-z` wins over `-n`: the workers send until the duration is over, and a request in flight
//!   then finishes;
//! - `-q` limits each worker (`-q 10 -c 2` is 20 requests per second in all), the first
//!   request of a worker waiting one period as hey's ticker does;
//! - `-t` is the timeout of each request in seconds (0: none);
//! - the summary at the end is hey's ([`Report::summary`]).
//!
//! The client is hyper's HTTP/1.1 connection, one per worker (no shared pool, no lock between
//! workers): the same shape as hey's transport with `MaxIdleConnsPerHost = c`, at a fraction of
//! the CPU per request. Redirects are not followed (answers count under their 3xx code, as
//! with hey's `-disable-redirects`), and bodies are not decompressed (hey's transport asks for
//! gzip and so does this one; the bytes are read and dropped either way).

mod options;
mod report;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::watch;

pub use options::{HEY_USER_AGENT, HeyError, HeyOptions, USAGE};
pub use report::{MAX_KEPT_LATENCIES, Report, Stage, Timings};

/// Tells a running generator to stop: workers finish the request in flight and return.
#[derive(Clone, Debug)]
pub struct StopHandle(Arc<watch::Sender<bool>>);

impl StopHandle {
    /// Stops the run.
    pub fn stop(&self) {
        self.0.send_replace(true);
    }
}

/// A load generator for one parsed hey command.
#[derive(Debug)]
pub struct Generator {
    options: Arc<HeyOptions>,
    stop: Arc<watch::Sender<bool>>,
}

impl Generator {
    /// A generator for `options`.
    pub fn new(options: HeyOptions) -> Self {
        Self {
            options: Arc::new(options),
            stop: Arc::new(watch::channel(false).0),
        }
    }

    /// Parses a hey command line (`hey -z 10s http://...`, with or without the leading `hey`).
    pub fn from_command_line<S: AsRef<str>>(args: &[S]) -> Result<Self, HeyError> {
        let args = match args.first() {
            Some(first) if first.as_ref() == "hey" => &args[1..],
            _ => args,
        };
        Ok(Self::new(HeyOptions::parse(args)?))
    }

    /// What this generator will send.
    pub fn options(&self) -> &HeyOptions {
        &self.options
    }

    /// A handle that stops the run early (Ctrl-C, the task's timeout).
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.stop.clone())
    }

    /// Sends the requests and measures them; returns once every worker is done. The
    /// latencies of the report are sorted.
    pub async fn run(&self) -> Report {
        let started = Instant::now();
        if let Some(duration) = self.options.duration {
            let stop = self.stop.clone();
            let mut stopped = stop.subscribe();
            tokio::spawn(async move {
                tokio::select! {
                    () = tokio::time::sleep(duration) => { stop.send_replace(true); }
                    () = until_stopped(&mut stopped) => {}
                }
            });
        }
        let keep = MAX_KEPT_LATENCIES.div_ceil(self.options.concurrency.max(1));
        let workers: Vec<_> = (0..self.options.concurrency)
            .map(|_| {
                let options = self.options.clone();
                let stop = self.stop.subscribe();
                tokio::spawn(async move { worker(&options, stop, started, keep).await })
            })
            .collect();
        let mut report = Report::default();
        for worker in workers {
            match worker.await {
                Ok(measured) => report.merge(measured),
                Err(error) => report.error(format!("worker failed: {error}")),
            }
        }
        // Ends the -z timer when the run ended first (-n reached).
        self.stop.send_replace(true);
        report.total = started.elapsed();
        report.sort();
        report
    }
}

/// One worker: requests one after the other, at most `qps` per second.
async fn worker(
    options: &HeyOptions,
    mut stop: watch::Receiver<bool>,
    started: Instant,
    keep: usize,
) -> Report {
    let mut report = Report::default();
    let mut connection: Option<SendRequest<Full<Bytes>>> = None;
    let mut ticker = (options.qps > 0.0).then(|| {
        let period =
            Duration::from_micros((1e6 / options.qps) as u64).max(Duration::from_micros(1));
        let mut ticker = tokio::time::interval_at((started + period).into(), period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        ticker
    });
    let limit = options.requests_per_worker();
    let mut sent = 0_u64;
    loop {
        if limit.is_some_and(|limit| sent >= limit) || *stop.borrow() {
            break;
        }
        if let Some(ticker) = ticker.as_mut() {
            tokio::select! {
                _ = ticker.tick() => {}
                () = until_stopped(&mut stop) => break,
            }
        }
        sent += 1;
        let start = Instant::now();
        let outcome = match options.timeout {
            Some(timeout) => {
                tokio::time::timeout(timeout, request(options, &mut connection, start))
                    .await
                    .unwrap_or_else(|_| {
                        Err(format!(
                            "(Client.Timeout exceeded while awaiting headers after {}s)",
                            timeout.as_secs()
                        ))
                    })
            }
            None => request(options, &mut connection, start).await,
        };
        match outcome {
            Ok((status, length, timings)) => report.answer(status, length, timings, keep),
            Err(error) => {
                connection = None;
                report.error(format!(
                    "{} \"{}\": {error}",
                    go_method(&options.method),
                    options.url
                ));
            }
        }
        if options.disable_keepalive {
            connection = None;
        }
    }
    report
}

/// Go prints `Get "url": ...` for a GET.
fn go_method(method: &http::Method) -> String {
    let text = method.as_str();
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_string() + &chars.as_str().to_ascii_lowercase()
    })
}

/// Sends one request on the worker's connection (dialing one when there is none or it
/// closed) and reads the whole answer.
async fn request(
    options: &HeyOptions,
    connection: &mut Option<SendRequest<Full<Bytes>>>,
    start: Instant,
) -> Result<(u16, u64, Timings), String> {
    let mut timings = Timings::default();
    let reused = connection.as_ref().is_some_and(|c| !c.is_closed());
    let mut sender = match connection.take() {
        Some(sender) if reused => sender,
        _ => dial(options, &mut timings).await?,
    };
    let sent_at = Instant::now();
    let response = match send(&mut sender, options).await {
        Ok(response) => response,
        // The server closed an idle connection as the request went out: Go's transport
        // retries such a request on a new connection, and so does this one.
        Err(error) if reused && (error.is_canceled() || error.is_incomplete_message()) => {
            sender = dial(options, &mut timings).await?;
            send(&mut sender, options)
                .await
                .map_err(|error| error.to_string())?
        }
        Err(error) => return Err(error.to_string()),
    };
    let headers_at = Instant::now();
    timings.wait = (headers_at - sent_at).as_secs_f64();
    let status = response.status().as_u16();
    let length = response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        frame.map_err(|error| format!("reading the response body: {error}"))?;
    }
    let done = Instant::now();
    timings.read = (done - headers_at).as_secs_f64();
    timings.total = (done - start).as_secs_f64();
    *connection = Some(sender);
    Ok((status, length, timings))
}

async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    options: &HeyOptions,
) -> Result<http::Response<hyper::body::Incoming>, hyper::Error> {
    sender.ready().await?;
    let mut request = Request::new(Full::new(options.body.clone()));
    *request.method_mut() = options.method.clone();
    *request.uri_mut() = http::Uri::try_from(options.path_and_query.as_str()).unwrap_or_default();
    *request.headers_mut() = options.headers.clone();
    sender.send_request(request).await
}

/// Resolves the host and opens a new HTTP/1.1 connection, timing both.
async fn dial(
    options: &HeyOptions,
    timings: &mut Timings,
) -> Result<SendRequest<Full<Bytes>>, String> {
    let (host, port) = &options.authority;
    let began = Instant::now();
    let addresses: Vec<_> = tokio::net::lookup_host((host.as_str(), *port))
        .await
        .map_err(|error| format!("dial tcp: lookup {host}: {error}"))?
        .collect();
    timings.dns = began.elapsed().as_secs_f64();
    let mut last_error = None;
    let mut stream = None;
    for address in &addresses {
        match TcpStream::connect(address).await {
            Ok(connected) => {
                stream = Some(connected);
                break;
            }
            Err(error) => last_error = Some(format!("dial tcp {address}: {error}")),
        }
    }
    let stream = stream.ok_or_else(|| {
        last_error.unwrap_or_else(|| format!("dial tcp: lookup {host}: no such host"))
    })?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|error| format!("handshake: {error}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    timings.dial = began.elapsed().as_secs_f64();
    Ok(sender)
}

/// Returns once the watched flag is true (or its sender is gone); holds no borrow of the
/// flag across an await, so the future stays `Send`.
async fn until_stopped(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|stopped| *stopped).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_spells_methods_in_title_case_in_errors() {
        assert_eq!(go_method(&http::Method::GET), "Get");
        assert_eq!(go_method(&http::Method::DELETE), "Delete");
    }
}
