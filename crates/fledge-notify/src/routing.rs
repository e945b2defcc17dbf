//! Who hears about an event: severity routing over a canary's `analysis.alerts`, the global
//! notifier when there are none, and webhooks' `muteAlert`.

use fledge_api::Canary;
use fledge_api::canary::{AlertSeverity, CanaryAlert, CanaryWebhook};

/// Whether an alert whose `severity` is `alert` receives an event of severity `event`.
///
/// `info` receives everything, `warn` receives warnings and errors, `error` errors only.
/// An alert without a severity is treated as `info`. (Flagger sends such an alert nothing at
/// all, which users only notice when a rollback goes unreported.)
pub fn receives(alert: Option<AlertSeverity>, event: AlertSeverity) -> bool {
    rank(event) >= rank(alert.unwrap_or(AlertSeverity::Info))
}

fn rank(severity: AlertSeverity) -> u8 {
    match severity {
        AlertSeverity::Info => 0,
        AlertSeverity::Warn => 1,
        AlertSeverity::Error => 2,
    }
}

/// Where one event of a canary goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recipients<'a> {
    /// The canary lists no alerts: the operator's global notifier, if it has one.
    Global,
    /// The canary's alerts whose severity admits the event (possibly none).
    Alerts(Vec<AlertTarget<'a>>),
}

/// One alert that receives an event, with the AlertProvider it names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertTarget<'a> {
    /// The alert as written in the canary.
    pub alert: &'a CanaryAlert,
    /// Name of the AlertProvider.
    pub provider_name: &'a str,
    /// Namespace of the AlertProvider: `providerRef.namespace`, else the canary's.
    pub provider_namespace: &'a str,
}

/// The recipients of an event of severity `event` about `canary`.
///
/// A canary with alerts never falls back to the global notifier, even when none of its
/// alerts admits the event (as Flagger).
pub fn recipients(canary: &Canary, event: AlertSeverity) -> Recipients<'_> {
    let alerts = canary
        .analysis()
        .map(|a| a.alerts.as_slice())
        .unwrap_or_default();
    if alerts.is_empty() {
        return Recipients::Global;
    }
    let canary_namespace = canary.metadata.namespace.as_deref().unwrap_or_default();
    Recipients::Alerts(
        alerts
            .iter()
            .filter(|alert| receives(alert.severity, event))
            .map(|alert| AlertTarget {
                alert,
                provider_name: &alert.provider_ref.name,
                provider_namespace: alert
                    .provider_ref
                    .namespace
                    .as_deref()
                    .filter(|ns| !ns.is_empty())
                    .unwrap_or(canary_namespace),
            })
            .collect(),
    )
}

/// Whether a gate webhook's "waiting for approval" alerts are silenced (`muteAlert: true`).
///
/// The operator asks this before alerting `Canary is waiting for approval.`,
/// `Canary promotion is waiting for approval.` or `Canary traffic increase is waiting for
/// approval.` for that webhook.
pub fn alerts_muted_by(webhook: &CanaryWebhook) -> bool {
    webhook.mute_alert
}

#[cfg(test)]
mod tests {
    use super::*;
    use AlertSeverity::{Error, Info, Warn};
    use pretty_assertions::assert_eq;

    #[test]
    fn severity_table() {
        // (alert severity, event severity, delivered)
        let table = [
            (Some(Info), Info, true),
            (Some(Info), Warn, true),
            (Some(Info), Error, true),
            (Some(Warn), Info, false),
            (Some(Warn), Warn, true),
            (Some(Warn), Error, true),
            (Some(Error), Info, false),
            (Some(Error), Warn, false),
            (Some(Error), Error, true),
            // No severity: info (Flagger would deliver nothing).
            (None, Info, true),
            (None, Warn, true),
            (None, Error, true),
        ];
        for (alert, event, expected) in table {
            assert_eq!(
                receives(alert, event),
                expected,
                "alert {alert:?} event {event:?}"
            );
        }
    }

    fn canary(alerts: &str) -> Canary {
        fledge_api::yaml::from_str(&format!(
            r"
apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {{ name: podinfo, namespace: test }}
spec:
  targetRef: {{ apiVersion: apps/v1, kind: Deployment, name: podinfo }}
  service: {{ port: 9898 }}
  analysis:
    interval: 1m
    alerts: {alerts}
"
        ))
        .expect("canary")
    }

    const SEED_ALERTS: &str = r#"
      - name: "on-call Slack"
        severity: error
        providerRef: { name: on-call, namespace: flagger }
      - name: "qa Discord"
        severity: warn
        providerRef: { name: qa-discord }
      - name: "dev MS Teams"
        severity: info
        providerRef: { name: dev-msteams }
      - name: "unset severity"
        providerRef: { name: audit, namespace: "" }"#;

    fn names(recipients: &Recipients<'_>) -> Vec<String> {
        match recipients {
            Recipients::Global => vec!["<global>".to_owned()],
            Recipients::Alerts(targets) => targets
                .iter()
                .map(|t| format!("{}/{}", t.provider_namespace, t.provider_name))
                .collect(),
        }
    }

    #[test]
    fn seed_alerts_route_by_severity() {
        let canary = canary(SEED_ALERTS);
        assert_eq!(
            names(&recipients(&canary, Info)),
            ["test/dev-msteams", "test/audit"]
        );
        assert_eq!(
            names(&recipients(&canary, Warn)),
            ["test/qa-discord", "test/dev-msteams", "test/audit"]
        );
        assert_eq!(
            names(&recipients(&canary, Error)),
            [
                "flagger/on-call",
                "test/qa-discord",
                "test/dev-msteams",
                "test/audit"
            ]
        );
    }

    #[test]
    fn no_alerts_means_the_global_notifier() {
        assert_eq!(recipients(&canary("[]"), Error), Recipients::Global);
    }

    #[test]
    fn alerts_that_all_refuse_do_not_fall_back_to_global() {
        let canary = canary("[{name: pager, severity: error, providerRef: {name: pager}}]");
        assert_eq!(recipients(&canary, Info), Recipients::Alerts(vec![]));
    }

    #[test]
    fn mute_alert_silences_a_gate() {
        let hook: CanaryWebhook = fledge_api::yaml::from_str(
            "{name: gate, type: confirm-rollout, url: 'http://gate/', muteAlert: true}",
        )
        .expect("webhook");
        assert!(alerts_muted_by(&hook));
        let loud: CanaryWebhook =
            fledge_api::yaml::from_str("{name: gate, type: confirm-rollout, url: 'http://gate/'}")
                .expect("webhook");
        assert!(!alerts_muted_by(&loud));
    }
}
