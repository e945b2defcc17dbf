//! From an `AlertProvider` (and the Secret it names) to a ready [`Notifier`], and the
//! operator-wide notifier of `-slack-url` / `-msteams-url`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use fledge_api::AlertProvider;

use crate::discord::Discord;
use crate::endpoint::{DEFAULT_TIMEOUT, Endpoint, EndpointBuilder, HttpClients};
use crate::error::{Error, Result};
use crate::gchat::GChat;
use crate::msteams::MsTeams;
use crate::notifier::{Notifier, NotifierKind};
use crate::rocket::Rocket;
use crate::sensitive::Sensitive;
use crate::slack::{Slack, SlackIdentity};
use crate::webhook::JsonWebhook;

/// User name posted as when `spec.username` is empty (Flagger's).
pub const DEFAULT_USERNAME: &str = "flagger";
/// Channel posted to when `spec.channel` is empty (Flagger's).
pub const DEFAULT_CHANNEL: &str = "general";
/// Secret key holding the webhook address.
pub const SECRET_ADDRESS_KEY: &str = "address";
/// Secret key holding the bearer token.
pub const SECRET_TOKEN_KEY: &str = "token";

/// The data of the Secret an AlertProvider's `spec.secretRef` names, as the operator read it.
///
/// Its `Debug` lists the keys, never the values.
#[derive(Clone, PartialEq, Eq)]
pub struct ProviderSecret {
    name: String,
    data: BTreeMap<String, Vec<u8>>,
}

impl ProviderSecret {
    /// The Secret `name` with its decoded `data` (Kubernetes' `data`, base64 already undone).
    pub fn new(name: impl Into<String>, data: BTreeMap<String, Vec<u8>>) -> Self {
        Self {
            name: name.into(),
            data,
        }
    }

    /// The Secret's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The text value of `key`, trimmed (`echo url | base64` leaves a newline behind).
    fn text(&self, key: &str) -> Result<Option<Sensitive>> {
        let Some(bytes) = self.data.get(key) else {
            return Ok(None);
        };
        let text = std::str::from_utf8(bytes).map_err(|_| Error::SecretNotText {
            secret: self.name.clone(),
            key: key.to_owned(),
        })?;
        let text = Sensitive::new(text.trim());
        Ok((!text.is_blank()).then_some(text))
    }
}

impl fmt::Debug for ProviderSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderSecret")
            .field("name", &self.name)
            .field("keys", &self.data.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Builds notifiers that share HTTP clients and a timeout.
///
/// The operator keeps one for its lifetime and resolves an AlertProvider each time it alerts,
/// so edits to the AlertProvider or its Secret take effect on the next alert. Cheap to clone.
#[derive(Clone, Debug)]
pub struct NotifierFactory {
    clients: HttpClients,
    timeout: Duration,
}

impl Default for NotifierFactory {
    fn default() -> Self {
        Self::new(DEFAULT_TIMEOUT)
    }
}

impl NotifierFactory {
    /// A factory whose notifiers give receivers `timeout` to answer.
    pub fn new(timeout: Duration) -> Self {
        Self {
            clients: HttpClients::new(),
            timeout,
        }
    }

    /// The time receivers get to answer.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The HTTP clients built so far.
    pub fn clients(&self) -> &HttpClients {
        &self.clients
    }

    /// The notifier an AlertProvider describes; see [`resolve_provider`].
    ///
    /// # Errors
    ///
    /// As [`resolve_provider`].
    pub fn resolve(
        &self,
        provider: &AlertProvider,
        secret: Option<&ProviderSecret>,
    ) -> Result<Arc<dyn Notifier>> {
        resolve_with(self, provider, secret)
    }

    /// The operator-wide notifier; see [`GlobalNotifierConfig::build`].
    ///
    /// # Errors
    ///
    /// As [`GlobalNotifierConfig::build`].
    pub fn global(&self, config: &GlobalNotifierConfig) -> Result<Option<Arc<dyn Notifier>>> {
        config.build_with(self)
    }

    /// A generic JSON webhook notifier; see [`json_webhook`].
    ///
    /// # Errors
    ///
    /// As [`json_webhook`].
    pub fn json_webhook(
        &self,
        address: impl Into<Sensitive>,
        field: &str,
        token: Option<Sensitive>,
    ) -> Result<Arc<dyn Notifier>> {
        let mut endpoint = Endpoint::builder(NotifierKind::Webhook, address, field);
        if let Some(token) = token {
            endpoint = endpoint.token(token);
        }
        self.build(NotifierKind::Webhook, endpoint, default_identity())
    }

    /// The notifier of `kind` posting through `endpoint`.
    fn build(
        &self,
        kind: NotifierKind,
        endpoint: EndpointBuilder,
        identity: SlackIdentity,
    ) -> Result<Arc<dyn Notifier>> {
        let endpoint = endpoint.timeout(self.timeout).build_with(&self.clients)?;
        Ok(match kind {
            NotifierKind::Slack => Arc::new(Slack::new(endpoint, identity)),
            NotifierKind::Discord => Arc::new(Discord::new(endpoint, identity)),
            NotifierKind::Rocket => Arc::new(Rocket::new(endpoint, identity)),
            NotifierKind::MsTeams => Arc::new(MsTeams::new(endpoint)),
            NotifierKind::GChat => Arc::new(GChat::new(endpoint)),
            NotifierKind::Webhook => Arc::new(JsonWebhook::new(endpoint)),
        })
    }
}

fn default_identity() -> SlackIdentity {
    SlackIdentity {
        channel: DEFAULT_CHANNEL.to_owned(),
        username: DEFAULT_USERNAME.to_owned(),
    }
}

fn non_empty(value: Option<&str>) -> Option<&str> {
    value.filter(|v| !v.trim().is_empty())
}

fn identity(channel: Option<&str>, username: Option<&str>) -> SlackIdentity {
    SlackIdentity {
        channel: non_empty(channel).unwrap_or(DEFAULT_CHANNEL).to_owned(),
        username: non_empty(username).unwrap_or(DEFAULT_USERNAME).to_owned(),
    }
}

/// Builds the notifier an AlertProvider describes, with a client of its own.
///
/// Prefer [`NotifierFactory::resolve`] in a long-running process: it reuses HTTP clients.
///
/// The address is the Secret's `address` key when `spec.secretRef` is set and the key is
/// there, else `spec.address`; the Secret's `token` key becomes a bearer token. Channel and
/// username default to `general` and `flagger`. `secret` is the Secret `spec.secretRef`
/// names, looked up in the AlertProvider's namespace (`None` when it does not exist).
///
/// Flagger refuses a Secret without `address`; Fledge then falls back to `spec.address`, so
/// a Secret holding only a bot `token` works with `address: https://slack.com/api/chat.postMessage`.
///
/// # Errors
///
/// [`Error::SecretNotFound`], [`Error::SecretNotText`], [`Error::MissingAddress`],
/// [`Error::InvalidAddress`], [`Error::InvalidProxy`]. None of them contains a secret value.
pub fn resolve_provider(
    provider: &AlertProvider,
    secret: Option<&ProviderSecret>,
    timeout: Duration,
) -> Result<Arc<dyn Notifier>> {
    NotifierFactory::new(timeout).resolve(provider, secret)
}

fn resolve_with(
    factory: &NotifierFactory,
    provider: &AlertProvider,
    secret: Option<&ProviderSecret>,
) -> Result<Arc<dyn Notifier>> {
    let spec = &provider.spec;
    let namespace = provider.metadata.namespace.as_deref().unwrap_or_default();
    let name = provider.metadata.name.as_deref().unwrap_or_default();
    let provider_id = format!("{namespace}/{name}");
    let kind = NotifierKind::from(spec.type_);

    let mut address = spec
        .address
        .as_deref()
        .map(Sensitive::new)
        .filter(|a| !a.is_blank())
        .map(|a| (a, "spec.address".to_owned()));
    let mut token = None;
    if let Some(secret_ref) = &spec.secret_ref {
        let secret = secret.ok_or_else(|| Error::SecretNotFound {
            provider: provider_id.clone(),
            secret: secret_ref.name.clone(),
            namespace: namespace.to_owned(),
        })?;
        if let Some(from_secret) = secret.text(SECRET_ADDRESS_KEY)? {
            let field = format!("Secret {} key {SECRET_ADDRESS_KEY}", secret.name());
            address = Some((from_secret, field));
        }
        token = secret.text(SECRET_TOKEN_KEY)?;
    }
    let (address, address_field) = address.ok_or(Error::MissingAddress {
        provider: provider_id,
    })?;

    let mut endpoint = Endpoint::builder(kind, address, address_field);
    if let Some(token) = token {
        endpoint = endpoint.token(token);
    }
    if let Some(proxy) = spec.proxy.as_deref() {
        endpoint = endpoint.proxy(proxy, "spec.proxy");
    }
    let identity = identity(spec.channel.as_deref(), spec.username.as_deref());
    factory.build(kind, endpoint, identity)
}

/// The operator's own notifier, used for canaries that list no alerts (Flagger's
/// `-slack-url`, `-slack-token`, `-slack-proxy-url`, `-slack-user`, `-slack-channel`,
/// `-msteams-url`, `-msteams-proxy-url` and their `SLACK_*` / `MSTEAMS_*` variables).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GlobalNotifierConfig {
    /// Slack incoming-webhook (or `chat.postMessage`) URL.
    pub slack_url: Option<Sensitive>,
    /// Slack bot token, sent as a bearer token.
    pub slack_token: Option<Sensitive>,
    /// Proxy for Slack.
    pub slack_proxy_url: Option<Sensitive>,
    /// Slack user name (default `flagger`).
    pub slack_user: Option<String>,
    /// Slack channel (default `general`).
    pub slack_channel: Option<String>,
    /// MS Teams webhook URL; when set, Teams is used instead of Slack (as Flagger).
    pub msteams_url: Option<Sensitive>,
    /// Proxy for MS Teams.
    pub msteams_proxy_url: Option<Sensitive>,
}

impl GlobalNotifierConfig {
    /// The global notifier, or `None` when neither URL is set.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidAddress`] or [`Error::InvalidProxy`] naming the flag at fault.
    pub fn build(&self, timeout: Duration) -> Result<Option<Arc<dyn Notifier>>> {
        self.build_with(&NotifierFactory::new(timeout))
    }

    fn build_with(&self, factory: &NotifierFactory) -> Result<Option<Arc<dyn Notifier>>> {
        let present = |v: &Option<Sensitive>| v.clone().filter(|s| !s.is_blank());
        let identity = identity(self.slack_channel.as_deref(), self.slack_user.as_deref());
        if let Some(url) = present(&self.msteams_url) {
            let mut endpoint = Endpoint::builder(NotifierKind::MsTeams, url, "-msteams-url");
            if let Some(proxy) = present(&self.msteams_proxy_url) {
                endpoint = endpoint.proxy(proxy, "-msteams-proxy-url");
            }
            return factory
                .build(NotifierKind::MsTeams, endpoint, identity)
                .map(Some);
        }
        let Some(url) = present(&self.slack_url) else {
            return Ok(None);
        };
        let mut endpoint = Endpoint::builder(NotifierKind::Slack, url, "-slack-url");
        if let Some(token) = present(&self.slack_token) {
            endpoint = endpoint.token(token);
        }
        if let Some(proxy) = present(&self.slack_proxy_url) {
            endpoint = endpoint.proxy(proxy, "-slack-proxy-url");
        }
        factory
            .build(NotifierKind::Slack, endpoint, identity)
            .map(Some)
    }
}

/// Builds a generic JSON webhook notifier (see [`crate::WebhookPayload`]) with a client of
/// its own.
///
/// AlertProvider has no `webhook` type yet, so this is reached from code, not manifests.
///
/// # Errors
///
/// [`Error::InvalidAddress`] naming `field`.
pub fn json_webhook(
    address: impl Into<Sensitive>,
    field: &str,
    token: Option<Sensitive>,
    timeout: Duration,
) -> Result<Arc<dyn Notifier>> {
    NotifierFactory::new(timeout).json_webhook(address, field, token)
}
