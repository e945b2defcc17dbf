//! Rocket.Chat incoming webhooks, which take Slack's attachment payload with hex colours.

use async_trait::async_trait;
use fledge_api::canary::AlertSeverity;

use crate::endpoint::Endpoint;
use crate::error::Result;
use crate::notification::Notification;
use crate::notifier::{Notifier, NotifierKind};
use crate::slack::{SlackIdentity, SlackPayload};

/// Posts to Rocket.Chat.
#[derive(Clone, Debug)]
pub struct Rocket {
    endpoint: Endpoint,
    identity: SlackIdentity,
}

impl Rocket {
    /// A Rocket.Chat notifier posting to `endpoint`.
    pub fn new(endpoint: Endpoint, identity: SlackIdentity) -> Self {
        Self { endpoint, identity }
    }
}

/// Blue for info, orange for warnings, red for errors (Flagger shows warnings blue).
pub fn rocket_color(severity: AlertSeverity) -> &'static str {
    match severity {
        AlertSeverity::Info => "#0076D7",
        AlertSeverity::Warn => "#FFA500",
        AlertSeverity::Error => "#FF0000",
    }
}

#[async_trait]
impl Notifier for Rocket {
    fn kind(&self) -> NotifierKind {
        NotifierKind::Rocket
    }

    async fn post(&self, notification: &Notification) -> Result<()> {
        let payload = SlackPayload::render(
            &self.identity,
            notification,
            rocket_color(notification.severity),
        );
        self.endpoint.post_json(&payload).await
    }
}
