//! Each service receives exactly the request its documentation asks for: method, path,
//! content type, authorization and JSON shape.

mod support;

use std::collections::BTreeMap;

use fledge_api::AlertProvider;
use fledge_api::canary::AlertSeverity;
use fledge_notify::{
    DEFAULT_TIMEOUT, Notification, ProviderSecret, Sensitive, json_webhook, resolve_provider,
};
use pretty_assertions::assert_eq;
use serde_json::json;
use support::{Answer, Receiver};

fn provider(spec: &str) -> AlertProvider {
    fledge_api::yaml::from_str(&format!(
        "apiVersion: flagger.app/v1beta1\nkind: AlertProvider\nmetadata: {{name: on-call, namespace: flagger}}\nspec: {spec}\n"
    ))
    .expect("AlertProvider manifest")
}

fn secret(pairs: &[(&str, &str)]) -> ProviderSecret {
    let data: BTreeMap<String, Vec<u8>> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
        .collect();
    ProviderSecret::new("on-call-url", data)
}

fn rollback() -> Notification {
    Notification::new(
        "podinfo",
        "test",
        "Canary analysis failed, podinfo.test rolled back.",
        AlertSeverity::Error,
    )
    .with_cluster("prod-eu")
    .with_field("Target", "Deployment/podinfo.test")
}

#[tokio::test]
async fn slack_gets_an_attachment_with_the_bot_token_from_the_secret() {
    let slack = Receiver::start(Answer::ok()).await;
    let provider = provider(
        "{type: slack, channel: on-call-alerts, username: fledge-bot, \
         address: 'https://hooks.slack.com/services/YOUR/SLACK/WEBHOOK', secretRef: {name: on-call-url}}",
    );
    let secret = secret(&[
        ("address", &slack.url("/services/T000/B000/XXXX")),
        ("token", "xoxb-test-token"),
    ]);
    let notifier = resolve_provider(&provider, Some(&secret), DEFAULT_TIMEOUT).expect("resolves");

    notifier.post(&rollback()).await.expect("delivered");

    let request = slack.next_request().await;
    assert_eq!(request.method, "POST");
    assert_eq!(request.target, "/services/T000/B000/XXXX");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        request.header("authorization"),
        Some("Bearer xoxb-test-token")
    );
    assert_eq!(
        request.json(),
        json!({
            "channel": "on-call-alerts",
            "username": "fledge-bot",
            "icon_url": "",
            "icon_emoji": ":rocket:",
            "attachments": [{
                "color": "danger",
                "author_name": "podinfo.test",
                "text": "Canary analysis failed, podinfo.test rolled back.",
                "mrkdwn_in": ["text"],
                "fields": [
                    {"title": "Cluster", "value": "prod-eu", "short": false},
                    {"title": "Target", "value": "Deployment/podinfo.test", "short": false}
                ]
            }]
        })
    );
}

#[tokio::test]
async fn slack_colours_follow_severity() {
    let slack = Receiver::start(Answer::ok()).await;
    let address = slack.url("/hook");
    let notifier = resolve_provider(
        &provider(&format!("{{type: slack, address: '{address}'}}")),
        None,
        DEFAULT_TIMEOUT,
    )
    .expect("resolves");
    for (severity, colour) in [
        (AlertSeverity::Info, "good"),
        (AlertSeverity::Warn, "warning"),
        (AlertSeverity::Error, "danger"),
    ] {
        notifier
            .post(&Notification::new("podinfo", "test", "m", severity))
            .await
            .expect("delivered");
        let body = slack.next_request().await.json();
        assert_eq!(body["attachments"][0]["color"], colour, "{severity:?}");
    }
}

#[tokio::test]
async fn slack_without_token_sends_no_authorization_and_uses_flagger_defaults() {
    let slack = Receiver::start(Answer::ok()).await;
    let address = slack.url("/hook");
    let notifier = resolve_provider(
        &provider(&format!("{{type: slack, address: '{address}'}}")),
        None,
        DEFAULT_TIMEOUT,
    )
    .expect("resolves");
    notifier.post(&rollback()).await.expect("delivered");
    let request = slack.next_request().await;
    assert_eq!(request.header("authorization"), None);
    let body = request.json();
    assert_eq!(body["channel"], "general");
    assert_eq!(body["username"], "flagger");
}

#[tokio::test]
async fn discord_posts_slack_format_to_the_slack_suffix() {
    let discord = Receiver::start(Answer::ok()).await;
    let address = discord.url("/api/webhooks/123/abc");
    let notifier = resolve_provider(
        &provider(&format!(
            "{{type: discord, address: '{address}', channel: qa}}"
        )),
        None,
        DEFAULT_TIMEOUT,
    )
    .expect("resolves");

    notifier
        .post(&Notification::new(
            "podinfo",
            "test",
            "Canary is waiting for approval.",
            AlertSeverity::Warn,
        ))
        .await
        .expect("delivered");

    let request = discord.next_request().await;
    assert_eq!(request.method, "POST");
    assert_eq!(request.target, "/api/webhooks/123/abc/slack");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        request.json(),
        json!({
            "channel": "qa",
            "username": "flagger",
            "icon_url": "",
            "icon_emoji": ":rocket:",
            "attachments": [{
                "color": "warning",
                "author_name": "podinfo.test",
                "text": "Canary is waiting for approval.",
                "mrkdwn_in": ["text"],
                "fields": []
            }]
        })
    );
}

#[tokio::test]
async fn discord_keeps_an_existing_slack_suffix() {
    let discord = Receiver::start(Answer::ok()).await;
    let address = discord.url("/api/webhooks/123/abc/slack");
    let notifier = resolve_provider(
        &provider(&format!("{{type: discord, address: '{address}'}}")),
        None,
        DEFAULT_TIMEOUT,
    )
    .expect("resolves");
    notifier.post(&rollback()).await.expect("delivered");
    assert_eq!(
        discord.next_request().await.target,
        "/api/webhooks/123/abc/slack"
    );
}

#[tokio::test]
async fn rocket_gets_slack_attachments_with_hex_colours() {
    let rocket = Receiver::start(Answer::ok()).await;
    let address = rocket.url("/hooks/abc/def");
    let notifier = resolve_provider(
        &provider(&format!(
            "{{type: rocket, address: '{address}', channel: releases}}"
        )),
        None,
        DEFAULT_TIMEOUT,
    )
    .expect("resolves");

    notifier.post(&rollback()).await.expect("delivered");

    let request = rocket.next_request().await;
    assert_eq!(request.target, "/hooks/abc/def");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        request.json(),
        json!({
            "channel": "releases",
            "username": "flagger",
            "icon_url": "",
            "icon_emoji": ":rocket:",
            "attachments": [{
                "color": "#FF0000",
                "author_name": "podinfo.test",
                "text": "Canary analysis failed, podinfo.test rolled back.",
                "mrkdwn_in": ["text"],
                "fields": [
                    {"title": "Cluster", "value": "prod-eu", "short": false},
                    {"title": "Target", "value": "Deployment/podinfo.test", "short": false}
                ]
            }]
        })
    );
}

#[tokio::test]
async fn msteams_gets_a_message_card_with_facts() {
    let teams = Receiver::start(Answer::status(200, "1")).await;
    let address = teams.url("/webhook/abc@def/IncomingWebhook/123/456");
    let notifier = resolve_provider(
        &provider(&format!("{{type: msteams, address: '{address}'}}")),
        None,
        DEFAULT_TIMEOUT,
    )
    .expect("resolves");

    notifier.post(&rollback()).await.expect("delivered");

    let request = teams.next_request().await;
    assert_eq!(request.method, "POST");
    assert_eq!(request.target, "/webhook/abc@def/IncomingWebhook/123/456");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        request.json(),
        json!({
            "@type": "MessageCard",
            "@context": "http://schema.org/extensions",
            "themeColor": "FF0000",
            "summary": "podinfo.test",
            "sections": [{
                "activityTitle": "Canary analysis failed, podinfo.test rolled back.",
                "activitySubtitle": "podinfo.test",
                "facts": [
                    {"name": "Cluster", "value": "prod-eu"},
                    {"name": "Target", "value": "Deployment/podinfo.test"}
                ]
            }]
        })
    );
}

#[tokio::test]
async fn gchat_gets_a_card_with_one_section_per_fact() {
    let gchat = Receiver::start(Answer::ok()).await;
    let address = gchat.url("/v1/spaces/AAAA/messages?key=k&token=t");
    let notifier = resolve_provider(
        &provider(&format!("{{type: gchat, address: '{address}'}}")),
        None,
        DEFAULT_TIMEOUT,
    )
    .expect("resolves");

    notifier
        .post(
            &Notification::new(
                "podinfo",
                "test",
                "Canary analysis completed successfully, promotion finished.",
                AlertSeverity::Info,
            )
            .with_cluster("prod-eu"),
        )
        .await
        .expect("delivered");

    let request = gchat.next_request().await;
    assert_eq!(request.target, "/v1/spaces/AAAA/messages?key=k&token=t");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        request.json(),
        json!({
            "cards": [{
                "header": {
                    "title": "Flagger",
                    "subtitle": "podinfo.test",
                    "imageUrl": "https://flagger.app/favicon.png"
                },
                "sections": [
                    {"widgets": [{"textParagraph": {"text":
                        "<font color=#848484><strong>Canary analysis completed successfully, promotion finished.</strong></font>"}}]},
                    {"widgets": [{"textParagraph": {"text":
                        "Cluster<br><font color=#848484><strong>prod-eu</strong></font>"}}]}
                ]
            }]
        })
    );
}

#[tokio::test]
async fn generic_webhook_gets_fledges_document_with_bearer_token() {
    let hook = Receiver::start(Answer::status(202, "")).await;
    let notifier = json_webhook(
        hook.url("/alerts"),
        "-alert-webhook",
        Some(Sensitive::new("hook-token")),
        DEFAULT_TIMEOUT,
    )
    .expect("valid");

    notifier.post(&rollback()).await.expect("202 is success");

    let request = hook.next_request().await;
    assert_eq!(request.method, "POST");
    assert_eq!(request.target, "/alerts");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("authorization"), Some("Bearer hook-token"));
    assert_eq!(
        request.json(),
        json!({
            "workload": "podinfo",
            "namespace": "test",
            "message": "Canary analysis failed, podinfo.test rolled back.",
            "severity": "error",
            "fields": [
                {"name": "Cluster", "value": "prod-eu"},
                {"name": "Target", "value": "Deployment/podinfo.test"}
            ]
        })
    );
}
