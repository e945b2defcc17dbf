//! The HTTP endpoint on `-port`: `/metrics`, `/healthz` and `/readyz`, served with hyper
//! (HTTP/1.1).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::Telemetry;

/// The content type of the OpenMetrics text format, which Prometheus negotiates.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How long a client may take to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds `0.0.0.0:port`, or `[::]:port` where IPv4 is not available.
///
/// # Errors
/// [`crate::Error::Config`] naming `-port` when the port cannot be bound.
pub async fn bind(port: u16) -> crate::Result<TcpListener> {
    let bound = match TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], port))).await {
        Err(v4_error) if v4_error.kind() != std::io::ErrorKind::AddrInUse => {
            TcpListener::bind(SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port)))
                .await
                .map_err(|_| v4_error)
        }
        bound => bound,
    };
    bound.map_err(|error| crate::Error::Config {
        flag: "-port (FLEDGE_PORT)".to_owned(),
        reason: format!("cannot listen on port {port}: {error}"),
    })
}

/// Serves `telemetry` on `listener` until the task is dropped or aborted.
pub async fn serve(listener: TcpListener, telemetry: Arc<Telemetry>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::warn!(%error, "cannot accept a connection on the metrics port");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let telemetry = telemetry.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let telemetry = telemetry.clone();
                async move {
                    let request: Request<Incoming> = request;
                    Ok::<_, Infallible>(answer(&telemetry, request.method(), request.uri().path()))
                }
            });
            let mut builder = http1::Builder::new();
            builder
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            if let Err(error) = builder
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, %peer, "metrics connection ended");
            }
        });
    }
}

fn answer(telemetry: &Telemetry, method: &Method, path: &str) -> Response<Full<Bytes>> {
    if *method != Method::GET && *method != Method::HEAD {
        let mut response = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET and HEAD\n".to_owned(),
        );
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match path {
        "/metrics" => {
            let mut response = text(StatusCode::OK, telemetry.encode());
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(OPENMETRICS),
            );
            response
        }
        "/healthz" => text(StatusCode::OK, "OK\n".to_owned()),
        "/readyz" => {
            let status = if telemetry.readiness().is_ready() {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            text(status, format!("{}\n", telemetry.readiness_text()))
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found; try /metrics, /healthz or /readyz\n".to_owned(),
        ),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::Readiness;
    use http_body_util::BodyExt;

    async fn get(telemetry: &Telemetry, method: &Method, path: &str) -> (StatusCode, String) {
        let response = answer(telemetry, method, path);
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("a full body")
            .to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn readyz_waits_for_the_caches_healthz_does_not() {
        let telemetry = Telemetry::new("0.1.0", "istio");
        assert_eq!(
            get(&telemetry, &Method::GET, "/healthz").await,
            (StatusCode::OK, "OK\n".to_owned())
        );
        assert_eq!(
            get(&telemetry, &Method::GET, "/readyz").await,
            (StatusCode::SERVICE_UNAVAILABLE, "starting\n".to_owned())
        );
        telemetry.set_readiness(Readiness::Synced);
        assert_eq!(
            get(&telemetry, &Method::GET, "/readyz").await,
            (StatusCode::OK, "synced\n".to_owned())
        );
    }

    #[tokio::test]
    async fn metrics_are_openmetrics_and_other_requests_are_refused() {
        let telemetry = Telemetry::new("0.1.0", "istio");
        let response = answer(&telemetry, &Method::GET, "/metrics");
        assert_eq!(
            response
                .headers()
                .get(header::CONTENT_TYPE)
                .map(header::HeaderValue::as_bytes),
            Some(OPENMETRICS.as_bytes())
        );
        let (status, body) = get(&telemetry, &Method::GET, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("flagger_info{"), "{body}");
        assert_eq!(
            get(&telemetry, &Method::GET, "/").await.0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            get(&telemetry, &Method::POST, "/metrics").await.0,
            StatusCode::METHOD_NOT_ALLOWED
        );
    }
}
