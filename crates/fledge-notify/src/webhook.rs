//! A generic JSON webhook: Fledge's own document, for receivers that are not chat services
//! (incident tools, bots, audit logs).

use async_trait::async_trait;
use fledge_api::canary::AlertSeverity;
use serde::Serialize;

use crate::endpoint::Endpoint;
use crate::error::Result;
use crate::notification::{Field, Notification};
use crate::notifier::{Notifier, NotifierKind};

/// The document a generic webhook receives.
///
/// ```json
/// {"workload":"podinfo","namespace":"test","message":"...","severity":"error",
///  "fields":[{"name":"Cluster","value":"prod"}]}
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WebhookPayload<'a> {
    /// Name of the canary.
    pub workload: &'a str,
    /// Namespace of the canary.
    pub namespace: &'a str,
    /// The event's message.
    pub message: &'a str,
    /// `info`, `warn` or `error`.
    pub severity: AlertSeverity,
    /// The facts, in order.
    pub fields: &'a [Field],
}

impl<'a> WebhookPayload<'a> {
    /// The document for `notification`.
    pub fn render(notification: &'a Notification) -> Self {
        Self {
            workload: &notification.workload,
            namespace: &notification.namespace,
            message: &notification.message,
            severity: notification.severity,
            fields: &notification.fields,
        }
    }
}

/// Posts [`WebhookPayload`] documents (with the endpoint's bearer token, if any).
#[derive(Clone, Debug)]
pub struct JsonWebhook {
    endpoint: Endpoint,
}

impl JsonWebhook {
    /// A generic webhook notifier posting to `endpoint`.
    pub fn new(endpoint: Endpoint) -> Self {
        Self { endpoint }
    }
}

#[async_trait]
impl Notifier for JsonWebhook {
    fn kind(&self) -> NotifierKind {
        NotifierKind::Webhook
    }

    async fn post(&self, notification: &Notification) -> Result<()> {
        self.endpoint
            .post_json(&WebhookPayload::render(notification))
            .await
    }
}
