//! How the status is written, as Flagger's `SyncStatus`, `SetStatusPhase` and
//! `SetStatus{Weight,Iterations,FailedChecks}` write it, including the `Promoted` condition,
//! and Fledge's own `PrimaryReady` condition. Conditions of other types (the operator's
//! `Valid`) are kept as they are.

use fledge_api::canary::{CanaryCondition, ConditionStatus};
use fledge_api::{CanaryPhase, CanaryStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::observation::Revision;
use crate::time::Timestamp;

/// The name of the condition Flagger maintains.
pub const PROMOTED: &str = "Promoted";

/// The condition Fledge adds while the primary is not ready (Initializing, or an analysis
/// halted on it): status `False`, reason [`PRIMARY_NOT_READY`], the warning as its message.
/// Removed once the primary is ready.
pub const PRIMARY_READY: &str = "PrimaryReady";

/// The reason of the [`PRIMARY_READY`] condition.
pub const PRIMARY_NOT_READY: &str = "NotReady";

/// Counters written together by a sync.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    pub weight: u32,
    pub failed_checks: u32,
    pub iterations: u32,
}

/// Flagger's `SyncStatus`: phase and counters, and the revision acted on
/// (`lastAppliedSpec`, `trackedConfigs`; `lastPromotedSpec` too when initialising).
pub(crate) fn sync(
    status: &mut CanaryStatus,
    phase: CanaryPhase,
    counters: Counters,
    revision: &Revision,
    target_kind: &str,
    now: Timestamp,
) {
    status.phase = phase;
    status.canary_weight = as_i32(counters.weight);
    status.failed_checks = as_i32(counters.failed_checks);
    status.iterations = as_i32(counters.iterations);
    status.last_applied_spec = Some(revision.spec_hash.clone());
    if phase == CanaryPhase::Initialized {
        status.last_promoted_spec = Some(revision.spec_hash.clone());
    }
    status.tracked_configs = (!revision.configs.is_empty()).then(|| revision.configs.clone());
    status.last_transition_time = Some(Time(now));
    update_condition(status, phase, target_kind, now);
}

/// Flagger's `SetStatusPhase`: leaving the analysing phases clears the weight and the
/// iterations (WaitingPromotion keeps `iterations - 1`); Initialized and Succeeded record the
/// applied revision as promoted; the `Promoted` condition follows the phase. Public for an
/// operator that ends a rollout outside a plan (a spec that turned invalid mid-rollout).
pub fn set_phase(
    status: &mut CanaryStatus,
    phase: CanaryPhase,
    total_iterations: u32,
    target_kind: &str,
    now: Timestamp,
) {
    status.phase = phase;
    status.last_transition_time = Some(Time(now));
    if !matches!(
        phase,
        CanaryPhase::Progressing | CanaryPhase::Waiting | CanaryPhase::Promoting
    ) {
        status.canary_weight = 0;
        status.iterations = 0;
        if phase == CanaryPhase::WaitingPromotion {
            // Flagger writes iterations - 1, which is -1 for a weight-based canary; 0 says the same.
            status.iterations = as_i32(total_iterations.saturating_sub(1));
        }
    }
    if matches!(phase, CanaryPhase::Initialized | CanaryPhase::Succeeded) {
        status
            .last_promoted_spec
            .clone_from(&status.last_applied_spec);
    }
    update_condition(status, phase, target_kind, now);
}

/// Writes one counter (Flagger's `SetStatusWeight` and friends also stamp the time).
pub(crate) fn touch(status: &mut CanaryStatus, now: Timestamp) {
    status.last_transition_time = Some(Time(now));
}

/// `u32` → `i32` for status counters, which never exceed 100 or `iterations`.
pub(crate) fn as_i32(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

/// The `Promoted` condition for `phase`, replaced only when its status or reason changes.
fn update_condition(status: &mut CanaryStatus, phase: CanaryPhase, kind: &str, now: Timestamp) {
    let (truth, message) = match phase {
        CanaryPhase::Initialized => (
            ConditionStatus::True,
            format!("{kind} initialization completed."),
        ),
        CanaryPhase::Waiting | CanaryPhase::WaitingPromotion => {
            (ConditionStatus::Unknown, "Waiting for approval.".to_owned())
        }
        CanaryPhase::Progressing => (
            ConditionStatus::Unknown,
            "New revision detected, progressing canary analysis.".to_owned(),
        ),
        CanaryPhase::Promoting => (
            ConditionStatus::Unknown,
            "Canary analysis completed, starting primary rolling update.".to_owned(),
        ),
        CanaryPhase::Finalising => (
            ConditionStatus::Unknown,
            "Canary analysis completed, routing all traffic to primary.".to_owned(),
        ),
        CanaryPhase::Succeeded => (
            ConditionStatus::True,
            "Canary analysis completed successfully, promotion finished.".to_owned(),
        ),
        CanaryPhase::Failed => (
            ConditionStatus::False,
            format!("Canary analysis failed, {kind} scaled to zero."),
        ),
        CanaryPhase::Initializing | CanaryPhase::Terminating | CanaryPhase::Terminated => (
            ConditionStatus::Unknown,
            format!("New {kind} detected, starting initialization."),
        ),
    };
    let reason = phase.as_str();
    let current = status.conditions.iter().find(|c| c.type_ == PROMOTED);
    if current.is_some_and(|c| c.status == truth && c.reason.as_deref() == Some(reason)) {
        return;
    }
    let transition = match current {
        Some(c) if c.status == truth => c.last_transition_time.clone(),
        _ => Some(Time(now)),
    };
    put_condition(
        status,
        CanaryCondition {
            type_: PROMOTED.to_owned(),
            status: truth,
            last_update_time: Some(Time(now)),
            last_transition_time: transition,
            reason: Some(reason.to_owned()),
            message: Some(message),
        },
    );
}

/// Records that the primary is not ready, saying why; the transition time stays that of
/// the first tick that found it not ready.
pub(crate) fn primary_not_ready(status: &mut CanaryStatus, message: &str, now: Timestamp) {
    let current = status.conditions.iter().find(|c| c.type_ == PRIMARY_READY);
    if current.is_some_and(|c| c.message.as_deref() == Some(message)) {
        return;
    }
    let transition = current
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    put_condition(
        status,
        CanaryCondition {
            type_: PRIMARY_READY.to_owned(),
            status: ConditionStatus::False,
            last_update_time: Some(Time(now)),
            last_transition_time: Some(transition),
            reason: Some(PRIMARY_NOT_READY.to_owned()),
            message: Some(message.to_owned()),
        },
    );
}

/// Removes the [`PRIMARY_READY`] condition: the primary is ready.
pub(crate) fn primary_ready(status: &mut CanaryStatus) {
    status.conditions.retain(|c| c.type_ != PRIMARY_READY);
}

/// Replaces the condition of the same type in place, or appends it.
fn put_condition(status: &mut CanaryStatus, condition: CanaryCondition) {
    match status
        .conditions
        .iter_mut()
        .find(|c| c.type_ == condition.type_)
    {
        Some(slot) => *slot = condition,
        None => status.conditions.push(condition),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn the_promoted_condition_leaves_conditions_of_other_types_alone() {
        let valid = CanaryCondition {
            type_: "Valid".to_owned(),
            status: ConditionStatus::True,
            reason: Some("Valid".to_owned()),
            ..CanaryCondition::default()
        };
        let mut status = CanaryStatus {
            conditions: vec![valid.clone()],
            ..CanaryStatus::default()
        };
        set_phase(
            &mut status,
            CanaryPhase::Progressing,
            0,
            "Deployment",
            at(1),
        );
        set_phase(&mut status, CanaryPhase::Succeeded, 0, "Deployment", at(2));
        let types: Vec<_> = status.conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, ["Valid", PROMOTED]);
        assert_eq!(status.conditions[0], valid);
        assert_eq!(status.conditions[1].status, ConditionStatus::True);
    }

    #[test]
    fn primary_not_ready_keeps_its_first_transition_time_until_it_is_removed() {
        let mut status = CanaryStatus::default();
        primary_not_ready(&mut status, "podinfo-primary.test not ready: a", at(1));
        primary_not_ready(&mut status, "podinfo-primary.test not ready: b", at(2));
        let condition = &status.conditions[0];
        assert_eq!(
            (
                condition.type_.as_str(),
                condition.status,
                condition.reason.as_deref()
            ),
            (
                PRIMARY_READY,
                ConditionStatus::False,
                Some(PRIMARY_NOT_READY)
            )
        );
        assert_eq!(
            condition.message.as_deref(),
            Some("podinfo-primary.test not ready: b")
        );
        assert_eq!(condition.last_transition_time, Some(Time(at(1))));
        assert_eq!(condition.last_update_time, Some(Time(at(2))));
        primary_ready(&mut status);
        assert!(status.conditions.is_empty());
    }
}
