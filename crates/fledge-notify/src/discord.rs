//! Discord, through its Slack-compatible endpoint (the webhook URL with `/slack` appended).

use async_trait::async_trait;

use crate::endpoint::Endpoint;
use crate::error::Result;
use crate::notification::Notification;
use crate::notifier::{Notifier, NotifierKind};
use crate::slack::{SlackIdentity, SlackPayload, slack_color};

/// Posts to Discord.
#[derive(Clone, Debug)]
pub struct Discord {
    endpoint: Endpoint,
    identity: SlackIdentity,
}

impl Discord {
    /// A Discord notifier; `/slack` is appended to the endpoint's path unless it is there.
    pub fn new(mut endpoint: Endpoint, identity: SlackIdentity) -> Self {
        if !endpoint.url().path().ends_with("/slack") {
            let mut url = endpoint.url().clone();
            let path = format!("{}/slack", url.path().trim_end_matches('/'));
            url.set_path(&path);
            endpoint.set_url(url);
        }
        Self { endpoint, identity }
    }
}

#[async_trait]
impl Notifier for Discord {
    fn kind(&self) -> NotifierKind {
        NotifierKind::Discord
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
