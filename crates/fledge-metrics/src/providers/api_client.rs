//! What every HTTP metric provider shares: one pooled client built from the settings, the
//! template's headers merged with the provider's own, 429 retried, bounded answers and
//! errors without credentials.

#![cfg_attr(
    not(any(
        feature = "graphite",
        feature = "datadog",
        feature = "newrelic",
        feature = "dynatrace",
        feature = "influxdb"
    )),
    allow(dead_code, reason = "used by the providers compiled in")
)]

use std::time::Duration;

use fledge_api::redaction::{REDACTED, redact_url, scrub_url_secrets};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::{Client, RequestBuilder, Url};

use crate::bounded_http::{innermost_cause, read_capped, same_origin_redirects};
use crate::settings::{Credentials, ProviderSettings, RetryPolicy};
use crate::{Error, MAX_RESPONSE_BYTES, Result};

/// Bodies quoted in errors are cut to this many characters.
const MAX_QUOTED_BODY: usize = 512;

/// An answer read whole (up to [`MAX_RESPONSE_BYTES`]) that is not a 429.
#[derive(Debug)]
pub(crate) struct Answer {
    /// HTTP status code.
    pub status: u16,
    /// The body as text.
    pub body: String,
}

/// The HTTP side of one provider.
#[derive(Clone)]
pub(crate) struct ApiClient {
    provider: &'static str,
    client: Client,
    base: Url,
    /// The address as errors show it.
    address: String,
    headers: HeaderMap,
    basic_auth: Option<(String, String)>,
    timeout: Duration,
    retry: RetryPolicy,
    /// Credential values, scrubbed from every quoted answer.
    secrets: Vec<String>,
    /// The address as configured, whose secret parts are scrubbed too.
    configured: String,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("provider", &self.provider)
            .field("address", &self.address)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl ApiClient {
    /// A client of `provider` at the settings' address, else `default_address` (an
    /// absolute http(s) URL; a path prefix is kept), sending the template's headers with
    /// `auth_headers` over them.
    ///
    /// # Errors
    /// [`Error::InvalidAddress`], [`Error::InvalidHeader`], [`Error::Client`].
    pub fn new(
        provider: &'static str,
        settings: ProviderSettings,
        default_address: Option<&str>,
        auth_headers: &[(&'static str, String)],
    ) -> Result<Self> {
        let ProviderSettings {
            address,
            headers: configured_headers,
            credentials,
            insecure_skip_verify,
            timeout,
            retry,
            ..
        } = settings;
        let address = match default_address {
            Some(default) if address.trim().is_empty() => default.to_owned(),
            _ => address,
        };
        let shown = redact_url(&address);
        let invalid = || Error::InvalidAddress {
            provider: provider.into(),
            address: shown.clone(),
        };
        let mut base = Url::parse(&address).map_err(|_| invalid())?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(invalid());
        }
        base.set_query(None);
        base.set_fragment(None);
        let mut headers = HeaderMap::new();
        for (name, values) in &configured_headers {
            let bad = || Error::InvalidHeader { name: name.clone() };
            let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad())?;
            for value in values {
                headers.append(
                    header.clone(),
                    HeaderValue::from_str(value).map_err(|_| bad())?,
                );
            }
        }
        let mut secrets = Vec::new();
        for (name, value) in auth_headers {
            let bad = || Error::InvalidHeader {
                name: (*name).to_owned(),
            };
            let mut value_header = HeaderValue::from_str(value).map_err(|_| bad())?;
            value_header.set_sensitive(true);
            headers.insert(HeaderName::from_static(name), value_header);
        }
        let basic_auth = match credentials {
            Credentials::Basic { username, password } => {
                secrets.push(password.clone());
                Some((username, password))
            }
            Credentials::Bearer { token } => {
                secrets.push(token.clone());
                let mut value =
                    HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                        Error::InvalidHeader {
                            name: "Authorization".into(),
                        }
                    })?;
                value.set_sensitive(true);
                headers.insert(reqwest::header::AUTHORIZATION, value);
                secrets.push(token);
                None
            }
            Credentials::Keys(keys) => {
                secrets.extend(keys.values().map(str::to_owned));
                None
            }
            Credentials::None => None,
        };
        // Values that are whole auth headers (`Api-Token …`, `Token …`) and their tokens.
        secrets.extend(auth_headers.iter().map(|(_, value)| value.clone()));
        secrets.retain(|secret| secret.len() >= 4);
        secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
        let client = Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .danger_accept_invalid_certs(insecure_skip_verify)
            .redirect(same_origin_redirects())
            .build()
            .map_err(|source| Error::Client {
                address: shown.clone(),
                source: source.without_url(),
            })?;
        Ok(Self {
            provider,
            client,
            base,
            address: shown,
            headers,
            basic_auth,
            timeout,
            retry,
            secrets,
            configured: address,
        })
    }

    /// The address as errors show it.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// `path` under the address' path prefix (`https://host/prefix` + `/api/v1/query`).
    pub fn url(&self, path: &str) -> Url {
        let mut url = self.base.clone();
        let joined = format!("{}{path}", self.base.path().trim_end_matches('/'));
        url.set_path(&joined);
        url
    }

    /// Sends the request `build` makes (called again for each retry) with the headers and
    /// credentials, retrying HTTP 429 as the [`RetryPolicy`] says.
    ///
    /// # Errors
    /// [`Error::Timeout`], [`Error::Unreachable`], [`Error::ResponseTooLarge`],
    /// [`Error::RateLimited`] after the last 429.
    pub async fn send(&self, build: impl Fn(&Client) -> RequestBuilder) -> Result<Answer> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = build(&self.client).headers(self.headers.clone());
            if let Some((username, password)) = &self.basic_auth {
                request = request.basic_auth(username, Some(password));
            }
            let mut response = request.send().await.map_err(|e| self.transport_error(e))?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let body = read_capped(&mut response, MAX_RESPONSE_BYTES)
                .await
                .map_err(|e| self.transport_error(e))?;
            if body.truncated {
                return Err(Error::ResponseTooLarge {
                    address: self.address.clone(),
                    limit: MAX_RESPONSE_BYTES,
                });
            }
            if status != 429 {
                return Ok(Answer {
                    status,
                    body: body.text(),
                });
            }
            if attempt >= self.retry.attempts {
                return Err(Error::RateLimited {
                    provider: self.provider.into(),
                    attempts: attempt,
                    message: self.quote(&body.text()),
                });
            }
            let delay = self.retry.delay(attempt, retry_after);
            tracing::debug!(
                provider = self.provider,
                attempt,
                ?delay,
                "rate limited, retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// An [`Error::Api`] with `message` (scrubbed and cut).
    pub fn api_error(&self, status: u16, message: &str) -> Error {
        Error::Api {
            provider: self.provider.into(),
            status,
            message: self.quote(message),
        }
    }

    /// An [`Error::Api`] for a 401/403, saying which Secret keys to check.
    pub fn rejected_credentials(&self, status: u16, message: &str, keys: &str) -> Error {
        let message = self.quote(message);
        let message = if message.is_empty() {
            "the credentials were rejected".to_owned()
        } else {
            message
        };
        Error::Api {
            provider: self.provider.into(),
            status,
            message: format!("{message} (check the {keys} of the template's Secret)"),
        }
    }

    /// An [`Error::MalformedResponse`] quoting `body`.
    pub fn malformed(&self, reason: &str, body: &str) -> Error {
        Error::MalformedResponse {
            address: self.address.clone(),
            reason: reason.to_owned(),
            body: self.quote(body),
        }
    }

    /// `text` trimmed, cut to [`MAX_QUOTED_BODY`] characters, without credentials or the
    /// secret parts of the address.
    pub fn quote(&self, text: &str) -> String {
        let mut text = scrub_url_secrets(text.trim(), &self.configured);
        for secret in &self.secrets {
            text = text.replace(secret.as_str(), REDACTED);
        }
        match text.char_indices().nth(MAX_QUOTED_BODY) {
            Some((cut, _)) => format!("{}…", &text[..cut]),
            None => text,
        }
    }

    fn transport_error(&self, source: reqwest::Error) -> Error {
        if source.is_timeout() {
            return Error::Timeout {
                address: self.address.clone(),
                timeout: self.timeout,
            };
        }
        let source = source.without_url();
        Error::Unreachable {
            address: self.address.clone(),
            detail: innermost_cause(&source),
            source,
        }
    }
}

/// The API's message: what `read` finds in the JSON error body, else the body as it is.
#[cfg(any(
    feature = "datadog",
    feature = "newrelic",
    feature = "dynatrace",
    feature = "influxdb"
))]
pub(crate) fn json_message(
    body: &str,
    read: impl Fn(&serde_json::Value) -> Option<String>,
) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .as_ref()
        .and_then(read)
        .filter(|message| !message.trim().is_empty())
        .unwrap_or_else(|| body.trim().to_owned())
}

/// `url` with `pairs` appended to its query string.
#[cfg(any(feature = "datadog", feature = "newrelic", feature = "dynatrace"))]
pub(crate) fn with_query<K: AsRef<str>, V: AsRef<str>>(
    mut url: Url,
    pairs: impl IntoIterator<Item = (K, V)>,
) -> Url {
    url.query_pairs_mut().extend_pairs(pairs);
    url
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (house rule).
mod tests {
    use super::*;
    use crate::settings::SecretKeys;

    #[test]
    fn quoted_answers_never_show_a_credential() {
        let settings = ProviderSettings::new("https://api.example.com/prefix?api_key=abcd1234")
            .with_credentials(Credentials::Keys(SecretKeys::new([
                ("datadog_api_key", "k3y-value"),
                ("datadog_application_key", "app-k3y"),
            ])));
        let client = ApiClient::new(
            "datadog",
            settings,
            None,
            &[("dd-api-key", "k3y-value".into())],
        )
        .unwrap();
        let quoted = client.quote("bad key k3y-value and app-k3y for ?api_key=abcd1234");
        assert!(
            !quoted.contains("k3y-value")
                && !quoted.contains("app-k3y")
                && !quoted.contains("abcd1234"),
            "{quoted}"
        );
        assert_eq!(
            client.url("/api/v1/query").as_str(),
            "https://api.example.com/prefix/api/v1/query"
        );
        assert_eq!(client.address(), "https://api.example.com/prefix");
    }

    #[test]
    fn the_backoff_doubles_and_a_retry_after_is_honoured_up_to_the_cap() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.delay(1, None), Duration::from_secs(1));
        assert_eq!(policy.delay(2, None), Duration::from_secs(2));
        assert_eq!(policy.delay(4, None), Duration::from_secs(5));
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(60))),
            Duration::from_secs(5)
        );
    }
}
