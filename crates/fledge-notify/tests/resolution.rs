//! From AlertProvider + Secret to a notifier: which address wins, defaults, and errors that
//! name the field and the fix without ever showing a secret value.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use fledge_api::AlertProvider;
use fledge_api::canary::AlertSeverity;
use fledge_notify::{
    DEFAULT_TIMEOUT, Error, GlobalNotifierConfig, Notification, NotifierFactory, NotifierKind,
    ProviderSecret, Sensitive, resolve_provider,
};
use pretty_assertions::assert_eq;
use support::{Answer, Receiver, dead_address};

/// The seed's AlertProvider (fixtures 004-alerting, Flagger's alerting docs).
const ON_CALL: &str = r"
apiVersion: flagger.app/v1beta1
kind: AlertProvider
metadata:
  name: on-call
  namespace: flagger
spec:
  type: slack
  channel: on-call-alerts
  username: flagger
  # webhook address (ignored if secretRef is specified)
  address: https://hooks.slack.com/services/YOUR/SLACK/WEBHOOK
  # secret containing the webhook address (optional)
  secretRef:
    name: on-call-url
";

fn provider(yaml: &str) -> AlertProvider {
    fledge_api::yaml::from_str(yaml).expect("AlertProvider manifest")
}

fn secret(pairs: &[(&str, &[u8])]) -> ProviderSecret {
    let data: BTreeMap<String, Vec<u8>> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.to_vec()))
        .collect();
    ProviderSecret::new("on-call-url", data)
}

fn info() -> Notification {
    Notification::new(
        "podinfo",
        "test",
        "New revision detected",
        AlertSeverity::Info,
    )
}

#[tokio::test]
async fn the_secret_address_wins_over_spec_address() {
    let from_secret = Receiver::start(Answer::ok()).await;
    let spec_address = dead_address().await;
    let provider = provider(&ON_CALL.replace(
        "https://hooks.slack.com/services/YOUR/SLACK/WEBHOOK",
        &spec_address,
    ));
    // `echo https://... | base64` leaves a newline in the Secret: it is trimmed.
    let address = format!("{}\n", from_secret.url("/services/FROM/THE/SECRET"));
    let secret = secret(&[("address", address.as_bytes())]);

    let notifier = resolve_provider(&provider, Some(&secret), DEFAULT_TIMEOUT).expect("resolves");
    notifier
        .post(&info())
        .await
        .expect("delivered to the Secret's address");

    assert_eq!(
        from_secret.next_request().await.target,
        "/services/FROM/THE/SECRET"
    );
}

#[tokio::test]
async fn a_secret_with_only_a_token_uses_spec_address() {
    let slack_api = Receiver::start(Answer::ok()).await;
    let provider = provider(&ON_CALL.replace(
        "https://hooks.slack.com/services/YOUR/SLACK/WEBHOOK",
        &slack_api.url("/api/chat.postMessage"),
    ));
    let secret = secret(&[("token", b"xoxb-only-token")]);

    let notifier = resolve_provider(&provider, Some(&secret), DEFAULT_TIMEOUT).expect("resolves");
    notifier.post(&info()).await.expect("delivered");

    let request = slack_api.next_request().await;
    assert_eq!(request.target, "/api/chat.postMessage");
    assert_eq!(
        request.header("authorization"),
        Some("Bearer xoxb-only-token")
    );
}

#[test]
fn a_missing_secret_names_it_and_the_fix() {
    let error = resolve_provider(&provider(ON_CALL), None, DEFAULT_TIMEOUT).expect_err("no Secret");
    assert_eq!(
        error.to_string(),
        "AlertProvider flagger/on-call: spec.secretRef names Secret on-call-url, which was not \
         found in namespace flagger; create it or remove spec.secretRef"
    );
}

#[test]
fn no_address_anywhere_is_an_error_with_the_fix() {
    let provider = provider(&ON_CALL.replace(
        "address: https://hooks.slack.com/services/YOUR/SLACK/WEBHOOK",
        "",
    ));
    let error = resolve_provider(
        &provider,
        Some(&secret(&[("token", b"t")])),
        DEFAULT_TIMEOUT,
    )
    .expect_err("no address");
    assert_eq!(
        error.to_string(),
        "AlertProvider flagger/on-call: no webhook address; set spec.address or an `address` key \
         in the Secret named by spec.secretRef"
    );
}

#[test]
fn a_binary_secret_value_is_refused_by_key() {
    let error = resolve_provider(
        &provider(ON_CALL),
        Some(&secret(&[("address", &[0xff, 0xfe, 0x00])])),
        DEFAULT_TIMEOUT,
    )
    .expect_err("not text");
    assert!(matches!(error, Error::SecretNotText { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .starts_with("Secret on-call-url key address: the value is not UTF-8")
    );
}

#[test]
fn a_bad_secret_address_names_the_secret_key_never_the_value() {
    let error = resolve_provider(
        &provider(ON_CALL),
        Some(&secret(&[(
            "address",
            b"hooks.slack.com/services/T000/B000/SUPERSECRET",
        )])),
        DEFAULT_TIMEOUT,
    )
    .expect_err("relative URL");
    let text = format!("{error} {error:?}");
    assert!(
        error
            .to_string()
            .starts_with("slack: Secret on-call-url key address is not a valid http(s) URL"),
        "{error}"
    );
    assert!(!text.contains("SUPERSECRET"), "{text}");
}

#[test]
fn a_bad_proxy_names_spec_proxy() {
    let provider = provider(&format!("{ON_CALL}  proxy: 'gopher://user:pw@proxy:70'\n"));
    let error = resolve_provider(
        &provider,
        Some(&secret(&[(
            "address",
            b"https://hooks.slack.com/services/T/B/X",
        )])),
        DEFAULT_TIMEOUT,
    )
    .expect_err("bad proxy");
    assert!(matches!(error, Error::InvalidProxy { .. }), "{error:?}");
    assert!(error.to_string().contains("spec.proxy"), "{error}");
    assert!(!format!("{error:?}").contains("pw@"), "{error:?}");
}

#[test]
fn resolved_notifiers_and_secrets_never_print_secret_values() {
    let secret = secret(&[
        (
            "address",
            b"https://hooks.slack.com/services/T000/B000/SUPERSECRET",
        ),
        ("token", b"xoxb-SUPERSECRET-TOKEN"),
    ]);
    let notifier =
        resolve_provider(&provider(ON_CALL), Some(&secret), DEFAULT_TIMEOUT).expect("resolves");
    let printed = format!("{notifier:?} {secret:?}");
    assert!(!printed.contains("SUPERSECRET"), "{printed}");
    assert!(
        printed.contains("hooks.slack.com"),
        "the host helps debugging: {printed}"
    );
    assert!(
        printed.contains("token"),
        "the Secret's keys are listed: {printed}"
    );
    assert_eq!(notifier.kind(), NotifierKind::Slack);
}

#[test]
fn every_provider_type_resolves_to_its_notifier() {
    for (type_, kind) in [
        ("slack", NotifierKind::Slack),
        ("msteams", NotifierKind::MsTeams),
        ("discord", NotifierKind::Discord),
        ("rocket", NotifierKind::Rocket),
        ("gchat", NotifierKind::GChat),
    ] {
        let provider = provider(&format!(
            "apiVersion: flagger.app/v1beta1\nkind: AlertProvider\nmetadata: {{name: p, namespace: n}}\n\
             spec: {{type: {type_}, address: 'https://chat.example/hook'}}\n"
        ));
        let notifier = resolve_provider(&provider, None, DEFAULT_TIMEOUT).expect("resolves");
        assert_eq!(notifier.kind(), kind);
    }
}

#[test]
fn no_global_urls_means_no_global_notifier() {
    let config = GlobalNotifierConfig::default();
    assert!(config.build(DEFAULT_TIMEOUT).expect("valid").is_none());
    let blank = GlobalNotifierConfig {
        slack_url: Some(Sensitive::new("")),
        ..GlobalNotifierConfig::default()
    };
    assert!(blank.build(DEFAULT_TIMEOUT).expect("valid").is_none());
}

#[tokio::test]
async fn global_slack_uses_token_and_defaults() {
    let slack = Receiver::start(Answer::ok()).await;
    let config = GlobalNotifierConfig {
        slack_url: Some(Sensitive::new(slack.url("/services/GLOBAL"))),
        slack_token: Some(Sensitive::new("xoxb-global")),
        ..GlobalNotifierConfig::default()
    };
    let notifier = config
        .build(Duration::from_secs(2))
        .expect("valid")
        .expect("configured");
    assert_eq!(notifier.kind(), NotifierKind::Slack);

    notifier.post(&info()).await.expect("delivered");

    let request = slack.next_request().await;
    assert_eq!(request.target, "/services/GLOBAL");
    assert_eq!(request.header("authorization"), Some("Bearer xoxb-global"));
    assert_eq!(request.json()["channel"], "general");
    assert_eq!(request.json()["username"], "flagger");
}

#[test]
fn global_msteams_wins_over_slack_as_in_flagger() {
    let config = GlobalNotifierConfig {
        slack_url: Some(Sensitive::new("https://hooks.slack.com/services/T/B/X")),
        msteams_url: Some(Sensitive::new("https://outlook.office.com/webhook/X")),
        ..GlobalNotifierConfig::default()
    };
    let notifier = config
        .build(DEFAULT_TIMEOUT)
        .expect("valid")
        .expect("configured");
    assert_eq!(notifier.kind(), NotifierKind::MsTeams);
}

#[test]
fn a_bad_global_url_names_the_flag() {
    let config = GlobalNotifierConfig {
        slack_url: Some(Sensitive::new("not a url")),
        ..GlobalNotifierConfig::default()
    };
    let error = config.build(DEFAULT_TIMEOUT).expect_err("invalid");
    assert!(
        error
            .to_string()
            .starts_with("slack: -slack-url is not a valid http(s) URL"),
        "{error}"
    );
}

#[tokio::test]
async fn the_factory_builds_one_http_client_per_proxy() {
    // Building a client loads TLS roots (about 0.1 s here); resolving per alert must not.
    let factory = NotifierFactory::new(Duration::from_secs(2));
    let direct = provider(&ON_CALL.replace("  secretRef:\n    name: on-call-url\n", ""));
    let proxied = provider(&format!(
        "{}  proxy: 'http://proxy.internal:3128'\n",
        ON_CALL.replace("  secretRef:\n    name: on-call-url\n", "")
    ));
    for _ in 0..50 {
        factory.resolve(&direct, None).expect("resolves");
        factory.resolve(&proxied, None).expect("resolves");
    }
    factory
        .global(&GlobalNotifierConfig {
            msteams_url: Some(Sensitive::new("https://outlook.office.com/webhook/X")),
            ..GlobalNotifierConfig::default()
        })
        .expect("valid");
    assert_eq!(factory.clients().len(), 2);
    assert!(!format!("{factory:?}").contains("proxy.internal"));
}

#[tokio::test]
async fn notifiers_from_one_factory_deliver_independently() {
    let first = Receiver::start(Answer::ok()).await;
    let second = Receiver::start(Answer::status(500, "boom")).await;
    let factory = NotifierFactory::default();
    let to = |address: String| {
        provider(&format!(
            "apiVersion: flagger.app/v1beta1\nkind: AlertProvider\nmetadata: {{name: p, namespace: n}}\n\
             spec: {{type: msteams, address: '{address}'}}\n"
        ))
    };
    let ok = factory
        .resolve(&to(first.url("/a")), None)
        .expect("resolves");
    let failing = factory
        .resolve(&to(second.url("/b")), None)
        .expect("resolves");
    ok.post(&info()).await.expect("delivered");
    let error = failing.post(&info()).await.expect_err("500");
    assert_eq!(
        error.to_string(),
        "msteams: the receiver answered 500: boom"
    );
    assert_eq!(first.next_request().await.target, "/a");
    assert_eq!(second.next_request().await.target, "/b");
}
