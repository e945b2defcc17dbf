//! The operator's one call: the seed's three alerts (on-call Slack for errors, QA Discord
//! for warnings, dev Teams for everything) each get what their severity admits.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use fledge_api::canary::{AlertSeverity, CanaryWebhook};
use fledge_api::{AlertProvider, Canary};
use fledge_notify::{
    Alerter, DispatchConfig, DispatchStats, Dispatcher, Error, LookupError, Notification,
    NotifierFactory, ProviderDirectory, ProviderSecret,
};
use pretty_assertions::assert_eq;
use support::{Answer, Receiver};

/// AlertProviders and Secrets held in memory, as the operator's watch caches hold them.
#[derive(Default)]
struct Caches {
    providers: BTreeMap<(String, String), AlertProvider>,
    secrets: BTreeMap<(String, String), ProviderSecret>,
    broken: bool,
}

#[async_trait]
impl ProviderDirectory for Caches {
    async fn alert_provider(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<AlertProvider>, LookupError> {
        if self.broken {
            return Err("the API server is unavailable".into());
        }
        Ok(self
            .providers
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned())
    }

    async fn secret(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<ProviderSecret>, LookupError> {
        Ok(self
            .secrets
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned())
    }
}

impl Caches {
    fn add_provider(&mut self, namespace: &str, name: &str, spec: &str) {
        let provider = fledge_api::yaml::from_str(&format!(
            "apiVersion: flagger.app/v1beta1\nkind: AlertProvider\n\
             metadata: {{name: {name}, namespace: {namespace}}}\nspec: {spec}\n"
        ))
        .expect("AlertProvider");
        self.providers
            .insert((namespace.to_owned(), name.to_owned()), provider);
    }

    fn add_secret(&mut self, namespace: &str, name: &str, address: &str) {
        let data = BTreeMap::from([("address".to_owned(), address.as_bytes().to_vec())]);
        self.secrets.insert(
            (namespace.to_owned(), name.to_owned()),
            ProviderSecret::new(name, data),
        );
    }
}

/// The canary of fixtures/seeds/004-alerting.yaml.
fn seed_canary(extra_alert: &str) -> Canary {
    fledge_api::yaml::from_str(&format!(
        r#"
apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {{ name: podinfo, namespace: test }}
spec:
  targetRef: {{ apiVersion: apps/v1, kind: Deployment, name: podinfo }}
  service: {{ port: 9898 }}
  analysis:
    interval: 1m
    threshold: 10
    maxWeight: 50
    stepWeight: 5
    alerts:
      - name: "on-call Slack"
        severity: error
        providerRef: {{ name: on-call, namespace: flagger }}
      - name: "qa Discord"
        severity: warn
        providerRef: {{ name: qa-discord }}
      - name: "dev MS Teams"
        severity: info
        providerRef: {{ name: dev-msteams }}
{extra_alert}
"#
    ))
    .expect("canary")
}

struct Chat {
    slack: Arc<Receiver>,
    discord: Arc<Receiver>,
    teams: Arc<Receiver>,
    caches: Caches,
}

async fn seed_chat(answer: Answer) -> Chat {
    let slack = Receiver::start(answer.clone()).await;
    let discord = Receiver::start(answer.clone()).await;
    let teams = Receiver::start(answer).await;
    let mut caches = Caches::default();
    caches.add_provider(
        "flagger",
        "on-call",
        "{type: slack, channel: on-call-alerts, username: flagger, \
         address: 'https://hooks.slack.com/services/YOUR/SLACK/WEBHOOK', secretRef: {name: on-call-url}}",
    );
    caches.add_secret("flagger", "on-call-url", &slack.url("/services/ON/CALL"));
    caches.add_provider(
        "test",
        "qa-discord",
        &format!(
            "{{type: discord, address: '{}'}}",
            discord.url("/api/webhooks/1/qa")
        ),
    );
    caches.add_provider(
        "test",
        "dev-msteams",
        &format!(
            "{{type: msteams, address: '{}'}}",
            teams.url("/webhook/dev")
        ),
    );
    Chat {
        slack,
        discord,
        teams,
        caches,
    }
}

fn event(message: &str, severity: AlertSeverity) -> Notification {
    Notification::new("podinfo", "test", message, severity)
}

#[tokio::test]
async fn each_alert_receives_what_its_severity_admits() {
    let chat = seed_chat(Answer::ok()).await;
    let (dispatcher, worker) = Dispatcher::spawn(DispatchConfig::default());
    let alerter = Alerter::new(
        NotifierFactory::default(),
        dispatcher,
        None,
        Arc::new(chat.caches),
    );
    let canary = seed_canary("");

    let error = alerter
        .alert(
            &canary,
            event(
                "Canary failed! Scaling down podinfo.test",
                AlertSeverity::Error,
            ),
        )
        .await;
    assert_eq!(
        error.queued,
        ["flagger/on-call", "test/qa-discord", "test/dev-msteams"]
    );
    assert!(error.problems.is_empty(), "{:?}", error.problems);
    let warn = alerter
        .alert(
            &canary,
            event("Canary is waiting for approval.", AlertSeverity::Warn),
        )
        .await;
    assert_eq!(warn.queued, ["test/qa-discord", "test/dev-msteams"]);
    let info = alerter
        .alert(&canary, event("New revision detected", AlertSeverity::Info))
        .await;
    assert_eq!(info.queued, ["test/dev-msteams"]);

    drop(alerter);
    assert_eq!(
        worker.finish().await,
        DispatchStats {
            delivered: 6,
            failed: 0,
            dropped: 0
        }
    );
    let slack = chat.slack.next_request().await;
    assert_eq!(slack.target, "/services/ON/CALL");
    assert_eq!(slack.json()["channel"], "on-call-alerts");
    assert_eq!(slack.json()["attachments"][0]["color"], "danger");
    assert_eq!(chat.slack.pending().await, 0);
    // Posts run concurrently: compare the set of what arrived, not the order.
    let mut discord_colours = Vec::new();
    for _ in 0..2 {
        let request = chat.discord.next_request().await;
        assert_eq!(request.target, "/api/webhooks/1/qa/slack");
        discord_colours.push(request.json()["attachments"][0]["color"].clone());
    }
    discord_colours.sort_by_key(ToString::to_string);
    assert_eq!(discord_colours, ["danger", "warning"]);
    assert_eq!(chat.discord.pending().await, 0);
    let mut teams_titles = Vec::new();
    for _ in 0..3 {
        let card = chat.teams.next_request().await.json();
        teams_titles.push(
            card["sections"][0]["activityTitle"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    teams_titles.sort();
    assert_eq!(
        teams_titles,
        [
            "Canary failed! Scaling down podinfo.test",
            "Canary is waiting for approval.",
            "New revision detected"
        ]
    );
}

#[tokio::test]
async fn a_missing_provider_is_reported_and_the_others_still_go_out() {
    let chat = seed_chat(Answer::ok()).await;
    let (dispatcher, worker) = Dispatcher::spawn(DispatchConfig::default());
    let alerter = Alerter::new(
        NotifierFactory::default(),
        dispatcher,
        None,
        Arc::new(chat.caches),
    );
    let canary = seed_canary("      - {name: ghost, providerRef: {name: ghost}}");

    let outcome = alerter
        .alert(
            &canary,
            event(
                "Promotion completed! Scaling down podinfo.test",
                AlertSeverity::Info,
            ),
        )
        .await;

    assert_eq!(outcome.queued, ["test/dev-msteams"]);
    assert_eq!(outcome.problems.len(), 1);
    assert!(matches!(
        outcome.problems[0],
        Error::ProviderNotFound { .. }
    ));
    assert_eq!(
        outcome.problems[0].to_string(),
        "AlertProvider test/ghost not found; create it or fix the alert's providerRef"
    );
    drop(alerter);
    assert_eq!(worker.finish().await.delivered, 1);
}

#[tokio::test]
async fn a_failing_lookup_is_reported_with_its_cause() {
    let caches = Caches {
        broken: true,
        ..Caches::default()
    };
    let (dispatcher, _worker) = Dispatcher::spawn(DispatchConfig::default());
    let alerter = Alerter::new(
        NotifierFactory::default(),
        dispatcher,
        None,
        Arc::new(caches),
    );

    let outcome = alerter
        .alert(
            &seed_canary(""),
            event("Canary failed!", AlertSeverity::Error),
        )
        .await;

    assert!(outcome.queued.is_empty());
    assert_eq!(outcome.problems.len(), 3);
    let first = &outcome.problems[0];
    assert_eq!(
        first.to_string(),
        "cannot read AlertProvider flagger/on-call"
    );
    let cause = std::error::Error::source(first).map(ToString::to_string);
    assert_eq!(cause.as_deref(), Some("the API server is unavailable"));
}

#[tokio::test]
async fn canaries_without_alerts_use_the_global_notifier() {
    let teams = Receiver::start(Answer::ok()).await;
    let factory = NotifierFactory::default();
    let global = factory
        .global(&fledge_notify::GlobalNotifierConfig {
            msteams_url: Some(teams.url("/webhook/global").into()),
            ..Default::default()
        })
        .expect("valid");
    let (dispatcher, worker) = Dispatcher::spawn(DispatchConfig::default());
    let alerter = Alerter::new(factory, dispatcher, global, Arc::new(Caches::default()));
    let canary: Canary = fledge_api::yaml::from_str(
        "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {name: podinfo, namespace: test}\n\
         spec: {targetRef: {name: podinfo}, service: {port: 9898}, analysis: {interval: 1m}}\n",
    )
    .expect("canary");

    let outcome = alerter
        .alert(&canary, event("New revision detected", AlertSeverity::Info))
        .await;

    assert_eq!(outcome.queued, ["global"]);
    drop(alerter);
    worker.finish().await;
    assert_eq!(teams.next_request().await.target, "/webhook/global");
}

#[tokio::test]
async fn a_muted_gate_sends_nothing() {
    let chat = seed_chat(Answer::ok()).await;
    let (dispatcher, worker) = Dispatcher::spawn(DispatchConfig::default());
    let alerter = Alerter::new(
        NotifierFactory::default(),
        dispatcher,
        None,
        Arc::new(chat.caches),
    );
    let canary = seed_canary("");
    let muted: CanaryWebhook = fledge_api::yaml::from_str(
        "{name: approval, type: confirm-promotion, url: 'http://gate/', muteAlert: true}",
    )
    .expect("webhook");
    let loud = CanaryWebhook {
        mute_alert: false,
        ..muted.clone()
    };

    let silent = alerter
        .alert_gate(
            &canary,
            &muted,
            event(
                "Canary promotion is waiting for approval.",
                AlertSeverity::Warn,
            ),
        )
        .await;
    let heard = alerter
        .alert_gate(
            &canary,
            &loud,
            event(
                "Canary promotion is waiting for approval.",
                AlertSeverity::Warn,
            ),
        )
        .await;

    assert!(silent.queued.is_empty() && silent.problems.is_empty());
    assert_eq!(heard.queued, ["test/qa-discord", "test/dev-msteams"]);
    drop(alerter);
    assert_eq!(worker.finish().await.delivered, 2);
}

#[tokio::test]
async fn slow_chat_services_do_not_slow_the_alert_call() {
    let chat = seed_chat(Answer::slow(Duration::from_secs(30))).await;
    let (dispatcher, worker) = Dispatcher::spawn(DispatchConfig::default());
    let alerter = Alerter::new(
        NotifierFactory::new(Duration::from_secs(3)),
        dispatcher,
        None,
        Arc::new(chat.caches),
    );
    let canary = seed_canary("");
    // Warm the HTTP client (TLS roots load once per process).
    let _ = alerter
        .alert(&canary, event("warm-up", AlertSeverity::Info))
        .await;

    let started = Instant::now();
    let outcome = alerter
        .alert(
            &canary,
            event(
                "Rolling back podinfo.test failed checks threshold reached 10",
                AlertSeverity::Error,
            ),
        )
        .await;
    let took = started.elapsed();

    eprintln!("alert() to 3 receivers that take 30 s to answer returned in {took:?}");
    assert_eq!(outcome.queued.len(), 3);
    // A post gives up only after 3 s: returning well before that means nothing waited for one.
    assert!(took < Duration::from_secs(1), "alert() took {took:?}");
    drop(alerter);
    let stats = worker.finish().await;
    assert_eq!(
        stats.failed, 4,
        "every post timed out in the background: {stats:?}"
    );
}
