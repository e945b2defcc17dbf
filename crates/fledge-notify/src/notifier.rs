//! The [`Notifier`] port: one implementation per chat service.

use std::fmt;

use async_trait::async_trait;
use fledge_api::AlertProviderType;

use crate::error::Result;
use crate::notification::Notification;

/// Something that delivers a [`Notification`] to people.
///
/// Implementations post once and report the outcome; they never retry (the next canary event
/// will notify again) and never panic. Sending is bounded by the notifier's timeout; callers
/// that must not wait at all hand the notification to a [`crate::Dispatcher`].
#[async_trait]
pub trait Notifier: Send + Sync + fmt::Debug {
    /// The service this notifier posts to.
    fn kind(&self) -> NotifierKind;

    /// Sends one notification.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Unreachable`], [`crate::Error::Timeout`] or [`crate::Error::Rejected`]
    /// when the receiver cannot be reached, is too slow, or answers outside 2xx.
    async fn post(&self, notification: &Notification) -> Result<()>;
}

/// The services Fledge can notify.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NotifierKind {
    /// Slack incoming webhook or `chat.postMessage` with a bot token.
    Slack,
    /// Microsoft Teams incoming webhook (MessageCard).
    MsTeams,
    /// Discord, through its Slack-compatible endpoint.
    Discord,
    /// Rocket.Chat incoming webhook.
    Rocket,
    /// Google Chat incoming webhook (cards).
    GChat,
    /// Any receiver that accepts Fledge's own JSON document.
    Webhook,
}

impl NotifierKind {
    /// The name used in AlertProvider `spec.type` (`webhook` for the generic receiver).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Slack => "slack",
            Self::MsTeams => "msteams",
            Self::Discord => "discord",
            Self::Rocket => "rocket",
            Self::GChat => "gchat",
            Self::Webhook => "webhook",
        }
    }
}

impl fmt::Display for NotifierKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<AlertProviderType> for NotifierKind {
    fn from(value: AlertProviderType) -> Self {
        match value {
            AlertProviderType::Slack => Self::Slack,
            AlertProviderType::Msteams => Self::MsTeams,
            AlertProviderType::Discord => Self::Discord,
            AlertProviderType::Rocket => Self::Rocket,
            AlertProviderType::Gchat => Self::GChat,
        }
    }
}
