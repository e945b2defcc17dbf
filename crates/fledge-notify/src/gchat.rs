//! Google Chat incoming webhooks: a card with a header and one text section per fact.

use async_trait::async_trait;
use serde::Serialize;

use crate::endpoint::Endpoint;
use crate::error::Result;
use crate::notification::Notification;
use crate::notifier::{Notifier, NotifierKind};

/// The card header's title, as Flagger shows it (chat rooms filter on it).
pub const GCHAT_TITLE: &str = "Flagger";
/// The card header's image.
pub const GCHAT_IMAGE_URL: &str = "https://flagger.app/favicon.png";

/// The message Google Chat webhooks accept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GChatPayload {
    /// The one card.
    pub cards: Vec<GChatCard>,
}

/// A card: a header and sections.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GChatCard {
    /// Title, `workload.namespace` and image.
    pub header: GChatHeader,
    /// The message first, then one section per fact.
    pub sections: Vec<GChatSection>,
}

/// A card's header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GChatHeader {
    /// [`GCHAT_TITLE`].
    pub title: String,
    /// `workload.namespace`.
    pub subtitle: String,
    /// [`GCHAT_IMAGE_URL`].
    #[serde(rename = "imageUrl")]
    pub image_url: String,
}

/// A section of widgets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GChatSection {
    /// One text paragraph.
    pub widgets: Vec<GChatWidget>,
}

/// A text widget.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GChatWidget {
    /// The paragraph.
    #[serde(rename = "textParagraph")]
    pub text_paragraph: GChatText,
}

/// Text with Google Chat's small HTML subset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GChatText {
    /// The HTML text.
    pub text: String,
}

fn paragraph(text: String) -> GChatSection {
    GChatSection {
        widgets: vec![GChatWidget {
            text_paragraph: GChatText { text },
        }],
    }
}

impl GChatPayload {
    /// Renders `notification` as a card.
    pub fn render(notification: &Notification) -> Self {
        let mut sections = Vec::with_capacity(notification.fields.len() + 1);
        sections.push(paragraph(format!(
            "<font color=#848484><strong>{}</strong></font>",
            notification.message
        )));
        sections.extend(notification.fields.iter().map(|f| {
            paragraph(format!(
                "{}<br><font color=#848484><strong>{}</strong></font>",
                f.name, f.value
            ))
        }));
        Self {
            cards: vec![GChatCard {
                header: GChatHeader {
                    title: GCHAT_TITLE.to_owned(),
                    subtitle: notification.subject(),
                    image_url: GCHAT_IMAGE_URL.to_owned(),
                },
                sections,
            }],
        }
    }
}

/// Posts to Google Chat.
#[derive(Clone, Debug)]
pub struct GChat {
    endpoint: Endpoint,
}

impl GChat {
    /// A Google Chat notifier posting to `endpoint`.
    pub fn new(endpoint: Endpoint) -> Self {
        Self { endpoint }
    }
}

#[async_trait]
impl Notifier for GChat {
    fn kind(&self) -> NotifierKind {
        NotifierKind::GChat
    }

    async fn post(&self, notification: &Notification) -> Result<()> {
        self.endpoint
            .post_json(&GChatPayload::render(notification))
            .await
    }
}
