//! The engine's alerts, sent through fledge-notify: to the AlertProviders a canary lists in
//! `analysis.alerts` (looked up in the watch cache, their Secrets among the referenced
//! Secrets, read when first needed and after a change), or to the global
//! notifier of `-slack-url` / `-msteams-url` when it lists none. Sending never waits for a
//! chat service: the dispatcher posts in the background.

use std::sync::Arc;

use async_trait::async_trait;
use fledge_api::{AlertProvider, Canary};
use fledge_notify::{
    Alerter, DispatchConfig, Dispatcher, GlobalNotifierConfig, LookupError, Notification,
    NotifierFactory, ProviderDirectory, ProviderSecret,
};

use crate::config::OperatorConfig;
use crate::controller::caches::Caches;
use crate::error::{Error, Result};

/// The alerter of an operator configured by `config`, reading providers from `caches`.
///
/// # Errors
/// [`Error::Config`] when `-slack-url` or `-msteams-url` is not a usable URL.
pub fn alerter(config: &OperatorConfig, caches: &Caches, client: &kube::Client) -> Result<Alerter> {
    let factory = NotifierFactory::default();
    let global = GlobalNotifierConfig {
        slack_url: config.slack_url.clone().map(Into::into),
        slack_token: config.slack_token.clone().map(Into::into),
        slack_proxy_url: config.slack_proxy_url.clone().map(Into::into),
        slack_user: Some(config.slack_user.clone()),
        slack_channel: config.slack_channel.clone(),
        msteams_url: config.msteams_url.clone().map(Into::into),
        msteams_proxy_url: config.msteams_proxy_url.clone().map(Into::into),
    }
    .build(factory.timeout())
    .map_err(|e| Error::Config {
        flag: "-slack-url / -msteams-url".to_owned(),
        reason: e.to_string(),
    })?;
    let (dispatcher, _worker) = Dispatcher::spawn(DispatchConfig::default());
    let directory = CachedDirectory {
        caches: caches.clone(),
        client: client.clone(),
    };
    Ok(Alerter::new(
        factory,
        dispatcher,
        global,
        Arc::new(directory),
    ))
}

/// Sends each of the plan's alerts about `canary`; problems (a missing provider, a bad
/// address) are logged with the canary, never fatal to the tick. `cluster_name`
/// (`-cluster-name`) comes first in each alert's fields when set, as in Flagger.
pub async fn send(
    alerter: &Alerter,
    canary: &Canary,
    default_provider: &str,
    cluster_name: &str,
    alerts: &[fledge_engine::Alert],
) {
    for alert in alerts {
        let mut notification =
            Notification::for_canary(canary, alert.message.clone(), alert.severity)
                .with_cluster(cluster_name);
        if alert.with_metadata {
            notification = notification.with_canary_metadata(canary, Some(default_provider));
        }
        let outcome = alerter.alert(canary, notification).await;
        for problem in outcome.problems {
            tracing::warn!(error = %problem, "alert not sent: {problem}");
        }
        if !outcome.queued.is_empty() {
            tracing::debug!(to = ?outcome.queued, "alert queued");
        }
    }
}

/// AlertProviders from the watch cache and their Secrets from the referenced Secrets (both
/// read from the API server when they live in a namespace the operator does not watch).
struct CachedDirectory {
    caches: Caches,
    client: kube::Client,
}

#[async_trait]
impl ProviderDirectory for CachedDirectory {
    async fn alert_provider(
        &self,
        namespace: &str,
        name: &str,
    ) -> std::result::Result<Option<AlertProvider>, LookupError> {
        let caches = &self.caches;
        Ok(caches
            .get_or_read(&caches.alert_providers, &self.client, namespace, name)
            .await?)
    }

    async fn secret(
        &self,
        namespace: &str,
        name: &str,
    ) -> std::result::Result<Option<ProviderSecret>, LookupError> {
        let data = self.caches.secret_data(namespace, name).await?;
        Ok(data.map(|data| ProviderSecret::new(name, data)))
    }
}
