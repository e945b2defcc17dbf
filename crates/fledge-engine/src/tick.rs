//! One tick of the state machine, in the order of Flagger's `advanceCanary`: initialise,
//! detect a new revision, check readiness, gate, judge, then advance, promote or roll back.
//!
//! The same walk serves [`crate::Rollout::needs`] (checks are recorded and assumed to let
//! the walk go on, so every check this tick could consult is listed) and
//! [`crate::Rollout::plan`] (checks are read from the observation).

use fledge_api::canary::AlertSeverity;
use fledge_api::{CanaryPhase, CanaryStatus};

use crate::error::{Error, Result};
use crate::judge::{MetricCheck, Verdict};
use crate::observation::{Observation, Routes, WebhookOutcome, WorkloadState, World};
use crate::plan::{Action, Alert, Event, EventLevel, Plan};
use crate::readiness::{self, Expectation, Readiness};
use crate::request::{ObservationRequest, WebhookRequest};
use crate::rollout::{Hook, Rollout};
use crate::status_update::{self, Counters};
use crate::time::Timestamp;

/// Where check results come from.
enum Mode<'a> {
    /// Record what is consulted; assume the outcome that lets the walk go on.
    Needs(ObservationRequest),
    /// Read results from the observation.
    Plan(&'a Observation),
}

/// A primary that cannot serve: the warning that says why, and whether waiting may still
/// help (`false` once its rollout is stuck past the progress deadline).
struct PrimaryTrouble {
    retriable: bool,
    message: String,
}

/// The working state of one tick.
pub(crate) struct Tick<'a> {
    pub(crate) rollout: &'a Rollout,
    pub(crate) before: &'a CanaryStatus,
    pub(crate) status: CanaryStatus,
    pub(crate) world: &'a World,
    pub(crate) now: Timestamp,
    mode: Mode<'a>,
    actions: Vec<Action>,
    events: Vec<Event>,
    alerts: Vec<Alert>,
    error: Option<Error>,
}

impl<'a> Tick<'a> {
    pub(crate) fn needs(
        rollout: &'a Rollout,
        status: &'a CanaryStatus,
        world: &'a World,
        now: Timestamp,
    ) -> Self {
        Self::new(
            rollout,
            status,
            world,
            now,
            Mode::Needs(ObservationRequest::default()),
        )
    }

    pub(crate) fn plan(
        rollout: &'a Rollout,
        status: &'a CanaryStatus,
        observation: &'a Observation,
        now: Timestamp,
    ) -> Self {
        Self::new(
            rollout,
            status,
            &observation.world,
            now,
            Mode::Plan(observation),
        )
    }

    fn new(
        rollout: &'a Rollout,
        status: &'a CanaryStatus,
        world: &'a World,
        now: Timestamp,
        mode: Mode<'a>,
    ) -> Self {
        Self {
            rollout,
            before: status,
            status: status.clone(),
            world,
            now,
            mode,
            actions: Vec::with_capacity(4),
            events: Vec::with_capacity(4),
            alerts: Vec::new(),
            error: None,
        }
    }

    pub(crate) fn into_request(self) -> ObservationRequest {
        match self.mode {
            Mode::Needs(request) => request,
            Mode::Plan(_) => ObservationRequest::default(),
        }
    }

    pub(crate) fn into_plan(self) -> Result<Plan> {
        if let Some(error) = self.error {
            return Err(error);
        }
        Ok(Plan {
            actions: self.actions,
            status: self.status,
            events: self.events,
            alerts: self.alerts,
            requeue_after: self.rollout.settings.interval,
        })
    }

    /// The walk of one tick.
    pub(crate) fn run(&mut self) {
        let r = self.rollout;
        if r.suspend {
            self.info("skipping canary run as object is suspended".to_owned());
            return;
        }
        if self.world.deleting && r.revert_on_deletion {
            self.terminate();
            return;
        }
        if matches!(
            self.phase(),
            CanaryPhase::Terminating | CanaryPhase::Terminated
        ) {
            return;
        }
        if self.primary_readiness() == Readiness::Ready {
            status_update::primary_ready(&mut self.status);
        }
        if self.phase() == CanaryPhase::Initializing {
            self.initialize();
            return;
        }
        if !self.should_advance() {
            return;
        }
        if !r.settings.skip_analysis && !self.primary_ready() {
            return;
        }
        if !self.check_canary_status() {
            return;
        }
        if self.revision_changed_during_analysis() {
            return;
        }
        if !self.canary_ready() {
            return;
        }
        if r.settings.skip_analysis {
            self.skip_analysis();
            return;
        }
        let phase = self.phase();
        if matches!(
            phase,
            CanaryPhase::Progressing | CanaryPhase::Waiting | CanaryPhase::WaitingPromotion
        ) && self.rollback_requested()
        {
            self.warn(format!(
                "Rolling back {} manual webhook invoked",
                r.subject.canary
            ));
            self.alert(
                "Rolling back manual webhook invoked".to_owned(),
                AlertSeverity::Warn,
                false,
            );
            self.rollback();
            return;
        }
        match phase {
            CanaryPhase::Promoting => {
                if r.has_autoscaler {
                    self.act(Action::ReconcilePrimaryAutoscaler);
                }
                self.shift_traffic_to_primary();
                return;
            }
            CanaryPhase::Finalising => {
                self.finalise();
                return;
            }
            _ => {}
        }
        if matches!(
            phase,
            CanaryPhase::Progressing | CanaryPhase::WaitingPromotion
        ) && self.failed_checks() >= r.settings.threshold
        {
            self.rollback();
            return;
        }
        if self.routes_differ_from_recorded_weight() {
            return;
        }
        if !self.analyse() {
            let failed = self.failed_checks() + 1;
            self.status.failed_checks = status_update::as_i32(failed);
            status_update::touch(&mut self.status, self.now);
            return;
        }
        if r.kubernetes_provider {
            self.warn_kubernetes_provider_limits();
        }
        self.advance();
    }

    /// What plain Services cannot do, said every tick as Flagger says it.
    fn warn_kubernetes_provider_limits(&mut self) {
        let r = self.rollout;
        if r.has_match {
            self.warn("A/B testing is not supported when using the kubernetes provider".to_owned());
        }
        if r.settings.iterations < 1 {
            self.warn(
                "Progressive traffic is not supported when using the kubernetes provider"
                    .to_owned(),
            );
            self.warn("Setting canaryAnalysis.iterations: 10".to_owned());
        }
    }

    /// Initializing, in Flagger's order: create the primary; once it is ready, point the apex
    /// Service and the routes at it, then scale the target down and record the revision as
    /// both applied and promoted. While the primary is not ready nothing else happens, past
    /// the progress deadline too: the target keeps serving, so onboarding costs no request.
    fn initialize(&mut self) {
        let r = self.rollout;
        self.act(Action::InitializePrimary);
        if !r.settings.skip_analysis
            && let Some(trouble) = self.primary_trouble()
        {
            self.report_primary_not_ready(&trouble.message);
            return;
        }
        self.act(Action::InitializeRouting);
        self.set_routes(100, 0, false);
        if r.has_autoscaler {
            self.act(Action::ReconcilePrimaryAutoscaler);
            self.act(Action::PauseCanaryAutoscaler);
        }
        self.act(Action::ScaleCanaryToZero);
        let revision = &self.world.revision;
        status_update::sync(
            &mut self.status,
            CanaryPhase::Initialized,
            Counters::default(),
            revision,
            &r.target_kind,
            self.now,
        );
        self.info(format!("Initialization done! {}", r.subject.canary));
        self.alert(
            format!("New {} detected, initialization completed.", r.target_kind),
            AlertSeverity::Info,
            true,
        );
    }

    /// Whether a rollout is under way or a new revision asks for one. A failed canary
    /// remembers the revision it saw, so only a further change starts a rollout.
    fn should_advance(&mut self) -> bool {
        if self.phase().is_active() {
            return true;
        }
        let changed = self.target_changed() || self.configs_changed();
        if self.phase() == CanaryPhase::Failed {
            let revision = &self.world.revision;
            let configs = (!revision.configs.is_empty()).then(|| revision.configs.clone());
            if self.status.last_applied_spec.as_deref() != Some(revision.spec_hash.as_str())
                || self.status.tracked_configs != configs
            {
                self.status.last_applied_spec = Some(revision.spec_hash.clone());
                self.status.tracked_configs = configs;
                status_update::touch(&mut self.status, self.now);
            }
        }
        changed
    }

    /// Flagger's `hasSpecChanged` against the status this tick started from.
    fn target_changed(&self) -> bool {
        let hash = self.world.revision.spec_hash.as_str();
        match self.before.last_applied_spec.as_deref() {
            None | Some("") => true,
            Some(_) if self.before.last_promoted_spec.as_deref() == Some(hash) => false,
            Some(applied) => applied != hash,
        }
    }

    /// Flagger's `HasConfigChanged`.
    fn configs_changed(&self) -> bool {
        let observed = &self.world.revision.configs;
        match &self.before.tracked_configs {
            None => !observed.is_empty(),
            Some(tracked) => tracked != observed,
        }
    }

    /// The primary must be ready before anything else happens. A primary that is not ready
    /// halts the tick (Warning, condition) and never has traffic rolled back onto it; only a
    /// primary stuck during promotion, while the canary is ready, fails the promotion
    /// towards the canary, the only healthy copy.
    fn primary_ready(&mut self) -> bool {
        let Some(trouble) = self.primary_trouble() else {
            return true;
        };
        self.report_primary_not_ready(&trouble.message);
        if !trouble.retriable
            && matches!(
                self.phase(),
                CanaryPhase::Promoting | CanaryPhase::Finalising
            )
            && self.canary_readiness() == Readiness::Ready
        {
            self.fail_promotion(&trouble.message);
        }
        false
    }

    /// Why the primary cannot serve, if it cannot.
    fn primary_trouble(&self) -> Option<PrimaryTrouble> {
        let r = self.rollout;
        match self.primary_readiness() {
            Readiness::Ready => None,
            Readiness::NotReady { retriable, reason } => Some(PrimaryTrouble {
                retriable,
                message: format!("{} not ready: {reason}", r.primary_id),
            }),
            // Flagger's words; a halt, whatever the deadline: scaling back up is the user's call.
            Readiness::ScaledToZero { .. } => Some(PrimaryTrouble {
                retriable: true,
                message: format!(
                    "halt {} advancement: primary deployment is scaled to zero",
                    r.subject.canary
                ),
            }),
        }
    }

    /// The Warning event and the `PrimaryReady` condition of a primary that is not ready.
    fn report_primary_not_ready(&mut self, message: &str) {
        self.warn(message.to_owned());
        status_update::primary_not_ready(&mut self.status, message, self.now);
    }

    fn primary_readiness(&self) -> Readiness {
        let r = self.rollout;
        let not_created = WorkloadState::default();
        let primary = self.world.primary.as_ref().unwrap_or(&not_created);
        let expect = Expectation {
            deadline: r.settings.progress_deadline,
            ready_threshold: r.settings.primary_ready_threshold,
            progress_since: self.before.last_transition_time.as_ref().map(|t| t.0),
        };
        readiness::check(&r.primary_name, primary, expect, self.now)
    }

    /// Outside the analysing phases: open the confirm-rollout gates, then start the rollout
    /// ("New revision detected! Scaling up ..."). Returns whether the tick goes on.
    fn check_canary_status(&mut self) -> bool {
        let r = self.rollout;
        if matches!(
            self.phase(),
            CanaryPhase::Progressing
                | CanaryPhase::WaitingPromotion
                | CanaryPhase::Promoting
                | CanaryPhase::Finalising
        ) {
            return true;
        }
        if !self.confirm_rollout() {
            return false;
        }
        self.event(
            EventLevel::Info,
            format!("New revision detected! Scaling up {}", r.subject.target),
            CanaryPhase::Progressing,
        );
        self.alert(
            "New revision detected, progressing canary analysis.".to_owned(),
            AlertSeverity::Info,
            true,
        );
        // A rollout starts with all traffic on the primary (ready: checked above). Only a
        // failed promotion leaves it elsewhere — on the target, which now runs the new,
        // unjudged revision — and no strategy moves it back before its first step.
        if self.world.routes != Routes::ALL_TO_PRIMARY {
            self.set_routes(100, 0, false);
        }
        if r.has_autoscaler {
            self.act(Action::ResumeCanaryAutoscaler);
        }
        let replicas = self.canary_replicas();
        self.act(Action::ScaleCanary { replicas });
        let revision = &self.world.revision;
        status_update::sync(
            &mut self.status,
            CanaryPhase::Progressing,
            Counters::default(),
            revision,
            &r.target_kind,
            self.now,
        );
        false
    }

    /// Flagger's `ScaleFromZero`: the target's own replicas, else the primary's (without an
    /// autoscaler) or the autoscaler's minimum, else one.
    fn canary_replicas(&self) -> u32 {
        let world = &self.world;
        if world.canary.desired_replicas > 0 {
            return world.canary.desired_replicas;
        }
        let fallback = if self.rollout.has_autoscaler {
            world.autoscaler_min_replicas
        } else {
            world.primary.as_ref().map(|p| p.desired_replicas)
        };
        fallback.filter(|n| *n > 0).unwrap_or(1)
    }

    /// A new revision during the analysis sends all traffic back and restarts it.
    fn revision_changed_during_analysis(&mut self) -> bool {
        let r = self.rollout;
        if !matches!(
            self.phase(),
            CanaryPhase::Progressing | CanaryPhase::WaitingPromotion
        ) {
            return false;
        }
        if !(self.target_changed() || self.configs_changed()) {
            return false;
        }
        self.info(format!(
            "New revision detected! Restarting analysis for {}",
            r.subject.target
        ));
        self.set_routes(100, 0, false);
        let revision = &self.world.revision;
        status_update::sync(
            &mut self.status,
            CanaryPhase::Progressing,
            Counters::default(),
            revision,
            &r.target_kind,
            self.now,
        );
        true
    }

    /// The canary must be ready to be judged; a canary stuck past the deadline rolls back.
    /// While analysing, a canary scaled to zero is not ready (traffic must not go to it);
    /// once promoting, its part is over and Flagger's check (nothing to wait for) holds.
    fn canary_ready(&mut self) -> bool {
        let analysing = matches!(
            self.phase(),
            CanaryPhase::Progressing | CanaryPhase::WaitingPromotion
        );
        let (retriable, reason) = match self.canary_readiness() {
            Readiness::Ready => return true,
            Readiness::ScaledToZero { .. } if !analysing => return true,
            Readiness::NotReady { retriable, reason } => (retriable, reason),
            Readiness::ScaledToZero { retriable } => (
                retriable,
                format!(
                    "deployment {:?} is scaled to zero",
                    self.rollout.target_name
                ),
            ),
        };
        self.warn(format!(
            "canary deployment {} not ready: {reason}",
            self.rollout.subject.target
        ));
        if !retriable {
            self.rollback();
        }
        false
    }

    pub(crate) fn canary_readiness(&self) -> Readiness {
        let r = self.rollout;
        let expect = Expectation {
            deadline: r.settings.progress_deadline,
            ready_threshold: r.settings.canary_ready_threshold,
            progress_since: self.before.last_transition_time.as_ref().map(|t| t.0),
        };
        readiness::check(&r.target_name, &self.world.canary, expect, self.now)
    }

    // ---- building the plan ----

    pub(crate) fn phase(&self) -> CanaryPhase {
        self.status.phase
    }

    pub(crate) fn failed_checks(&self) -> u32 {
        u32::try_from(self.status.failed_checks).unwrap_or(0)
    }

    pub(crate) fn iterations_done(&self) -> u32 {
        u32::try_from(self.status.iterations).unwrap_or(0)
    }

    pub(crate) fn act(&mut self, action: Action) {
        self.actions.push(action);
    }

    pub(crate) fn event(&mut self, level: EventLevel, message: String, phase: CanaryPhase) {
        self.events.push(Event {
            level,
            message,
            phase,
        });
    }

    pub(crate) fn info(&mut self, message: String) {
        self.event(EventLevel::Info, message, self.status.phase);
    }

    pub(crate) fn warn(&mut self, message: String) {
        self.event(EventLevel::Warning, message, self.status.phase);
    }

    pub(crate) fn alert(&mut self, message: String, severity: AlertSeverity, with_metadata: bool) {
        self.alerts.push(Alert {
            message,
            severity,
            with_metadata,
        });
    }

    // ---- checks ----

    /// The outcome of `hook`; in needs mode the request is recorded and `assumed` returned.
    pub(crate) fn call(
        &mut self,
        hook: &Hook,
        phase: CanaryPhase,
        assumed: WebhookOutcome,
    ) -> WebhookOutcome {
        match &mut self.mode {
            Mode::Needs(request) => {
                request.webhooks.push(WebhookRequest {
                    name: hook.name.clone(),
                    hook_type: hook.kind,
                    phase,
                });
                assumed
            }
            Mode::Plan(observation) => {
                if let Some(outcome) = observation.webhooks.get(&hook.name) {
                    return outcome.clone();
                }
                self.error.get_or_insert(Error::MissingWebhook {
                    name: hook.name.clone(),
                });
                assumed
            }
        }
    }

    /// The verdict on `check`; in needs mode the query is recorded and the check passes.
    pub(crate) fn verdict(&mut self, check: &MetricCheck) -> Verdict {
        let r = self.rollout;
        match &mut self.mode {
            Mode::Needs(request) => {
                if check.is_queried() {
                    request.metrics.push(check.name.clone());
                }
                Verdict::Pass
            }
            Mode::Plan(observation) => {
                let missing = crate::observation::MetricResult::NoData;
                let result = match observation.metrics.get(&check.name) {
                    Some(result) => result,
                    None if !check.is_queried() => &missing,
                    None => {
                        self.error.get_or_insert(Error::MissingMetric {
                            name: check.name.clone(),
                        });
                        return Verdict::Pass;
                    }
                };
                r.judge.judge(&r.subject, check, result)
            }
        }
    }
}
