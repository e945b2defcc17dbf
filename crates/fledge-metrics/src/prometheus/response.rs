//! Reading Prometheus' `/api/v1/query` answer into one value, *no values* or an error.

use serde::Deserialize;
use serde_json::Value;

use crate::{Error, QueryOutcome, Result};

/// Bodies quoted in errors are cut to this many characters.
const MAX_QUOTED_BODY: usize = 512;

#[derive(Deserialize)]
struct ApiResponse {
    status: String,
    #[serde(default)]
    data: Option<QueryData>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct QueryData {
    #[serde(rename = "resultType")]
    result_type: String,
    result: Value,
}

#[derive(Deserialize)]
struct VectorSample {
    /// `[unix_time, "value"]`.
    value: (Value, String),
}

/// Turns an HTTP status and body into the outcome of the query.
pub(super) fn interpret(address: &str, status: u16, body: &str) -> Result<QueryOutcome> {
    if status == 401 || status == 403 {
        return Err(Error::Unauthorized {
            address: address.to_owned(),
            status,
            body: quote(body),
        });
    }
    let parsed: Result<ApiResponse, _> = serde_json::from_str(body);
    let response = match parsed {
        Ok(response) => response,
        Err(_) if status >= 400 => {
            return Err(Error::Http {
                address: address.to_owned(),
                status,
                body: quote(body),
            });
        }
        Err(err) => return Err(malformed(address, &format!("not JSON ({err})"), body)),
    };
    if response.status != "success" {
        return Err(Error::Prometheus {
            status,
            error_type: response.error_type.unwrap_or_else(|| "unknown".into()),
            message: response.error.unwrap_or_else(|| quote(body)),
        });
    }
    let Some(data) = response.data else {
        return Err(malformed(address, "no data", body));
    };
    match data.result_type.as_str() {
        "vector" => {
            let samples: Vec<VectorSample> = serde_json::from_value(data.result)
                .map_err(|err| malformed(address, &format!("vector samples ({err})"), body))?;
            match samples.as_slice() {
                [] => Ok(QueryOutcome::NoValues),
                [sample] => parse_sample(address, &sample.value.1, body),
                several => Err(Error::MultipleSeries {
                    count: several.len(),
                }),
            }
        }
        "scalar" => {
            let (_, value): (Value, String) = serde_json::from_value(data.result)
                .map_err(|err| malformed(address, &format!("scalar ({err})"), body))?;
            parse_sample(address, &value, body)
        }
        other => Err(Error::UnsupportedResultType {
            result_type: other.to_owned(),
        }),
    }
}

/// Prometheus writes samples as Go formats floats: `97`, `0.5`, `NaN`, `+Inf`, `-Inf`.
fn parse_sample(address: &str, text: &str, body: &str) -> Result<QueryOutcome> {
    let value: f64 = text
        .parse()
        .map_err(|_| malformed(address, &format!("sample {text:?} is not a number"), body))?;
    Ok(QueryOutcome::from_sample(value))
}

fn malformed(address: &str, reason: &str, body: &str) -> Error {
    Error::MalformedResponse {
        address: address.to_owned(),
        reason: reason.to_owned(),
        body: quote(body),
    }
}

fn quote(body: &str) -> String {
    let body = body.trim();
    match body.char_indices().nth(MAX_QUOTED_BODY) {
        Some((cut, _)) => format!("{}…", &body[..cut]),
        None => body.to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (house rule).
mod tests {
    use super::*;

    const ADDRESS: &str = "http://prometheus:9090";

    fn vector(values: &[&str]) -> String {
        let samples: Vec<String> = values
            .iter()
            .map(|v| format!(r#"{{"metric":{{}},"value":[1700000000.123,"{v}"]}}"#))
            .collect();
        format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{}]}}}}"#,
            samples.join(",")
        )
    }

    #[test]
    fn one_sample_is_its_value() {
        assert_eq!(
            interpret(ADDRESS, 200, &vector(&["97"])).unwrap(),
            QueryOutcome::Value(97.0)
        );
        assert_eq!(
            interpret(ADDRESS, 200, &vector(&["+Inf"])).unwrap(),
            QueryOutcome::Value(f64::INFINITY)
        );
    }

    #[test]
    fn an_empty_vector_and_nan_are_no_values() {
        assert_eq!(
            interpret(ADDRESS, 200, &vector(&[])).unwrap(),
            QueryOutcome::NoValues
        );
        assert_eq!(
            interpret(ADDRESS, 200, &vector(&["NaN"])).unwrap(),
            QueryOutcome::NoValues
        );
    }

    #[test]
    fn several_series_are_an_error_naming_the_count() {
        let err = interpret(ADDRESS, 200, &vector(&["1", "2", "3"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "query returned 3 series, expected one: aggregate it (for example with sum())"
        );
    }

    #[test]
    fn a_scalar_is_its_value() {
        let body =
            r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"42.5"]}}"#;
        assert_eq!(
            interpret(ADDRESS, 200, body).unwrap(),
            QueryOutcome::Value(42.5)
        );
    }

    #[test]
    fn a_range_vector_has_no_single_value() {
        let body = r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert!(
            matches!(interpret(ADDRESS, 200, body), Err(Error::UnsupportedResultType { result_type }) if result_type == "matrix")
        );
    }

    #[test]
    fn prometheus_error_text_is_surfaced_unchanged() {
        let body = r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:5: parse error: unexpected end of input"}"#;
        let err = interpret(ADDRESS, 400, body).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"prometheus error (bad_data, status 400): invalid parameter "query": 1:5: parse error: unexpected end of input"#
        );
    }

    #[test]
    fn a_proxy_error_page_is_an_http_error_with_its_body() {
        let err = interpret(ADDRESS, 502, "<html>Bad Gateway</html>\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "error response from http://prometheus:9090: status 502: <html>Bad Gateway</html>"
        );
        let err = interpret(ADDRESS, 401, "Unauthorized\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "http://prometheus:9090 rejected the credentials: status 401: Unauthorized"
        );
    }

    #[test]
    fn a_success_that_is_not_json_is_malformed() {
        let err = interpret(ADDRESS, 200, "hello").unwrap_err();
        assert!(matches!(err, Error::MalformedResponse { .. }), "{err}");
    }
}
