//! Flagger's `alert()` in one call: route an event by severity, resolve each AlertProvider
//! from the operator's caches, and hand the posts to the [`Dispatcher`].

use std::error::Error as StdError;
use std::sync::Arc;

use async_trait::async_trait;
use fledge_api::canary::CanaryWebhook;
use fledge_api::{AlertProvider, Canary};

use crate::dispatch::Dispatcher;
use crate::error::{Error, Result};
use crate::notification::Notification;
use crate::notifier::Notifier;
use crate::resolve::{NotifierFactory, ProviderSecret};
use crate::routing::{Recipients, alerts_muted_by, recipients};

/// A failure of the operator's lookup (an API error, not "not found").
pub type LookupError = Box<dyn StdError + Send + Sync>;

/// Where the operator keeps AlertProviders and Secrets, typically its watch caches.
///
/// [`Alerter::alert`] awaits these lookups, so they should answer from memory.
#[async_trait]
pub trait ProviderDirectory: Send + Sync {
    /// The AlertProvider `namespace/name`, `None` when it does not exist.
    async fn alert_provider(
        &self,
        namespace: &str,
        name: &str,
    ) -> std::result::Result<Option<AlertProvider>, LookupError>;

    /// The decoded data of Secret `namespace/name`, `None` when it does not exist.
    async fn secret(
        &self,
        namespace: &str,
        name: &str,
    ) -> std::result::Result<Option<ProviderSecret>, LookupError>;
}

/// What became of one alert.
#[derive(Debug, Default)]
pub struct AlertOutcome {
    /// Receivers the notification was queued for (`flagger/on-call`, `global`).
    pub queued: Vec<String>,
    /// Receivers that could not be resolved or queued, with the reason.
    pub problems: Vec<Error>,
}

/// Sends canary events to the alerts that want them, without waiting for any receiver.
#[derive(Clone)]
pub struct Alerter {
    factory: NotifierFactory,
    dispatcher: Dispatcher,
    global: Option<Arc<dyn Notifier>>,
    directory: Arc<dyn ProviderDirectory>,
}

impl std::fmt::Debug for Alerter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerter")
            .field("factory", &self.factory)
            .field("global", &self.global)
            .finish_non_exhaustive()
    }
}

/// Name of the global notifier in logs and outcomes.
pub const GLOBAL_TARGET: &str = "global";

impl Alerter {
    /// An alerter resolving providers through `directory`, sending through `dispatcher`,
    /// with the operator-wide notifier `global` for canaries that list no alerts.
    pub fn new(
        factory: NotifierFactory,
        dispatcher: Dispatcher,
        global: Option<Arc<dyn Notifier>>,
        directory: Arc<dyn ProviderDirectory>,
    ) -> Self {
        Self {
            factory,
            dispatcher,
            global,
            directory,
        }
    }

    /// Queues `notification` for every receiver of `canary` whose severity admits it.
    ///
    /// Problems with one AlertProvider (missing, its Secret missing, a bad address) are
    /// logged and returned; the other alerts still go out. Never waits for a receiver.
    pub async fn alert(&self, canary: &Canary, notification: Notification) -> AlertOutcome {
        let mut outcome = AlertOutcome::default();
        let subject = notification.subject();
        let notification = Arc::new(notification);
        let targets = match recipients(canary, notification.severity) {
            Recipients::Global => {
                if let Some(global) = &self.global {
                    self.queue(
                        GLOBAL_TARGET,
                        Arc::clone(global),
                        &notification,
                        &mut outcome,
                    );
                }
                return outcome;
            }
            Recipients::Alerts(targets) => targets,
        };
        for target in targets {
            let id = format!("{}/{}", target.provider_namespace, target.provider_name);
            match self
                .resolve(target.provider_namespace, target.provider_name, &id)
                .await
            {
                Ok(notifier) => self.queue(&id, notifier, &notification, &mut outcome),
                Err(error) => {
                    tracing::error!(
                        canary = %subject,
                        alert = %target.alert.name,
                        error = %error,
                        "alert provider {id} error"
                    );
                    outcome.problems.push(error);
                }
            }
        }
        outcome
    }

    /// Alerts that a gate is waiting, unless the gate's webhook has `muteAlert: true`.
    pub async fn alert_gate(
        &self,
        canary: &Canary,
        webhook: &CanaryWebhook,
        notification: Notification,
    ) -> AlertOutcome {
        if alerts_muted_by(webhook) {
            return AlertOutcome::default();
        }
        self.alert(canary, notification).await
    }

    async fn resolve(&self, namespace: &str, name: &str, id: &str) -> Result<Arc<dyn Notifier>> {
        let provider = self
            .directory
            .alert_provider(namespace, name)
            .await
            .map_err(|source| Error::Lookup {
                what: format!("AlertProvider {id}"),
                source,
            })?
            .ok_or_else(|| Error::ProviderNotFound {
                provider: id.to_owned(),
            })?;
        let secret = match &provider.spec.secret_ref {
            Some(secret_ref) => self
                .directory
                .secret(namespace, &secret_ref.name)
                .await
                .map_err(|source| Error::Lookup {
                    what: format!("Secret {namespace}/{}", secret_ref.name),
                    source,
                })?,
            None => None,
        };
        self.factory.resolve(&provider, secret.as_ref())
    }

    fn queue(
        &self,
        target: &str,
        notifier: Arc<dyn Notifier>,
        notification: &Arc<Notification>,
        outcome: &mut AlertOutcome,
    ) {
        match self
            .dispatcher
            .dispatch(target, notifier, Arc::clone(notification))
        {
            Ok(()) => outcome.queued.push(target.to_owned()),
            Err(error) => outcome.problems.push(error),
        }
    }
}
