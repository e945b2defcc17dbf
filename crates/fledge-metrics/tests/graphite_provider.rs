//! The Graphite provider against a real Graphite: Debian's carbon-cache and graphite-web
//! (fledge-testkit's `LocalGraphite`), fed over carbon's plaintext protocol.

#![allow(clippy::unwrap_used)] // Tests may unwrap (house rule).

use std::collections::BTreeMap;
use std::time::Duration;

use fledge_api::{MetricProviderType, MetricTemplate};
use fledge_metrics::{
    Credentials, Error, GraphiteProvider, MetricProvider, MetricTemplateModel, ProviderSettings,
    QueryOutcome, provider_for, render_query,
};
use fledge_testkit::LocalGraphite;
use fledge_testkit::graphite::unix_now;

const REQUESTS: &str = "fledge.podinfo.requests";

/// graphite-web is a Python application sharing two cores with the other tests: its
/// first answers can take seconds.
const PATIENCE: Duration = Duration::from_secs(30);

fn provider(url: &str) -> GraphiteProvider {
    GraphiteProvider::new(ProviderSettings::new(url).with_timeout(PATIENCE)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_non_null_point_is_the_value_and_an_empty_answer_is_no_values() {
    let graphite = LocalGraphite::start()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let now = unix_now();
    graphite
        .feed(&[
            (REQUESTS, 1.0, now - 30),
            (REQUESTS, 2.0, now - 20),
            (REQUESTS, 3.5, now - 10),
        ])
        .await
        .unwrap();
    let graphite_provider = provider(graphite.url());

    // A multi-line template collapses to one query string; the newest bucket is null
    // (nothing was fed for `now`), so the last non-null point is the value.
    let query = format!("target={REQUESTS}\n    &from=-1min");
    assert_eq!(
        graphite_provider.query(&query).await.unwrap(),
        QueryOutcome::Value(3.5)
    );
    // `format=png` in the template is replaced: the provider reads JSON.
    assert_eq!(
        graphite_provider
            .query(&format!(
                "target=sumSeries({REQUESTS})&from=-1min&format=png"
            ))
            .await
            .unwrap(),
        QueryOutcome::Value(3.5)
    );

    // A series that does not exist: graphite-web answers `[]`.
    assert_eq!(
        graphite_provider
            .query("target=fledge.nothing.here&from=-1min")
            .await
            .unwrap(),
        QueryOutcome::NoValues
    );
    // The series exists, but the window holds only null datapoints.
    assert_eq!(
        graphite_provider
            .query(&format!("target={REQUESTS}&from=-3h&until=-2h"))
            .await
            .unwrap(),
        QueryOutcome::NoValues
    );

    assert!(graphite_provider.is_online().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphite_web_errors_reach_the_user_with_their_status_and_message() {
    let graphite = LocalGraphite::start()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let graphite_provider = provider(graphite.url());

    let err = graphite_provider
        .query("target=nosuchfunction(fledge.podinfo.requests)")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Api { status: 400, .. }), "{err:?}");
    assert!(
        err.to_string().starts_with(
            "graphite API error (status 400): Invalid parameters (Received request for unknown function: nosuchfunction)"
        ),
        "{err}"
    );

    // A server error page (graphite-web's traceback) is reduced to its exception.
    let err = graphite_provider
        .query("target=summarize(fledge.podinfo.requests,'1m','avg')")
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "graphite API error (status 500): ValueError: Invalid offset unit 'm'"
    );

    // Nothing listens: is_online is an error naming the address, not `false`.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let closed = provider(&format!("http://127.0.0.1:{port}"));
    let err = closed.is_online().await.unwrap_err();
    assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_from_the_templates_secret_is_sent_and_a_rejection_names_the_keys() {
    let graphite = LocalGraphite::builder()
        .basic_auth("fledge", "s3cret-pw")
        .start()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let now = unix_now();
    graphite.feed(&[(REQUESTS, 99.0, now - 5)]).await.unwrap();

    // Flagger's documented template (`usage/metrics`, Graphite with basic auth), its
    // Secret as the operator hands it over.
    let template: MetricTemplate = serde_yaml::from_str(&format!(
        "apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata:
  name: my-metric
  namespace: flagger
spec:
  provider:
    type: graphite
    address: {}
    secretRef:
      name: graphite-basic-auth
  query: target={REQUESTS}&from=-1min
",
        graphite.url()
    ))
    .unwrap();
    let secret = |username: &str, password: &str| {
        BTreeMap::from([
            ("username".to_owned(), username.as_bytes().to_vec()),
            ("password".to_owned(), password.as_bytes().to_vec()),
        ])
    };
    let build = |data: BTreeMap<String, Vec<u8>>| {
        let settings = ProviderSettings::from_template_provider(
            &template.spec.provider,
            Some(&data),
            Some("http://prometheus.is.never.asked:9090"),
        )
        .unwrap()
        .with_timeout(PATIENCE);
        assert_eq!(settings.address, graphite.url());
        provider_for(MetricProviderType::Graphite, settings).unwrap()
    };
    let query = render_query(&template.spec.query, &MetricTemplateModel::default()).unwrap();

    let accepted = build(secret("fledge", "s3cret-pw"));
    assert_eq!(
        accepted.query(&query).await.unwrap(),
        QueryOutcome::Value(99.0)
    );
    assert!(accepted.is_online().await.unwrap());

    let rejected = build(secret("fledge", "wrong-password"));
    let err = rejected.query(&query).await.unwrap_err();
    let shown = err.to_string();
    assert!(matches!(err, Error::Api { status: 401, .. }), "{err:?}");
    assert_eq!(
        shown,
        "graphite API error (status 401): Unauthorized: basic auth of a graphite-web user is required (check the username and password of the template's Secret)"
    );
    assert!(!shown.contains("wrong-password"), "{shown}");

    let anonymous = GraphiteProvider::new(
        ProviderSettings::new(graphite.url())
            .with_credentials(Credentials::None)
            .with_timeout(PATIENCE),
    )
    .unwrap();
    assert!(matches!(
        anonymous.query(&query).await.unwrap_err(),
        Error::Api { status: 401, .. }
    ));

    // Flagger reads both keys: a Secret without the password is refused before querying.
    let err = ProviderSettings::from_template_provider(
        &template.spec.provider,
        Some(&BTreeMap::from([(
            "username".to_owned(),
            b"fledge".to_vec(),
        )])),
        None,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "graphite credentials do not contain a password"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flaggers_documented_graphite_template_needs_a_quoted_graphite_interval() {
    let graphite = LocalGraphite::start()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let now = unix_now();
    let series = |outcome: &str, status: u16| {
        format!(
            "stats.timers.httpServerRequests.app.podinfo.exception.None.method.GET.outcome.{outcome}.status.{status}.uri.root.count"
        )
    };
    let (success, failure) = (series("SUCCESS", 200), series("SERVER_ERROR", 500));
    graphite
        .feed(&[(&success, 9.0, now - 5), (&failure, 1.0, now - 5)])
        .await
        .unwrap();
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/metric-templates/flagger-docs_usage_metrics_19.yaml"
    ))
    .unwrap();
    let mut template: MetricTemplate = serde_yaml::from_str(&text).unwrap();
    template.spec.provider.address = Some(graphite.url().to_owned());
    let graphite_provider = provider_for(
        MetricProviderType::Graphite,
        ProviderSettings::from_template_provider(&template.spec.provider, None, None)
            .unwrap()
            .with_timeout(PATIENCE),
    )
    .unwrap();
    let model = |interval: &str| MetricTemplateModel {
        target: "podinfo".into(),
        interval: interval.into(),
        ..MetricTemplateModel::default()
    };

    // As printed in Flagger's docs, `{{interval}}` is unquoted: graphite-web 1.1 reads
    // `1m` as a zero-length interval and fails. The error says so.
    let as_documented = render_query(&template.spec.query, &model("1m")).unwrap();
    let err = graphite_provider.query(&as_documented).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "graphite API error (status 500): ZeroDivisionError: integer modulo by zero"
    );

    // Quoted, with an interval in Graphite's units (`60s`, which is also a Go duration),
    // the same template answers the success percentage: 9 of 10 requests.
    template.spec.query = template
        .spec
        .query
        .replace("{{interval}}", "'{{interval}}'");
    let quoted = render_query(&template.spec.query, &model("60s")).unwrap();
    assert_eq!(
        graphite_provider
            .query(&format!("{quoted}&from=-2min"))
            .await
            .unwrap(),
        QueryOutcome::Value(90.0)
    );
}
