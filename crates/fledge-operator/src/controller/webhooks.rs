//! Calling a canary's webhooks as Flagger does: POST a JSON payload (`name`, `namespace`,
//! `phase`, `checksum`, `metadata`), with the hook's timeout (10 s by default) and retries;
//! any 2xx answer passes.
//!
//! Every call is bounded whatever the spec says: the timeout is at most [`MAX_TIMEOUT`],
//! retries at most [`MAX_RETRIES`], the answer is read up to [`MAX_ANSWER_BYTES`],
//! redirects are followed only within the hook's origin, and the hook's URL shows in
//! outcomes and logs only as [`redact_url`] prints it (tokens live in webhook URLs).

use std::collections::BTreeMap;
use std::time::Duration;

use fledge_api::canary::CanaryWebhook;
use fledge_api::redaction::{redact_url, scrub_url_secrets};
use fledge_api::{Canary, CanaryPhase};
use fledge_engine::{ObservationRequest, WebhookOutcome};
use fledge_metrics::bounded_http::{
    describe_transport_error, human_size, read_capped, same_origin_redirects,
};
use serde_json::{Value, json};

use crate::controller::check_budget::TickBudget;
use crate::workload::checksum::json_hash;

/// A hook's timeout when it sets none.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest timeout a hook gets, whatever its spec says (validation bounds it too).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// The most retries a hook gets, whatever its spec says.
pub const MAX_RETRIES: u32 = 10;
/// The first pause between retries; it doubles up to [`MAX_RETRY_WAIT`].
const FIRST_RETRY_WAIT: Duration = Duration::from_secs(1);
/// The longest pause between retries.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(30);
/// The longest an event is sent to one event hook, retries included.
pub const MAX_EVENT_CALL: Duration = Duration::from_secs(30);
/// The most of a hook's answer that is read: its text only ends up in an event message.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// The most of a failing hook's answer quoted in its outcome (an Event's note holds 1 KB).
const MAX_QUOTED_CHARS: usize = 512;

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
            .redirect(same_origin_redirects())
            .build()
            .map_err(|e| e.without_url().to_string())?;
        let unverified = reqwest::Client::builder()
            .redirect(same_origin_redirects())
            .danger_accept_invalid_certs(true)
            .build()
            .map_err(|e| e.without_url().to_string())?;
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
        let body = payload(canary, phase, &metadata);
        let sent = self.post(hook, &body);
        // Events are sent one by one at the end of a tick: a hanging receiver must not hold
        // the tick for its timeout times its retries.
        tokio::time::timeout(MAX_EVENT_CALL, sent)
            .await
            .unwrap_or_else(|_| {
                WebhookOutcome::Failed(format!(
                    "event not delivered within {}s to {}",
                    MAX_EVENT_CALL.as_secs(),
                    redact_url(&hook.url)
                ))
            })
    }

    async fn post(&self, hook: &CanaryWebhook, body: &Value) -> WebhookOutcome {
        let client = if hook.disable_tls {
            &self.unverified
        } else {
            &self.verified
        };
        let timeout = hook_timeout(hook);
        let retries = hook_retries(hook);
        let mut wait = FIRST_RETRY_WAIT;
        let mut attempt = 0;
        loop {
            let (outcome, retriable) = match client
                .post(&hook.url)
                .timeout(timeout)
                .json(body)
                .send()
                .await
            {
                Ok(response) if response.status().is_success() => return WebhookOutcome::Passed,
                Ok(response) => {
                    let status = response.status();
                    // Like go-retryablehttp: server errors and throttling are retried, other answers are final.
                    let retriable = status.is_server_error() || status.as_u16() == 429;
                    (refusal(hook, response).await, retriable)
                }
                Err(error) if error.is_timeout() => (
                    WebhookOutcome::Failed(format!(
                        "no answer within {}s from {}",
                        timeout.as_secs_f64(),
                        redact_url(&hook.url)
                    )),
                    true,
                ),
                // A refused redirect is final: asking again is redirected again.
                Err(error) => {
                    let retriable = !error.is_redirect();
                    (
                        WebhookOutcome::Failed(describe_transport_error(error, &hook.url)),
                        retriable,
                    )
                }
            };
            if !retriable || attempt >= retries {
                return outcome;
            }
            attempt += 1;
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(MAX_RETRY_WAIT);
        }
    }
}

/// The hook's timeout, `DEFAULT_TIMEOUT` when unset, at most `MAX_TIMEOUT` (and at least
/// a second: a zero timeout would fail every call).
pub fn hook_timeout(hook: &CanaryWebhook) -> Duration {
    hook.timeout
        .as_ref()
        .map_or(DEFAULT_TIMEOUT, fledge_api::GoDuration::as_duration)
        .clamp(Duration::from_secs(1), MAX_TIMEOUT)
}

/// The hook's retries, at most [`MAX_RETRIES`] (a negative count is none).
pub fn hook_retries(hook: &CanaryWebhook) -> u32 {
    u32::try_from(hook.retries.unwrap_or(0))
        .unwrap_or(0)
        .min(MAX_RETRIES)
}

/// The outcome of an answer outside 2xx: the start of its body (read up to
/// [`MAX_ANSWER_BYTES`], the URL's secrets scrubbed, cut to [`MAX_QUOTED_CHARS`]), else the
/// status.
async fn refusal(hook: &CanaryWebhook, mut response: reqwest::Response) -> WebhookOutcome {
    let status = response.status();
    // A body that fails half-way still explains the refusal with what arrived.
    let body = read_capped(&mut response, MAX_ANSWER_BYTES)
        .await
        .unwrap_or_default();
    let text = scrub_url_secrets(body.text().trim(), &hook.url);
    if text.is_empty() && !body.truncated {
        return WebhookOutcome::Failed(status.to_string());
    }
    let quoted: String = text.chars().take(MAX_QUOTED_CHARS).collect();
    if body.truncated || quoted.len() < text.len() {
        let size = if body.truncated {
            format!("more than {}", human_size(MAX_ANSWER_BYTES))
        } else {
            human_size(text.len())
        };
        return WebhookOutcome::Failed(format!("{quoted}… ({status}, answer of {size} truncated)"));
    }
    WebhookOutcome::Failed(text)
}

/// Calls the hooks a tick needs (gates, pre-rollout, rollout, rollback checks), one after
/// the other within `budget`: a hook still running when it runs out, and the hooks after
/// it, fail with the budget's message instead of holding up the tick.
pub async fn run_webhook_checks(
    caller: &WebhookCaller,
    canary: &Canary,
    needs: &ObservationRequest,
    budget: &TickBudget,
) -> BTreeMap<String, WebhookOutcome> {
    let mut outcomes = BTreeMap::new();
    for request in &needs.webhooks {
        let call = caller.call_named(canary, &request.name, request.phase);
        let outcome = budget
            .run(call)
            .await
            .unwrap_or_else(|exceeded| WebhookOutcome::Failed(exceeded.to_string()));
        tracing::debug!(webhook = %request.name, ?outcome, "webhook called");
        outcomes.insert(request.name.clone(), outcome);
    }
    outcomes
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

    #[test]
    fn timeout_and_retries_are_capped_whatever_the_spec_says() {
        let hook = |timeout: Option<&str>, retries: Option<i32>| CanaryWebhook {
            type_: None,
            name: "check".to_owned(),
            url: "http://gate/".to_owned(),
            mute_alert: false,
            timeout: timeout.map(|t| {
                fledge_api::yaml::from_str(&format!("{t:?}")).unwrap_or_else(|e| panic!("{e}"))
            }),
            metadata: BTreeMap::new(),
            retries,
            disable_tls: false,
        };
        assert_eq!(hook_timeout(&hook(None, None)), DEFAULT_TIMEOUT);
        assert_eq!(
            hook_timeout(&hook(Some("30s"), None)),
            Duration::from_secs(30)
        );
        assert_eq!(hook_timeout(&hook(Some("1000h"), None)), MAX_TIMEOUT);
        assert_eq!(
            hook_timeout(&hook(Some("0s"), None)),
            Duration::from_secs(1)
        );
        assert_eq!(hook_retries(&hook(None, Some(3))), 3);
        assert_eq!(hook_retries(&hook(None, Some(1_000_000))), MAX_RETRIES);
        assert_eq!(hook_retries(&hook(None, Some(-5))), 0);
    }
}
