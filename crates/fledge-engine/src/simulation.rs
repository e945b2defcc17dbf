//! An in-memory cluster that carries out plans, so the engine can be driven without
//! Kubernetes: workloads become ready a number of ticks after they change (or never), routes
//! are whatever the last plan set, and checks answer through a [`CheckSource`]. Used by
//! `fledge simulate`, by the engine's own tests, and by anyone embedding the engine who
//! wants to see it decide.

use fledge_api::CanaryStatus;
use fledge_api::canary::HookType;

use crate::error::Result;
use crate::observation::{
    MetricResult, Observation, Revision, Routes, WebhookOutcome, WorkloadState, World,
};
use crate::plan::{Action, Event, Plan};
use crate::rollout::Rollout;
use crate::time::{Timestamp, advance};

/// Answers the checks the engine asks for.
pub trait CheckSource {
    /// The result of metric `name` at tick `tick`.
    fn metric(&mut self, name: &str, tick: u32) -> MetricResult;
    /// The outcome of webhook `name` of type `hook_type` at tick `tick`.
    fn webhook(&mut self, name: &str, hook_type: HookType, tick: u32) -> WebhookOutcome;
}

/// Every check lets the rollout go on: every metric reads `value`, every webhook answers 2xx
/// except rollback hooks, which do not ask for a rollback.
#[derive(Clone, Copy, Debug)]
pub struct AllPassing {
    /// The value every metric returns.
    pub value: f64,
}

impl CheckSource for AllPassing {
    fn metric(&mut self, _name: &str, _tick: u32) -> MetricResult {
        MetricResult::Value(self.value)
    }

    fn webhook(&mut self, _name: &str, hook_type: HookType, _tick: u32) -> WebhookOutcome {
        if hook_type == HookType::Rollback {
            WebhookOutcome::Failed("no rollback requested".to_owned())
        } else {
            WebhookOutcome::Passed
        }
    }
}

/// How fast workloads roll out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Ticks after the one that changed the canary during which it is still not ready;
    /// `None`: it never becomes ready.
    pub canary_ready_after: Option<u32>,
    /// The same for the primary when it is created (onboarding); `None`: it never becomes
    /// ready, so the canary stays Initializing and the target keeps serving.
    pub primary_ready_after: Option<u32>,
    /// The same for the primary when it takes over a promoted revision; `None`: it gets
    /// stuck during promotion.
    pub promoted_primary_ready_after: Option<u32>,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            canary_ready_after: Some(0),
            primary_ready_after: Some(0),
            promoted_primary_ready_after: Some(0),
        }
    }
}

impl Timing {
    /// Both rollouts of the primary take `ticks` (`None`: never ready).
    pub fn primary(mut self, ticks: Option<u32>) -> Self {
        self.primary_ready_after = ticks;
        self.promoted_primary_ready_after = ticks;
        self
    }
}

/// A workload and when its current rollout completes.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Workload {
    replicas: u32,
    ready_at: Option<u32>,
    since: Timestamp,
}

impl Workload {
    fn state(&self, tick: u32) -> WorkloadState {
        match self.ready_at {
            Some(at) if tick >= at => WorkloadState::ready(self.replicas),
            _ => WorkloadState::rolling_out(self.replicas, 0, self.since),
        }
    }
}

/// The in-memory cluster: one target, its primary, the routes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cluster {
    timing: Timing,
    replicas: u32,
    canary: Workload,
    primary: Option<Workload>,
    /// The revision the target runs.
    pub revision: Revision,
    /// The revision the primary runs.
    pub primary_revision: Option<String>,
    /// The routes as last set.
    pub routes: Routes,
}

impl Cluster {
    /// A target with `replicas` ready pods of `revision`, no primary yet, all traffic on the apex.
    pub fn new(revision: &str, replicas: u32, timing: Timing) -> Self {
        Self {
            timing,
            replicas,
            canary: Workload {
                replicas,
                ready_at: Some(0),
                since: Timestamp::UNIX_EPOCH,
            },
            primary: None,
            revision: Revision::new(revision),
            primary_revision: None,
            routes: Routes::ALL_TO_PRIMARY,
        }
    }

    /// The world as the operator would observe it at `tick`.
    pub fn world(&self, tick: u32) -> World {
        World {
            primary: self.primary.as_ref().map(|p| p.state(tick)),
            canary: self.canary.state(tick),
            revision: self.revision.clone(),
            routes: self.routes,
            autoscaler_min_replicas: None,
            deleting: false,
        }
    }

    /// Whether the canary workload runs any pods.
    pub fn canary_running(&self) -> bool {
        self.canary.replicas > 0
    }

    /// The user deploys a new revision of the target at `tick`.
    pub fn deploy(&mut self, revision: &str, tick: u32, now: Timestamp) {
        revision.clone_into(&mut self.revision.spec_hash);
        if self.canary.replicas > 0 {
            self.canary = Self::rolling(
                self.canary.replicas,
                self.timing.canary_ready_after,
                tick,
                now,
            );
        }
    }

    /// The primary loses its pods at `tick` (a node drain, an eviction); they are ready again
    /// `ready_after` ticks later (`None`: never).
    pub fn disrupt_primary(&mut self, tick: u32, now: Timestamp, ready_after: Option<u32>) {
        if let Some(primary) = &mut self.primary {
            *primary = Self::rolling(primary.replicas, ready_after, tick, now);
        }
    }

    fn rolling(replicas: u32, after: Option<u32>, tick: u32, now: Timestamp) -> Workload {
        Workload {
            replicas,
            ready_at: after.map(|a| tick.saturating_add(1).saturating_add(a)),
            since: now,
        }
    }

    /// Carries out one action at `tick`.
    pub fn apply(&mut self, action: &Action, tick: u32, now: Timestamp) {
        match action {
            // While Initializing the primary follows the target's template, so a new revision
            // of a target whose primary never became ready starts its rollout over.
            Action::InitializePrimary => {
                if self.primary_revision.as_deref() != Some(self.revision.spec_hash.as_str()) {
                    self.primary = Some(Self::rolling(
                        self.replicas,
                        self.timing.primary_ready_after,
                        tick,
                        now,
                    ));
                    self.primary_revision = Some(self.revision.spec_hash.clone());
                }
            }
            Action::SetRoutes(target) => {
                self.routes = Routes {
                    primary: target.primary,
                    canary: target.canary,
                    mirrored: target.mirror.is_some(),
                };
            }
            Action::ScaleCanary { replicas } => {
                if self.canary.replicas != *replicas {
                    self.canary =
                        Self::rolling(*replicas, self.timing.canary_ready_after, tick, now);
                }
            }
            Action::ScaleCanaryToZero => {
                self.canary = Workload {
                    replicas: 0,
                    ready_at: Some(tick),
                    since: now,
                };
            }
            Action::PromotePrimary => {
                if self.primary_revision.as_deref() != Some(self.revision.spec_hash.as_str()) {
                    self.primary_revision = Some(self.revision.spec_hash.clone());
                    self.primary = Some(Self::rolling(
                        self.replicas,
                        self.timing.promoted_primary_ready_after,
                        tick,
                        now,
                    ));
                }
            }
            Action::RevertTarget => {
                if self.canary.replicas == 0 {
                    self.canary =
                        Self::rolling(self.replicas, self.timing.canary_ready_after, tick, now);
                }
            }
            Action::RevertRouting => self.routes = Routes::ALL_TO_PRIMARY,
            // The apex and the routing objects hold no state this simulation tracks (the
            // routes start all on the primary), nor do autoscalers and webhooks.
            Action::InitializeRouting
            | Action::ResumeCanaryAutoscaler
            | Action::PauseCanaryAutoscaler
            | Action::ReconcilePrimaryAutoscaler
            | Action::CallWebhook { .. } => {}
        }
    }
}

/// One tick as it happened.
#[derive(Clone, Debug, PartialEq)]
pub struct TickRecord {
    /// Tick number, from 0.
    pub tick: u32,
    /// When it ran.
    pub at: Timestamp,
    /// What the engine decided.
    pub plan: Plan,
    /// The plan's events followed by the post-rollout hooks' outcomes.
    pub events: Vec<Event>,
}

/// A rollout ticking against a [`Cluster`].
#[derive(Clone, Debug)]
pub struct Simulation {
    /// The prepared canary.
    pub rollout: Rollout,
    /// The in-memory cluster.
    pub cluster: Cluster,
    /// The canary's status, as the operator would have written it.
    pub status: CanaryStatus,
    /// The next tick's number.
    pub tick: u32,
    /// The next tick's time.
    pub now: Timestamp,
}

impl Simulation {
    /// Starts at `start` with an empty status.
    pub fn new(rollout: Rollout, cluster: Cluster, start: Timestamp) -> Self {
        Self {
            rollout,
            cluster,
            status: CanaryStatus::default(),
            tick: 0,
            now: start,
        }
    }

    /// Observes, asks for the checks, plans, carries the plan out, writes the status.
    ///
    /// # Errors
    /// As [`Rollout::plan`].
    pub fn step(&mut self, checks: &mut dyn CheckSource) -> Result<TickRecord> {
        self.step_with_crash(checks, None)
    }

    /// As [`Simulation::step`], but the operator dies after `crash_after` actions: the rest
    /// of the plan and the status write are lost.
    ///
    /// # Errors
    /// As [`Rollout::plan`].
    pub fn step_with_crash(
        &mut self,
        checks: &mut dyn CheckSource,
        crash_after: Option<usize>,
    ) -> Result<TickRecord> {
        let (tick, now) = (self.tick, self.now);
        let world = self.cluster.world(tick);
        let request = self.rollout.needs(&self.status, &world, now);
        let mut observation = Observation::of(world);
        for name in request.metrics {
            let result = checks.metric(&name, tick);
            observation.metrics.insert(name, result);
        }
        for hook in request.webhooks {
            let outcome = checks.webhook(&hook.name, hook.hook_type, tick);
            observation.webhooks.insert(hook.name, outcome);
        }
        let plan = self.rollout.plan(&self.status, &observation, now)?;
        let mut events = plan.events.clone();
        let done = crash_after.unwrap_or(usize::MAX).min(plan.actions.len());
        for action in &plan.actions[..done] {
            self.cluster.apply(action, tick, now);
            if let Action::CallWebhook {
                name,
                hook_type,
                phase,
            } = action
            {
                let outcome = checks.webhook(name, *hook_type, tick);
                events.push(self.rollout.post_rollout_event(name, *phase, &outcome));
            }
        }
        if crash_after.is_none() {
            self.status = plan.status.clone();
        }
        self.tick = self.tick.saturating_add(1);
        self.now = advance(now, plan.requeue_after);
        Ok(TickRecord {
            tick,
            at: now,
            plan,
            events,
        })
    }
}
