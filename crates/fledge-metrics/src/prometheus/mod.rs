//! The Prometheus provider: `/api/v1/query` over HTTP(S), as Flagger calls it.

mod response;

use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Client, Url};

use crate::bounded_http::{innermost_cause, read_capped, same_origin_redirects};
use crate::settings::{Credentials, ProviderSettings};
use crate::{Error, MetricProvider, QueryOutcome, Result};

/// The query [`MetricProvider::is_online`] runs; it must answer exactly 1.
pub const ONLINE_QUERY: &str = "vector(1)";

/// URLs longer than this are sent as a POST form instead: proxies commonly cap request
/// lines around 4-8 KiB, and long PromQL with regex selectors reaches that.
const MAX_GET_URL_LEN: usize = 2048;

/// The largest answer read from a metrics server. A query's answer is one series (more is
/// an error anyway); a bigger body is a wrong query or a wrong server, and reading it all
/// would let one Canary's metrics server fill the operator's memory.
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// A Prometheus (or Prometheus-API compatible: Thanos, Mimir, VictoriaMetrics) server.
///
/// Holds one pooled HTTP client: clone the provider to share connections between canaries.
/// Redirects are followed only within the address' origin ([`same_origin_redirects`]) and
/// answers are read up to [`MAX_RESPONSE_BYTES`].
#[derive(Clone)]
pub struct PrometheusProvider {
    client: Client,
    query_url: Url,
    /// The address as errors and logs show it ([`fledge_api::redaction::redact_url`]).
    address: String,
    headers: HeaderMap,
    credentials: Credentials,
    timeout: Duration,
}

// Headers and the query URL may hold credentials: only the redacted address is shown.
impl std::fmt::Debug for PrometheusProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrometheusProvider")
            .field("address", &self.address)
            .field("credentials", &self.credentials)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl PrometheusProvider {
    /// Builds a provider from plain settings.
    ///
    /// # Errors
    /// [`Error::InvalidAddress`] for an empty or non-http(s) address,
    /// [`Error::InvalidHeader`] for a header that cannot be sent, [`Error::Client`] when
    /// TLS cannot be set up.
    pub fn new(settings: ProviderSettings) -> Result<Self> {
        let shown_address = fledge_api::redaction::redact_url(&settings.address);
        let invalid = || Error::InvalidAddress {
            provider: "prometheus".into(),
            address: shown_address.clone(),
        };
        let mut query_url = Url::parse(&settings.address).map_err(|_| invalid())?;
        if !matches!(query_url.scheme(), "http" | "https") || query_url.host_str().is_none() {
            return Err(invalid());
        }
        // A path prefix (`/prometheus`, `/api/prom`) is kept, as Flagger's path.Join does.
        let path = format!("{}/api/v1/query", query_url.path().trim_end_matches('/'));
        query_url.set_path(&path);
        query_url.set_query(None);
        query_url.set_fragment(None);

        let client = Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .danger_accept_invalid_certs(settings.insecure_skip_verify)
            .redirect(same_origin_redirects())
            .build()
            .map_err(|source| Error::Client {
                address: shown_address.clone(),
                source: source.without_url(),
            })?;
        Ok(Self {
            client,
            query_url,
            headers: header_map(&settings)?,
            address: shown_address,
            credentials: settings.credentials,
            timeout: settings.timeout,
        })
    }

    /// The URL queries go to (`{address}/api/v1/query`).
    pub fn query_url(&self) -> &Url {
        &self.query_url
    }

    async fn send(&self, query: &str) -> Result<(u16, String)> {
        let mut url = self.query_url.clone();
        url.query_pairs_mut().append_pair("query", query);
        let request = if url.as_str().len() <= MAX_GET_URL_LEN {
            self.client.get(url)
        } else {
            let form = url.query().unwrap_or_default().to_owned();
            self.client
                .post(self.query_url.clone())
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(form)
        };
        let request = match &self.credentials {
            // Provider-specific keys mean nothing to Prometheus.
            Credentials::None | Credentials::Keys(_) => request,
            Credentials::Basic { username, password } => {
                request.basic_auth(username, Some(password))
            }
            Credentials::Bearer { token } => request.bearer_auth(token),
        };
        let mut response = request
            .headers(self.headers.clone())
            .send()
            .await
            .map_err(|e| self.transport_error(e))?;
        let status = response.status().as_u16();
        let body = read_capped(&mut response, MAX_RESPONSE_BYTES)
            .await
            .map_err(|e| self.transport_error(e))?;
        if body.truncated {
            return Err(Error::ResponseTooLarge {
                address: self.address.clone(),
                limit: MAX_RESPONSE_BYTES,
            });
        }
        Ok((status, body.text()))
    }

    fn transport_error(&self, source: reqwest::Error) -> Error {
        if source.is_timeout() {
            return Error::Timeout {
                address: self.address.clone(),
                timeout: self.timeout,
            };
        }
        // reqwest's error holds the query URL, which may carry the address' secrets.
        let source = source.without_url();
        Error::Unreachable {
            address: self.address.clone(),
            detail: innermost_cause(&source),
            source,
        }
    }
}

#[async_trait]
impl MetricProvider for PrometheusProvider {
    async fn query(&self, query: &str) -> Result<QueryOutcome> {
        // Flagger collapses every run of whitespace, so multi-line templates fit a URL.
        let query = query.split_whitespace().collect::<Vec<_>>().join(" ");
        tracing::debug!(address = %self.address, %query, "prometheus query");
        let (status, body) = self.send(&query).await?;
        response::interpret(&self.address, status, &body)
    }

    async fn is_online(&self) -> Result<bool> {
        Ok(self.query(ONLINE_QUERY).await? == QueryOutcome::Value(1.0))
    }
}

fn header_map(settings: &ProviderSettings) -> Result<HeaderMap> {
    let mut map = HeaderMap::new();
    for (name, values) in &settings.headers {
        let invalid = || Error::InvalidHeader { name: name.clone() };
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid())?;
        for value in values {
            map.append(
                header.clone(),
                HeaderValue::from_str(value).map_err(|_| invalid())?,
            );
        }
    }
    Ok(map)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (house rule).
mod tests {
    use super::*;

    #[test]
    fn a_path_prefix_in_the_address_is_kept() {
        let provider = PrometheusProvider::new(ProviderSettings::new(
            "http://thanos.monitoring:9090/prom/?x=1",
        ))
        .unwrap();
        assert_eq!(
            provider.query_url().as_str(),
            "http://thanos.monitoring:9090/prom/api/v1/query"
        );
    }

    #[test]
    fn an_address_that_is_not_an_http_url_is_refused() {
        for address in ["", "prometheus:9090", "ftp://prometheus:9090", "not a url"] {
            let err = PrometheusProvider::new(ProviderSettings::new(address)).unwrap_err();
            assert!(
                matches!(err, Error::InvalidAddress { .. }),
                "{address}: {err}"
            );
        }
    }

    #[test]
    fn a_header_with_a_newline_is_refused() {
        let mut settings = ProviderSettings::new("http://prometheus:9090");
        settings.headers.insert("X-Bad".into(), vec!["a\nb".into()]);
        let err = PrometheusProvider::new(settings).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"provider header "X-Bad" is not a valid HTTP header"#
        );
    }
}
