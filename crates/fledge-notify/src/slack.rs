//! Slack: an incoming webhook, or `chat.postMessage` with a bot token. Discord and Rocket.Chat
//! accept the same attachment payload, so it is defined here once.

use async_trait::async_trait;
use fledge_api::canary::AlertSeverity;
use serde::Serialize;

use crate::endpoint::Endpoint;
use crate::error::Result;
use crate::notification::Notification;
use crate::notifier::{Notifier, NotifierKind};

/// Where and as whom a Slack-style message is posted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlackIdentity {
    /// Channel to post to (`general` by default).
    pub channel: String,
    /// User name to post as (`flagger` by default).
    pub username: String,
}

/// The message Slack's incoming webhooks and `chat.postMessage` accept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SlackPayload {
    /// Channel to post to.
    pub channel: String,
    /// User name to post as.
    pub username: String,
    /// Avatar URL; always empty, the emoji is used.
    pub icon_url: String,
    /// Avatar emoji.
    pub icon_emoji: String,
    /// The attachment that carries the message.
    pub attachments: Vec<SlackAttachment>,
}

/// A coloured block with the canary's name, the message and its facts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SlackAttachment {
    /// Bar colour: a Slack keyword (`good`) or a hex colour (`#FF0000`).
    pub color: String,
    /// `workload.namespace`.
    pub author_name: String,
    /// The message, markdown.
    pub text: String,
    /// Which parts are markdown.
    pub mrkdwn_in: Vec<String>,
    /// The facts.
    pub fields: Vec<SlackField>,
}

/// One fact of an attachment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SlackField {
    /// The fact's label.
    pub title: String,
    /// The fact's value.
    pub value: String,
    /// Whether Slack may show it side by side with another.
    pub short: bool,
}

impl SlackPayload {
    /// Renders `notification` with the attachment colour `color`.
    pub fn render(identity: &SlackIdentity, notification: &Notification, color: &str) -> Self {
        Self {
            channel: identity.channel.clone(),
            username: identity.username.clone(),
            icon_url: String::new(),
            icon_emoji: ":rocket:".to_owned(),
            attachments: vec![SlackAttachment {
                color: color.to_owned(),
                author_name: notification.subject(),
                text: notification.message.clone(),
                mrkdwn_in: vec!["text".to_owned()],
                fields: notification
                    .fields
                    .iter()
                    .map(|f| SlackField {
                        title: f.name.clone(),
                        value: f.value.clone(),
                        short: false,
                    })
                    .collect(),
            }],
        }
    }
}

/// Slack's colour keywords: green for info, amber for warnings, red for errors.
///
/// Flagger shows warnings green; Fledge gives them Slack's `warning` amber.
pub fn slack_color(severity: AlertSeverity) -> &'static str {
    match severity {
        AlertSeverity::Info => "good",
        AlertSeverity::Warn => "warning",
        AlertSeverity::Error => "danger",
    }
}

/// Posts to Slack.
#[derive(Clone, Debug)]
pub struct Slack {
    endpoint: Endpoint,
    identity: SlackIdentity,
}

impl Slack {
    /// A Slack notifier posting to `endpoint` (which carries the bot token, if any).
    pub fn new(endpoint: Endpoint, identity: SlackIdentity) -> Self {
        Self { endpoint, identity }
    }
}

#[async_trait]
impl Notifier for Slack {
    fn kind(&self) -> NotifierKind {
        NotifierKind::Slack
    }

    async fn post(&self, notification: &Notification) -> Result<()> {
        let payload = SlackPayload::render(
            &self.identity,
            notification,
            slack_color(notification.severity),
        );
        self.endpoint.post_json(&payload).await
    }
}
