//! What is said: the message of a canary event, its severity and the facts shown with it.

use fledge_api::Canary;
use fledge_api::canary::AlertSeverity;
use fledge_api::strategy::Strategy;
use serde::Serialize;

/// One canary event, ready to be rendered by any notifier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    /// Name of the canary (and of its target workload).
    pub workload: String,
    /// Namespace of the canary.
    pub namespace: String,
    /// The event's message, Flagger's words (`Canary analysis completed successfully, promotion finished.`).
    pub message: String,
    /// Facts shown under the message, in order.
    pub fields: Vec<Field>,
    /// How serious the event is; decides colour and which alerts receive it.
    pub severity: AlertSeverity,
}

/// A named fact shown with a notification (`Cluster: prod-eu`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Field {
    /// The fact's label.
    pub name: String,
    /// The fact's value.
    pub value: String,
}

impl Field {
    /// A fact with a label and a value.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }
}

impl Notification {
    /// A notification without facts.
    pub fn new(
        workload: impl Into<String>,
        namespace: impl Into<String>,
        message: impl Into<String>,
        severity: AlertSeverity,
    ) -> Self {
        Self {
            workload: workload.into(),
            namespace: namespace.into(),
            message: message.into(),
            fields: Vec::new(),
            severity,
        }
    }

    /// A notification about `canary`, named after it.
    pub fn for_canary(
        canary: &Canary,
        message: impl Into<String>,
        severity: AlertSeverity,
    ) -> Self {
        Self::new(
            canary.metadata.name.clone().unwrap_or_default(),
            canary.metadata.namespace.clone().unwrap_or_default(),
            message,
            severity,
        )
    }

    /// `workload.namespace`, the way every service shows the canary.
    pub fn subject(&self) -> String {
        format!("{}.{}", self.workload, self.namespace)
    }

    /// Appends a fact.
    pub fn with_field(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.fields.push(Field::new(name, value));
        self
    }

    /// Appends the `Cluster` fact (the operator's `-cluster-name`); nothing when empty.
    ///
    /// Flagger shows it first, so call this before [`Self::with_canary_metadata`].
    pub fn with_cluster(self, cluster_name: &str) -> Self {
        if cluster_name.is_empty() {
            self
        } else {
            self.with_field("Cluster", cluster_name)
        }
    }

    /// Appends the facts Flagger shows when a canary is initialised or a new revision is
    /// detected: target, failed checks threshold, progress deadline and traffic routing.
    ///
    /// `default_provider` is the operator's `-mesh-provider`, which decides the strategy of
    /// a canary whose spec names no provider.
    pub fn with_canary_metadata(mut self, canary: &Canary, default_provider: Option<&str>) -> Self {
        let spec = &canary.spec;
        let resolved = spec.resolved(default_provider);
        let kind = spec.target_ref.kind.as_deref().unwrap_or("Deployment");
        let namespace = canary.metadata.namespace.as_deref().unwrap_or_default();
        self.fields.push(Field::new(
            "Target",
            format!("{kind}/{}.{namespace}", spec.target_ref.name),
        ));
        self.fields.push(Field::new(
            "Failed checks threshold",
            resolved.threshold.to_string(),
        ));
        self.fields.push(Field::new(
            "Progress deadline",
            format!("{}s", resolved.progress_deadline.as_secs()),
        ));
        let routing = match resolved.strategy {
            Strategy::AbTesting => Some("A/B Testing".to_owned()),
            Strategy::BlueGreen | Strategy::BlueGreenMirroring => Some("Blue/Green".to_owned()),
            Strategy::Canary if resolved.step_weight > 0 => Some(format!(
                "Weight step: {} max: {}",
                resolved.step_weight, resolved.max_weight
            )),
            Strategy::Canary if !resolved.step_weights.is_empty() => {
                let steps: Vec<String> = resolved.step_weights.iter().map(u32::to_string).collect();
                Some(format!(
                    "Weight steps: {} max: {}",
                    steps.join(","),
                    resolved.max_weight
                ))
            }
            Strategy::Canary => None,
        };
        if let Some(routing) = routing {
            self.fields.push(Field::new("Traffic routing", routing));
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn canary(yaml: &str) -> Canary {
        fledge_api::yaml::from_str(yaml).expect("canary manifest")
    }

    const CANARY: &str = r"
apiVersion: flagger.app/v1beta1
kind: Canary
metadata: { name: podinfo, namespace: test }
spec:
  provider: istio
  progressDeadlineSeconds: 60
  targetRef: { apiVersion: apps/v1, kind: Deployment, name: podinfo }
  service: { port: 9898 }
  analysis: { interval: 1m, threshold: 10, maxWeight: 50, stepWeight: 5 }
";

    #[test]
    fn canary_metadata_reads_like_flagger() {
        let canary = canary(CANARY);
        let n = Notification::for_canary(
            &canary,
            "New revision detected, progressing canary analysis.",
            AlertSeverity::Info,
        )
        .with_cluster("prod-eu")
        .with_canary_metadata(&canary, None);
        assert_eq!(n.subject(), "podinfo.test");
        assert_eq!(
            n.fields,
            vec![
                Field::new("Cluster", "prod-eu"),
                Field::new("Target", "Deployment/podinfo.test"),
                Field::new("Failed checks threshold", "10"),
                Field::new("Progress deadline", "60s"),
                Field::new("Traffic routing", "Weight step: 5 max: 50"),
            ]
        );
    }

    #[test]
    fn strategies_name_their_routing() {
        let ab = canary(&CANARY.replace(
            "maxWeight: 50, stepWeight: 5",
            "iterations: 10, match: [{headers: {x-canary: {exact: insider}}}]",
        ));
        let bg = canary(&CANARY.replace("maxWeight: 50, stepWeight: 5", "iterations: 10"));
        let steps =
            canary(&CANARY.replace("maxWeight: 50, stepWeight: 5", "stepWeights: [1, 10, 40]"));
        let routing = |c: &Canary| {
            Notification::new("a", "b", "m", AlertSeverity::Info)
                .with_canary_metadata(c, None)
                .fields
                .last()
                .map(|f| f.value.clone())
        };
        assert_eq!(routing(&ab).as_deref(), Some("A/B Testing"));
        assert_eq!(routing(&bg).as_deref(), Some("Blue/Green"));
        assert_eq!(
            routing(&steps).as_deref(),
            Some("Weight steps: 1,10,40 max: 40")
        );
    }

    #[test]
    fn empty_cluster_name_adds_nothing() {
        let n = Notification::new("podinfo", "test", "m", AlertSeverity::Warn).with_cluster("");
        assert!(n.fields.is_empty());
    }
}
