//! Datadog, New Relic, Dynatrace and InfluxDB 2 against a local server that checks the
//! exact request each API documents and answers the documented shapes (recorded under
//! `tests/fixtures/<provider>/`, each directory's README naming its sources): a value, no
//! values, the API's errors, and HTTP 429 retried with backoff.
//!
//! The queries are Flagger's documented MetricTemplates (`tests/fixtures/metric-templates/`),
//! read with their Secret as the operator hands it over.

#![allow(clippy::unwrap_used)] // Tests may unwrap (house rule).

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use fledge_api::MetricTemplate;
use fledge_metrics::{
    Error, MetricProvider, MetricTemplateModel, ProviderSettings, QueryOutcome, RetryPolicy,
    provider_for, render_query,
};
use support::{ApiServer, Recorded, Reply, fixture, unix_now};

/// Short waits, so the retries do not slow the suite down.
const QUICK_RETRY: RetryPolicy = RetryPolicy {
    attempts: 3,
    first_delay: Duration::from_millis(20),
    max_delay: Duration::from_millis(100),
};

fn podinfo() -> MetricTemplateModel {
    MetricTemplateModel {
        name: "podinfo".into(),
        namespace: "test".into(),
        target: "podinfo".into(),
        service: "podinfo".into(),
        ingress: "podinfo".into(),
        route: "podinfo".into(),
        interval: "1m".into(),
        variables: BTreeMap::new(),
    }
}

/// A documented template, its rendered query, and a provider pointed at `address` with
/// the Secret `secret` (as the operator passes it).
fn documented(
    file: &str,
    address: &str,
    secret: &[(&str, &str)],
) -> (Box<dyn MetricProvider>, String) {
    let text = fixture("metric-templates", file);
    let mut template: MetricTemplate = serde_yaml::from_str(&text).unwrap();
    template.spec.provider.address = Some(address.to_owned());
    template
        .spec
        .provider
        .headers
        .insert("X-Fledge-Tenant".into(), vec!["team-a".into()]);
    let data: BTreeMap<String, Vec<u8>> = secret
        .iter()
        .map(|(key, value)| ((*key).to_owned(), value.as_bytes().to_vec()))
        .collect();
    let settings = ProviderSettings::from_template_provider(
        &template.spec.provider,
        Some(&data),
        Some("http://prometheus.is.never.asked:9090"),
    )
    .unwrap()
    .with_retry(QUICK_RETRY);
    let query = render_query(&template.spec.query, &podinfo()).unwrap();
    (
        provider_for(template.spec.provider.type_, settings).unwrap(),
        query,
    )
}

/// Answers `reply` the first `failures` times with 429 (and a `Retry-After` of 0 s).
fn after_429s(failures: usize, body_429: String, reply: Reply) -> impl Fn(&Recorded) -> Reply {
    let seen = Arc::new(AtomicUsize::new(0));
    move |_| {
        if seen.fetch_add(1, Ordering::SeqCst) < failures {
            Reply::json(429, body_429.clone()).with_header("retry-after", "0")
        } else {
            reply.clone()
        }
    }
}

fn assert_no_secret(err: &Error, secrets: &[&str]) {
    let shown = format!("{err} {err:?}");
    for secret in secrets {
        assert!(!shown.contains(secret), "{secret} shown in: {shown}");
    }
}

mod datadog {
    use super::*;

    const SECRET: [(&str, &str); 2] = [
        ("datadog_api_key", "dd-api-k3y-0001"),
        ("datadog_application_key", "dd-app-k3y-0002"),
    ];
    const TEMPLATE: &str = "flagger-docs_usage_metrics_12.yaml";

    #[tokio::test]
    async fn datadog_sends_the_documented_query_and_reads_the_first_point() {
        let server = ApiServer::start(|_| Reply::json(200, fixture("datadog", "value.json"))).await;
        let (provider, query) = documented(TEMPLATE, server.url(), &SECRET);
        let before = unix_now();
        assert_eq!(
            provider.query(&query).await.unwrap(),
            QueryOutcome::Value(99.25)
        );
        let after = unix_now();

        let request = server.last();
        assert_eq!(
            (request.method.as_str(), request.path.as_str()),
            ("GET", "/api/v1/query")
        );
        // The template's query goes as it is (Flagger does not collapse it).
        assert_eq!(request.param("query"), Some(query.as_str()));
        assert!(query.contains("destination_workload:podinfo"), "{query}");
        let from: u64 = request.param("from").unwrap().parse().unwrap();
        let to: u64 = request.param("to").unwrap().parse().unwrap();
        assert!((before..=after).contains(&to), "to={to}");
        assert_eq!(to - from, 600, "ten 1m intervals, as Flagger queries");
        assert_eq!(request.header("dd-api-key"), Some("dd-api-k3y-0001"));
        assert_eq!(
            request.header("dd-application-key"),
            Some("dd-app-k3y-0002")
        );
        assert_eq!(request.header("x-fledge-tenant"), Some("team-a"));
    }

    #[tokio::test]
    async fn datadog_no_series_or_a_null_first_point_is_no_values() {
        for file in ["empty.json", "null-point.json"] {
            let server =
                ApiServer::start(move |_| Reply::json(200, fixture("datadog", file))).await;
            let (provider, query) = documented(TEMPLATE, server.url(), &SECRET);
            assert_eq!(
                provider.query(&query).await.unwrap(),
                QueryOutcome::NoValues,
                "{file}"
            );
        }
    }

    #[tokio::test]
    async fn datadog_errors_name_the_status_and_datadogs_message_never_a_key() {
        let server = ApiServer::start(|request| {
            if request
                .param("query")
                .is_some_and(|q| q.contains('{') && !q.contains('}'))
            {
                Reply::json(400, fixture("datadog", "bad-query.json"))
            } else {
                Reply::json(403, fixture("datadog", "forbidden.json"))
            }
        })
        .await;
        let (provider, _) = documented(TEMPLATE, server.url(), &SECRET);
        let err = provider
            .query("sum:istio.mesh.request.count{")
            .await
            .unwrap_err();
        assert!(
            err.to_string().starts_with(
                "datadog API error (status 400): Error parsing query: unable to parse sum:istio.mesh.request.count{"
            ),
            "{err}"
        );
        let err = provider.query("sum:a{b}").await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "datadog API error (status 403): Forbidden (check the datadog_api_key and datadog_application_key of the template's Secret)"
        );
        assert_no_secret(&err, &["dd-api-k3y-0001", "dd-app-k3y-0002"]);
        let err = provider.is_online().await.unwrap_err();
        assert!(matches!(err, Error::Api { status: 403, .. }), "{err:?}");
    }

    #[tokio::test]
    async fn datadog_429_is_retried_then_a_clear_error() {
        let rate_limited = fixture("datadog", "rate-limited.json");
        let server = ApiServer::start(after_429s(
            2,
            rate_limited.clone(),
            Reply::json(200, fixture("datadog", "value.json")),
        ))
        .await;
        let (provider, query) = documented(TEMPLATE, server.url(), &SECRET);
        assert_eq!(
            provider.query(&query).await.unwrap(),
            QueryOutcome::Value(99.25)
        );
        assert_eq!(server.requests().len(), 3, "two 429s, then the answer");

        let server = ApiServer::start(move |_| {
            Reply::json(429, rate_limited.clone())
                .with_header("x-ratelimit-limit", "100")
                .with_header("x-ratelimit-remaining", "0")
        })
        .await;
        let (provider, query) = documented(TEMPLATE, server.url(), &SECRET);
        let err = provider.query(&query).await.unwrap_err();
        assert!(
            matches!(err, Error::RateLimited { attempts: 3, .. }),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "datadog API rate limit: status 429 on each of 3 attempts ({\"errors\": [\"Too many requests\"]}): query less often (fewer canaries or a longer analysis interval) or raise the API quota"
        );
        assert_eq!(server.requests().len(), 3);
    }

    #[tokio::test]
    async fn datadog_over_tls_needs_insecure_skip_verify_for_a_self_signed_certificate() {
        let server =
            ApiServer::start_tls(|_| Reply::json(200, fixture("datadog", "value.json"))).await;
        let secret = SECRET.map(|(key, value)| (key.to_owned(), value.as_bytes().to_vec()));
        let secret = BTreeMap::from(secret);
        let text = fixture("metric-templates", TEMPLATE);
        let mut template: MetricTemplate = serde_yaml::from_str(&text).unwrap();
        template.spec.provider.address = Some(server.url().to_owned());
        let query = render_query(&template.spec.query, &podinfo()).unwrap();
        let mut provider = |insecure: bool| {
            template.spec.provider.insecure_skip_verify = insecure;
            let settings = ProviderSettings::from_template_provider(
                &template.spec.provider,
                Some(&secret),
                None,
            )
            .unwrap();
            provider_for(template.spec.provider.type_, settings).unwrap()
        };
        let err = provider(false).query(&query).await.unwrap_err();
        assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
        assert!(err.to_string().contains("certificate"), "{err}");
        assert_eq!(
            provider(true).query(&query).await.unwrap(),
            QueryOutcome::Value(99.25)
        );
        assert_eq!(
            server.requests().len(),
            1,
            "the refused handshake sent nothing"
        );
    }

    #[tokio::test]
    async fn datadog_is_online_validates_the_keys() {
        let server =
            ApiServer::start(|_| Reply::json(200, fixture("datadog", "validate.json"))).await;
        let (provider, _) = documented(TEMPLATE, server.url(), &SECRET);
        assert!(provider.is_online().await.unwrap());
        let request = server.last();
        assert_eq!(request.path, "/api/v1/validate");
        assert_eq!(request.header("dd-api-key"), Some("dd-api-k3y-0001"));
        assert_eq!(
            request.header("dd-application-key"),
            Some("dd-app-k3y-0002")
        );
    }
}

mod newrelic {
    use super::*;

    const SECRET: [(&str, &str); 2] = [
        ("newrelic_account_id", "51312"),
        ("newrelic_query_key", "NRIQ-qu3ry-k3y"),
    ];
    const TEMPLATE: &str = "flagger-docs_usage_metrics_17.yaml";

    #[tokio::test]
    async fn newrelic_sends_nrql_since_the_interval_and_reads_the_one_result() {
        let server =
            ApiServer::start(|_| Reply::json(200, fixture("newrelic", "value.json"))).await;
        let (provider, query) = documented(TEMPLATE, server.url(), &SECRET);
        assert_eq!(
            provider.query(&query).await.unwrap(),
            QueryOutcome::Value(1.25)
        );

        let request = server.last();
        assert_eq!(
            (request.method.as_str(), request.path.as_str()),
            ("GET", "/v1/accounts/51312/query")
        );
        let nrql = request.param("nrql").unwrap();
        assert_eq!(nrql, format!("{} SINCE 60 seconds ago", query.trim_end()));
        assert!(
            nrql.contains("AND ingress = 'podinfo' AND  namespace = 'test'"),
            "{nrql}"
        );
        assert_eq!(request.header("x-query-key"), Some("NRIQ-qu3ry-k3y"));
        assert_eq!(request.header("accept"), Some("application/json"));
        assert_eq!(request.header("x-fledge-tenant"), Some("team-a"));
    }

    #[tokio::test]
    async fn newrelic_a_named_function_result_is_read_and_empty_or_null_is_no_values() {
        for (file, expected) in [
            ("count.json", QueryOutcome::Value(42.0)),
            ("empty.json", QueryOutcome::NoValues),
            ("null.json", QueryOutcome::NoValues),
        ] {
            let server =
                ApiServer::start(move |_| Reply::json(200, fixture("newrelic", file))).await;
            let (provider, query) = documented(TEMPLATE, server.url(), &SECRET);
            assert_eq!(provider.query(&query).await.unwrap(), expected, "{file}");
        }
    }

    #[tokio::test]
    async fn newrelic_errors_and_429() {
        let server = ApiServer::start(|request| match request.param("nrql").unwrap_or_default() {
            nrql if nrql.starts_with("SELECT FROM") => {
                Reply::json(400, fixture("newrelic", "syntax-error.json"))
            }
            nrql if nrql.starts_with("SELECT count(*)") => {
                Reply::json(401, fixture("newrelic", "unauthorized.json"))
            }
            _ => Reply::json(429, fixture("newrelic", "rate-limited.json")),
        })
        .await;
        let (provider, query) = documented(TEMPLATE, server.url(), &SECRET);
        let err = provider.query("SELECT FROM Metric").await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "newrelic API error (status 400): NRQL Syntax Error: Error at line 1 position 8, unexpected 'FROM'"
        );
        // is_online runs a count over Metric: a rejected key is an error naming the keys.
        let err = provider.is_online().await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "newrelic API error (status 401): Invalid query key (check the newrelic_account_id and newrelic_query_key of the template's Secret)"
        );
        assert_no_secret(&err, &["NRIQ-qu3ry-k3y"]);
        let err = provider.query(&query).await.unwrap_err();
        assert!(
            matches!(err, Error::RateLimited { attempts: 3, .. }),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn newrelic_is_online_and_a_longer_interval() {
        let server =
            ApiServer::start(|_| Reply::json(200, fixture("newrelic", "count.json"))).await;
        let (provider, _) = documented(TEMPLATE, server.url(), &SECRET);
        assert!(provider.is_online().await.unwrap());
        assert_eq!(
            server.last().param("nrql"),
            Some("SELECT count(*) FROM Metric SINCE 60 seconds ago")
        );

        let settings = ProviderSettings::new(server.url())
            .with_credentials(fledge_metrics::Credentials::Keys(
                fledge_metrics::SecretKeys::new(SECRET),
            ))
            .with_metric_interval(Duration::from_secs(120));
        let provider = fledge_metrics::NewRelicProvider::new(settings).unwrap();
        provider
            .query("SELECT count(*) FROM Metric\n")
            .await
            .unwrap();
        assert_eq!(
            server.last().param("nrql"),
            Some("SELECT count(*) FROM Metric SINCE 120 seconds ago")
        );
    }
}

mod dynatrace {
    use super::*;

    const SECRET: [(&str, &str); 1] = [("dynatrace_token", "dt0c01.SAMPLE.T0KEN")];
    const TEMPLATE: &str = "flagger-docs_usage_metrics_26.yaml";

    #[tokio::test]
    async fn dynatrace_sends_the_metric_selector_over_ten_intervals_and_reads_the_value() {
        let server =
            ApiServer::start(|_| Reply::json(200, fixture("dynatrace", "value.json"))).await;
        // A Managed cluster's environment path is kept.
        let address = format!("{}/e/abc12345", server.url());
        let (provider, query) = documented(TEMPLATE, &address, &SECRET);
        let before = u128::from(unix_now()) * 1000;
        assert_eq!(
            provider.query(&query).await.unwrap(),
            QueryOutcome::Value(182_450.25)
        );
        let after = (u128::from(unix_now()) + 1) * 1000;

        let request = server.last();
        assert_eq!(
            (request.method.as_str(), request.path.as_str()),
            ("GET", "/e/abc12345/api/v2/metrics/query")
        );
        assert_eq!(
            request.param("metricSelector"),
            Some(
                "builtin:service.response.time:filter(eq(dt.entity.service,SERVICE-ABCDEFG0123456789)):percentile(95)"
            )
        );
        assert_eq!(request.param("resolution"), Some("Inf"));
        let from: u128 = request.param("from").unwrap().parse().unwrap();
        let to: u128 = request.param("to").unwrap().parse().unwrap();
        assert!((before..=after).contains(&to), "to={to}");
        assert_eq!(to - from, 600_000, "ten 1m intervals in milliseconds");
        assert_eq!(
            request.header("authorization"),
            Some("Api-Token dt0c01.SAMPLE.T0KEN")
        );
        assert_eq!(request.header("x-fledge-tenant"), Some("team-a"));
    }

    #[tokio::test]
    async fn dynatrace_no_data_or_a_gap_is_no_values() {
        for file in ["empty.json", "null.json"] {
            let server =
                ApiServer::start(move |_| Reply::json(200, fixture("dynatrace", file))).await;
            let (provider, query) = documented(TEMPLATE, server.url(), &SECRET);
            assert_eq!(
                provider.query(&query).await.unwrap(),
                QueryOutcome::NoValues,
                "{file}"
            );
        }
    }

    #[tokio::test]
    async fn dynatrace_errors_carry_the_constraint_violations_and_429_is_retried() {
        let server =
            ApiServer::start(
                |request| match request.param("metricSelector").unwrap_or_default() {
                    selector if selector.ends_with('(') => {
                        Reply::json(400, fixture("dynatrace", "bad-selector.json"))
                    }
                    "" => Reply::json(401, fixture("dynatrace", "unauthorized.json")),
                    _ => Reply::json(429, fixture("dynatrace", "rate-limited.json")),
                },
            )
            .await;
        let (provider, query) = documented(TEMPLATE, server.url(), &SECRET);
        let err = provider
            .query("builtin:service.response.time:percentile(")
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "dynatrace API error (status 400): Constraints violated.; metricSelector: The metric selector 'builtin:service.response.time:percentile(' could not be parsed: Expected a number at position 41."
        );
        // is_online lists metrics (no selector): the token is rejected.
        let err = provider.is_online().await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "dynatrace API error (status 401): Token Authentication failed (check the dynatrace_token of the template's Secret)"
        );
        assert_no_secret(&err, &["dt0c01.SAMPLE.T0KEN"]);
        let err = provider.query(&query).await.unwrap_err();
        assert!(
            matches!(err, Error::RateLimited { attempts: 3, .. }),
            "{err:?}"
        );
        assert_eq!(server.requests().len(), 2 + 3);
    }

    #[tokio::test]
    async fn dynatrace_a_silent_api_times_out_after_the_configured_timeout() {
        // Accepts connections and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let silent = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        let settings = ProviderSettings::new(&address)
            .with_credentials(fledge_metrics::Credentials::Keys(
                fledge_metrics::SecretKeys::new(SECRET),
            ))
            .with_timeout(Duration::from_millis(300));
        let provider = fledge_metrics::DynatraceProvider::new(settings).unwrap();
        let started = std::time::Instant::now();
        let err = provider.query("builtin:host.cpu.usage").await.unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(
            err.to_string(),
            format!("query to {address} timed out after 300ms")
        );
        silent.abort();
    }

    #[tokio::test]
    async fn dynatrace_is_online_lists_one_metric() {
        let server =
            ApiServer::start(|_| Reply::json(200, fixture("dynatrace", "metrics.json"))).await;
        let (provider, _) = documented(TEMPLATE, server.url(), &SECRET);
        assert!(provider.is_online().await.unwrap());
        let request = server.last();
        assert_eq!(request.path, "/api/v2/metrics");
        assert_eq!(request.param("pageSize"), Some("1"));
        assert_eq!(
            request.header("authorization"),
            Some("Api-Token dt0c01.SAMPLE.T0KEN")
        );
    }
}

mod influxdb {
    use super::*;

    const SECRET: [(&str, &str); 2] = [("token", "influx-t0ken-value"), ("org", "fledge-org")];
    const TEMPLATE: &str = "flagger-docs_usage_metrics_24.yaml";

    #[tokio::test]
    async fn influxdb_posts_flux_with_the_csv_dialect_and_reads_the_first_record() {
        let server = ApiServer::start(|_| Reply::csv(200, fixture("influxdb", "value.csv"))).await;
        let (provider, query) = documented(TEMPLATE, server.url(), &SECRET);
        assert_eq!(
            provider.query(&query).await.unwrap(),
            QueryOutcome::Value(97.5)
        );

        let request = server.last();
        assert_eq!(
            (request.method.as_str(), request.path.as_str()),
            ("POST", "/api/v2/query")
        );
        assert_eq!(request.query, [("org".to_owned(), "fledge-org".to_owned())]);
        assert_eq!(
            request.header("authorization"),
            Some("Token influx-t0ken-value")
        );
        assert_eq!(request.header("content-type"), Some("application/json"));
        assert_eq!(request.header("accept"), Some("application/csv"));
        assert_eq!(request.header("x-fledge-tenant"), Some("team-a"));
        let body: serde_json::Value = serde_json::from_str(&request.body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "query": query,
                "type": "flux",
                "dialect": {
                    "header": true,
                    "delimiter": ",",
                    "annotations": ["datatype", "group", "default"],
                    "commentPrefix": "#",
                    "dateTimeFormat": "RFC3339",
                },
            })
        );
        assert!(
            query.contains(r#"r["destination_workload"] == "podinfo""#),
            "{query}"
        );
    }

    #[tokio::test]
    async fn influxdb_counts_nulls_empty_answers_and_error_tables() {
        for (file, expected) in [
            ("count.csv", Ok(QueryOutcome::Value(3.0))),
            // Nothing matched: no table at all. Flagger reads 0, so a count of errors passes.
            ("empty.csv", Ok(QueryOutcome::Value(0.0))),
            ("null.csv", Ok(QueryOutcome::NoValues)),
            (
                "error-table.csv",
                Err(
                    "influxdb API error (status 200): runtime error @4:6-4:86: filter: type conflict: string != int",
                ),
            ),
        ] {
            let server =
                ApiServer::start(move |_| Reply::csv(200, fixture("influxdb", file))).await;
            let (provider, query) = documented(TEMPLATE, server.url(), &SECRET);
            let outcome = provider.query(&query).await.map_err(|e| e.to_string());
            assert_eq!(outcome, expected.map_err(str::to_owned), "{file}");
        }
    }

    #[tokio::test]
    async fn influxdb_errors_name_the_status_and_message_and_429_is_retried() {
        let server = ApiServer::start(|request| {
            let body: serde_json::Value = serde_json::from_str(&request.body).unwrap();
            match body["query"].as_str().unwrap_or_default() {
                flux if flux.starts_with("frum") => {
                    Reply::json(400, fixture("influxdb", "bad-query.json"))
                }
                flux if flux.starts_with("buckets()") => {
                    Reply::json(401, fixture("influxdb", "unauthorized.json"))
                }
                _ => Reply::json(429, fixture("influxdb", "rate-limited.json")),
            }
        })
        .await;
        let (provider, query) = documented(TEMPLATE, server.url(), &SECRET);
        let err = provider.query("frum(bucket: \"x\")").await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "influxdb API error (status 400): compilation failed: error @1:1-1:5: undefined identifier frum"
        );
        let err = provider.is_online().await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "influxdb API error (status 401): unauthorized access (check the token and org of the template's Secret)"
        );
        assert_no_secret(&err, &["influx-t0ken-value"]);
        let err = provider.query(&query).await.unwrap_err();
        assert!(
            matches!(err, Error::RateLimited { attempts: 3, .. }),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn influxdb_without_a_secret_sends_no_token_and_is_online_lists_buckets() {
        let server = ApiServer::start(|_| Reply::csv(200, fixture("influxdb", "value.csv"))).await;
        let provider =
            fledge_metrics::InfluxDbProvider::new(ProviderSettings::new(server.url())).unwrap();
        assert!(provider.is_online().await.unwrap());
        let request = server.last();
        assert!(request.query.is_empty(), "{:?}", request.query);
        assert_eq!(request.header("authorization"), None);
        let body: serde_json::Value = serde_json::from_str(&request.body).unwrap();
        assert_eq!(body["query"], "buckets() |> limit(n: 1)");
    }
}
