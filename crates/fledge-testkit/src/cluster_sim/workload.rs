//! The status the deployment and daemonset controllers (and kubelet) would write — as pure
//! functions of the spec, the time since the spec changed, and the settings.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetStatus, Deployment, DeploymentCondition, DeploymentStatus,
};
use k8s_openapi::api::core::v1::PodTemplateSpec;

/// The pod-template env var that keeps a workload from ever becoming ready (`"false"`).
pub const READY_ENV: &str = "FLEDGE_SIM_READY";

/// Kubernetes' default `progressDeadlineSeconds`.
const DEFAULT_PROGRESS_DEADLINE: i32 = 600;

/// Whether the pod template asks never to become ready (`FLEDGE_SIM_READY=false` on a container).
pub fn never_ready(template: &PodTemplateSpec) -> bool {
    template
        .spec
        .iter()
        .flat_map(|spec| &spec.containers)
        .flat_map(|c| c.env.iter().flatten())
        .any(|env| {
            env.name == READY_ENV
                && env
                    .value
                    .as_deref()
                    .is_some_and(|v| v.eq_ignore_ascii_case("false"))
        })
}

/// The status of a Deployment whose current generation was first seen `elapsed` ago.
///
/// Pods become ready `ready_delay` after the spec changed, unless the template says
/// [`READY_ENV`]`=false`; then, after `spec.progressDeadlineSeconds`, the Progressing
/// condition turns False with reason `ProgressDeadlineExceeded`. Condition times are left
/// empty: the caller keeps the stored ones when a condition did not change.
pub fn deployment_status(
    deployment: &Deployment,
    elapsed: Duration,
    ready_delay: Duration,
) -> DeploymentStatus {
    rollout_status(deployment, elapsed, ready_delay, false)
}

/// [`deployment_status`], where `held` makes the current generation's pods never ready (as
/// [`READY_ENV`]`=false` does), whatever the template says: a rollout broken by something
/// outside the pod template (a node pool, a quota).
pub fn rollout_status(
    deployment: &Deployment,
    elapsed: Duration,
    ready_delay: Duration,
    held: bool,
) -> DeploymentStatus {
    let generation = deployment.metadata.generation;
    let Some(spec) = &deployment.spec else {
        return DeploymentStatus {
            observed_generation: generation,
            ..DeploymentStatus::default()
        };
    };
    let name = deployment.metadata.name.as_deref().unwrap_or_default();
    let replicas = spec.replicas.unwrap_or(1);
    let deadline = Duration::from_secs(u64::from(
        spec.progress_deadline_seconds
            .unwrap_or(DEFAULT_PROGRESS_DEADLINE)
            .max(0) as u32,
    ));
    let ready = replicas == 0 || (elapsed >= ready_delay && !held && !never_ready(&spec.template));
    // A rolling update: until the new pods are ready, the old ones keep serving (as many as
    // are still wanted) and none counts as updated.
    let serving_before = deployment
        .status
        .as_ref()
        .filter(|s| s.observed_generation.is_some())
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
        .clamp(0, replicas);
    let (ready_replicas, updated_replicas) = if ready {
        (replicas, replicas)
    } else {
        (serving_before, 0)
    };
    let replica_set = format!("{name}-{}", template_hash(&spec.template));
    let progressing = if ready {
        condition(
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            format!("ReplicaSet \"{replica_set}\" has successfully progressed."),
        )
    } else if elapsed >= deadline {
        condition(
            "Progressing",
            "False",
            "ProgressDeadlineExceeded",
            format!("ReplicaSet \"{replica_set}\" has timed out progressing."),
        )
    } else {
        condition(
            "Progressing",
            "True",
            "ReplicaSetUpdated",
            format!("ReplicaSet \"{replica_set}\" is progressing."),
        )
    };
    let available = if ready || ready_replicas > 0 {
        condition(
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.".to_owned(),
        )
    } else {
        condition(
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.".to_owned(),
        )
    };
    DeploymentStatus {
        observed_generation: generation,
        replicas: Some(replicas),
        updated_replicas: Some(updated_replicas),
        ready_replicas: Some(ready_replicas),
        available_replicas: Some(ready_replicas),
        unavailable_replicas: Some(replicas - ready_replicas),
        conditions: Some(vec![available, progressing]),
        ..DeploymentStatus::default()
    }
}

/// The status of a DaemonSet on a simulated single-node cluster (a non-empty nodeSelector
/// matches no node, which is how Flagger scales a DaemonSet to zero).
pub fn daemonset_status(
    daemonset: &DaemonSet,
    elapsed: Duration,
    ready_delay: Duration,
) -> DaemonSetStatus {
    let generation = daemonset.metadata.generation;
    let Some(spec) = &daemonset.spec else {
        return DaemonSetStatus {
            observed_generation: generation,
            ..DaemonSetStatus::default()
        };
    };
    let selects_node = spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.node_selector.as_ref())
        .is_none_or(std::collections::BTreeMap::is_empty);
    let desired = i32::from(selects_node);
    let ready = desired == 0 || (elapsed >= ready_delay && !never_ready(&spec.template));
    let ready_count = if ready { desired } else { 0 };
    DaemonSetStatus {
        observed_generation: generation,
        desired_number_scheduled: desired,
        current_number_scheduled: desired,
        updated_number_scheduled: Some(desired),
        number_ready: ready_count,
        number_available: Some(ready_count),
        number_unavailable: Some(desired - ready_count),
        number_misscheduled: 0,
        ..DaemonSetStatus::default()
    }
}

/// Whether two deployment statuses say the same thing (condition times aside; the API
/// server stores a zero count as an absent field, so absent equals zero).
pub fn same_deployment_status(a: &DeploymentStatus, b: &DeploymentStatus) -> bool {
    let key = |s: &DeploymentStatus| {
        let conditions: Vec<(String, String, Option<String>)> = s
            .conditions
            .iter()
            .flatten()
            .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone()))
            .collect();
        let counts = [
            s.replicas,
            s.updated_replicas,
            s.ready_replicas,
            s.available_replicas,
            s.unavailable_replicas,
        ]
        .map(|c| c.unwrap_or(0));
        (s.observed_generation, counts, conditions)
    };
    key(a) == key(b)
}

/// Whether two daemonset statuses say the same thing (absent counts equal zero).
pub fn same_daemonset_status(a: &DaemonSetStatus, b: &DaemonSetStatus) -> bool {
    let key = |s: &DaemonSetStatus| {
        let optional = [
            s.updated_number_scheduled,
            s.number_available,
            s.number_unavailable,
        ]
        .map(|c| c.unwrap_or(0));
        (
            s.observed_generation,
            s.desired_number_scheduled,
            s.current_number_scheduled,
            s.number_ready,
            s.number_misscheduled,
            optional,
        )
    };
    key(a) == key(b)
}

/// Stamps condition times: kept from `previous` when type and status are unchanged, `now` otherwise.
pub fn stamp_conditions(
    status: &mut DeploymentStatus,
    previous: Option<&DeploymentStatus>,
    now: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
) {
    for c in status.conditions.iter_mut().flatten() {
        let before = previous
            .and_then(|p| p.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|p| p.type_ == c.type_));
        match before {
            Some(b) if b.status == c.status => {
                c.last_transition_time =
                    b.last_transition_time.clone().or_else(|| Some(now.clone()));
            }
            _ => c.last_transition_time = Some(now.clone()),
        }
        c.last_update_time = Some(now.clone());
    }
}

fn condition(type_: &str, status: &str, reason: &str, message: String) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(message),
        ..DeploymentCondition::default()
    }
}

/// A short stable hash of the pod template, like a ReplicaSet's pod-template-hash.
fn template_hash(template: &PodTemplateSpec) -> String {
    let text = serde_json::to_string(template).unwrap_or_default();
    // FNV-1a: stable across runs and platforms, unlike std's RandomState.
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{:x}", hash & 0xff_ffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(replicas: i32, env_ready: Option<&str>, deadline: Option<i32>) -> Deployment {
        let env = env_ready
            .map(|v| format!(r#","env":[{{"name":"FLEDGE_SIM_READY","value":"{v}"}}]"#))
            .unwrap_or_default();
        let deadline = deadline
            .map(|d| format!(r#","progressDeadlineSeconds":{d}"#))
            .unwrap_or_default();
        serde_json::from_str(&format!(
            r#"{{"metadata":{{"name":"podinfo","generation":3}},"spec":{{"replicas":{replicas}{deadline},
            "selector":{{"matchLabels":{{"app":"podinfo"}}}},
            "template":{{"spec":{{"containers":[{{"name":"app","image":"podinfo"{env}}}]}}}}}}}}"#
        ))
        .expect("valid deployment")
    }

    fn reason(status: &DeploymentStatus, type_: &str) -> String {
        let c = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == type_)
            .expect("condition present");
        format!("{}/{}", c.status, c.reason.clone().unwrap_or_default())
    }

    #[test]
    fn pods_become_ready_after_the_delay() {
        let d = deployment(2, None, None);
        let before = deployment_status(&d, Duration::from_millis(100), Duration::from_secs(1));
        assert_eq!(
            (
                before.observed_generation,
                before.updated_replicas,
                before.available_replicas
            ),
            (Some(3), Some(0), Some(0))
        );
        assert_eq!(reason(&before, "Progressing"), "True/ReplicaSetUpdated");
        let after = deployment_status(&d, Duration::from_secs(1), Duration::from_secs(1));
        assert_eq!(
            (
                after.ready_replicas,
                after.available_replicas,
                after.unavailable_replicas
            ),
            (Some(2), Some(2), Some(0))
        );
        assert_eq!(reason(&after, "Progressing"), "True/NewReplicaSetAvailable");
        assert_eq!(reason(&after, "Available"), "True/MinimumReplicasAvailable");
    }

    #[test]
    fn a_template_that_never_gets_ready_exceeds_its_progress_deadline() {
        let d = deployment(1, Some("false"), Some(5));
        let early = deployment_status(&d, Duration::from_secs(4), Duration::ZERO);
        assert_eq!(reason(&early, "Progressing"), "True/ReplicaSetUpdated");
        let late = deployment_status(&d, Duration::from_secs(5), Duration::ZERO);
        assert_eq!(
            reason(&late, "Progressing"),
            "False/ProgressDeadlineExceeded"
        );
        assert_eq!(
            reason(&late, "Available"),
            "False/MinimumReplicasUnavailable"
        );
        assert_eq!(late.available_replicas, Some(0));
    }

    #[test]
    fn scaled_to_zero_is_immediately_complete() {
        let status = deployment_status(
            &deployment(0, Some("false"), None),
            Duration::ZERO,
            Duration::from_secs(9),
        );
        assert_eq!(
            (status.replicas, status.available_replicas),
            (Some(0), Some(0))
        );
        assert_eq!(
            reason(&status, "Available"),
            "True/MinimumReplicasAvailable"
        );
    }

    #[test]
    fn condition_times_survive_unchanged_conditions() {
        let d = deployment(1, None, None);
        let t0 = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::from_second(1_000).expect("time"),
        );
        let t1 = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::from_second(2_000).expect("time"),
        );
        let mut first = deployment_status(&d, Duration::ZERO, Duration::from_secs(1));
        stamp_conditions(&mut first, None, &t0);
        let mut second = deployment_status(&d, Duration::from_secs(2), Duration::from_secs(1));
        assert!(!same_deployment_status(&first, &second));
        stamp_conditions(&mut second, Some(&first), &t1);
        let available = second
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Available")
            .expect("available");
        assert_eq!(
            available.last_transition_time,
            Some(t1.clone()),
            "False -> True is a transition"
        );
        let mut third = deployment_status(&d, Duration::from_secs(3), Duration::from_secs(1));
        assert!(same_deployment_status(&second, &third));
        stamp_conditions(&mut third, Some(&second), &t1);
        assert_eq!(third.conditions, second.conditions);
    }

    #[test]
    fn daemonset_with_node_selector_schedules_nowhere() {
        let ds: DaemonSet = serde_json::from_str(
            r#"{"metadata":{"name":"agent","generation":2},"spec":{"selector":{},"template":{"spec":{
               "nodeSelector":{"flagger.app/scale-to-zero":"true"},"containers":[{"name":"a"}]}}}}"#,
        )
        .expect("valid daemonset");
        let status = daemonset_status(&ds, Duration::ZERO, Duration::from_secs(1));
        assert_eq!(
            (
                status.desired_number_scheduled,
                status.number_ready,
                status.observed_generation
            ),
            (0, 0, Some(2))
        );
    }
}
