//! The canary state machine of Fledge, as a pure function.
//!
//! # The model
//!
//! One tick of a canary is a function of four inputs — the spec, the status, what the
//! operator observed, and the time — and it returns a [`Plan`]:
//!
//! ```text
//! world ─► Rollout::needs(status, world, now) ─► checks to run (metrics, webhooks)
//! world + check results ─► Rollout::plan(status, observation, now)
//!       ─► Plan { actions, status', events, alerts, requeue_after }
//! ```
//!
//! - The **status** is the only state. The engine keeps nothing between ticks.
//! - **Time is an input** (`now`); the engine reads no clock and does no I/O: no kube
//!   client, no async runtime, no HTTP.
//! - **Actions are idempotent targets** ("routes 80/20", "scale the canary to zero",
//!   "copy the canary's spec to the primary"), never increments, so re-running a plan, or
//!   planning again after a crash part-way through one, is harmless.
//! - **Decisions are Flagger's**, phase by phase (Initializing → Initialized → (Waiting) →
//!   Progressing → (WaitingPromotion) → Promoting → Finalising → Succeeded, or Failed;
//!   Terminating → Terminated on deletion), and so are the words of every event.
//! - **Judges** turn metric results into verdicts ([`Judge`]); the first is Flagger's
//!   [`ThresholdRangeJudge`]. A metric result keeps *value*, *no data* and *query error*
//!   apart ([`MetricResult`]) so judges can treat them differently.
//!
//! Deliberate differences from Flagger:
//!
//! - The canary weight never exceeds `maxWeight` (Flagger can overshoot by part of a step).
//! - Session-affinity cookie values derive from the canary and its revision instead of a
//!   random generator.
//! - Staged promotion with no traffic left on the canary finalises instead of waiting forever.
//! - When a workload does not say since when it is unavailable, the progress deadline runs
//!   from `status.lastTransitionTime`.
//! - **Onboarding costs no request.** While Initializing, a tick plans
//!   [`Action::InitializePrimary`] and, until the primary is ready, nothing else — past the
//!   progress deadline too: no rollback, no routes, the target is never scaled down. Once it
//!   is ready: [`Action::InitializeRouting`], routes 100/0, the autoscalers, then
//!   [`Action::ScaleCanaryToZero`] (Flagger rolls a stuck primary back to Failed).
//! - **A primary that is not ready never receives a healthy canary's traffic.** In every
//!   other phase it halts the tick with Flagger's warning (`podinfo-primary.test not ready:
//!   ...`) and changes nothing: no rollback onto it, failedChecks unchanged. The one
//!   exception is Flagger's failed promotion: a primary stuck (past the deadline) while
//!   Promoting or Finalising sends all traffic to the canary and fails the rollout — only if
//!   the canary is ready; otherwise the tick halts. The split set there is recorded in
//!   `status.canaryWeight` (100), so at rest the routes equal `status.canaryWeight`.
//! - **Zero replicas is not ready.** A primary with 0 desired replicas halts with Flagger's
//!   `halt podinfo.test advancement: primary deployment is scaled to zero` (Flagger means to
//!   but compares pointers); a canary scaled to zero while analysing is not ready and rolls
//!   back at the progress deadline, so it is never given traffic.
//! - **The status says why**: while the primary is not ready the status carries the
//!   [`PRIMARY_READY`] condition (`False`, reason [`PRIMARY_NOT_READY`], the warning as its
//!   message), removed once the primary is ready. Conditions of other types are kept.
//! - **One interval of analysis per step.** In Progressing (canary strategy), routes whose
//!   canary weight differs from `status.canaryWeight` — a route write that landed without
//!   its status write, or an edit — are set back to it when above it (`Routes of
//!   podinfo.test differ from the recorded canary weight 10; setting them back`) or recorded
//!   when below it; that tick neither analyses nor steps, so the next step comes a full
//!   interval later.
//!
//! # Example
//!
//! ```
//! use fledge_engine::{Observation, Rollout, Routes, Revision, WorkloadState, World, Timestamp};
//!
//! let canary: fledge_api::Canary = fledge_api::yaml::from_str(r#"
//! apiVersion: flagger.app/v1beta1
//! kind: Canary
//! metadata: { name: podinfo, namespace: test }
//! spec:
//!   provider: istio
//!   targetRef: { apiVersion: apps/v1, kind: Deployment, name: podinfo }
//!   service: { port: 9898 }
//!   analysis: { interval: 1m, threshold: 5, maxWeight: 50, stepWeight: 10 }
//! "#).expect("a valid canary");
//! let rollout = Rollout::new(&canary, None).expect("a plannable canary");
//! let world = World {
//!     primary: Some(WorkloadState::ready(2)),
//!     canary: WorkloadState::ready(2),
//!     revision: Revision::new("v1"),
//!     routes: Routes::ALL_TO_PRIMARY,
//!     ..World::default()
//! };
//! let status = fledge_api::CanaryStatus::default();
//! let now = Timestamp::UNIX_EPOCH;
//! assert!(rollout.needs(&status, &world, now).is_empty());
//! let plan = rollout.plan(&status, &Observation::of(world), now).expect("all checks observed");
//! assert_eq!(plan.messages().collect::<Vec<_>>(), ["Initialization done! podinfo.test"]);
//! assert_eq!(plan.status.phase, fledge_api::CanaryPhase::Initialized);
//! ```

mod advance;
mod checks;
mod error;
mod go_fmt;
pub mod judge;
mod observation;
mod plan;
mod promotion;
mod readiness;
mod request;
mod rollback;
mod rollout;
mod session_affinity;
pub mod simulation;
mod status_update;
mod termination;
mod tick;
mod time;

pub use error::{Error, Result};
pub use judge::{Judge, MetricCheck, MetricKind, Subject, ThresholdRangeJudge, Verdict};
pub use observation::{
    MetricResult, Observation, Revision, Routes, WebhookOutcome, WorkloadState, World,
};
pub use plan::{Action, Alert, Event, EventLevel, Plan, RouteTarget, StickyCookies};
pub use request::{ObservationRequest, WebhookRequest};
pub use rollout::Rollout;
pub use status_update::{PRIMARY_NOT_READY, PRIMARY_READY, PROMOTED, set_phase};
pub use time::{Timestamp, advance};

use fledge_api::{Canary, CanaryStatus};

/// The checks one tick needs observed; see [`Rollout::needs`].
///
/// # Errors
/// As [`Rollout::new`].
pub fn needs(
    canary: &Canary,
    default_provider: Option<&str>,
    status: &CanaryStatus,
    world: &World,
    now: Timestamp,
) -> Result<ObservationRequest> {
    Ok(Rollout::new(canary, default_provider)?.needs(status, world, now))
}

/// Decides one tick; see [`Rollout::plan`] (and its guarantees). Prefer building a
/// [`Rollout`] once and planning with it when ticking the same spec repeatedly.
///
/// # Errors
/// As [`Rollout::new`] and [`Rollout::plan`].
pub fn plan(
    canary: &Canary,
    default_provider: Option<&str>,
    status: &CanaryStatus,
    observation: &Observation,
    now: Timestamp,
) -> Result<Plan> {
    Rollout::new(canary, default_provider)?.plan(status, observation, now)
}
