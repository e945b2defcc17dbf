use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSetUpdateStrategy, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, TopologySpreadConstraint, Volume,
};
use pretty_assertions::assert_eq;

use super::*;
use crate::workload::config_tracking::{ConfigSources, referenced_configs};

fn map(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
    entries
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn canary() -> Canary {
    fledge_api::yaml::from_str(
        r"
apiVersion: flagger.app/v1beta1
kind: Canary
metadata: { name: podinfo, namespace: test, uid: 6b1c1f4e-uid }
spec:
  targetRef: { apiVersion: apps/v1, kind: Deployment, name: podinfo }
  service: { port: 9898 }
",
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn pod_template(image: &str) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(map(&[("app", "podinfo"), ("version", "6")])),
            annotations: Some(map(&[
                ("prometheus.io/scrape", "true"),
                (PROMOTION_ID_ANNOTATION, "stale"),
            ])),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "podinfod".into(),
                image: Some(image.into()),
                ..Container::default()
            }],
            volumes: Some(vec![Volume {
                name: "config".into(),
                config_map: Some(ConfigMapVolumeSource {
                    name: "podinfo-config".into(),
                    ..ConfigMapVolumeSource::default()
                }),
                ..Volume::default()
            }]),
            ..PodSpec::default()
        }),
    }
}

fn target_metadata() -> ObjectMeta {
    ObjectMeta {
        name: Some("podinfo".into()),
        namespace: Some("test".into()),
        labels: Some(map(&[
            ("app", "podinfo"),
            ("team", "checkout"),
            ("kustomize.toolkit.fluxcd.io/name", "apps"),
        ])),
        annotations: Some(map(&[
            ("team/owner", "ana"),
            ("deployment.kubernetes.io/revision", "3"),
        ])),
        ..ObjectMeta::default()
    }
}

fn deployment(image: &str, replicas: i32) -> Workload {
    Workload::Deployment(Deployment {
        metadata: target_metadata(),
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            progress_deadline_seconds: Some(60),
            revision_history_limit: Some(5),
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".into()),
                rolling_update: None,
            }),
            selector: LabelSelector {
                match_labels: Some(map(&[("app", "podinfo")])),
                match_expressions: None,
            },
            template: pod_template(image),
            ..DeploymentSpec::default()
        }),
        status: None,
    })
}

fn settings() -> WorkloadSettings {
    WorkloadSettings {
        include_label_prefixes: vec!["team".into()],
        ..WorkloadSettings::default()
    }
}

fn tracked() -> TrackedConfigs {
    let sources = ConfigSources::default().with_config_map(ConfigMap {
        metadata: ObjectMeta {
            name: Some("podinfo-config".into()),
            ..ObjectMeta::default()
        },
        data: Some(map(&[("color", "blue")])),
        ..ConfigMap::default()
    });
    let spec = pod_template("podinfo:6.0.0").spec.unwrap_or_default();
    TrackedConfigs::resolve("test", &referenced_configs(&spec), &sources)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn render(target: &Workload, replicas: i32) -> Deployment {
    match render_primary(&canary(), target, &tracked(), &settings(), replicas) {
        Ok(Workload::Deployment(primary)) => primary,
        other => panic!("a primary Deployment, got {other:?}"),
    }
}

#[test]
fn the_primary_selects_its_own_pods_and_belongs_to_the_canary() {
    let primary = render(&deployment("podinfo:6.0.0", 2), 2);
    assert_eq!(primary.metadata.name.as_deref(), Some("podinfo-primary"));
    assert_eq!(primary.metadata.namespace.as_deref(), Some("test"));
    assert_eq!(
        primary.metadata.labels,
        Some(map(&[("app", "podinfo-primary"), ("team", "checkout")]))
    );
    assert_eq!(
        primary.metadata.annotations,
        Some(map(&[("team/owner", "ana")]))
    );
    let owners = primary.metadata.owner_references.unwrap_or_default();
    assert_eq!(owners.len(), 1);
    assert_eq!(
        (
            owners[0].kind.as_str(),
            owners[0].name.as_str(),
            owners[0].uid.as_str(),
            owners[0].controller
        ),
        ("Canary", "podinfo", "6b1c1f4e-uid", Some(true))
    );
    let spec = primary.spec.unwrap_or_default();
    assert_eq!(
        spec.selector.match_labels,
        Some(map(&[("app", "podinfo-primary")]))
    );
    assert_eq!(spec.replicas, Some(2));
    assert_eq!(spec.progress_deadline_seconds, Some(60));
    assert_eq!(spec.revision_history_limit, Some(5));
    assert_eq!(
        spec.strategy.and_then(|s| s.type_).as_deref(),
        Some("Recreate")
    );
    let template = spec.template.metadata.unwrap_or_default();
    assert_eq!(
        template.labels,
        Some(map(&[("app", "podinfo-primary"), ("version", "6")]))
    );
    let annotations = template.annotations.unwrap_or_default();
    assert_eq!(
        annotations.get("prometheus.io/scrape").map(String::as_str),
        Some("true")
    );
    assert_ne!(
        annotations.get(PROMOTION_ID_ANNOTATION).map(String::as_str),
        Some("stale")
    );
}

#[test]
fn the_primary_pods_read_the_primary_copies_of_the_configs() {
    let primary = render(&deployment("podinfo:6.0.0", 1), 1);
    let volumes = primary
        .spec
        .unwrap_or_default()
        .template
        .spec
        .unwrap_or_default()
        .volumes
        .unwrap_or_default();
    assert_eq!(
        volumes[0].config_map.as_ref().map(|c| c.name.as_str()),
        Some("podinfo-config-primary")
    );
}

#[test]
fn the_same_revision_renders_the_same_primary_and_a_new_one_rolls_the_pods() {
    let first = render(&deployment("podinfo:6.0.0", 1), 1);
    assert_eq!(render(&deployment("podinfo:6.0.0", 1), 1), first);
    let id = |d: &Deployment| {
        d.spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.annotations.as_ref())
            .and_then(|a| a.get(PROMOTION_ID_ANNOTATION).cloned())
    };
    let promoted = render(&deployment("podinfo:6.0.1", 1), 1);
    assert_ne!(id(&promoted), id(&first));
    // A new config checksum alone also rolls the primary's pods.
    let changed = ConfigSources::default().with_config_map(ConfigMap {
        metadata: ObjectMeta {
            name: Some("podinfo-config".into()),
            ..ObjectMeta::default()
        },
        data: Some(map(&[("color", "green")])),
        ..ConfigMap::default()
    });
    let spec = pod_template("podinfo:6.0.0").spec.unwrap_or_default();
    let configs =
        TrackedConfigs::resolve("test", &referenced_configs(&spec), &changed).unwrap_or_default();
    let reconfigured = render_primary(
        &canary(),
        &deployment("podinfo:6.0.0", 1),
        &configs,
        &settings(),
        1,
    );
    let Ok(Workload::Deployment(reconfigured)) = reconfigured else {
        panic!("a Deployment");
    };
    assert_ne!(id(&reconfigured), id(&first));
}

#[test]
fn a_target_without_a_selector_label_is_refused_with_the_fix() {
    let mut target = deployment("podinfo:6.0.0", 1);
    if let Workload::Deployment(d) = &mut target
        && let Some(spec) = &mut d.spec
    {
        spec.selector.match_labels = Some(map(&[("component", "podinfo")]));
    }
    let error = render_primary(&canary(), &target, &tracked(), &settings(), 1)
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        error.as_deref(),
        Some(
            "Deployment test/podinfo: spec.selector.matchLabels must contain one of [\"app\", \"name\", \"app.kubernetes.io/name\"]; add one (e.g. `app: podinfo`) or set -selector-labels"
        )
    );
    let custom = WorkloadSettings {
        selector_labels: vec!["component".into()],
        ..settings()
    };
    assert!(render_primary(&canary(), &target, &tracked(), &custom, 1).is_ok());
}

#[test]
fn a_canary_not_read_from_a_server_has_no_uid_to_own_with() {
    let mut canary = canary();
    canary.metadata.uid = None;
    let error = render_primary(
        &canary,
        &deployment("podinfo:6.0.0", 1),
        &tracked(),
        &settings(),
        1,
    );
    assert!(matches!(
        error,
        Err(Error::CanaryMetadata { field: "uid", .. })
    ));
}

#[test]
fn spread_constraints_on_the_target_select_the_primary_pods() {
    let mut target = deployment("podinfo:6.0.0", 1);
    if let Workload::Deployment(d) = &mut target
        && let Some(pod) = d.spec.as_mut().and_then(|s| s.template.spec.as_mut())
    {
        pod.topology_spread_constraints = Some(vec![TopologySpreadConstraint {
            label_selector: Some(LabelSelector {
                match_labels: Some(map(&[("app", "podinfo"), ("tier", "podinfo")])),
                match_expressions: None,
            }),
            max_skew: 1,
            topology_key: "zone".into(),
            when_unsatisfiable: "DoNotSchedule".into(),
            ..TopologySpreadConstraint::default()
        }]);
    }
    let primary = render(&target, 1);
    let constraints = primary
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|p| p.topology_spread_constraints)
        .unwrap_or_default();
    assert_eq!(
        constraints[0]
            .label_selector
            .as_ref()
            .and_then(|s| s.match_labels.clone()),
        Some(map(&[("app", "podinfo-primary"), ("tier", "podinfo")]))
    );
}

#[test]
fn the_primary_runs_the_targets_replicas_but_never_zero_and_keeps_its_autoscalers_choice() {
    let target = deployment("podinfo:6.0.0", 3);
    let idle_target = deployment("podinfo:6.0.0", 0);
    let primary = Workload::Deployment(Deployment {
        spec: Some(DeploymentSpec {
            replicas: Some(5),
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    });
    assert_eq!(primary_replicas(&target, None, false), 3);
    assert_eq!(primary_replicas(&idle_target, None, false), 1);
    assert_eq!(primary_replicas(&idle_target, Some(&primary), false), 5);
    assert_eq!(primary_replicas(&target, Some(&primary), false), 3);
    assert_eq!(primary_replicas(&target, Some(&primary), true), 5);
    assert_eq!(primary_replicas(&target, None, true), 3);
}

fn daemon_set(strategy: Option<&str>) -> Workload {
    let mut template = pod_template("podinfo:6.0.0");
    if let Some(spec) = &mut template.spec {
        spec.node_selector = Some(map(&[
            (SCALE_TO_ZERO_NODE_SELECTOR.0, "true"),
            ("disk", "ssd"),
        ]));
    }
    Workload::DaemonSet(DaemonSet {
        metadata: target_metadata(),
        spec: Some(DaemonSetSpec {
            selector: LabelSelector {
                match_labels: Some(map(&[("app", "podinfo")])),
                match_expressions: None,
            },
            template,
            update_strategy: strategy.map(|s| DaemonSetUpdateStrategy {
                type_: Some(s.into()),
                rolling_update: None,
            }),
            ..DaemonSetSpec::default()
        }),
        status: None,
    })
}

#[test]
fn a_daemon_set_primary_runs_on_every_node_even_when_the_target_is_scaled_down() {
    let Ok(Workload::DaemonSet(primary)) = render_primary(
        &canary(),
        &daemon_set(Some("RollingUpdate")),
        &tracked(),
        &settings(),
        1,
    ) else {
        panic!("a DaemonSet");
    };
    assert_eq!(primary.metadata.name.as_deref(), Some("podinfo-primary"));
    let spec = primary.spec.unwrap_or_default();
    assert_eq!(
        spec.selector.match_labels,
        Some(map(&[("app", "podinfo-primary")]))
    );
    let pod = spec.template.spec.unwrap_or_default();
    assert_eq!(pod.node_selector, Some(map(&[("disk", "ssd")])));
}

#[test]
fn a_daemon_set_that_does_not_roll_is_refused() {
    let error = render_primary(
        &canary(),
        &daemon_set(Some("OnDelete")),
        &tracked(),
        &settings(),
        1,
    )
    .err()
    .map(|e| e.to_string());
    assert_eq!(
        error.as_deref(),
        Some(
            "DaemonSet test/podinfo: spec.updateStrategy.type must be RollingUpdate, got \"OnDelete\""
        )
    );
}
