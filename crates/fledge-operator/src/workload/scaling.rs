//! Scaling the target to and from zero, as Flagger does: a Deployment through
//! `spec.replicas`, a DaemonSet through a node selector that matches no node.

use serde_json::json;

use crate::workload::Workload;

/// The node selector that keeps a DaemonSet's pods off every node.
pub const SCALE_TO_ZERO_NODE_SELECTOR: (&str, &str) = ("flagger.app/scale-to-zero", "true");

/// The write that scales a target.
#[derive(Clone, Debug, PartialEq)]
pub enum ScaleChange {
    /// The target is already there.
    None,
    /// Server-side apply this partial object (Fledge then owns only these fields).
    Apply(serde_json::Value),
    /// JSON merge patch that deletes the scale-to-zero node selector, whoever set it
    /// (Flagger used an update, so a target taken over from Flagger carries it unowned).
    MergePatch(serde_json::Value),
}

/// The change that runs `target` with `replicas` (a DaemonSet knows only zero and "every node").
pub fn scale(target: &Workload, replicas: u32) -> ScaleChange {
    let (key, value) = SCALE_TO_ZERO_NODE_SELECTOR;
    match target {
        Workload::Deployment(deployment) => {
            let current = deployment.spec.as_ref().and_then(|s| s.replicas);
            let replicas = i32::try_from(replicas).unwrap_or(i32::MAX);
            if current == Some(replicas) {
                return ScaleChange::None;
            }
            ScaleChange::Apply(json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": { "name": target.name(), "namespace": target.namespace() },
                "spec": { "replicas": replicas },
            }))
        }
        Workload::DaemonSet(_) => {
            let scaled_down = target
                .template()
                .and_then(|t| t.spec.as_ref())
                .and_then(|s| s.node_selector.as_ref())
                .and_then(|n| n.get(key))
                .is_some_and(|v| v == value);
            match (replicas, scaled_down) {
                (0, true) | (1.., false) => ScaleChange::None,
                (0, false) => ScaleChange::Apply(json!({
                    "apiVersion": "apps/v1",
                    "kind": "DaemonSet",
                    "metadata": { "name": target.name(), "namespace": target.namespace() },
                    "spec": { "template": { "spec": { "nodeSelector": { key: value } } } },
                })),
                (1.., true) => ScaleChange::MergePatch(json!({
                    "spec": { "template": { "spec": { "nodeSelector": { key: null } } } },
                })),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetSpec, Deployment, DeploymentSpec};
    use k8s_openapi::api::core::v1::{PodSpec, PodTemplateSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn meta() -> ObjectMeta {
        ObjectMeta {
            name: Some("podinfo".into()),
            namespace: Some("test".into()),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn a_deployment_scales_through_its_replicas_and_only_when_they_differ() {
        let target = Workload::Deployment(Deployment {
            metadata: meta(),
            spec: Some(DeploymentSpec {
                replicas: Some(2),
                ..DeploymentSpec::default()
            }),
            status: None,
        });
        assert_eq!(scale(&target, 2), ScaleChange::None);
        let ScaleChange::Apply(body) = scale(&target, 0) else {
            panic!("an apply");
        };
        assert_eq!(body["spec"], json!({ "replicas": 0 }));
        assert_eq!(body["metadata"]["name"], "podinfo");
    }

    #[test]
    fn a_daemon_set_scales_to_zero_by_a_node_selector_that_matches_no_node() {
        let daemon_set = |selector: Option<(&str, &str)>| {
            Workload::DaemonSet(DaemonSet {
                metadata: meta(),
                spec: Some(DaemonSetSpec {
                    template: PodTemplateSpec {
                        metadata: None,
                        spec: Some(PodSpec {
                            node_selector: selector
                                .map(|(k, v)| [(k.to_owned(), v.to_owned())].into()),
                            ..PodSpec::default()
                        }),
                    },
                    ..DaemonSetSpec::default()
                }),
                status: None,
            })
        };
        let running = daemon_set(None);
        let ScaleChange::Apply(body) = scale(&running, 0) else {
            panic!("an apply");
        };
        assert_eq!(
            body["spec"]["template"]["spec"]["nodeSelector"],
            json!({ "flagger.app/scale-to-zero": "true" })
        );
        assert_eq!(scale(&running, 3), ScaleChange::None);
        let stopped = daemon_set(Some(SCALE_TO_ZERO_NODE_SELECTOR));
        assert_eq!(scale(&stopped, 0), ScaleChange::None);
        assert_eq!(
            scale(&stopped, 1),
            ScaleChange::MergePatch(json!({
                "spec": { "template": { "spec": { "nodeSelector": { "flagger.app/scale-to-zero": null } } } }
            }))
        );
    }
}
