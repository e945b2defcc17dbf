//! The `AlertProvider` resource: a chat or webhook service that receives canary notifications.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::metric_template::SecretReference;

/// Where and how notifications are sent.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[kube(
    group = "flagger.app",
    version = "v1beta1",
    kind = "AlertProvider",
    namespaced,
    category = "all",
    doc = "AlertProvider is a notification target a Canary's alerts refer to.",
    printcolumn = r#"{"name":"Type","type":"string","jsonPath":".spec.type"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AlertProviderSpec {
    /// Kind of service.
    #[serde(rename = "type")]
    pub type_: AlertProviderType,
    /// Channel to post to (Slack, Rocket).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// User name to post as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Webhook address; or `address` in the Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// HTTP(S) proxy to send through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    /// Secret with an `address` (and optionally `token`) key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretReference>,
}

/// The services an AlertProvider can post to.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AlertProviderType {
    /// Slack incoming webhook.
    Slack,
    /// Microsoft Teams connector.
    Msteams,
    /// Discord (Slack-compatible endpoint).
    Discord,
    /// Rocket.Chat incoming webhook.
    Rocket,
    /// Google Chat webhook.
    Gchat,
}
