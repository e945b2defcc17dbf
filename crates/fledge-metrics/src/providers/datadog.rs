//! `type: datadog`: Datadog's metrics query API (`GET {address}/api/v1/query`).
//!
//! As Flagger: the address defaults to `https://api.datadoghq.com` (another site, such as
//! `https://api.datadoghq.eu`, goes in `address`); the Secret's `datadog_api_key` and
//! `datadog_application_key` are sent as `DD-API-KEY` and `DD-APPLICATION-KEY`; the query
//! covers `from = now - 10 × interval` to `to = now` (seconds). The value is the **first
//! point of the first series** — the oldest bucket, never the newest, which is almost always
//! incomplete. No series, an empty point list or a null first point is *no values*.
//! [`MetricProvider::is_online`] calls `GET /api/v1/validate`.
//!
//! API reference: <https://docs.datadoghq.com/api/latest/metrics/#query-timeseries-points>.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;

use super::api_client::{ApiClient, json_message, with_query};
use super::unix_now;
use crate::settings::Credentials;
use crate::{Error, MetricProvider, ProviderSettings, QueryOutcome, Result};

/// Where queries go without an address (Datadog's US1 site).
pub const DEFAULT_ADDRESS: &str = "https://api.datadoghq.com";
/// The Secret key of the API key.
pub const API_KEY: &str = "datadog_api_key";
/// The Secret key of the application key.
pub const APPLICATION_KEY: &str = "datadog_application_key";
/// The query window is this many metric intervals (Flagger's multiplier).
pub const WINDOW_INTERVALS: u32 = 10;

/// A Datadog site's API.
#[derive(Clone, Debug)]
pub struct DatadogProvider {
    api: ApiClient,
    window_secs: u64,
}

#[derive(Deserialize)]
struct QueryAnswer {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    series: Vec<SeriesAnswer>,
}

#[derive(Deserialize)]
struct SeriesAnswer {
    #[serde(default)]
    pointlist: Vec<Vec<Option<f64>>>,
}

impl DatadogProvider {
    /// A provider for `settings.address` (or [`DEFAULT_ADDRESS`]) with the Secret's keys.
    ///
    /// # Errors
    /// [`Error::MissingCredential`] without both keys; the errors of an invalid address,
    /// header or TLS set-up.
    pub fn new(settings: ProviderSettings) -> Result<Self> {
        let missing = |key| Error::MissingCredential {
            provider: "datadog".into(),
            key,
        };
        let Credentials::Keys(keys) = &settings.credentials else {
            return Err(missing(API_KEY));
        };
        let api_key = keys.get(API_KEY).ok_or_else(|| missing(API_KEY))?;
        let application_key = keys
            .get(APPLICATION_KEY)
            .ok_or_else(|| missing(APPLICATION_KEY))?;
        let auth = [
            ("dd-api-key", api_key.to_owned()),
            ("dd-application-key", application_key.to_owned()),
        ];
        let window_secs = settings.metric_interval.as_secs() * u64::from(WINDOW_INTERVALS);
        Ok(Self {
            api: ApiClient::new("datadog", settings, Some(DEFAULT_ADDRESS), &auth)?,
            window_secs,
        })
    }

    fn interpret(&self, status: u16, body: &str) -> Result<QueryOutcome> {
        if status != 200 {
            let message = json_message(body, errors_field);
            return Err(if status == 401 || status == 403 {
                self.api.rejected_credentials(
                    status,
                    &message,
                    "datadog_api_key and datadog_application_key",
                )
            } else {
                self.api.api_error(status, &message)
            });
        }
        let answer: QueryAnswer = serde_json::from_str(body).map_err(|err| {
            self.api
                .malformed(&format!("not a query answer ({err})"), body)
        })?;
        if answer.status.as_deref() == Some("error") || answer.error.is_some() {
            return Err(self.api.api_error(
                status,
                answer.error.as_deref().unwrap_or("the query failed"),
            ));
        }
        let first = answer
            .series
            .first()
            .and_then(|series| series.pointlist.first())
            .and_then(|point| point.get(1).copied().flatten());
        Ok(first.map_or(QueryOutcome::NoValues, QueryOutcome::from_sample))
    }
}

/// Datadog's error bodies: `{"errors": ["..."]}`.
fn errors_field(json: &Value) -> Option<String> {
    let errors = json.get("errors")?.as_array()?;
    Some(
        errors
            .iter()
            .map(|error| {
                error
                    .as_str()
                    .map_or_else(|| error.to_string(), str::to_owned)
            })
            .collect::<Vec<_>>()
            .join("; "),
    )
}

#[async_trait]
impl MetricProvider for DatadogProvider {
    async fn query(&self, query: &str) -> Result<QueryOutcome> {
        let to = unix_now().as_secs();
        let from = to.saturating_sub(self.window_secs);
        let url = with_query(
            self.api.url("/api/v1/query"),
            [
                ("query", query.to_owned()),
                ("from", from.to_string()),
                ("to", to.to_string()),
            ],
        );
        tracing::debug!(address = %self.api.address(), %query, "datadog query");
        let answer = self.api.send(|client| client.get(url.clone())).await?;
        self.interpret(answer.status, &answer.body)
    }

    async fn is_online(&self) -> Result<bool> {
        let url = self.api.url("/api/v1/validate");
        let answer = self.api.send(|client| client.get(url.clone())).await?;
        if answer.status != 200 {
            let message = json_message(&answer.body, errors_field);
            return Err(self.api.rejected_credentials(
                answer.status,
                &message,
                "datadog_api_key and datadog_application_key",
            ));
        }
        let valid = serde_json::from_str::<Value>(&answer.body)
            .ok()
            .and_then(|json| json.get("valid").and_then(Value::as_bool));
        Ok(valid.unwrap_or(true))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (house rule).
mod tests {
    use super::*;
    use crate::settings::SecretKeys;

    #[test]
    fn both_keys_are_required_and_the_window_is_ten_intervals() {
        let err = DatadogProvider::new(ProviderSettings::new("")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "datadog credentials do not contain a datadog_api_key"
        );
        let settings = ProviderSettings::new("")
            .with_credentials(Credentials::Keys(SecretKeys::new([
                (API_KEY, "a"),
                (APPLICATION_KEY, "b"),
            ])))
            .with_metric_interval(std::time::Duration::from_secs(100));
        let provider = DatadogProvider::new(settings).unwrap();
        assert_eq!(provider.window_secs, 1000);
        assert_eq!(
            provider.api.url("/api/v1/query").as_str(),
            "https://api.datadoghq.com/api/v1/query"
        );
    }
}
