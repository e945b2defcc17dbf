//! `type: influxdb`: Flux over InfluxDB 2's query API (`POST {address}/api/v2/query`).
//!
//! As Flagger (which uses InfluxDB's Go client): the address is required; with a
//! `secretRef`, the Secret's `token` is sent as `Authorization: Token …` and its `org`
//! names the organization (`?org=`); the body is the Flux query with the annotated-CSV
//! dialect, and the answer is annotated CSV. The value is the `_value` of the **first
//! record**: a null (empty) `_value` is *no values*; an answer without any record is **0**,
//! as in Flagger (a `count()` over no matching points yields no table). Flagger accepts only
//! `double` values; Fledge also reads `long` and `unsignedLong` (what `count()` yields). An
//! error table in the CSV (`error,reference`) is an error.
//! [`MetricProvider::is_online`] runs `buckets() |> limit(n: 1)`, which checks the token
//! and the organization without assuming a bucket.
//!
//! API reference: <https://docs.influxdata.com/influxdb/v2/api/#operation/PostQuery>;
//! the CSV format: <https://docs.influxdata.com/influxdb/v2/reference/syntax/annotated-csv/>.

use async_trait::async_trait;
use serde_json::{Value, json};

use super::api_client::{ApiClient, json_message};
use crate::settings::Credentials;
use crate::{Error, MetricProvider, ProviderSettings, QueryOutcome, Result};

/// The Secret key of the API token.
pub const TOKEN: &str = "token";
/// The Secret key of the organization.
pub const ORG: &str = "org";
/// The Flux [`MetricProvider::is_online`] runs.
pub const ONLINE_QUERY: &str = "buckets() |> limit(n: 1)";

/// An InfluxDB 2 (or InfluxDB Cloud) query API.
#[derive(Clone, Debug)]
pub struct InfluxDbProvider {
    api: ApiClient,
    query_url: reqwest::Url,
}

/// What the first record of an annotated CSV answer says.
#[derive(Debug, PartialEq)]
enum FirstRecord {
    Number(f64),
    Null,
    NoRecord,
    Error(String),
    NotNumber { datatype: String, value: String },
    NoValueColumn,
}

impl InfluxDbProvider {
    /// A provider for `settings.address` (required), with the Secret's `token` and `org`
    /// when the template names a Secret.
    ///
    /// # Errors
    /// [`Error::AddressRequired`]; the errors of an invalid address, header or TLS set-up.
    pub fn new(settings: ProviderSettings) -> Result<Self> {
        if settings.address.trim().is_empty() {
            return Err(Error::AddressRequired {
                provider: "influxdb".into(),
                hint: "the InfluxDB 2 URL, e.g. http://influxdb.monitoring:8086",
            });
        }
        let (token, org) = match &settings.credentials {
            Credentials::Keys(keys) => (
                keys.get(TOKEN).map(str::to_owned),
                keys.get(ORG).map(str::to_owned),
            ),
            _ => (None, None),
        };
        let auth: Vec<(&'static str, String)> = token
            .map(|token| ("authorization", format!("Token {token}")))
            .into_iter()
            .collect();
        let api = ApiClient::new("influxdb", settings, None, &auth)?;
        let mut query_url = api.url("/api/v2/query");
        if let Some(org) = org {
            query_url.query_pairs_mut().append_pair("org", &org);
        }
        Ok(Self { api, query_url })
    }

    async fn run(&self, flux: &str) -> Result<FirstRecord> {
        let body = json!({
            "query": flux,
            "type": "flux",
            "dialect": {
                "header": true,
                "delimiter": ",",
                "annotations": ["datatype", "group", "default"],
                "commentPrefix": "#",
                "dateTimeFormat": "RFC3339",
            },
        })
        .to_string();
        tracing::debug!(address = %self.api.address(), %flux, "influxdb query");
        let answer = self
            .api
            .send(|client| {
                client
                    .post(self.query_url.clone())
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .header(reqwest::header::ACCEPT, "application/csv")
                    .body(body.clone())
            })
            .await?;
        if answer.status != 200 {
            let message = json_message(&answer.body, |json| {
                json.get("message")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            });
            return Err(if answer.status == 401 || answer.status == 403 {
                self.api
                    .rejected_credentials(answer.status, &message, "token and org")
            } else {
                self.api.api_error(answer.status, &message)
            });
        }
        let first = first_record(&answer.body);
        if let FirstRecord::Error(message) = first {
            return Err(self.api.api_error(answer.status, &message));
        }
        Ok(first)
    }
}

#[async_trait]
impl MetricProvider for InfluxDbProvider {
    async fn query(&self, query: &str) -> Result<QueryOutcome> {
        match self.run(query).await? {
            FirstRecord::Number(value) => Ok(QueryOutcome::from_sample(value)),
            FirstRecord::Null => Ok(QueryOutcome::NoValues),
            FirstRecord::NoRecord => Ok(QueryOutcome::Value(0.0)),
            FirstRecord::NotNumber { datatype, value } => Err(self.api.malformed(
                &format!("the first record's _value {value:?} is a {datatype}, not a number"),
                "",
            )),
            FirstRecord::NoValueColumn => Err(self.api.malformed(
                "the first table has no _value column: keep _value in the query's result",
                "",
            )),
            FirstRecord::Error(message) => Err(self.api.api_error(200, &message)),
        }
    }

    async fn is_online(&self) -> Result<bool> {
        self.run(ONLINE_QUERY).await.map(|_| true)
    }
}

/// Reads the first record of an annotated CSV answer: tables separated by blank lines,
/// each with `#datatype`/`#group`/`#default` rows, a header row and records.
fn first_record(csv: &str) -> FirstRecord {
    let mut datatypes: Option<Vec<String>> = None;
    let mut header: Option<Vec<String>> = None;
    for line in csv.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            datatypes = None;
            header = None;
            continue;
        }
        let fields = split_csv_line(line);
        if line.starts_with('#') {
            if fields.first().is_some_and(|first| first == "#datatype") {
                datatypes = Some(fields);
            }
            header = None;
            continue;
        }
        let Some(columns) = &header else {
            header = Some(fields);
            continue;
        };
        let column = |name: &str| columns.iter().position(|column| column == name);
        if let Some(error) = column("error") {
            return FirstRecord::Error(fields.get(error).cloned().unwrap_or_default());
        }
        let Some(index) = column("_value") else {
            return FirstRecord::NoValueColumn;
        };
        let value = fields.get(index).map(String::as_str).unwrap_or_default();
        let datatype = datatypes
            .as_ref()
            .and_then(|types| types.get(index))
            .map_or("double", String::as_str);
        if value.is_empty() {
            return FirstRecord::Null;
        }
        return match datatype {
            "double" | "long" | "unsignedLong" => value.parse().map_or_else(
                |_| FirstRecord::NotNumber {
                    datatype: datatype.to_owned(),
                    value: value.to_owned(),
                },
                FirstRecord::Number,
            ),
            other => FirstRecord::NotNumber {
                datatype: other.to_owned(),
                value: value.to_owned(),
            },
        };
    }
    FirstRecord::NoRecord
}

/// One CSV line's fields (RFC 4180 quoting: `"a, b"`, `""` for a quote).
fn split_csv_line(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    fields.push(field);
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The answer in Flagger's influxdb_test.go.
    const TWO_RECORDS: &str = "#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,dateTime:RFC3339,double,string,string,string,string\n\
#group,false,false,true,true,false,false,true,true,true,true\n\
#default,_result,,,,,,,,,\n\
,result,table,_start,_stop,_time,_value,_field,_measurement,a,b\n\
,,0,2020-02-17T22:19:49.747562847Z,2020-02-18T22:19:49.747562847Z,2020-02-18T10:34:08.135814545Z,1.4,f,test,1,adsfasdf\n\
,,0,2020-02-17T22:19:49.747562847Z,2020-02-18T22:19:49.747562847Z,2020-02-18T22:08:44.850214724Z,6.6,f,test,1,adsfasdf\n\n";

    #[test]
    fn the_first_record_is_the_value() {
        assert_eq!(first_record(TWO_RECORDS), FirstRecord::Number(1.4));
        assert_eq!(first_record(""), FirstRecord::NoRecord);
        assert_eq!(first_record("\r\n"), FirstRecord::NoRecord);
    }

    #[test]
    fn counts_nulls_strings_and_error_tables() {
        let count = "#datatype,string,long,long\n#group,false,false,false\n#default,count,,\n,result,table,_value\n,,0,12\n";
        assert_eq!(first_record(count), FirstRecord::Number(12.0));
        let null = "#datatype,string,long,double\n#group,false,false,false\n#default,_result,,\n,result,table,_value\n,,0,\n";
        assert_eq!(first_record(null), FirstRecord::Null);
        let text = "#datatype,string,long,string\n#group,false,false,false\n#default,_result,,\n,result,table,_value\n,,0,\"a, b\"\n";
        assert_eq!(
            first_record(text),
            FirstRecord::NotNumber {
                datatype: "string".into(),
                value: "a, b".into()
            }
        );
        let error = "#datatype,string,string\n#group,true,true\n#default,,\n,error,reference\n,\"failed to execute query: bucket \"\"x\"\" not found\",\n";
        assert_eq!(
            first_record(error),
            FirstRecord::Error(r#"failed to execute query: bucket "x" not found"#.into())
        );
    }
}
