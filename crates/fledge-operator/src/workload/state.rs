//! The rollout state of a Deployment or DaemonSet as the engine judges readiness from it
//! (Flagger's `isDeploymentReady` / `isDaemonSetReady` inputs).

use fledge_engine::{Timestamp, WorkloadState};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, DeploymentCondition};

use crate::workload::Workload;

/// The engine's view of `workload`'s rollout.
pub fn workload_state(workload: &Workload) -> WorkloadState {
    match workload {
        Workload::Deployment(deployment) => deployment_state(deployment),
        Workload::DaemonSet(daemon_set) => daemon_set_state(daemon_set),
    }
}

/// Replicas, updated and available pods, whether the controller saw the latest spec, and
/// the progress-deadline conditions of a Deployment.
pub fn deployment_state(deployment: &Deployment) -> WorkloadState {
    let status = deployment.status.clone().unwrap_or_default();
    let updated = non_negative(status.updated_replicas);
    let conditions = status.conditions.unwrap_or_default();
    let condition = |type_: &str| conditions.iter().find(|c| c.type_ == type_);
    let progressing = condition("Progressing");
    // Flagger only trusts the Available condition's timestamp once the controller reports
    // progress at all.
    let unavailable_since = progressing
        .and(condition("Available"))
        .filter(|c| {
            c.status == "False" && c.reason.as_deref() == Some("MinimumReplicasUnavailable")
        })
        .and_then(last_update);
    WorkloadState {
        // Without spec.replicas Flagger skips the "updated < desired" check; desired = updated does the same.
        desired_replicas: deployment
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .map_or(updated, |r| non_negative(Some(r))),
        replicas: non_negative(status.replicas),
        updated_replicas: updated,
        available_replicas: non_negative(status.available_replicas),
        generation_observed: deployment.metadata.generation.unwrap_or(0)
            <= status.observed_generation.unwrap_or(0),
        progress_deadline_exceeded: progressing
            .is_some_and(|c| c.reason.as_deref() == Some("ProgressDeadlineExceeded")),
        unavailable_since,
    }
}

/// The same view of a DaemonSet: desired and updated pods are scheduled daemons; there are no
/// "old replicas", and the progress deadline runs from the canary's last transition.
pub fn daemon_set_state(daemon_set: &DaemonSet) -> WorkloadState {
    let status = daemon_set.status.clone().unwrap_or_default();
    let updated = non_negative(status.updated_number_scheduled);
    WorkloadState {
        desired_replicas: non_negative(Some(status.desired_number_scheduled)),
        replicas: updated,
        updated_replicas: updated,
        available_replicas: non_negative(status.number_available),
        generation_observed: daemon_set.metadata.generation.unwrap_or(0)
            <= status.observed_generation.unwrap_or(0),
        progress_deadline_exceeded: false,
        unavailable_since: None,
    }
}

fn last_update(condition: &DeploymentCondition) -> Option<Timestamp> {
    condition.last_update_time.as_ref().map(|t| t.0)
}

fn non_negative(value: Option<i32>) -> u32 {
    u32::try_from(value.unwrap_or(0)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::{DaemonSetStatus, DeploymentSpec, DeploymentStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    use super::*;

    fn condition(type_: &str, status: &str, reason: &str, at: Timestamp) -> DeploymentCondition {
        DeploymentCondition {
            type_: type_.into(),
            status: status.into(),
            reason: Some(reason.into()),
            last_update_time: Some(Time(at)),
            ..DeploymentCondition::default()
        }
    }

    fn deployment(replicas: i32, status: DeploymentStatus) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                generation: Some(2),
                ..ObjectMeta::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                ..DeploymentSpec::default()
            }),
            status: Some(status),
        }
    }

    #[test]
    fn a_rolled_out_deployment_is_the_engines_ready_state() {
        let ready = deployment(
            2,
            DeploymentStatus {
                observed_generation: Some(2),
                replicas: Some(2),
                updated_replicas: Some(2),
                available_replicas: Some(2),
                ready_replicas: Some(2),
                ..DeploymentStatus::default()
            },
        );
        assert_eq!(deployment_state(&ready), WorkloadState::ready(2));
    }

    #[test]
    fn a_stuck_rollout_reports_since_when_and_the_deadline() {
        let since = Timestamp::from_second(1_000).unwrap_or(Timestamp::UNIX_EPOCH);
        let mut stuck = deployment(
            1,
            DeploymentStatus {
                observed_generation: Some(2),
                replicas: Some(1),
                updated_replicas: Some(1),
                conditions: Some(vec![
                    condition("Progressing", "True", "ReplicaSetUpdated", since),
                    condition("Available", "False", "MinimumReplicasUnavailable", since),
                ]),
                ..DeploymentStatus::default()
            },
        );
        let state = deployment_state(&stuck);
        assert_eq!(state, WorkloadState::rolling_out(1, 0, since));
        if let Some(status) = &mut stuck.status {
            status.conditions = Some(vec![condition(
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                since,
            )]);
        }
        let state = deployment_state(&stuck);
        assert!(state.progress_deadline_exceeded);
        assert_eq!(state.unavailable_since, None);
    }

    #[test]
    fn an_unobserved_generation_is_not_rolled_out() {
        let fresh = deployment(1, DeploymentStatus::default());
        assert!(!deployment_state(&fresh).generation_observed);
    }

    #[test]
    fn a_daemon_set_counts_scheduled_daemons() {
        let daemon_set = DaemonSet {
            metadata: ObjectMeta {
                generation: Some(1),
                ..ObjectMeta::default()
            },
            status: Some(DaemonSetStatus {
                observed_generation: Some(1),
                desired_number_scheduled: 3,
                updated_number_scheduled: Some(2),
                number_available: Some(2),
                ..DaemonSetStatus::default()
            }),
            ..DaemonSet::default()
        };
        let state = daemon_set_state(&daemon_set);
        assert_eq!(
            (
                state.desired_replicas,
                state.updated_replicas,
                state.available_replicas
            ),
            (3, 2, 2)
        );
        assert!(state.generation_observed);
    }
}
