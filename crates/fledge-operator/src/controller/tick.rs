//! One tick of one canary: observe from the caches, ask the engine, carry out its plan,
//! write the status, record the events.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fledge_api::{Canary, CanaryPhase, CanaryStatus};
use fledge_engine::{Observation, Revision, Rollout, Routes, Timestamp, WebhookOutcome, World};
use fledge_router::Router;
use kube::Resource;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action as Requeue;
use kube::runtime::events::{Event as KubeEvent, EventType};
use kube::runtime::reflector::ObjectRef;
use serde_json::json;
use tracing::Instrument;

use crate::controller::Context;
use crate::controller::actions::Execution;
use crate::controller::alerts;
use crate::controller::check_budget::TickBudget;
use crate::controller::drift;
use crate::controller::finalizer::{self, Deletion};
use crate::controller::invalid;
use crate::controller::lazy_caches::Cached;
use crate::controller::metric_checks::run_metric_checks;
use crate::controller::target::{Kind, Target};
use crate::controller::webhooks::run_webhook_checks;
use crate::error::{Error, Result};
use crate::workload::apply::FIELD_MANAGER;
use crate::workload::autoscaler::min_replicas;
use crate::workload::canary_namespace;
use crate::workload::checksum::json_hash;

/// How long to wait before looking again for a target that does not exist (yet).
const MISSING_TARGET_RETRY: Duration = Duration::from_secs(10);

/// How soon a tick that came before the watch caches synced is tried again.
const CACHE_SYNC_RETRY: Duration = Duration::from_millis(250);

/// How often a Canary being deleted looks again at its restored target (Flagger backs off
/// from 3 s).
const TERMINATION_RETRY: Duration = Duration::from_secs(3);

/// The condition Fledge sets (to `False`, reason `InvalidSpec`) on a Canary whose spec it
/// refuses; it is removed once the spec is fixed.
pub const VALID_CONDITION: &str = "Valid";

/// The longest a tick asks to wait before the next one. Longer intervals are kept by
/// [`Pacing`]; a requeue far in the future would overflow the controller's timer.
const MAX_REQUEUE: Duration = Duration::from_secs(3600);

/// The reconcile function of the controller: one tick of `canary`. A panic inside the tick is
/// contained to this canary: it becomes an error (and a Warning event on the Canary), retried
/// like any failed tick, while the other canaries carry on.
pub async fn reconcile(canary: Arc<Canary>, ctx: Arc<Context>) -> Result<Requeue> {
    let name = canary.metadata.name.clone().unwrap_or_default();
    let namespace = canary.metadata.namespace.clone().unwrap_or_default();
    let span = tracing::info_span!("canary", name = %name, namespace = %namespace);
    let ticked = Box::pin(contain_panic(tick(&canary, &ctx)).instrument(span)).await;
    match ticked {
        Err(Error::TickPanicked { message }) => {
            let line = format!("Tick of {name}.{namespace} panicked: {message}");
            tracing::error!(%name, %namespace, "{line}");
            publish_event(&ctx, &canary, EventType::Warning, &line).await;
            Err(Error::TickPanicked { message })
        }
        other => other,
    }
}

/// Runs `tick`, turning a panic inside it into [`Error::TickPanicked`].
pub(crate) async fn contain_panic<T>(tick: impl Future<Output = Result<T>>) -> Result<T> {
    use futures::FutureExt as _;
    match std::panic::AssertUnwindSafe(tick).catch_unwind().await {
        Ok(outcome) => outcome,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_owned());
            Err(Error::TickPanicked { message })
        }
    }
}

/// Tick again after `after`, at most [`MAX_REQUEUE`] from now.
fn requeue(after: Duration) -> Requeue {
    Requeue::requeue(after.min(MAX_REQUEUE))
}

async fn tick(canary: &Canary, ctx: &Context) -> Result<Requeue> {
    if !ctx.caches.synced() {
        tracing::debug!("waiting for the watch caches");
        return Ok(Requeue::requeue(CACHE_SYNC_RETRY));
    }
    let key = ObjectRef::from_obj(canary);
    let deletion = finalizer::deletion(canary);
    if let Some(requeue) = settle_finalizer_and_validity(canary, ctx, deletion, &key).await? {
        return Ok(requeue);
    }
    run_engine(canary, ctx, deletion == Deletion::Revert, key).await
}

/// Before the engine: a Canary being deleted without anything to revert is let go, an
/// invalid one is reported and left alone, and the finalizer is made to follow
/// `revertOnDeletion`. `Some` when the tick ends here.
async fn settle_finalizer_and_validity(
    canary: &Canary,
    ctx: &Context,
    deletion: Deletion,
    key: &ObjectRef<Canary>,
) -> Result<Option<Requeue>> {
    if let Deletion::Release { has_finalizer } = deletion {
        if has_finalizer {
            finalizer::set_finalizer(&ctx.client, canary, false).await?;
        }
        ctx.pacing.forget(key);
        return Ok(Some(Requeue::await_change()));
    }
    let mut problems = invalid::problems(canary, &ctx.default_provider);
    if ctx.no_cross_namespace_refs {
        // Flagger refuses such a canary as an invalid spec, before anything else.
        problems.extend(invalid::cross_namespace_refs(canary));
    }
    if !problems.is_empty() {
        // Nothing new starts until the Canary is fixed (the fix is a watch event); a rollout
        // under way goes back to the primary, and deletion still reverts.
        return if deletion == Deletion::Revert {
            invalid::revert(ctx, canary, key).await.map(Some)
        } else {
            invalid::refuse(ctx, canary, &problems).await.map(Some)
        };
    }
    invalid::warn_once(ctx, canary).await;
    if let Deletion::SetFinalizer(present) = deletion {
        finalizer::set_finalizer(&ctx.client, canary, present).await?;
    }
    Ok(None)
}

/// Observes, plans with the engine and carries out the plan.
async fn run_engine(
    canary: &Canary,
    ctx: &Context,
    deleting: bool,
    key: ObjectRef<Canary>,
) -> Result<Requeue> {
    let started = Instant::now();
    let namespace = canary_namespace(canary)?;
    let rollout = Rollout::new(canary, Some(&ctx.default_provider)).map_err(Error::Engine)?;
    let kind = Kind::of(canary)?;
    let target_name = &canary.spec.target_ref.name;
    let Some(target) = Target::read(ctx, canary, namespace, kind).await? else {
        if deleting {
            tracing::warn!(
                "{} {target_name}.{namespace} not found, nothing to revert",
                kind.as_str()
            );
            finalizer::set_finalizer(&ctx.client, canary, false).await?;
            ctx.pacing.forget(&key);
            return Ok(Requeue::await_change());
        }
        tracing::warn!("{} {target_name}.{namespace} not found", kind.as_str());
        return Ok(Requeue::requeue(MISSING_TARGET_RETRY));
    };
    let revision = target.revision()?;
    let written = canary.status.clone().unwrap_or_default();
    // A status Flagger wrote names revisions by Flagger's hashes: taken over as they are.
    let status =
        crate::cutover::adopt_flaggers_revision(without_invalid_condition(&written), &revision);
    if let Some(wait) = ctx
        .pacing
        .wait(&key, &status, &revision, rollout.interval())
        .filter(|_| !deleting)
    {
        drift::repair(ctx, canary, &status, &[]).await;
        return Ok(requeue(wait));
    }
    if let Target::Service(service) = &target
        && !deleting
    {
        // Flagger's ServiceController on every tick: the `-canary` copy follows the target.
        ctx.applier
            .sync_service_copies(
                canary,
                &service.target,
                service.canary.as_ref(),
                service.primary.as_ref(),
            )
            .await?;
    }
    let router = ctx.router(canary).map_err(Error::Router)?;
    let world = World {
        primary: target.primary_state(),
        canary: target.canary_state(),
        revision,
        routes: current_routes(ctx, router.as_ref(), canary, &status).await?,
        autoscaler_min_replicas: autoscaler_min_replicas(ctx, canary, namespace).await?,
        deleting,
    };
    let now = Timestamp::now();
    let needs = rollout.needs(&status, &world, now);
    let mut observation = Observation::of(world);
    let budget = TickBudget::for_interval(rollout.interval());
    observation.metrics = run_metric_checks(ctx, canary, &needs.metrics, &budget).await;
    observation.webhooks = run_webhook_checks(&ctx.webhooks, canary, &needs, &budget).await;
    let plan = rollout
        .plan(&status, &observation, now)
        .map_err(Error::Engine)?;
    let execution = Execution {
        ctx,
        rollout: &rollout,
        canary,
        target: &target,
        router: router.as_ref(),
    };
    let mut events = plan.events.clone();
    for action in &plan.actions {
        tracing::debug!(?action, "carrying out");
        events.extend(execution.carry_out(action).await?);
    }
    write_status(ctx, canary, &written, &plan.status).await?;
    drift::repair(ctx, canary, &plan.status, &plan.actions).await;
    // Telemetry: Flagger's metrics of this tick (status, weights, outcome, duration).
    ctx.telemetry
        .observe_tick(canary, &status, &plan.status, started.elapsed());
    record_events(ctx, canary, &rollout, &events).await;
    alerts::send(
        &ctx.alerter,
        canary,
        &ctx.default_provider,
        &ctx.cluster_name,
        &plan.alerts,
    )
    .await;
    after_plan(canary, ctx, deleting, key, &plan).await
}

/// Ends a tick: a terminated Canary loses its finalizer; the next tick is paced.
async fn after_plan(
    canary: &Canary,
    ctx: &Context,
    deleting: bool,
    key: ObjectRef<Canary>,
    plan: &fledge_engine::Plan,
) -> Result<Requeue> {
    if deleting {
        if plan.status.phase == CanaryPhase::Terminated {
            finalizer::set_finalizer(&ctx.client, canary, false).await?;
            tracing::info!(
                "Canary {} has been successfully processed and marked for deletion",
                subject(canary)
            );
            ctx.pacing.forget(&key);
            return Ok(Requeue::await_change());
        }
        // Waiting for the restored target: look again soon (its readiness is a watch event too).
        return Ok(requeue(TERMINATION_RETRY.min(plan.requeue_after)));
    }
    ctx.pacing.ticked(key, plan.requeue_after);
    Ok(requeue(plan.requeue_after))
}

/// `name.namespace`, the way Flagger names a canary in messages.
fn subject(canary: &Canary) -> String {
    format!(
        "{}.{}",
        canary.metadata.name.as_deref().unwrap_or_default(),
        canary.metadata.namespace.as_deref().unwrap_or_default()
    )
}

/// The status without Fledge's `Valid` condition, which only an invalid spec sets.
fn without_invalid_condition(status: &CanaryStatus) -> CanaryStatus {
    let mut status = status.clone();
    status.conditions.retain(|c| c.type_ != VALID_CONDITION);
    status
}

/// The routes as the router reads them — from the routing cache when it can answer, else
/// from the API server; before initialization there are none to read.
async fn current_routes(
    ctx: &Context,
    router: &dyn Router,
    canary: &Canary,
    status: &CanaryStatus,
) -> Result<Routes> {
    let cached = match router.routing_resource() {
        Some(resource) => ctx.lazy.get(
            &resource,
            canary.metadata.namespace.as_deref().unwrap_or_default(),
            &router.routing_name(canary),
        ),
        None => Cached::Unknown,
    };
    let read = match cached {
        Cached::Found(object) => router.routes_in(canary, &object),
        Cached::Absent => Err(fledge_router::Error::NotFound {
            kind: router
                .routing_resource()
                .map(|r| r.kind)
                .unwrap_or_default(),
            namespace: canary.metadata.namespace.clone().unwrap_or_default(),
            name: router.routing_name(canary),
        }),
        Cached::Unknown => router.get_routes(canary).await,
    };
    match read {
        Ok(read) => Ok(Routes {
            primary: read.primary,
            canary: read.canary,
            mirrored: read.mirrored,
        }),
        Err(error) if status.phase == CanaryPhase::Initializing => {
            tracing::debug!(%error, "no routes yet");
            Ok(Routes::ALL_TO_PRIMARY)
        }
        Err(error) => Err(Error::Router(error)),
    }
}

async fn autoscaler_min_replicas(
    ctx: &Context,
    canary: &Canary,
    namespace: &str,
) -> Result<Option<u32>> {
    let Some(reference) = canary.spec.autoscaler_ref.as_ref().filter(|r| {
        r.kind
            .as_deref()
            .is_none_or(|k| k == "HorizontalPodAutoscaler")
    }) else {
        return Ok(None);
    };
    let hpa = ctx.autoscaler(namespace, &reference.name).await?;
    hpa.as_ref().map(min_replicas).transpose()
}

/// Writes `status` through the status subresource (server-side apply, so fields the engine
/// cleared are removed) when it changed.
pub(crate) async fn write_status(
    ctx: &Context,
    canary: &Canary,
    before: &CanaryStatus,
    status: &CanaryStatus,
) -> Result<()> {
    if status == before {
        return Ok(());
    }
    let namespace = canary_namespace(canary)?;
    let name = canary.metadata.name.clone().unwrap_or_default();
    let api: Api<Canary> = Api::namespaced(ctx.client.clone(), namespace);
    let body = json!({
        "apiVersion": format!("{}/{}", fledge_api::GROUP, fledge_api::VERSION),
        "kind": "Canary",
        "status": status,
    });
    api.patch_status(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(|e| Error::kube("apply status of", "Canary", namespace, &name, e))?;
    Ok(())
}

/// Logs each event (its message is the line's `msg`), records it as a Kubernetes Event with
/// reason `Synced` and sends it to `-event-webhook` and the canary's `type: event` hooks. A
/// failed Event write or event hook is logged, not fatal: the tick's work is done.
async fn record_events(
    ctx: &Context,
    canary: &Canary,
    rollout: &Rollout,
    events: &[fledge_engine::Event],
) {
    let reference = canary.object_ref(&());
    let event_hooks: Vec<&fledge_api::canary::CanaryWebhook> = ctx
        .event_webhook
        .iter()
        .chain(canary.analysis().into_iter().flat_map(|a| {
            a.webhooks
                .iter()
                .filter(|h| rollout.event_webhooks().any(|name| name == h.name))
        }))
        .collect();
    for event in events {
        match event.level {
            fledge_engine::EventLevel::Info => tracing::info!("{}", event.message),
            fledge_engine::EventLevel::Warning => tracing::warn!("{}", event.message),
            fledge_engine::EventLevel::Error => tracing::error!("{}", event.message),
        }
        let type_ = if event.level.event_type() == "Normal" {
            EventType::Normal
        } else {
            EventType::Warning
        };
        publish(ctx, &reference, type_, &event.message).await;
        for hook in &event_hooks {
            let sent = ctx
                .webhooks
                .send_event(canary, hook, &event.message, event.level.event_type())
                .await;
            if let WebhookOutcome::Failed(error) = sent {
                tracing::warn!(webhook = %hook.name, %error, "event webhook failed");
            }
        }
    }
}

/// Records `message` as a Kubernetes Event (reason `Synced`) on `canary`; a failed write is
/// logged, not fatal.
pub(crate) async fn publish_event(ctx: &Context, canary: &Canary, type_: EventType, message: &str) {
    publish(ctx, &canary.object_ref(&()), type_, message).await;
}

async fn publish(
    ctx: &Context,
    reference: &k8s_openapi::api::core::v1::ObjectReference,
    type_: EventType,
    message: &str,
) {
    // The recorder folds events with the same type, reason and action into one series; an
    // action per message keeps each distinct message an Event of its own, as Flagger's are,
    // while repeats of one message still fold.
    let action = json_hash(&message, "event message").unwrap_or_default();
    let event = KubeEvent {
        type_,
        reason: "Synced".to_owned(),
        note: Some(message.to_owned()),
        action: format!("Synced-{action}"),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, reference).await {
        tracing::warn!(%error, "cannot record the event");
    }
}

/// When each canary may tick next. The engine advances one step per tick, so ticks follow
/// `analysis.interval`; a watch event in between only ticks at once when the target has a
/// new revision (so `kubectl set image` is seen within a second) or the canary is still
/// initializing. A few bytes per canary.
#[derive(Debug, Default)]
pub struct Pacing {
    due: std::sync::Mutex<std::collections::HashMap<ObjectRef<Canary>, Instant>>,
}

impl Pacing {
    /// How long `canary`, which ticks every `interval`, must still wait; `None` when it may
    /// tick now.
    pub fn wait(
        &self,
        canary: &ObjectRef<Canary>,
        status: &CanaryStatus,
        revision: &Revision,
        interval: Duration,
    ) -> Option<Duration> {
        let urgent = status.phase == CanaryPhase::Initializing
            || status.last_applied_spec.as_deref() != Some(revision.spec_hash.as_str())
                && status.last_promoted_spec.as_deref() != Some(revision.spec_hash.as_str())
            || status.tracked_configs.clone().unwrap_or_default() != revision.configs;
        if urgent {
            return None;
        }
        let Some(due) = self.due.lock().ok()?.get(canary).copied() else {
            // Never ticked in this process (a restart, a new leader): pace from the status'
            // last transition, so the step after a restart does not come early.
            let last = status.last_transition_time.as_ref()?.0;
            let since = k8s_openapi::jiff::Timestamp::now().duration_since(last);
            let since = Duration::try_from(since).unwrap_or(Duration::ZERO);
            return interval.checked_sub(since).filter(|wait| !wait.is_zero());
        };
        due.checked_duration_since(Instant::now())
            .filter(|wait| !wait.is_zero())
    }

    /// Records that `canary` ticked and is next due after `interval`.
    pub fn ticked(&self, canary: ObjectRef<Canary>, interval: Duration) {
        let now = Instant::now();
        // An interval too long for the clock (validation bounds it, the engine library does
        // not) is as good as never: a day past now is checked again and found not due.
        let next = now
            .checked_add(interval)
            .or_else(|| now.checked_add(Duration::from_secs(86_400)))
            .unwrap_or(now);
        if let Ok(mut due) = self.due.lock() {
            due.insert(canary, next);
        }
    }

    /// Forgets a canary that no longer exists.
    pub fn forget(&self, canary: &ObjectRef<Canary>) {
        if let Ok(mut due) = self.due.lock() {
            due.remove(canary);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    fn key() -> ObjectRef<Canary> {
        ObjectRef::new("podinfo").within("test")
    }

    fn steady(hash: &str) -> CanaryStatus {
        CanaryStatus {
            phase: CanaryPhase::Progressing,
            last_applied_spec: Some(hash.to_owned()),
            last_promoted_spec: Some("older".to_owned()),
            ..CanaryStatus::default()
        }
    }

    #[tokio::test]
    async fn a_panic_inside_a_tick_is_contained_and_reported_as_an_error() {
        let panicking = async {
            let interval = Duration::from_secs(u64::MAX);
            // What an unchecked `Instant + interval` did with a hostile spec.
            let _ = std::hint::black_box(Instant::now()) + interval;
            Ok::<(), Error>(())
        };
        let outcome = contain_panic(panicking).await;
        assert!(
            matches!(&outcome, Err(Error::TickPanicked { message }) if message.contains("overflow")),
            "{outcome:?}"
        );
        assert!(contain_panic(async { Ok::<u8, Error>(7) }).await.is_ok());
    }

    #[test]
    fn an_interval_too_long_for_the_clock_neither_panics_nor_comes_due() {
        let pacing = Pacing::default();
        pacing.ticked(key(), Duration::from_secs(u64::MAX));
        let wait = pacing.wait(&key(), &steady("v2"), &Revision::new("v2"), Duration::MAX);
        assert!(
            wait.is_some_and(|w| w > Duration::from_secs(3600)),
            "{wait:?}"
        );
        assert_eq!(
            requeue(Duration::from_secs(u64::MAX)),
            Requeue::requeue(MAX_REQUEUE)
        );
    }

    #[test]
    fn ticks_follow_the_interval_once_a_canary_ticked() {
        let pacing = Pacing::default();
        let revision = Revision::new("v2");
        assert_eq!(
            pacing.wait(&key(), &steady("v2"), &revision, MINUTE),
            None,
            "never ticked: tick now"
        );
        pacing.ticked(key(), Duration::from_secs(60));
        let wait = pacing.wait(&key(), &steady("v2"), &revision, MINUTE);
        assert!(
            wait.is_some_and(|w| w > Duration::from_secs(59)),
            "{wait:?}"
        );
        pacing.forget(&key());
        assert_eq!(pacing.wait(&key(), &steady("v2"), &revision, MINUTE), None);
    }

    #[test]
    fn after_a_restart_ticks_are_paced_from_the_last_transition() {
        let pacing = Pacing::default();
        let mut status = steady("v2");
        let twenty_seconds_ago =
            k8s_openapi::jiff::Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(20);
        status.last_transition_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            twenty_seconds_ago,
        ));
        let wait = pacing.wait(&key(), &status, &Revision::new("v2"), MINUTE);
        assert!(
            wait.is_some_and(|w| w > Duration::from_secs(35) && w <= Duration::from_secs(40)),
            "{wait:?}"
        );
        assert_eq!(
            pacing.wait(
                &key(),
                &status,
                &Revision::new("v2"),
                Duration::from_secs(10)
            ),
            None,
            "the interval has passed"
        );
    }

    #[test]
    fn a_new_revision_or_config_and_initialization_tick_at_once() {
        let pacing = Pacing::default();
        pacing.ticked(key(), Duration::from_secs(60));
        assert_eq!(
            pacing.wait(&key(), &steady("v2"), &Revision::new("v3"), MINUTE),
            None,
            "kubectl set image"
        );
        let mut reconfigured = Revision::new("v2");
        reconfigured
            .configs
            .insert("configmap/podinfo".into(), "abc".into());
        assert_eq!(
            pacing.wait(&key(), &steady("v2"), &reconfigured, MINUTE),
            None,
            "a ConfigMap changed"
        );
        let initializing = CanaryStatus::default();
        assert_eq!(
            pacing.wait(&key(), &initializing, &Revision::new("v2"), MINUTE),
            None
        );
        // A manual rollback to the promoted revision is not new.
        assert!(
            pacing
                .wait(&key(), &steady("v2"), &Revision::new("older"), MINUTE)
                .is_some()
        );
    }
}
