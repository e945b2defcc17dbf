//! Microsoft Teams incoming webhooks: a legacy `MessageCard` with the facts.

use async_trait::async_trait;
use fledge_api::canary::AlertSeverity;
use serde::Serialize;

use crate::endpoint::Endpoint;
use crate::error::Result;
use crate::notification::{Field, Notification};
use crate::notifier::{Notifier, NotifierKind};

/// The `MessageCard` Teams connectors accept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MessageCard {
    /// Always `MessageCard`.
    #[serde(rename = "@type")]
    pub type_: String,
    /// Always `http://schema.org/extensions`.
    #[serde(rename = "@context")]
    pub context: String,
    /// Hex colour of the card's edge, without `#`.
    #[serde(rename = "themeColor")]
    pub theme_color: String,
    /// `workload.namespace`, shown in notifications.
    pub summary: String,
    /// The one section with the message and the facts.
    pub sections: Vec<MessageCardSection>,
}

/// A section of a `MessageCard`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MessageCardSection {
    /// The message.
    #[serde(rename = "activityTitle")]
    pub activity_title: String,
    /// `workload.namespace`.
    #[serde(rename = "activitySubtitle")]
    pub activity_subtitle: String,
    /// The facts, as `name`/`value` pairs.
    pub facts: Vec<Field>,
}

impl MessageCard {
    /// Renders `notification` as a card.
    pub fn render(notification: &Notification) -> Self {
        let subject = notification.subject();
        Self {
            type_: "MessageCard".to_owned(),
            context: "http://schema.org/extensions".to_owned(),
            theme_color: teams_color(notification.severity).to_owned(),
            summary: subject.clone(),
            sections: vec![MessageCardSection {
                activity_title: notification.message.clone(),
                activity_subtitle: subject,
                facts: notification.fields.clone(),
            }],
        }
    }
}

/// Blue for info, orange for warnings, red for errors (Flagger shows warnings blue).
pub fn teams_color(severity: AlertSeverity) -> &'static str {
    match severity {
        AlertSeverity::Info => "0076D7",
        AlertSeverity::Warn => "FFA500",
        AlertSeverity::Error => "FF0000",
    }
}

/// Posts to Microsoft Teams.
#[derive(Clone, Debug)]
pub struct MsTeams {
    endpoint: Endpoint,
}

impl MsTeams {
    /// A Teams notifier posting to `endpoint`.
    pub fn new(endpoint: Endpoint) -> Self {
        Self { endpoint }
    }
}

#[async_trait]
impl Notifier for MsTeams {
    fn kind(&self) -> NotifierKind {
        NotifierKind::MsTeams
    }

    async fn post(&self, notification: &Notification) -> Result<()> {
        self.endpoint
            .post_json(&MessageCard::render(notification))
            .await
    }
}
