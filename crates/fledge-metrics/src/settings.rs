//! Provider connection settings as plain values, read from a MetricTemplate and its Secret.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use fledge_api::metric_template::MetricTemplateProvider;

use crate::{Error, Result};

/// How long a query may take when nothing else is configured (Flagger: 5s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The metric interval when the canary's metric names none (`1m`, as Flagger writes it).
pub const DEFAULT_METRIC_INTERVAL_DURATION: Duration = Duration::from_secs(60);

/// The Secret keys each provider reads, named as Flagger names them. Prometheus and
/// Graphite read `token` or `username`/`password` instead ([`Credentials::from_secret_data`]).
pub const SECRET_KEYS: &[(&str, &[&str])] = &[
    ("datadog", &["datadog_api_key", "datadog_application_key"]),
    ("newrelic", &["newrelic_account_id", "newrelic_query_key"]),
    ("dynatrace", &["dynatrace_token"]),
    ("influxdb", &["token", "org"]),
];

/// How a provider retries answers with HTTP 429 (too many requests): SaaS APIs limit the
/// request rate per key, and a limit reached for a moment must not fail a canary's check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; after the last 429 the query fails.
    pub attempts: u32,
    /// The wait before the second attempt; it doubles for each further one.
    pub first_delay: Duration,
    /// The longest wait, also for a `Retry-After` the API asks for.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// Three attempts, waiting 1 s then 2 s (at most 5 s when the API asks for longer).
    fn default() -> Self {
        Self {
            attempts: 3,
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// How long to wait after the `attempt`-th answer (1-based) was a 429; `asked` is the
    /// API's `Retry-After`.
    pub fn delay(&self, attempt: u32, asked: Option<Duration>) -> Duration {
        let doubled = self
            .first_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        asked.unwrap_or(doubled).min(self.max_delay)
    }
}

/// Everything needed to talk to a metrics backend; no Kubernetes client involved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderSettings {
    /// Base URL of the API (`http://prometheus.istio-system:9090`); a path prefix is kept.
    pub address: String,
    /// Headers sent with every query.
    pub headers: BTreeMap<String, Vec<String>>,
    /// Credentials already read from the referenced Secret.
    pub credentials: Credentials,
    /// Accept any TLS certificate (`insecureSkipVerify`).
    pub insecure_skip_verify: bool,
    /// Upper bound of one query, connection included.
    pub timeout: Duration,
    /// The canary metric's `interval`: Datadog, New Relic and Dynatrace query a window
    /// derived from it, as Flagger does (Datadog and Dynatrace ten intervals back, New
    /// Relic one).
    pub metric_interval: Duration,
    /// How answers with HTTP 429 are retried (every provider but Prometheus).
    pub retry: RetryPolicy,
}

impl ProviderSettings {
    /// Settings for `address` with no headers, no credentials and the default timeout.
    pub fn new(address: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            headers: BTreeMap::new(),
            credentials: Credentials::None,
            insecure_skip_verify: false,
            timeout: DEFAULT_TIMEOUT,
            metric_interval: DEFAULT_METRIC_INTERVAL_DURATION,
            retry: RetryPolicy::default(),
        }
    }

    /// Reads a MetricTemplate's `spec.provider`, with the data of its `secretRef` Secret.
    ///
    /// `default_address` is used when a Prometheus template has no address; the caller
    /// chooses it (the operator passes its `-metrics-server` for a template with
    /// credentials, so a Canary's `metricsServer` never receives them). Other provider types
    /// never query the Prometheus metrics server: without an address they use their API's
    /// public address (Datadog, New Relic) or refuse to start (Graphite, Dynatrace,
    /// InfluxDB), as in Flagger. Credentials are read per provider type
    /// ([`Credentials::from_secret_data`]).
    ///
    /// # Errors
    /// [`Error::SecretNotProvided`] when the template names a Secret but `secret` is
    /// `None`; [`Error::MissingCredential`] when the Secret lacks the keys.
    pub fn from_template_provider(
        provider: &MetricTemplateProvider,
        secret: Option<&BTreeMap<String, Vec<u8>>>,
        default_address: Option<&str>,
    ) -> Result<Self> {
        let kind = provider_kind(provider);
        let default_address = default_address.filter(|_| kind == "prometheus");
        let address = provider
            .address
            .clone()
            .filter(|address| !address.is_empty())
            .or_else(|| default_address.map(str::to_owned))
            .unwrap_or_default();
        let credentials = match &provider.secret_ref {
            None => Credentials::None,
            Some(secret_ref) => {
                let data = secret.ok_or_else(|| Error::SecretNotProvided {
                    provider: kind.clone(),
                    secret: secret_ref.name.clone(),
                })?;
                Credentials::from_secret_data(&kind, data)?
            }
        };
        Ok(Self {
            address: address.clone(),
            headers: provider.headers.clone(),
            credentials,
            insecure_skip_verify: provider.insecure_skip_verify,
            ..Self::new(address)
        })
    }

    /// The same settings with the canary metric's interval.
    pub fn with_metric_interval(mut self, interval: Duration) -> Self {
        self.metric_interval = interval;
        self
    }

    /// The same settings with another retry policy for HTTP 429 answers.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The same settings with another timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The same settings with credentials.
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = credentials;
        self
    }
}

fn provider_kind(provider: &MetricTemplateProvider) -> String {
    serde_json::to_value(provider.type_)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{:?}", provider.type_).to_lowercase())
}

/// How a query authenticates.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Credentials {
    /// No `Authorization` header.
    #[default]
    None,
    /// HTTP basic authentication (`username` / `password` Secret keys).
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
    /// `Authorization: Bearer` (`token` Secret key).
    Bearer {
        /// The token.
        token: String,
    },
    /// The keys a provider reads from its Secret under its own names
    /// (`datadog_api_key`, `newrelic_query_key`, ...: [`SECRET_KEYS`]).
    Keys(SecretKeys),
}

/// Secret values by their key, as a provider reads them; `Debug` shows only the key names.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretKeys(BTreeMap<String, String>);

impl SecretKeys {
    /// Keys and values.
    pub fn new<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(key, value)| (key.into(), value.into()))
                .collect(),
        )
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Every value, for scrubbing them from text a server answered.
    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.0.values().map(String::as_str)
    }
}

impl fmt::Debug for SecretKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|key| (key, "<redacted>")))
            .finish()
    }
}

impl Credentials {
    /// Reads the keys Flagger reads from a provider type's Secret:
    ///
    /// - `prometheus`: `token`, else `username` and `password`;
    /// - `graphite`: `username` and `password`;
    /// - `datadog`, `newrelic`, `dynatrace`, `influxdb`: the keys [`SECRET_KEYS`] lists,
    ///   all required;
    /// - other types: every key of the Secret, as they are (their providers check them).
    ///
    /// # Errors
    /// [`Error::MissingCredential`] naming the first missing key.
    pub fn from_secret_data(provider: &str, data: &BTreeMap<String, Vec<u8>>) -> Result<Self> {
        let text = |key: &str| {
            data.get(key)
                .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
        };
        let missing = |key| Error::MissingCredential {
            provider: provider.to_owned(),
            key,
        };
        if let Some((_, keys)) = SECRET_KEYS.iter().find(|(kind, _)| *kind == provider) {
            let mut found = Vec::new();
            for key in *keys {
                found.push((*key, text(key).ok_or_else(|| missing(key))?));
            }
            return Ok(Self::Keys(SecretKeys::new(found)));
        }
        if !matches!(provider, "prometheus" | "graphite") {
            return Ok(Self::Keys(SecretKeys::new(
                data.keys()
                    .filter_map(|key| Some((key.clone(), text(key)?))),
            )));
        }
        if provider == "prometheus"
            && let Some(token) = text("token")
        {
            return Ok(Self::Bearer { token });
        }
        let username = text("username").ok_or_else(|| missing("username"))?;
        let password = text("password").ok_or_else(|| missing("password"))?;
        Ok(Self::Basic { username, password })
    }
}

// Secrets never reach logs.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Self::Bearer { .. } => f
                .debug_struct("Bearer")
                .field("token", &"<redacted>")
                .finish(),
            Self::Keys(keys) => f.debug_tuple("Keys").field(keys).finish(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (house rule).
mod tests {
    use super::*;
    use fledge_api::metric_template::{MetricProviderType, SecretReference};

    fn secret(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
            .collect()
    }

    fn provider_with_secret() -> MetricTemplateProvider {
        MetricTemplateProvider {
            type_: MetricProviderType::Prometheus,
            address: Some("https://prometheus.example:9090".into()),
            headers: BTreeMap::from([("X-Scope-OrgID".into(), vec!["tenant-a".into()])]),
            secret_ref: Some(SecretReference {
                name: "prom-auth".into(),
            }),
            region: None,
            insecure_skip_verify: true,
        }
    }

    #[test]
    fn a_token_wins_over_basic_auth_as_in_flagger() {
        let data = secret(&[("token", "t0k"), ("username", "u"), ("password", "p")]);
        let settings =
            ProviderSettings::from_template_provider(&provider_with_secret(), Some(&data), None)
                .unwrap();
        assert_eq!(
            settings.credentials,
            Credentials::Bearer {
                token: "t0k".into()
            }
        );
        assert!(settings.insecure_skip_verify);
        assert_eq!(
            settings.headers["X-Scope-OrgID"],
            vec!["tenant-a".to_owned()]
        );
        assert_eq!(settings.timeout, DEFAULT_TIMEOUT);
    }

    #[test]
    fn basic_auth_needs_both_keys() {
        let data = secret(&[("username", "admin")]);
        let err =
            ProviderSettings::from_template_provider(&provider_with_secret(), Some(&data), None)
                .unwrap_err();
        assert_eq!(
            err.to_string(),
            "prometheus credentials do not contain a password"
        );
        let data = secret(&[("username", "admin"), ("password", "s3cret")]);
        let settings =
            ProviderSettings::from_template_provider(&provider_with_secret(), Some(&data), None)
                .unwrap();
        assert_eq!(
            settings.credentials,
            Credentials::Basic {
                username: "admin".into(),
                password: "s3cret".into()
            }
        );
    }

    #[test]
    fn a_secret_ref_without_its_data_is_an_error_naming_the_secret() {
        let err = ProviderSettings::from_template_provider(&provider_with_secret(), None, None)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"prometheus provider refers to Secret "prom-auth" but its data was not provided"#
        );
    }

    #[test]
    fn the_canary_metrics_server_fills_a_missing_address() {
        let mut provider = provider_with_secret();
        provider.address = None;
        provider.secret_ref = None;
        let settings = ProviderSettings::from_template_provider(
            &provider,
            None,
            Some("http://prometheus:9090"),
        )
        .unwrap();
        assert_eq!(settings.address, "http://prometheus:9090");
        assert_eq!(settings.credentials, Credentials::None);
    }

    #[test]
    fn each_provider_type_reads_its_own_secret_keys() {
        let mut provider = provider_with_secret();
        provider.type_ = MetricProviderType::Datadog;
        let data = secret(&[("datadog_api_key", "a1"), ("token", "ignored")]);
        let err =
            ProviderSettings::from_template_provider(&provider, Some(&data), None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "datadog credentials do not contain a datadog_application_key"
        );
        let data = secret(&[
            ("datadog_api_key", "a1"),
            ("datadog_application_key", "b2"),
            ("unrelated", "x"),
        ]);
        let settings =
            ProviderSettings::from_template_provider(&provider, Some(&data), None).unwrap();
        assert_eq!(
            settings.credentials,
            Credentials::Keys(SecretKeys::new([
                ("datadog_api_key", "a1"),
                ("datadog_application_key", "b2")
            ]))
        );
        assert_eq!(
            format!("{:?}", settings.credentials),
            r#"Keys({"datadog_api_key": "<redacted>", "datadog_application_key": "<redacted>"})"#
        );

        // Graphite reads basic auth only: a token is no substitute.
        provider.type_ = MetricProviderType::Graphite;
        let err = ProviderSettings::from_template_provider(
            &provider,
            Some(&secret(&[("token", "t")])),
            None,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "graphite credentials do not contain a username"
        );
    }

    #[test]
    fn only_prometheus_templates_fall_back_to_the_metrics_server() {
        let mut provider = provider_with_secret();
        provider.address = None;
        provider.secret_ref = None;
        provider.type_ = MetricProviderType::Datadog;
        let settings = ProviderSettings::from_template_provider(
            &provider,
            None,
            Some("http://prometheus:9090"),
        )
        .unwrap();
        assert_eq!(settings.address, "", "the provider chooses its own default");
        assert_eq!(settings.metric_interval, DEFAULT_METRIC_INTERVAL_DURATION);
        assert_eq!(settings.retry, RetryPolicy::default());
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let creds = Credentials::Basic {
            username: "admin".into(),
            password: "s3cret".into(),
        };
        let shown = format!(
            "{creds:?} {:?}",
            Credentials::Bearer {
                token: "t0k".into()
            }
        );
        assert!(
            !shown.contains("s3cret") && !shown.contains("t0k"),
            "{shown}"
        );
        assert!(shown.contains("admin"));
    }
}
