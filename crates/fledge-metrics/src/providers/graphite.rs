//! `type: graphite`: Graphite's render API (`GET {address}/render?{query}&format=json`).
//!
//! As Flagger: the template's query is the render API's query string
//! (`target=summarize(...)&from=-5min`), whitespace collapsed; `format=json` is set; the
//! Secret's `username` and `password` go as basic auth. The value is the **last non-null
//! datapoint** of all returned series; no series, or only null datapoints, is *no values*.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;

use super::api_client::ApiClient;
use crate::{Error, MetricProvider, ProviderSettings, QueryOutcome, Result};

/// The query [`MetricProvider::is_online`] runs: any answer but an error means online
/// (Flagger's check).
pub const ONLINE_QUERY: &str = "target=test";

/// A Graphite (graphite-web, or an API-compatible server such as carbonapi) render API.
#[derive(Clone, Debug)]
pub struct GraphiteProvider {
    api: ApiClient,
}

#[derive(Deserialize)]
struct Series {
    #[serde(default)]
    datapoints: Vec<(Value, Value)>,
}

impl GraphiteProvider {
    /// A provider for `settings.address` (required: Graphite has no default address).
    ///
    /// # Errors
    /// [`Error::AddressRequired`] without an address; the errors of an invalid address,
    /// header or TLS set-up.
    pub fn new(settings: ProviderSettings) -> Result<Self> {
        if settings.address.trim().is_empty() {
            return Err(Error::AddressRequired {
                provider: "graphite".into(),
                hint: "the graphite-web URL, e.g. http://graphite.monitoring",
            });
        }
        Ok(Self {
            api: ApiClient::new("graphite", settings, None, &[])?,
        })
    }

    /// The render URL a query goes to.
    pub fn render_url(&self, query: &str) -> reqwest::Url {
        let mut url = self.api.url("/render");
        url.set_query(Some(&collapse_whitespace(query)));
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .into_owned()
            .filter(|(key, _)| key != "format")
            .collect();
        url.set_query(None);
        url.query_pairs_mut()
            .extend_pairs(pairs)
            .append_pair("format", "json");
        url
    }

    fn interpret(&self, status: u16, body: &str) -> Result<QueryOutcome> {
        if status == 401 || status == 403 {
            return Err(self.api.rejected_credentials(
                status,
                &error_text(body),
                "username and password",
            ));
        }
        if status >= 400 {
            return Err(self.api.api_error(status, &error_text(body)));
        }
        let series: Vec<Series> = serde_json::from_str(body).map_err(|err| {
            self.api
                .malformed(&format!("not a render JSON answer ({err})"), body)
        })?;
        let mut last = None;
        for point in series.iter().flat_map(|series| &series.datapoints) {
            match &point.0 {
                Value::Null => {}
                Value::Number(number) => last = number.as_f64(),
                Value::String(text) => {
                    last = Some(text.trim().parse().map_err(|_| {
                        self.api
                            .malformed(&format!("datapoint {text:?} is not a number"), body)
                    })?);
                }
                other => {
                    return Err(self
                        .api
                        .malformed(&format!("datapoint {other} is not a number"), body));
                }
            }
        }
        Ok(last.map_or(QueryOutcome::NoValues, QueryOutcome::from_sample))
    }
}

#[async_trait]
impl MetricProvider for GraphiteProvider {
    async fn query(&self, query: &str) -> Result<QueryOutcome> {
        let url = self.render_url(query);
        tracing::debug!(address = %self.api.address(), query = %collapse_whitespace(query), "graphite query");
        let answer = self.api.send(|client| client.get(url.clone())).await?;
        self.interpret(answer.status, &answer.body)
    }

    async fn is_online(&self) -> Result<bool> {
        self.query(ONLINE_QUERY).await.map(|_| true)
    }
}

/// Every run of whitespace as one space, as Flagger sends Graphite queries.
fn collapse_whitespace(query: &str) -> String {
    query.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// graphite-web's error text: a 400's plain text, or for a 500 the last line of the
/// traceback page (`ValueError: Invalid offset unit 'm'`).
fn error_text(body: &str) -> String {
    let Some(start) = body.find("<pre>") else {
        return body.trim().to_owned();
    };
    let traceback = &body[start + "<pre>".len()..];
    let traceback = traceback.split("</pre>").next().unwrap_or(traceback);
    let last = traceback
        .lines()
        .map(str::trim)
        .rfind(|line| !line.is_empty())
        .unwrap_or_default();
    last.replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (house rule).
mod tests {
    use super::*;

    fn provider() -> GraphiteProvider {
        GraphiteProvider::new(ProviderSettings::new("http://graphite.monitoring/prefix/")).unwrap()
    }

    #[test]
    fn the_query_string_keeps_its_parameters_and_asks_for_json() {
        let url = provider().render_url("target=sumSeries(a.*.b)\n  &from=-5min&format=png");
        assert_eq!(url.path(), "/prefix/render");
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(
            pairs,
            [
                ("target".to_owned(), "sumSeries(a.*.b) ".to_owned()),
                ("from".to_owned(), "-5min".to_owned()),
                ("format".to_owned(), "json".to_owned()),
            ]
        );
    }

    #[test]
    fn the_last_non_null_datapoint_of_all_series_is_the_value() {
        let body = r#"[{"target":"a","datapoints":[[1.5,1],[null,2]]},{"target":"b","datapoints":[["7",1],[3,2],[null,3]]}]"#;
        assert_eq!(
            provider().interpret(200, body).unwrap(),
            QueryOutcome::Value(3.0)
        );
        let nulls = r#"[{"target":"a","datapoints":[[null,1],[null,2]]}]"#;
        assert_eq!(
            provider().interpret(200, nulls).unwrap(),
            QueryOutcome::NoValues
        );
        assert_eq!(
            provider().interpret(200, "[]").unwrap(),
            QueryOutcome::NoValues
        );
    }

    #[test]
    fn a_traceback_page_is_reduced_to_its_exception() {
        let page = "<html><pre>\nTraceback (most recent call last):\n  File &quot;x.py&quot;\nValueError: Invalid offset unit &#x27;m&#x27;\n\n</pre></html>";
        assert_eq!(error_text(page), "ValueError: Invalid offset unit 'm'");
        let err = provider().interpret(500, page).unwrap_err();
        assert_eq!(
            err.to_string(),
            "graphite API error (status 500): ValueError: Invalid offset unit 'm'"
        );
    }

    #[test]
    fn graphite_needs_an_address() {
        let err = GraphiteProvider::new(ProviderSettings::new("")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "graphite needs spec.provider.address: the graphite-web URL, e.g. http://graphite.monitoring"
        );
    }
}
