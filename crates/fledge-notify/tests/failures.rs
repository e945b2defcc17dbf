//! What happens when the receiver is down, slow or refuses: an error that names the
//! provider and the status, never a panic, never a secret.

mod support;

use std::error::Error as _;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use fledge_api::canary::AlertSeverity;
use fledge_notify::gchat::GChat;
use fledge_notify::msteams::MsTeams;
use fledge_notify::slack::{Slack, SlackIdentity};
use fledge_notify::{Endpoint, Error, Notification, Notifier, NotifierKind};
use pretty_assertions::assert_eq;
use support::{Answer, Receiver, dead_address};

const TOKEN: &str = "xoxb-very-secret-token";

fn identity() -> SlackIdentity {
    SlackIdentity {
        channel: "general".to_owned(),
        username: "flagger".to_owned(),
    }
}

fn rollback() -> Notification {
    Notification::new(
        "podinfo",
        "test",
        "Canary analysis failed",
        AlertSeverity::Error,
    )
}

/// The error with all its causes, as a log line would show it.
fn full_text(error: &Error) -> String {
    let mut text = format!("{error} / {error:?}");
    let mut source = error.source();
    while let Some(cause) = source {
        write!(text, " / {cause} / {cause:?}").expect("writing to a String");
        source = cause.source();
    }
    text
}

#[tokio::test]
async fn receiver_down_is_an_error_naming_the_provider_without_the_address() {
    let address = dead_address().await;
    let endpoint = Endpoint::builder(NotifierKind::Slack, address.as_str(), "spec.address")
        .token(TOKEN)
        .build()
        .expect("valid");
    let slack = Slack::new(endpoint, identity());

    let error = slack.post(&rollback()).await.expect_err("nobody listens");

    assert!(
        matches!(
            error,
            Error::Unreachable {
                kind: NotifierKind::Slack,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(error.to_string(), "slack: sending the notification failed");
    let text = full_text(&error);
    assert!(!text.contains("XXXXSECRETPATH"), "address leaked: {text}");
    assert!(!text.contains(TOKEN), "token leaked: {text}");
}

#[tokio::test]
async fn slow_receiver_times_out_after_the_configured_timeout() {
    let teams = Receiver::start(Answer::slow(Duration::from_secs(30))).await;
    let endpoint = Endpoint::builder(NotifierKind::MsTeams, teams.url("/webhook"), "spec.address")
        .timeout(Duration::from_millis(300))
        .build()
        .expect("valid");
    let notifier = MsTeams::new(endpoint);

    let started = Instant::now();
    let error = notifier.post(&rollback()).await.expect_err("too slow");
    let waited = started.elapsed();

    assert!(
        matches!(
            error,
            Error::Timeout {
                kind: NotifierKind::MsTeams,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "msteams: the receiver did not answer within 0.3s"
    );
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(3),
        "gave up after {waited:?}"
    );
    // The request did arrive: the timeout is on the answer, not the connection.
    assert_eq!(teams.next_request().await.target, "/webhook");
}

#[tokio::test]
async fn refusal_names_provider_and_status_and_redacts_echoed_secrets() {
    let slack = Receiver::start(Answer::status(403, &format!("invalid_token: {TOKEN}"))).await;
    let endpoint = Endpoint::builder(
        NotifierKind::Slack,
        slack.url("/api/chat.postMessage"),
        "spec.address",
    )
    .token(TOKEN)
    .build()
    .expect("valid");
    let notifier = Slack::new(endpoint, identity());

    let error = notifier.post(&rollback()).await.expect_err("403");

    assert!(
        matches!(
            error,
            Error::Rejected {
                kind: NotifierKind::Slack,
                status: 403,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "slack: the receiver answered 403: invalid_token: <redacted>"
    );
}

#[tokio::test]
async fn server_error_is_reported_with_its_status() {
    let gchat = Receiver::start(Answer::status(500, "internal error")).await;
    let endpoint = Endpoint::builder(
        NotifierKind::GChat,
        gchat.url("/v1/spaces/A/messages"),
        "spec.address",
    )
    .build()
    .expect("valid");

    let error = GChat::new(endpoint)
        .post(&rollback())
        .await
        .expect_err("500");

    assert_eq!(
        error.to_string(),
        "gchat: the receiver answered 500: internal error"
    );
}

#[tokio::test]
async fn every_status_outside_2xx_is_an_error() {
    for status in [304, 404, 429, 503] {
        let teams = Receiver::start(Answer::status(status, "")).await;
        let endpoint =
            Endpoint::builder(NotifierKind::MsTeams, teams.url("/webhook"), "spec.address")
                .build()
                .expect("valid");
        let error = MsTeams::new(endpoint)
            .post(&rollback())
            .await
            .expect_err("not 2xx");
        assert!(
            matches!(error, Error::Rejected { status: s, .. } if s == status),
            "{status}: {error:?}"
        );
    }
}

#[tokio::test]
async fn proxy_receives_the_request_for_the_real_address() {
    let proxy = Receiver::start(Answer::ok()).await;
    let endpoint = Endpoint::builder(
        NotifierKind::Slack,
        "http://hooks.slack.example/services/T000/B000/XXXX",
        "spec.address",
    )
    .proxy(proxy.url(""), "spec.proxy")
    .build()
    .expect("valid");

    Slack::new(endpoint, identity())
        .post(&rollback())
        .await
        .expect("delivered through the proxy");

    let request = proxy.next_request().await;
    assert_eq!(request.method, "POST");
    // Proxies receive the absolute URL of the destination (RFC 9112, absolute-form).
    assert_eq!(
        request.target,
        "http://hooks.slack.example/services/T000/B000/XXXX"
    );
    assert_eq!(request.header("host"), Some("hooks.slack.example"));
    assert_eq!(
        request.json()["attachments"][0]["text"],
        "Canary analysis failed"
    );
}

#[tokio::test]
async fn proxy_down_is_an_unreachable_error_without_the_proxy_url() {
    let proxy = dead_address().await;
    let endpoint = Endpoint::builder(
        NotifierKind::Slack,
        "http://hooks.slack.example/x",
        "spec.address",
    )
    .proxy(
        proxy
            .replace("/services/T000/B000/XXXXSECRETPATH", "")
            .replace("http://", "http://user:hunter2@"),
        "spec.proxy",
    )
    .build()
    .expect("valid");

    let error = Slack::new(endpoint, identity())
        .post(&rollback())
        .await
        .expect_err("proxy down");

    assert!(matches!(error, Error::Unreachable { .. }), "{error:?}");
    assert!(
        !full_text(&error).contains("hunter2"),
        "{}",
        full_text(&error)
    );
}
