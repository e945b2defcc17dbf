//! `type: newrelic`: NRQL over New Relic's Insights query API
//! (`GET {address}/v1/accounts/{account id}/query?nrql=...`).
//!
//! As Flagger: the address defaults to `https://insights-api.newrelic.com` (the EU region's
//! `https://insights-api.eu.newrelic.com` goes in `address`); the Secret's
//! `newrelic_account_id` names the account and `newrelic_query_key` is sent as
//! `X-Query-Key`; ` SINCE {interval in seconds} seconds ago` is appended to the query. The
//! answer must hold exactly one result; its `result` field is the value (the name NRQL gives
//! a computed expression). Fledge also reads a result named after its function
//! (`{"count": 12}`, `{"percentiles": {"95": 0.2}}`) when it holds exactly one number, which
//! Flagger reports as *no values*. No result, several results or a null value is *no values*.
//!
//! API reference: <https://docs.newrelic.com/docs/apis/insights-apis/query-insights-event-data-api/>.

use async_trait::async_trait;
use serde_json::Value;

use super::api_client::{ApiClient, json_message, with_query};
use crate::settings::Credentials;
use crate::{Error, MetricProvider, ProviderSettings, QueryOutcome, Result};

/// Where queries go without an address (the US region's Insights API).
pub const DEFAULT_ADDRESS: &str = "https://insights-api.newrelic.com";
/// The Secret key of the account id.
pub const ACCOUNT_ID: &str = "newrelic_account_id";
/// The Secret key of the Insights query key.
pub const QUERY_KEY: &str = "newrelic_query_key";
/// The NRQL [`MetricProvider::is_online`] runs (any 200 answer means online).
pub const ONLINE_QUERY: &str = "SELECT count(*) FROM Metric";

/// A New Relic account's Insights query API.
#[derive(Clone, Debug)]
pub struct NewRelicProvider {
    api: ApiClient,
    query_url: reqwest::Url,
    since_secs: u64,
}

impl NewRelicProvider {
    /// A provider for `settings.address` (or [`DEFAULT_ADDRESS`]) with the Secret's keys.
    ///
    /// # Errors
    /// [`Error::MissingCredential`] without both keys; the errors of an invalid address,
    /// header or TLS set-up.
    pub fn new(settings: ProviderSettings) -> Result<Self> {
        let missing = |key| Error::MissingCredential {
            provider: "newrelic".into(),
            key,
        };
        let Credentials::Keys(keys) = &settings.credentials else {
            return Err(missing(ACCOUNT_ID));
        };
        let account = keys
            .get(ACCOUNT_ID)
            .ok_or_else(|| missing(ACCOUNT_ID))?
            .trim()
            .to_owned();
        let auth = [(
            "x-query-key",
            keys.get(QUERY_KEY)
                .ok_or_else(|| missing(QUERY_KEY))?
                .to_owned(),
        )];
        let since_secs = settings.metric_interval.as_secs();
        let api = ApiClient::new("newrelic", settings, Some(DEFAULT_ADDRESS), &auth)?;
        let mut query_url = api.url("/v1/accounts");
        query_url
            .path_segments_mut()
            .map_err(|()| Error::InvalidAddress {
                provider: "newrelic".into(),
                address: api.address().to_owned(),
            })?
            .push(&account)
            .push("query");
        Ok(Self {
            api,
            query_url,
            since_secs,
        })
    }

    async fn run(&self, nrql: &str) -> Result<(u16, String)> {
        let nrql = format!("{} SINCE {} seconds ago", nrql.trim_end(), self.since_secs);
        tracing::debug!(address = %self.api.address(), %nrql, "newrelic query");
        let url = with_query(self.query_url.clone(), [("nrql", nrql.as_str())]);
        let answer = self
            .api
            .send(|client| {
                client
                    .get(url.clone())
                    .header(reqwest::header::ACCEPT, "application/json")
            })
            .await?;
        if answer.status != 200 {
            let message = json_message(&answer.body, |json| {
                json.get("error").and_then(Value::as_str).map(str::to_owned)
            });
            return Err(if answer.status == 401 || answer.status == 403 {
                self.api.rejected_credentials(
                    answer.status,
                    &message,
                    "newrelic_account_id and newrelic_query_key",
                )
            } else {
                self.api.api_error(answer.status, &message)
            });
        }
        Ok((answer.status, answer.body))
    }

    fn interpret(&self, body: &str) -> Result<QueryOutcome> {
        let json: Value = serde_json::from_str(body).map_err(|err| {
            self.api
                .malformed(&format!("not a query answer ({err})"), body)
        })?;
        let Some(results) = json.get("results").and_then(Value::as_array) else {
            return Err(self.api.malformed("no results", body));
        };
        let [result] = results.as_slice() else {
            return Ok(QueryOutcome::NoValues);
        };
        if let Some(value) = result.get("result") {
            return match value {
                Value::Null => Ok(QueryOutcome::NoValues),
                Value::Number(number) => Ok(number
                    .as_f64()
                    .map_or(QueryOutcome::NoValues, QueryOutcome::from_sample)),
                other => Err(self
                    .api
                    .malformed(&format!("result {other} is not a number"), body)),
            };
        }
        let mut numbers = Vec::new();
        let mut nulls = 0;
        collect_leaves(result, &mut numbers, &mut nulls);
        match numbers.as_slice() {
            [] if nulls > 0 => Ok(QueryOutcome::NoValues),
            [value] => Ok(QueryOutcome::from_sample(*value)),
            _ => Err(self.api.malformed(
                "the result does not hold exactly one number: select one aggregate",
                body,
            )),
        }
    }
}

fn collect_leaves(value: &Value, numbers: &mut Vec<f64>, nulls: &mut usize) {
    match value {
        Value::Number(number) => numbers.extend(number.as_f64()),
        Value::Null => *nulls += 1,
        Value::Object(map) => {
            for value in map.values() {
                collect_leaves(value, numbers, nulls);
            }
        }
        _ => {}
    }
}

#[async_trait]
impl MetricProvider for NewRelicProvider {
    async fn query(&self, query: &str) -> Result<QueryOutcome> {
        let (_, body) = self.run(query).await?;
        self.interpret(&body)
    }

    async fn is_online(&self) -> Result<bool> {
        self.run(ONLINE_QUERY).await.map(|_| true)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (house rule).
mod tests {
    use super::*;
    use crate::settings::SecretKeys;

    fn provider() -> NewRelicProvider {
        NewRelicProvider::new(
            ProviderSettings::new("").with_credentials(Credentials::Keys(SecretKeys::new([
                (ACCOUNT_ID, "51312"),
                (QUERY_KEY, "q"),
            ]))),
        )
        .unwrap()
    }

    #[test]
    fn the_account_is_a_path_segment_of_the_default_address() {
        assert_eq!(
            provider().query_url.as_str(),
            "https://insights-api.newrelic.com/v1/accounts/51312/query"
        );
    }

    #[test]
    fn one_result_holding_one_number_is_the_value() {
        let p = provider();
        assert_eq!(
            p.interpret(r#"{"results":[{"result":1.5}]}"#).unwrap(),
            QueryOutcome::Value(1.5)
        );
        assert_eq!(
            p.interpret(r#"{"results":[{"count":12}]}"#).unwrap(),
            QueryOutcome::Value(12.0)
        );
        assert_eq!(
            p.interpret(r#"{"results":[{"percentiles":{"95":0.25}}]}"#)
                .unwrap(),
            QueryOutcome::Value(0.25)
        );
        assert_eq!(
            p.interpret(r#"{"results":[{"result":null}]}"#).unwrap(),
            QueryOutcome::NoValues
        );
        assert_eq!(
            p.interpret(r#"{"results":[]}"#).unwrap(),
            QueryOutcome::NoValues
        );
        assert!(p.interpret(r#"{"results":[{"min":1,"max":2}]}"#).is_err());
    }
}
