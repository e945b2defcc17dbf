//! A Canary whose spec Fledge refuses. It is reported once per distinct set of problems (a
//! `Valid=False` condition, reason `InvalidSpec`, and a Warning event) and nothing new is
//! started. Two paths must still act, because traffic is at stake:
//!
//! - a rollout under way when the spec turned invalid is rolled back to the primary, with the
//!   validation message as the reason, instead of freezing at a canary weight nobody judges
//!   any more (when the primary serves: a not-ready primary is never given the canary's
//!   traffic, and a canary is never scaled down before its traffic has moved);
//! - deleting a Canary that asks for `revertOnDeletion` restores the target and the routes
//!   before the finalizer goes, valid spec or not. A provider no router handles cannot hold
//!   deletion up: its routing objects are left as they are (said in the log).

use fledge_api::canary::{CanaryCondition, ConditionStatus};
use fledge_api::validation::Problem;
use fledge_api::{Canary, CanaryPhase, CanaryStatus};
use fledge_engine::WorkloadState;
use fledge_router::{Router, Routes, ServiceRouter, ServiceTarget};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action as Requeue;
use kube::runtime::reflector::ObjectRef;

use crate::controller::Context;
use crate::controller::finalizer;
use crate::controller::target::{Kind, Target};
use crate::controller::tick::{VALID_CONDITION, publish_event, write_status};
use crate::error::{Error, Result};
use crate::workload::canary_namespace;
use crate::workload::primary::{primary_replicas, selector_label};

/// How often a reverting deletion looks again at its restored target.
const REVERT_RETRY: std::time::Duration = std::time::Duration::from_secs(3);

/// Every problem that keeps the operator from running `canary`: the validation rules, and
/// what this operator cannot do (a target kind or a provider it does not handle yet).
pub fn problems(canary: &Canary, default_provider: &str) -> Vec<Problem> {
    let mut problems = fledge_api::validation::check_canary(canary);
    if !problems.is_empty() {
        return problems;
    }
    if Kind::of(canary).is_err() {
        // A Knative Service, say: said on the Canary instead of failing every few seconds.
        problems.push(Problem::new(
            "spec.targetRef.kind",
            format!(
                "{} {:?} is not supported by fledge-operator yet; use a Deployment, a DaemonSet or a v1 Service",
                canary.spec.target_ref.api_version.as_deref().unwrap_or_default(),
                canary.spec.target_ref.kind.as_deref().unwrap_or_default()
            ),
        ));
    }
    let provider = canary.spec.effective_provider(Some(default_provider));
    if let Err(error) = fledge_router::Provider::parse(provider) {
        let path = if canary
            .spec
            .provider
            .as_deref()
            .is_some_and(|p| !p.is_empty())
        {
            "spec.provider"
        } else {
            "-mesh-provider"
        };
        // `fledge validate`'s words where it has them (a Flagger provider not routed yet).
        let message = fledge_api::validation::provider_problem(provider).unwrap_or_else(|| {
            let error = error.to_string();
            error
                .strip_prefix("spec.provider: ")
                .map_or_else(|| error.clone(), str::to_owned)
        });
        problems.push(Problem::new(path, message));
    }
    problems
}

/// Records a Warning event for each setting of `canary` that Flagger resolves on its own
/// (`fledge_api::validation::canary_warnings`), once per distinct warning: the canary runs as
/// Flagger runs it.
pub async fn warn_once(ctx: &Context, canary: &Canary) {
    for warning in fledge_api::validation::canary_warnings(canary) {
        let message = format!(
            "Canary {} runs as Flagger resolves it: {warning}",
            subject(canary)
        );
        let first = ctx
            .warned
            .lock()
            .map_or(true, |mut warned| warned.insert(message.clone()));
        if first {
            tracing::warn!(canary = %subject(canary), "{message}");
            publish_event(
                ctx,
                canary,
                kube::runtime::events::EventType::Warning,
                &message,
            )
            .await;
        }
    }
}

/// What `-no-cross-namespace-refs` refuses in `canary`, in Flagger's words: a Gloo upstream,
/// a MetricTemplate or an AlertProvider referenced in another namespace (an empty namespace
/// is the canary's own).
pub fn cross_namespace_refs(canary: &Canary) -> Vec<Problem> {
    let own = canary.metadata.namespace.as_deref().unwrap_or_default();
    let elsewhere = |reference: &fledge_api::canary::CrossNamespaceObjectReference| {
        reference
            .namespace
            .as_deref()
            .filter(|ns| !ns.is_empty() && *ns != own)
            .map(|ns| format!("{}.{ns}", reference.name))
    };
    let mut problems = Vec::new();
    if let Some(upstream) = canary.spec.upstream_ref.as_ref().and_then(elsewhere) {
        problems.push(Problem::new(
            "spec.upstreamRef.namespace",
            format!(
                "can't access gloo upstream {upstream}, cross-namespace references are blocked"
            ),
        ));
    }
    let Some(analysis) = &canary.spec.analysis else {
        return problems;
    };
    for (index, metric) in analysis.metrics.iter().enumerate() {
        if let Some(template) = metric.template_ref.as_ref().and_then(elsewhere) {
            problems.push(Problem::new(
                format!("spec.analysis.metrics[{index}].templateRef.namespace"),
                format!("can't access metric template {template}, cross-namespace references are blocked"),
            ));
        }
    }
    for (index, alert) in analysis.alerts.iter().enumerate() {
        if let Some(provider) = elsewhere(&alert.provider_ref) {
            problems.push(Problem::new(
                format!("spec.analysis.alerts[{index}].providerRef.namespace"),
                format!(
                    "can't access alert provider {provider}, cross-namespace references are blocked"
                ),
            ));
        }
    }
    problems
}

/// Reports an invalid `canary` and, when a rollout is under way, moves its traffic back to
/// the primary. The next tick comes with the next change of the Canary (or of its target).
pub async fn refuse(ctx: &Context, canary: &Canary, problems: &[Problem]) -> Result<Requeue> {
    let listed: Vec<String> = problems.iter().map(ToString::to_string).collect();
    let message = format!("Invalid canary {}: {}", subject(canary), listed.join("; "));
    let before = canary.status.clone().unwrap_or_default();
    let reported = before
        .conditions
        .iter()
        .any(|c| c.type_ == VALID_CONDITION && c.message.as_deref() == Some(message.as_str()));
    let mut status = before.clone();
    let mut warnings = Vec::new();
    if !reported {
        tracing::error!("{message}");
        set_invalid_condition(&mut status, &message);
        warnings.push(message.clone());
    }
    let mut requeue = Requeue::await_change();
    if before.phase.is_active() {
        match roll_back(ctx, canary, &listed.join("; ")).await? {
            RollBack::Done(lines) => {
                mark_failed(&mut status, canary);
                warnings.extend(lines);
            }
            RollBack::Held(reason) => {
                tracing::warn!("{reason}");
                if !reported {
                    warnings.push(reason);
                }
                // The primary's readiness is a watch event, but a retry costs little.
                requeue = Requeue::requeue(REVERT_RETRY);
            }
        }
    }
    write_status(ctx, canary, &before, &status).await?;
    for line in &warnings {
        publish_event(ctx, canary, kube::runtime::events::EventType::Warning, line).await;
    }
    Ok(requeue)
}

/// What became of a rollout under way.
enum RollBack {
    /// Traffic is on the primary and the canary scaled down; the lines to record.
    Done(Vec<String>),
    /// Nothing moved, for this reason.
    Held(String),
}

async fn roll_back(ctx: &Context, canary: &Canary, reason: &str) -> Result<RollBack> {
    let who = subject(canary);
    let namespace = canary_namespace(canary)?;
    let Ok(kind) = Kind::of(canary) else {
        return Ok(RollBack::Held(format!(
            "Cannot roll back {who}: its target kind is not supported; traffic stays as it is"
        )));
    };
    let Some(target) = Target::read(ctx, canary, namespace, kind).await? else {
        return Ok(RollBack::Held(format!(
            "Cannot roll back {who}: target {} not found; traffic stays as it is",
            canary.spec.target_ref.name
        )));
    };
    let Some(router) = router(ctx, canary) else {
        return Ok(RollBack::Held(format!(
            "Cannot roll back {who}: no router for provider {:?}; traffic stays as it is",
            canary.spec.effective_provider(Some(&ctx.default_provider))
        )));
    };
    if !target.primary_state().as_ref().is_some_and(serves) {
        return Ok(RollBack::Held(format!(
            "Cannot roll back {who}: the primary is not ready; traffic stays on the canary until it is"
        )));
    }
    router
        .set_routes(canary, Routes::INITIAL)
        .await
        .map_err(Error::Router)?;
    if let Target::Workload(w) = &target {
        ctx.applier.scale_target(&w.target, 0).await?;
    }
    Ok(RollBack::Done(vec![
        format!("Rolling back {who}: the spec is invalid: {reason}"),
        format!("Canary failed! Scaling down {who}"),
    ]))
}

/// Deletion of an invalid Canary with `revertOnDeletion`: the target runs again, then (once
/// it is ready, or once the progress deadline since the deletion has passed) the apex Service
/// and the mesh routes are given back, then the finalizer goes.
pub async fn revert(ctx: &Context, canary: &Canary, key: &ObjectRef<Canary>) -> Result<Requeue> {
    let who = subject(canary);
    let namespace = canary_namespace(canary)?;
    let target = match Kind::of(canary) {
        Ok(kind) => Target::read(ctx, canary, namespace, kind).await?,
        Err(_) => None,
    };
    if let Some(Target::Workload(w)) = &target {
        let replicas = w.primary.as_ref().map_or(1, |primary| {
            primary_replicas(primary, None, false).unsigned_abs()
        });
        ctx.applier.scale_target(&w.target, replicas).await?;
        let restored = crate::workload::state::workload_state(&w.target);
        if !serves(&restored) && !deadline_passed(canary) {
            tracing::info!(
                "Reverting invalid canary {who}: waiting for {} to be ready",
                w.target.name()
            );
            return Ok(Requeue::requeue(REVERT_RETRY));
        }
    }
    if let Some(router) = router(ctx, canary) {
        router.finalize(canary).await.map_err(Error::Router)?;
    } else {
        tracing::warn!(
            "Reverting invalid canary {who}: no router for provider {:?}; its routing objects are left as they are",
            canary.spec.effective_provider(Some(&ctx.default_provider))
        );
    }
    if let Some(Target::Workload(w)) = &target {
        let selector = selector_label(&w.target, ctx.applier.settings())?;
        ServiceRouter::new(ctx.client.clone())
            .finalize(canary, &ServiceTarget::new(selector.key, selector.value))
            .await
            .map_err(Error::Router)?;
    }
    finalizer::set_finalizer(&ctx.client, canary, false).await?;
    ctx.pacing.forget(key);
    tracing::info!("Canary {who} has been successfully processed and marked for deletion");
    Ok(Requeue::await_change())
}

/// The router of the canary's provider; `None` when no router handles it.
fn router(ctx: &Context, canary: &Canary) -> Option<Box<dyn Router>> {
    ctx.router(canary).ok()
}

/// Whether a workload runs all its desired pods, at least one, of its current template.
fn serves(state: &WorkloadState) -> bool {
    state.generation_observed
        && state.desired_replicas > 0
        && state.updated_replicas >= state.desired_replicas
        && state.available_replicas >= state.desired_replicas
}

/// Whether the Canary has been deleting for longer than its progress deadline.
fn deadline_passed(canary: &Canary) -> bool {
    let Some(deleted) = canary.metadata.deletion_timestamp.as_ref() else {
        return false;
    };
    let deadline = canary.spec.resolved(None).progress_deadline;
    let since = k8s_openapi::jiff::Timestamp::now().duration_since(deleted.0);
    std::time::Duration::try_from(since).is_ok_and(|since| since > deadline)
}

/// Replaces the `Valid` condition with `False` / `InvalidSpec` / `message`.
fn set_invalid_condition(status: &mut CanaryStatus, message: &str) {
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    status.conditions.retain(|c| c.type_ != VALID_CONDITION);
    status.conditions.push(CanaryCondition {
        type_: VALID_CONDITION.to_owned(),
        status: ConditionStatus::False,
        last_update_time: Some(now.clone()),
        last_transition_time: Some(now),
        reason: Some("InvalidSpec".to_owned()),
        message: Some(message.to_owned()),
    });
}

/// The status of a rollout that ended with its traffic back on the primary: Failed, as
/// Flagger writes a rollback (weight and counters cleared, the `Promoted` condition False).
fn mark_failed(status: &mut CanaryStatus, canary: &Canary) {
    let kind = canary
        .spec
        .target_ref
        .kind
        .as_deref()
        .unwrap_or("Deployment");
    fledge_engine::set_phase(
        status,
        CanaryPhase::Failed,
        0,
        kind,
        k8s_openapi::jiff::Timestamp::now(),
    );
    status.failed_checks = 0;
}

/// `name.namespace`, the way Flagger names a canary in messages.
fn subject(canary: &Canary) -> String {
    format!(
        "{}.{}",
        canary.metadata.name.as_deref().unwrap_or_default(),
        canary.metadata.namespace.as_deref().unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use fledge_engine::PROMOTED;

    use super::*;

    fn canary(provider: &str) -> Canary {
        fledge_api::yaml::from_str(&format!(
            "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {{ name: podinfo, namespace: test }}\n\
             spec:\n  provider: {provider}\n  targetRef: {{ apiVersion: apps/v1, kind: Deployment, name: podinfo }}\n  \
             service: {{ port: 9898 }}\n  analysis: {{ interval: 30s, threshold: 5, maxWeight: 50, stepWeight: 10 }}\n"
        ))
        .expect("a Canary")
    }

    #[test]
    fn a_provider_no_router_handles_is_a_problem_naming_the_field() {
        assert_eq!(problems(&canary("istio"), "kubernetes"), Vec::new());
        let found = problems(&canary("zebra-mesh"), "kubernetes");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].path, "spec.provider");
        assert!(
            found[0].message.contains("zebra-mesh"),
            "{}",
            found[0].message
        );
        // A Flagger provider without a router: `fledge validate`'s words.
        let found = problems(&canary("kuma"), "kubernetes");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].path, "spec.provider");
        assert!(
            found[0]
                .message
                .starts_with("`kuma` is a Flagger provider Fledge does not route yet"),
            "{}",
            found[0].message
        );
    }

    #[test]
    fn references_to_other_namespaces_are_named_in_flaggers_words() {
        let canary: Canary = fledge_api::yaml::from_str(
            "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: { name: podinfo, namespace: test }\n\
             spec:\n  targetRef: { apiVersion: apps/v1, kind: Deployment, name: podinfo }\n  \
             service: { port: 9898 }\n  analysis:\n    interval: 30s\n    threshold: 5\n    iterations: 2\n    \
             metrics:\n    - { name: a, templateRef: { name: here } }\n    \
             - { name: b, templateRef: { name: same, namespace: test } }\n    \
             - { name: c, templateRef: { name: errors, namespace: monitoring } }\n    \
             alerts:\n    - { name: on-call, providerRef: { name: slack, namespace: flagger-system } }\n",
        )
        .expect("a Canary");
        let found: Vec<String> = cross_namespace_refs(&canary)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            found,
            [
                "spec.analysis.metrics[2].templateRef.namespace: can't access metric template errors.monitoring, cross-namespace references are blocked",
                "spec.analysis.alerts[0].providerRef.namespace: can't access alert provider slack.flagger-system, cross-namespace references are blocked",
            ]
        );
    }

    #[test]
    fn a_workload_serves_only_with_every_desired_pod_ready_and_at_least_one() {
        assert!(serves(&WorkloadState::ready(2)));
        assert!(
            !serves(&WorkloadState::ready(0)),
            "zero desired replicas serve nothing"
        );
        let rolling = WorkloadState::rolling_out(2, 1, k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
        assert!(!serves(&rolling));
    }

    #[test]
    fn a_failed_rollback_status_keeps_other_conditions() {
        let mut status = CanaryStatus {
            phase: CanaryPhase::Progressing,
            canary_weight: 30,
            ..CanaryStatus::default()
        };
        set_invalid_condition(&mut status, "Invalid canary podinfo.test: x");
        mark_failed(&mut status, &canary("istio"));
        assert_eq!(status.phase, CanaryPhase::Failed);
        assert_eq!(status.canary_weight, 0);
        let types: Vec<&str> = status.conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, [VALID_CONDITION, PROMOTED]);
    }
}
