//! How a notifier reaches its receiver: one JSON POST with a timeout, an optional bearer token
//! and an optional proxy.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderValue};
use reqwest::{Client, Proxy, Url};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::notifier::NotifierKind;
use crate::sensitive::Sensitive;

/// HTTP clients shared by endpoints, one per proxy.
///
/// Building a client loads the TLS trust roots, which costs tens of milliseconds; resolving
/// an AlertProvider for every alert must not pay that each time. Cheap to clone.
#[derive(Clone, Default)]
pub struct HttpClients {
    // Keyed by proxy URL, "" for direct connections.
    clients: Arc<Mutex<HashMap<String, Client>>>,
}

impl fmt::Debug for HttpClients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The keys are proxy URLs, which may hold credentials.
        let count = self
            .clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("HttpClients")
            .field("clients", &count)
            .finish()
    }
}

impl HttpClients {
    /// An empty pool.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many distinct clients (one per proxy) have been built.
    pub fn len(&self) -> usize {
        self.clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no client has been built yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The client that sends through `proxy` (directly when `None`), built on first use.
    fn client(&self, proxy: Option<&Url>) -> std::result::Result<Client, reqwest::Error> {
        let key = proxy.map(Url::as_str).unwrap_or_default().to_owned();
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = clients.get(&key) {
            return Ok(client.clone());
        }
        let mut builder = Client::builder();
        if let Some(proxy) = proxy {
            builder = builder.proxy(Proxy::all(proxy.clone())?);
        }
        let client = builder.build()?;
        clients.insert(key, client.clone());
        Ok(client)
    }
}

/// Time a receiver gets to answer when none is configured (Flagger's 5 seconds).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// How much of a refusing receiver's answer is kept for the error message.
const BODY_EXCERPT_BYTES: usize = 512;

/// A receiver's address with the client that posts to it.
#[derive(Clone)]
pub struct Endpoint {
    kind: NotifierKind,
    client: Client,
    url: Url,
    token: Option<Sensitive>,
    // Everything secret about the endpoint, redacted from receivers' answers.
    secrets: Vec<Sensitive>,
    timeout: Duration,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The host alone is not a credential; the path and query of a webhook URL are.
        f.debug_struct("Endpoint")
            .field("kind", &self.kind)
            .field("host", &self.url.host_str().unwrap_or_default())
            .field(
                "token",
                &self.token.as_ref().map(|_| crate::sensitive::REDACTED),
            )
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Builds an [`Endpoint`]; see [`Endpoint::builder`].
#[derive(Debug)]
pub struct EndpointBuilder {
    kind: NotifierKind,
    address: Sensitive,
    address_field: String,
    token: Option<Sensitive>,
    proxy: Option<(Sensitive, String)>,
    timeout: Duration,
}

impl Endpoint {
    /// Starts an endpoint for `kind` at `address`; `address_field` says where the address
    /// came from (`spec.address`), for error messages.
    pub fn builder(
        kind: NotifierKind,
        address: impl Into<Sensitive>,
        address_field: impl Into<String>,
    ) -> EndpointBuilder {
        EndpointBuilder {
            kind,
            address: address.into(),
            address_field: address_field.into(),
            token: None,
            proxy: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The service this endpoint belongs to.
    pub fn kind(&self) -> NotifierKind {
        self.kind
    }

    /// The time the receiver gets to answer.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The receiver's URL. It is a credential: do not log it.
    pub(crate) fn url(&self) -> &Url {
        &self.url
    }

    /// Replaces the URL (Discord's `/slack` suffix).
    pub(crate) fn set_url(&mut self, url: Url) {
        self.secrets.push(Sensitive::new(url.as_str()));
        self.url = url;
    }

    /// POSTs `payload` as `application/json`, with `Authorization: Bearer` when a token is set.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when no answer arrives in time, [`Error::Unreachable`] when the
    /// request cannot be sent, [`Error::Rejected`] on a status outside 2xx.
    pub async fn post_json<T: Serialize + Sync>(&self, payload: &T) -> Result<()> {
        let body = serde_json::to_vec(payload).map_err(|source| Error::Encode {
            kind: self.kind,
            source,
        })?;
        let mut request = self
            .client
            .post(self.url.clone())
            .timeout(self.timeout)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(body);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.expose());
        }
        let mut response = request.send().await.map_err(|e| self.transport_error(e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let mut excerpt = Vec::new();
        // A body that fails half-way still explains the refusal with what arrived.
        while excerpt.len() < BODY_EXCERPT_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => excerpt.extend_from_slice(&chunk),
                Ok(None) | Err(_) => break,
            }
        }
        excerpt.truncate(BODY_EXCERPT_BYTES);
        let text = String::from_utf8_lossy(&excerpt);
        let body = self
            .secrets
            .iter()
            .fold(text.trim().to_owned(), |body, secret| {
                secret.redact_from(&body)
            });
        Err(Error::Rejected {
            kind: self.kind,
            status: status.as_u16(),
            body,
        })
    }

    fn transport_error(&self, error: reqwest::Error) -> Error {
        if error.is_timeout() {
            Error::Timeout {
                kind: self.kind,
                after: self.timeout,
            }
        } else {
            Error::Unreachable {
                kind: self.kind,
                source: error.without_url(),
            }
        }
    }
}

impl EndpointBuilder {
    /// Sends `Authorization: Bearer <token>` (Slack's `chat.postMessage`, generic webhooks).
    /// A blank token sends nothing.
    pub fn token(mut self, token: impl Into<Sensitive>) -> Self {
        let token = token.into();
        self.token = (!token.is_blank()).then_some(token);
        self
    }

    /// Sends through an HTTP(S) proxy; `field` says where it came from (`spec.proxy`).
    /// A blank proxy means none.
    pub fn proxy(mut self, proxy: impl Into<Sensitive>, field: impl Into<String>) -> Self {
        let proxy = proxy.into();
        self.proxy = (!proxy.is_blank()).then(|| (proxy, field.into()));
        self
    }

    /// Gives the receiver this long to answer (default [`DEFAULT_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Checks the address and proxy and builds the endpoint with a client of its own.
    ///
    /// # Errors
    ///
    /// As [`Self::build_with`].
    pub fn build(self) -> Result<Endpoint> {
        self.build_with(&HttpClients::new())
    }

    /// Checks the address and proxy and builds the endpoint on a client from `clients`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidAddress`] or [`Error::InvalidProxy`] naming the field at fault;
    /// [`Error::Client`] when the TLS back-end cannot start.
    pub fn build_with(self, clients: &HttpClients) -> Result<Endpoint> {
        let kind = self.kind;
        let url =
            parse_http_url(self.address.expose()).map_err(|reason| Error::InvalidAddress {
                kind,
                field: self.address_field.clone(),
                reason,
            })?;
        let mut secrets = vec![self.address.clone(), Sensitive::new(url.as_str())];
        let mut proxy_url = None;
        if let Some((proxy, field)) = &self.proxy {
            let parsed = parse_http_url(proxy.expose()).map_err(|_| Error::InvalidProxy {
                kind,
                field: field.clone(),
            })?;
            proxy_url = Some(parsed);
            secrets.push(proxy.clone());
        }
        if let Some(token) = &self.token {
            secrets.push(token.clone());
        }
        let client = clients
            .client(proxy_url.as_ref())
            .map_err(|source| Error::Client {
                kind,
                source: source.without_url(),
            })?;
        Ok(Endpoint {
            kind,
            client,
            url,
            token: self.token,
            secrets,
            timeout: self.timeout,
        })
    }
}

/// An absolute `http`/`https` URL with a host; the reason never repeats the input.
fn parse_http_url(text: &str) -> std::result::Result<Url, String> {
    let url = Url::parse(text.trim()).map_err(|e| e.to_string())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("scheme {} is not http or https", url.scheme()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("no host".to_owned());
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_addresses_are_refused_without_repeating_them() {
        for address in [
            "hooks.slack.com/T000/B000/XXXX",
            "ftp://hooks/T000/XXXX",
            "",
        ] {
            let err = Endpoint::builder(NotifierKind::Slack, address, "spec.address")
                .build()
                .expect_err("refused");
            let text = err.to_string();
            assert!(
                text.starts_with("slack: spec.address is not a valid http(s) URL"),
                "{text}"
            );
            assert!(!text.contains("XXXX"), "{text}");
        }
    }

    #[test]
    fn bad_proxy_names_its_field_only() {
        let err = Endpoint::builder(
            NotifierKind::MsTeams,
            "https://example.com/hook",
            "spec.address",
        )
        .proxy("socks9://user:hunter2@proxy", "spec.proxy")
        .build()
        .expect_err("refused");
        let text = err.to_string();
        assert_eq!(
            text,
            "msteams: spec.proxy is not a valid proxy URL; use http://host:port or https://host:port"
        );
    }

    #[test]
    fn debug_shows_the_host_only() {
        let endpoint = Endpoint::builder(
            NotifierKind::Slack,
            "https://hooks.slack.com/services/T000/B000/XXXX",
            "spec.address",
        )
        .token("xoxb-secret")
        .build()
        .expect("valid");
        let debug = format!("{endpoint:?}");
        assert!(debug.contains("hooks.slack.com"), "{debug}");
        assert!(
            !debug.contains("XXXX") && !debug.contains("xoxb"),
            "{debug}"
        );
    }
}
