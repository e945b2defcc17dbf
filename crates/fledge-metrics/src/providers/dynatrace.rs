//! `type: dynatrace`: Dynatrace's metrics API v2 (`GET {address}/api/v2/metrics/query`).
//!
//! As Flagger: the address is required (`https://{environment-id}.live.dynatrace.com`, or
//! a Managed cluster's `https://{domain}/e/{environment-id}`); the Secret's
//! `dynatrace_token` is sent as `Authorization: Api-Token …`; the query is the
//! `metricSelector`, with `resolution=Inf` over `from = now - 10 × interval` to `to = now`
//! (milliseconds). The value is the first value of the **last data entry of the first
//! result**; no result, no data, no values or a null value is *no values*.
//! [`MetricProvider::is_online`] lists one metric (`GET /api/v2/metrics?pageSize=1`).
//!
//! API reference: <https://docs.dynatrace.com/docs/dynatrace-api/environment-api/metric-v2/get-data-points>.

use std::fmt::Write as _;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;

use super::api_client::{ApiClient, json_message, with_query};
use super::unix_now;
use crate::settings::Credentials;
use crate::{Error, MetricProvider, ProviderSettings, QueryOutcome, Result};

/// The Secret key of the API token.
pub const TOKEN: &str = "dynatrace_token";
/// The query window is this many metric intervals (Flagger's multiplier).
pub const WINDOW_INTERVALS: u32 = 10;

/// A Dynatrace environment's metrics API.
#[derive(Clone, Debug)]
pub struct DynatraceProvider {
    api: ApiClient,
    window_millis: u128,
}

#[derive(Deserialize)]
struct QueryAnswer {
    #[serde(default)]
    result: Vec<MetricResult>,
}

#[derive(Deserialize)]
struct MetricResult {
    #[serde(default)]
    data: Vec<MetricData>,
}

#[derive(Deserialize)]
struct MetricData {
    #[serde(default)]
    values: Vec<Option<f64>>,
}

impl DynatraceProvider {
    /// A provider for `settings.address` (required) with the Secret's token.
    ///
    /// # Errors
    /// [`Error::AddressRequired`], [`Error::MissingCredential`]; the errors of an invalid
    /// address, header or TLS set-up.
    pub fn new(settings: ProviderSettings) -> Result<Self> {
        if settings.address.trim().is_empty() {
            return Err(Error::AddressRequired {
                provider: "dynatrace".into(),
                hint: "the environment's URL, e.g. https://{environment-id}.live.dynatrace.com",
            });
        }
        let missing = || Error::MissingCredential {
            provider: "dynatrace".into(),
            key: TOKEN,
        };
        let Credentials::Keys(keys) = &settings.credentials else {
            return Err(missing());
        };
        let auth = [(
            "authorization",
            format!("Api-Token {}", keys.get(TOKEN).ok_or_else(missing)?),
        )];
        let window_millis = settings.metric_interval.as_millis() * u128::from(WINDOW_INTERVALS);
        Ok(Self {
            api: ApiClient::new("dynatrace", settings, None, &auth)?,
            window_millis,
        })
    }

    fn error(&self, status: u16, body: &str) -> Error {
        let message = json_message(body, error_field);
        if status == 401 || status == 403 {
            self.api
                .rejected_credentials(status, &message, "dynatrace_token")
        } else {
            self.api.api_error(status, &message)
        }
    }

    fn interpret(&self, status: u16, body: &str) -> Result<QueryOutcome> {
        if status != 200 {
            return Err(self.error(status, body));
        }
        let answer: QueryAnswer = serde_json::from_str(body).map_err(|err| {
            self.api
                .malformed(&format!("not a query answer ({err})"), body)
        })?;
        let value = answer
            .result
            .first()
            .and_then(|result| result.data.last())
            .and_then(|data| data.values.first().copied().flatten());
        Ok(value.map_or(QueryOutcome::NoValues, QueryOutcome::from_sample))
    }
}

/// Dynatrace's error bodies: `{"error": {"code": 400, "message": "...",
/// "constraintViolations": [{"path": "...", "message": "..."}]}}`.
fn error_field(json: &Value) -> Option<String> {
    let error = json.get("error")?;
    let mut message = error.get("message")?.as_str()?.to_owned();
    for violation in error
        .get("constraintViolations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let text = violation
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match violation.get("path").and_then(Value::as_str) {
            Some(path) => {
                let _ = write!(message, "; {path}: {text}");
            }
            None => {
                let _ = write!(message, "; {text}");
            }
        }
    }
    Some(message)
}

#[async_trait]
impl MetricProvider for DynatraceProvider {
    async fn query(&self, query: &str) -> Result<QueryOutcome> {
        let to = unix_now().as_millis();
        let from = to.saturating_sub(self.window_millis);
        let selector = query.trim();
        let url = with_query(
            self.api.url("/api/v2/metrics/query"),
            [
                ("metricSelector", selector.to_owned()),
                ("resolution", "Inf".to_owned()),
                ("from", from.to_string()),
                ("to", to.to_string()),
            ],
        );
        tracing::debug!(address = %self.api.address(), %selector, "dynatrace query");
        let answer = self
            .api
            .send(|client| {
                client
                    .get(url.clone())
                    .header(reqwest::header::ACCEPT, "application/json")
            })
            .await?;
        self.interpret(answer.status, &answer.body)
    }

    async fn is_online(&self) -> Result<bool> {
        let url = with_query(self.api.url("/api/v2/metrics"), [("pageSize", "1")]);
        let answer = self
            .api
            .send(|client| {
                client
                    .get(url.clone())
                    .header(reqwest::header::ACCEPT, "application/json")
            })
            .await?;
        if answer.status != 200 {
            return Err(self.error(answer.status, &answer.body));
        }
        Ok(true)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (house rule).
mod tests {
    use super::*;
    use crate::settings::SecretKeys;

    #[test]
    fn the_address_and_the_token_are_required() {
        let err = DynatraceProvider::new(ProviderSettings::new("")).unwrap_err();
        assert!(matches!(err, Error::AddressRequired { .. }), "{err}");
        let err = DynatraceProvider::new(ProviderSettings::new("https://abc.live.dynatrace.com"))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "dynatrace credentials do not contain a dynatrace_token"
        );
    }

    #[test]
    fn the_last_data_entry_of_the_first_result_is_read() {
        let provider = DynatraceProvider::new(
            ProviderSettings::new("https://abc.live.dynatrace.com/e/env1")
                .with_credentials(Credentials::Keys(SecretKeys::new([(TOKEN, "dt0c01.x")]))),
        )
        .unwrap();
        let body = r#"{"result":[{"metricId":"m","data":[{"values":[1.0]},{"values":[2.5,9]}]},{"data":[{"values":[7]}]}]}"#;
        assert_eq!(
            provider.interpret(200, body).unwrap(),
            QueryOutcome::Value(2.5)
        );
        let null = r#"{"result":[{"metricId":"m","data":[{"values":[null]}]}]}"#;
        assert_eq!(
            provider.interpret(200, null).unwrap(),
            QueryOutcome::NoValues
        );
        assert_eq!(
            provider.api.url("/api/v2/metrics/query").as_str(),
            "https://abc.live.dynatrace.com/e/env1/api/v2/metrics/query"
        );
    }
}
