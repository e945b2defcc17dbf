//! Calling a canary's webhooks as Flagger does: POST a JSON payload (`name`, `namespace`,
//! `phase`, `checksum`, `metadata`), with the hook's timeout (10 s by default) and retries;
//! any 2xx answer passes.

use std::collections::BTreeMap;
use std::time::Duration;

use fledge_api::canary::CanaryWebhook;
use fledge_api::{Canary, CanaryPhase};
use fledge_engine::WebhookOutcome;
use serde_json::{Value, json};

use crate::workload::checksum::json_hash;

/// A hook's timeout when it sets none.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The first pause between retries; it doubles up to [`MAX_RETRY_WAIT`].
const FIRST_RETRY_WAIT: Duration = Duration::from_secs(1);
/// The longest pause between retries.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(30);

/// HTTP clients for webhooks: one verifying TLS, one for hooks with `disableTLS`.
#[derive(Clone, Debug)]
pub struct WebhookCaller {
    verified: reqwest::Client,
    unverified: reqwest::Client,
}

impl WebhookCaller {
    /// Builds the clients.
    ///
    /// # Errors
    /// The reqwest error text when a TLS backend cannot be set up.
    pub fn new() -> Result<Self, String> {
        let verified = reqwest::Client::builder()
            .build()
            .map_err(|e| e.to_string())?;
        let unverified = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            verified,
            unverified,
        })
    }

    /// Calls the canary's webhook `name` for `phase`; a name the canary does not list fails.
    pub async fn call_named(
        &self,
        canary: &Canary,
        name: &str,
        phase: CanaryPhase,
    ) -> WebhookOutcome {
        let hook = canary
            .analysis()
            .and_then(|a| a.webhooks.iter().find(|h| h.name == name));
        match hook {
            Some(hook) => self.call(canary, hook, phase).await,
            None => WebhookOutcome::Failed(format!("no webhook named {name:?}")),
        }
    }

    /// Calls `hook` with the payload of `canary` in `phase`.
    pub async fn call(
        &self,
        canary: &Canary,
        hook: &CanaryWebhook,
        phase: CanaryPhase,
    ) -> WebhookOutcome {
        self.post(hook, &payload(canary, phase, &hook.metadata))
            .await
    }

    /// Sends an event to `hook` (`type: event` hooks and `-event-webhook`), Flagger's event payload.
    pub async fn send_event(
        &self,
        canary: &Canary,
        hook: &CanaryWebhook,
        message: &str,
        event_type: &str,
    ) -> WebhookOutcome {
        let mut metadata: BTreeMap<String, String> = [
            ("eventMessage".to_owned(), message.to_owned()),
            ("eventType".to_owned(), event_type.to_owned()),
            (
                "timestamp".to_owned(),
                k8s_openapi::jiff::Timestamp::now()
                    .as_millisecond()
                    .to_string(),
            ),
        ]
        .into();
        for (key, value) in &hook.metadata {
            metadata.entry(key.clone()).or_insert_with(|| value.clone());
        }
        let phase = canary.status.as_ref().map(|s| s.phase).unwrap_or_default();
        self.post(hook, &payload(canary, phase, &metadata)).await
    }

    async fn post(&self, hook: &CanaryWebhook, body: &Value) -> WebhookOutcome {
        let client = if hook.disable_tls {
            &self.unverified
        } else {
            &self.verified
        };
        let timeout = hook
            .timeout
            .as_ref()
            .map_or(DEFAULT_TIMEOUT, fledge_api::GoDuration::as_duration);
        let retries = u32::try_from(hook.retries.unwrap_or(0)).unwrap_or(0);
        let mut wait = FIRST_RETRY_WAIT;
        let mut attempt = 0;
        loop {
            let outcome = match client
                .post(&hook.url)
                .timeout(timeout)
                .json(body)
                .send()
                .await
            {
                Ok(response) => {
                    let status = response.status();
                    let text = response.text().await.unwrap_or_default();
                    if status.is_success() {
                        return WebhookOutcome::Passed;
                    }
                    // Like go-retryablehttp: server errors and throttling are retried, other answers are final.
                    let retriable = status.is_server_error() || status.as_u16() == 429;
                    (
                        WebhookOutcome::Failed(if text.is_empty() {
                            status.to_string()
                        } else {
                            text
                        }),
                        retriable,
                    )
                }
                Err(error) => (WebhookOutcome::Failed(error.to_string()), true),
            };
            if !outcome.1 || attempt >= retries {
                return outcome.0;
            }
            attempt += 1;
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(MAX_RETRY_WAIT);
        }
    }
}

/// Flagger's webhook payload. The checksum identifies the revision under analysis (a hash of
/// `status.trackedConfigs` and `status.lastAppliedSpec`).
pub fn payload(canary: &Canary, phase: CanaryPhase, metadata: &BTreeMap<String, String>) -> Value {
    let status = canary.status.clone().unwrap_or_default();
    let checksum = json_hash(
        &(&status.tracked_configs, &status.last_applied_spec),
        "canary checksum",
    )
    .unwrap_or_default();
    let mut body = json!({
        "name": canary.metadata.name,
        "namespace": canary.metadata.namespace,
        "phase": phase,
        "checksum": checksum,
    });
    if !metadata.is_empty() {
        body["metadata"] = json!(metadata);
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payload_is_flaggers() {
        let canary: Canary = fledge_api::yaml::from_str(
            "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: { name: podinfo, namespace: test }\n\
             spec:\n  targetRef: { apiVersion: apps/v1, kind: Deployment, name: podinfo }\n  service: { port: 9898 }\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let metadata = [("cmd".to_owned(), "hey".to_owned())].into();
        let body = payload(&canary, CanaryPhase::Progressing, &metadata);
        assert_eq!(body["name"], "podinfo");
        assert_eq!(body["namespace"], "test");
        assert_eq!(body["phase"], "Progressing");
        assert_eq!(body["metadata"], json!({ "cmd": "hey" }));
        assert_eq!(body["checksum"].as_str().map(str::len), Some(16));
        assert!(
            payload(&canary, CanaryPhase::Waiting, &BTreeMap::new())
                .get("metadata")
                .is_none()
        );
    }
}
