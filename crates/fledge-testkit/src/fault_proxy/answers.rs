//! The proxy's answers: the API server's Status for a fault, and a forwarded request whose
//! answer is streamed back (and cut when watches are broken).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::SinkExt;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use tokio::sync::watch;

use super::{ProxiedRequest, ProxyState};

/// Resolves when the watch is to be broken; never for a request that is no watch.
async fn broken(breaks: Option<&mut watch::Receiver<u64>>) {
    match breaks {
        Some(breaks) => {
            if breaks.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

/// The body of every answer.
pub(super) type ProxyBody = BoxBody<Bytes, std::io::Error>;

/// Whether the query asks for a watch.
pub(super) fn is_watch(query: Option<&str>) -> bool {
    query.is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"))
}

/// The API server's `Status` answer for `code`.
pub(super) fn status_answer(
    code: u16,
    reason: &str,
    retry_after: Option<u32>,
) -> Response<ProxyBody> {
    let mut status = serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("injected by the fault proxy: {reason}"),
        "reason": reason, "code": code,
    });
    if let Some(seconds) = retry_after {
        status["details"] = serde_json::json!({ "retryAfterSeconds": seconds });
    }
    let mut response = Response::new(
        Full::new(Bytes::from(status.to_string()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() =
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    if let Some(seconds) = retry_after {
        headers.insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
    }
    response
}

/// Headers that belong to one hop, not to the request or answer.
fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    let mut kept = headers.clone();
    for hop in [
        header::HOST,
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::CONTENT_LENGTH,
        header::UPGRADE,
        header::TE,
    ] {
        kept.remove(hop);
    }
    kept
}

/// Forwards `request` to the API server and streams its answer back.
pub(super) async fn forward(
    state: &Arc<ProxyState>,
    request: Request<Incoming>,
    method: Method,
    path: String,
    watch: bool,
) -> Response<ProxyBody> {
    let target = format!(
        "{}{}",
        state.upstream,
        request
            .uri()
            .path_and_query()
            .map_or("/", http::uri::PathAndQuery::as_str)
    );
    let headers = end_to_end(request.headers());
    let body = match request.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return status_answer(400, "BadRequest", None),
    };
    let sent = state
        .http
        .request(method.clone(), target)
        .headers(headers)
        .body(body)
        .send()
        .await;
    let record = |status: u16| {
        let mut book = state.book();
        book.counters.forwarded += 1;
        book.log.push(ProxiedRequest {
            at: Instant::now(),
            method: method.clone(),
            path: path.clone(),
            watch,
            status,
            faulted: false,
        });
    };
    let Ok(mut upstream) = sent else {
        record(502);
        return status_answer(502, "BadGateway", None);
    };
    record(upstream.status().as_u16());
    let mut response = Response::builder().status(upstream.status());
    if let Some(headers) = response.headers_mut() {
        *headers = end_to_end(upstream.headers());
    }
    let (mut frames, body) =
        futures::channel::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(16);
    // Only watches subscribe, so the count of receivers is the count of open watches.
    let mut breaks = watch.then(|| state.watch_breaks.subscribe());
    let broken_state = state.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                chunk = upstream.chunk() => match chunk {
                    Ok(Some(bytes)) => {
                        if frames.send(Ok(Frame::data(bytes))).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => return,
                    Err(error) => {
                        let _ = frames.send(Err(std::io::Error::other(error))).await;
                        return;
                    }
                },
                () = broken(breaks.as_mut()) => {
                    broken_state.book().counters.watches_broken += 1;
                    let _ = frames
                        .send(Err(std::io::Error::other("watch broken by the fault proxy")))
                        .await;
                    return;
                }
            }
        }
    });
    response
        .body(BodyExt::boxed(StreamBody::new(body)))
        .unwrap_or_else(|_| status_answer(502, "BadGateway", None))
}
