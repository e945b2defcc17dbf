//! Whether a workload has finished rolling out, and whether it ran out of time to (Flagger's
//! `isDeploymentReady`, with the progress deadline that makes a never-ready canary roll back).
//! A workload with zero desired replicas has nothing that could serve: it is reported as
//! [`Readiness::ScaledToZero`], which the callers treat as not ready where it matters
//! (Flagger's `IsPrimaryReady` means to, but compares a pointer with a pointer).

use std::time::Duration;

use crate::observation::WorkloadState;
use crate::time::{Timestamp, elapsed};

/// The answer of a readiness check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Readiness {
    /// Rolled out, with enough available pods.
    Ready,
    /// Not rolled out yet.
    NotReady {
        /// `false` once the progress deadline has passed: the rollout is stuck.
        retriable: bool,
        /// Flagger's reason (`waiting for rollout to finish: ...`).
        reason: String,
    },
    /// Rolled out to zero desired replicas: nothing runs that could serve.
    ScaledToZero {
        /// `false` once the progress deadline (from `status.lastTransitionTime`) has passed.
        retriable: bool,
    },
}

/// How long a workload may take, and how much of it must be ready.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Expectation {
    /// `progressDeadlineSeconds`.
    pub deadline: Duration,
    /// Percentage of updated pods that must be available.
    pub ready_threshold: u32,
    /// When the canary last made progress (`status.lastTransitionTime`), used as the start
    /// of the deadline when the workload does not report since when it is unavailable.
    pub progress_since: Option<Timestamp>,
}

/// Judges a workload `name` (a Deployment's name, for the deadline message).
pub(crate) fn check(
    name: &str,
    state: &WorkloadState,
    expect: Expectation,
    now: Timestamp,
) -> Readiness {
    if !state.generation_observed {
        return Readiness::NotReady {
            retriable: true,
            reason: "waiting for rollout to finish: observed deployment generation less than desired generation"
                .to_owned(),
        };
    }
    if state.progress_deadline_exceeded {
        return Readiness::NotReady {
            retriable: false,
            reason: format!("deployment {name:?} exceeded its progress deadline"),
        };
    }
    // Flagger computes the ratio in float32 and truncates.
    let ratio = expect.ready_threshold as f32 / 100.0;
    let required = (state.updated_replicas as f32 * ratio) as u32;
    let reason = if state.updated_replicas < state.desired_replicas {
        format!(
            "waiting for rollout to finish: {} out of {} new replicas have been updated",
            state.updated_replicas, state.desired_replicas
        )
    } else if state.replicas > state.updated_replicas {
        format!(
            "waiting for rollout to finish: {} old replicas are pending termination",
            state.replicas - state.updated_replicas
        )
    } else if state.available_replicas < required {
        format!(
            "waiting for rollout to finish: {} of {} (readyThreshold {}%) updated replicas are available",
            state.available_replicas, required, expect.ready_threshold
        )
    } else if state.desired_replicas == 0 {
        // A Deployment at zero replicas reports itself available: no condition says since
        // when it runs nothing, so the deadline runs from the canary's last progress.
        let retriable = within_deadline(expect.progress_since, expect, now);
        return Readiness::ScaledToZero { retriable };
    } else {
        return Readiness::Ready;
    };
    let stuck_since = state.unavailable_since.or(expect.progress_since);
    let retriable = within_deadline(stuck_since, expect, now);
    Readiness::NotReady { retriable, reason }
}

fn within_deadline(since: Option<Timestamp>, expect: Expectation, now: Timestamp) -> bool {
    since.is_none_or(|since| elapsed(since, now) <= expect.deadline)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn expect() -> Expectation {
        Expectation {
            deadline: Duration::from_secs(60),
            ready_threshold: 100,
            progress_since: None,
        }
    }

    #[test]
    fn a_rolled_out_workload_is_ready() {
        assert_eq!(
            check("podinfo", &WorkloadState::ready(2), expect(), at(0)),
            Readiness::Ready
        );
    }

    #[test]
    fn unavailable_pods_wait_until_the_deadline_then_stop_being_retriable() {
        let state = WorkloadState::rolling_out(1, 0, at(0));
        let waiting = check("podinfo", &state, expect(), at(60));
        assert_eq!(
            waiting,
            Readiness::NotReady {
                retriable: true,
                reason: "waiting for rollout to finish: 0 of 1 (readyThreshold 100%) updated replicas are available".into()
            }
        );
        let stuck = check("podinfo", &state, expect(), at(61));
        assert!(matches!(
            stuck,
            Readiness::NotReady {
                retriable: false,
                ..
            }
        ));
    }

    #[test]
    fn without_a_condition_the_deadline_runs_from_the_last_progress() {
        let mut state = WorkloadState::rolling_out(1, 0, at(0));
        state.unavailable_since = None;
        let expect = Expectation {
            progress_since: Some(at(100)),
            ..expect()
        };
        assert!(matches!(
            check("podinfo", &state, expect, at(150)),
            Readiness::NotReady {
                retriable: true,
                ..
            }
        ));
        assert!(matches!(
            check("podinfo", &state, expect, at(161)),
            Readiness::NotReady {
                retriable: false,
                ..
            }
        ));
    }

    #[test]
    fn a_lower_ready_threshold_accepts_partial_availability() {
        let state = WorkloadState::rolling_out(4, 2, at(0));
        let half = Expectation {
            ready_threshold: 50,
            ..expect()
        };
        assert_eq!(check("podinfo", &state, half, at(1)), Readiness::Ready);
    }

    #[test]
    fn zero_desired_replicas_is_no_rollout_to_wait_for_but_nothing_that_serves() {
        let zero = WorkloadState::scaled_to_zero();
        let expect = Expectation {
            progress_since: Some(at(0)),
            ..expect()
        };
        assert_eq!(
            check("podinfo-primary", &zero, expect, at(60)),
            Readiness::ScaledToZero { retriable: true }
        );
        assert_eq!(
            check("podinfo-primary", &zero, expect, at(61)),
            Readiness::ScaledToZero { retriable: false }
        );
        let mut terminating = zero;
        terminating.replicas = 1;
        assert!(
            matches!(
                check("podinfo-primary", &terminating, expect, at(1)),
                Readiness::NotReady { reason, .. } if reason.ends_with("1 old replicas are pending termination")
            ),
            "pods still terminating are reported first, as Flagger orders its checks"
        );
    }

    #[test]
    fn the_deployment_controllers_own_deadline_is_final() {
        let mut state = WorkloadState::rolling_out(1, 0, at(0));
        state.progress_deadline_exceeded = true;
        assert_eq!(
            check("podinfo", &state, expect(), at(1)),
            Readiness::NotReady {
                retriable: false,
                reason: "deployment \"podinfo\" exceeded its progress deadline".into()
            }
        );
    }
}
