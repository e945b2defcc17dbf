//! Canary notifications for Fledge: Slack, Microsoft Teams, Discord, Rocket.Chat, Google Chat
//! and a generic JSON webhook.
//!
//! The pieces, in the order the operator uses them:
//!
//! - [`routing::recipients`] decides who hears about an event: the canary's
//!   `analysis.alerts` whose severity admits it, or the global notifier when the canary lists
//!   none. An alert without a severity receives everything (Flagger sends it nothing).
//! - [`NotifierFactory::resolve`] turns an `AlertProvider` and the data of the Secret it
//!   names into a ready [`Notifier`]; [`NotifierFactory::global`] does the same for
//!   `-slack-url` / `-msteams-url`. The factory shares HTTP clients, so resolving on every
//!   alert (and so picking up edits at once) costs microseconds.
//! - [`Notification`] carries Flagger's message, the severity and the facts shown with it.
//! - [`Dispatcher`] posts in the background through a bounded queue, so a slow or dead chat
//!   service never holds up a canary's analysis.
//! - [`Alerter`] does all of the above in one call, looking AlertProviders and Secrets up
//!   through the operator's [`ProviderDirectory`] (its watch caches).
//!
//! Addresses, tokens and proxy URLs are credentials: they are held in [`Sensitive`] and never
//! appear in `Debug`, `Display` or error messages.
//!
//! ```no_run
//! # async fn example(provider: fledge_api::AlertProvider) -> fledge_notify::Result<()> {
//! use std::sync::Arc;
//! use fledge_api::canary::AlertSeverity;
//! use fledge_notify::{DispatchConfig, Dispatcher, Notification, NotifierFactory};
//!
//! let factory = NotifierFactory::default();
//! let (dispatcher, worker) = Dispatcher::spawn(DispatchConfig::default());
//!
//! let notifier = factory.resolve(&provider, None)?;
//! let rollback = Notification::new("podinfo", "test", "Canary analysis failed", AlertSeverity::Error);
//! dispatcher.dispatch("flagger/on-call", notifier, Arc::new(rollback))?; // returns at once
//!
//! drop(dispatcher);
//! let stats = worker.finish().await; // on shutdown: drain the queue
//! # let _ = stats;
//! # Ok(())
//! # }
//! ```

pub mod alerter;
pub mod discord;
pub mod dispatch;
pub mod endpoint;
pub mod error;
pub mod gchat;
pub mod msteams;
pub mod notification;
pub mod notifier;
pub mod resolve;
pub mod rocket;
pub mod routing;
pub mod sensitive;
pub mod slack;
pub mod webhook;

pub use alerter::{AlertOutcome, Alerter, LookupError, ProviderDirectory};
pub use dispatch::{DispatchConfig, DispatchStats, DispatchWorker, Dispatcher};
pub use endpoint::{DEFAULT_TIMEOUT, Endpoint, HttpClients};
pub use error::{Error, Result};
pub use notification::{Field, Notification};
pub use notifier::{Notifier, NotifierKind};
pub use resolve::{
    GlobalNotifierConfig, NotifierFactory, ProviderSecret, json_webhook, resolve_provider,
};
pub use routing::{AlertTarget, Recipients, alerts_muted_by, receives, recipients};
pub use sensitive::Sensitive;
pub use webhook::WebhookPayload;
