//! Provider connection settings as plain values, read from a MetricTemplate and its Secret.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use fledge_api::metric_template::MetricTemplateProvider;

use crate::{Error, Result};

/// How long a query may take when nothing else is configured (Flagger: 5s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

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
        }
    }

    /// Reads a MetricTemplate's `spec.provider`, with the data of its `secretRef` Secret.
    ///
    /// `default_address` is used when the template has no address; the caller chooses it
    /// (the operator passes its `-metrics-server` for a template with credentials, so a
    /// Canary's `metricsServer` never receives them). Credentials follow Flagger: `token`
    /// wins, otherwise both `username` and `password` are required.
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
            address,
            headers: provider.headers.clone(),
            credentials,
            insecure_skip_verify: provider.insecure_skip_verify,
            timeout: DEFAULT_TIMEOUT,
        })
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
}

impl Credentials {
    /// Reads the keys Flagger reads from a provider Secret: `token`, else `username` and `password`.
    ///
    /// # Errors
    /// [`Error::MissingCredential`] naming the first missing key.
    pub fn from_secret_data(provider: &str, data: &BTreeMap<String, Vec<u8>>) -> Result<Self> {
        let text = |key: &str| {
            data.get(key)
                .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
        };
        if let Some(token) = text("token") {
            return Ok(Self::Bearer { token });
        }
        let missing = |key| Error::MissingCredential {
            provider: provider.to_owned(),
            key,
        };
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
