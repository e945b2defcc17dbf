//! A [`Rollout`]: a Canary prepared for planning — names, resolved settings, checks in
//! Flagger's order, the judge. Build it once per spec change; plan with it every tick.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use fledge_api::canary::{CanaryMetric, CanaryWebhook, HookType, SessionAffinity};
use fledge_api::defaults::{COOKIE_MAX_AGE_SECS, ResolvedAnalysis};
use fledge_api::strategy::Strategy;
use fledge_api::{Canary, CanaryPhase, CanaryStatus};

use crate::error::{Error, Result};
use crate::judge::{Judge, MetricCheck, MetricKind, Subject, ThresholdRangeJudge};
use crate::observation::{Observation, World};
use crate::plan::{Event, EventLevel, Plan};
use crate::request::ObservationRequest;
use crate::tick::Tick;
use crate::time::Timestamp;

/// Iterations Flagger forces on a `kubernetes`-provider canary that has none.
const KUBERNETES_ITERATIONS: u32 = 10;

/// A webhook of the spec, as the state machine needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Hook {
    pub name: String,
    pub kind: HookType,
    pub mute_alert: bool,
    /// What is said when the hook lets the rollout go on (worded once, said every tick).
    pub go_on_message: String,
}

/// Session-affinity settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Affinity {
    pub cookie_name: String,
    pub primary_cookie_name: Option<String>,
    pub max_age_seconds: u32,
}

/// A canary prepared for planning. Cheap to plan with; build it again when the spec changes.
#[derive(Clone, Debug)]
// Each flag is an independent switch of the spec, not a state encoding.
#[allow(clippy::struct_excessive_bools)]
pub struct Rollout {
    pub(crate) target_kind: String,
    pub(crate) subject: Subject,
    pub(crate) primary_id: String,
    /// `analysis.maxWeight` as written (0 when absent), as Flagger prints it in alerts.
    pub(crate) spec_max_weight: i32,
    /// `Advance podinfo.test canary weight ` (the weight follows).
    pub(crate) advance_weight: String,
    pub(crate) primary_name: String,
    pub(crate) target_name: String,
    pub(crate) kubernetes_provider: bool,
    pub(crate) settings: ResolvedAnalysis,
    pub(crate) strategy: Strategy,
    pub(crate) iterations: u32,
    pub(crate) has_match: bool,
    pub(crate) mirror: bool,
    pub(crate) has_autoscaler: bool,
    pub(crate) suspend: bool,
    pub(crate) revert_on_deletion: bool,
    pub(crate) checks: Vec<MetricCheck>,
    pub(crate) hooks: Vec<Hook>,
    pub(crate) affinity: Option<Affinity>,
    pub(crate) judge: Arc<dyn Judge>,
}

impl Rollout {
    /// Prepares `canary` for planning. `default_provider` is the operator's `-mesh-provider`,
    /// used when `spec.provider` is empty.
    ///
    /// # Errors
    /// [`Error::MissingField`] without `metadata.name` or `spec.targetRef.name`,
    /// [`Error::DuplicateName`] when two metrics or two webhooks share a name, and
    /// [`Error::NoTrafficSteps`] for a canary strategy with neither stepWeight nor stepWeights.
    pub fn new(canary: &Canary, default_provider: Option<&str>) -> Result<Self> {
        let canary_name = canary
            .metadata
            .name
            .clone()
            .filter(|name| !name.is_empty())
            .ok_or(Error::MissingField {
                field: "metadata.name",
                fix: "name the Canary",
            })?;
        let namespace = canary
            .metadata
            .namespace
            .clone()
            .filter(|ns| !ns.is_empty())
            .unwrap_or_else(|| "default".to_owned());
        let spec = &canary.spec;
        let target_name = spec.target_ref.name.clone();
        if target_name.is_empty() {
            return Err(Error::MissingField {
                field: "spec.targetRef.name",
                fix: "name the Deployment or DaemonSet to release",
            });
        }
        let provider = spec.effective_provider(default_provider).to_owned();
        let kubernetes_provider = provider == "kubernetes";
        let settings = spec.resolved(default_provider);
        let strategy = settings.strategy;
        let analysis = spec.analysis();
        let iterations = if kubernetes_provider && settings.iterations < 1 {
            KUBERNETES_ITERATIONS
        } else {
            settings.iterations
        };
        if strategy == Strategy::Canary
            && !settings.skip_analysis
            && settings.step_weight == 0
            && settings.step_weights.is_empty()
        {
            return Err(Error::NoTrafficSteps {
                step_weight: settings.step_weight,
            });
        }

        let checks = prepare_checks(analysis.map(|a| a.metrics.as_slice()).unwrap_or_default())?;
        let webhooks = analysis.map(|a| a.webhooks.as_slice()).unwrap_or_default();
        unique(
            webhooks.iter().map(|w| w.name.as_str()),
            "spec.analysis.webhooks",
        )?;
        let hooks = webhooks.iter().map(hook).collect();
        let affinity = analysis
            .and_then(|a| a.session_affinity.as_ref())
            .and_then(affinity);

        let metrics_provider =
            metrics_provider(spec.provider.as_deref(), default_provider, &provider)
                + if spec.target_ref.kind.as_deref() == Some("Service") {
                    ":service"
                } else {
                    ""
                };

        Ok(Self {
            subject: Subject {
                canary: format!("{canary_name}.{namespace}"),
                target: format!("{target_name}.{namespace}"),
                metrics_provider,
            },
            primary_id: format!("{target_name}-primary.{namespace}"),
            advance_weight: format!("Advance {canary_name}.{namespace} canary weight "),
            primary_name: format!("{target_name}-primary"),
            target_kind: spec
                .target_ref
                .kind
                .clone()
                .unwrap_or_else(|| "Deployment".to_owned()),
            target_name,
            kubernetes_provider,
            strategy: if kubernetes_provider {
                Strategy::BlueGreen
            } else {
                strategy
            },
            iterations,
            has_match: analysis.is_some_and(|a| !a.match_.is_empty()),
            spec_max_weight: analysis.and_then(|a| a.max_weight).unwrap_or(0),
            mirror: analysis.is_some_and(|a| a.mirror),
            has_autoscaler: spec.autoscaler_ref.is_some(),
            suspend: spec.suspend,
            revert_on_deletion: spec.revert_on_deletion,
            settings,
            checks,
            hooks,
            affinity,
            judge: Arc::new(ThresholdRangeJudge),
        })
    }

    /// Replaces the judge of every metric check (the default is [`ThresholdRangeJudge`]).
    pub fn with_judge(mut self, judge: Arc<dyn Judge>) -> Self {
        self.judge = judge;
        self
    }

    /// The checks this tick consults, given the world as it is: exactly the metrics and
    /// webhooks Flagger would run for this status and world, in its order.
    pub fn needs(
        &self,
        status: &CanaryStatus,
        world: &World,
        now: Timestamp,
    ) -> ObservationRequest {
        let mut tick = Tick::needs(self, status, world, now);
        tick.run();
        tick.into_request()
    }

    /// Decides one tick.
    ///
    /// # Guarantees
    /// - Pure: the same inputs give the same plan; no clock, no I/O.
    /// - Every route target sums to 100, never gives the canary more than `maxWeight` while
    ///   analysing, and every rollback routes all traffic to the primary before the canary
    ///   is scaled down. The primary is never scaled to zero.
    /// - `failedChecks >= threshold` in an analysing phase rolls back in this tick.
    /// - Promotion happens only after every step or iteration passed and every
    ///   confirm-promotion gate opened.
    /// - Actions are idempotent targets: after a crash part-way through a plan, planning again
    ///   from the status found converges to the same end state.
    /// - While Initializing, nothing but [`crate::Action::InitializePrimary`] until the primary
    ///   is ready (unless the analysis is skipped); no plan raises the share of traffic of a
    ///   primary that is not ready.
    /// - Every increase of the canary weight while analysing follows a passing analysis, a
    ///   full interval after the previous change of the weight — also after a lost status
    ///   write or a crash between the route write and the status write.
    ///
    /// # Errors
    /// [`Error::MissingMetric`] / [`Error::MissingWebhook`] when `observation` lacks a result
    /// that [`Rollout::needs`] asked for.
    pub fn plan(
        &self,
        status: &CanaryStatus,
        observation: &Observation,
        now: Timestamp,
    ) -> Result<Plan> {
        let mut tick = Tick::plan(self, status, observation, now);
        tick.run();
        tick.into_plan()
    }

    /// Time between ticks.
    pub fn interval(&self) -> Duration {
        self.settings.interval
    }

    /// The resolved analysis settings.
    pub fn settings(&self) -> &ResolvedAnalysis {
        &self.settings
    }

    /// The release strategy (the `kubernetes` provider forces blue/green).
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// Iterations of the analysis (A/B testing and blue/green).
    pub fn iterations(&self) -> u32 {
        self.iterations
    }

    /// Names of the `event` webhooks: each receives every event of a plan.
    pub fn event_webhooks(&self) -> impl Iterator<Item = &str> {
        self.hooks
            .iter()
            .filter(|h| h.kind == HookType::Event)
            .map(|h| h.name.as_str())
    }

    /// The event Flagger records for a post-rollout hook's outcome.
    pub fn post_rollout_event(
        &self,
        name: &str,
        phase: CanaryPhase,
        outcome: &crate::WebhookOutcome,
    ) -> Event {
        match outcome {
            crate::WebhookOutcome::Passed => Event {
                level: EventLevel::Info,
                message: format!("Post-rollout check {name} passed"),
                phase,
            },
            crate::WebhookOutcome::Failed(error) => Event {
                level: EventLevel::Warning,
                message: format!("Post-rollout hook {name} failed {error}"),
                phase,
            },
        }
    }

    /// The fields Flagger attaches to alerts sent with metadata ([`crate::Alert::with_metadata`]):
    /// target, failed-checks threshold, progress deadline and traffic routing. The operator
    /// adds its own `Cluster` field first when it has a cluster name.
    pub fn alert_metadata(&self) -> Vec<(&'static str, String)> {
        let settings = &self.settings;
        let routing = match self.strategy {
            Strategy::AbTesting => Some("A/B Testing".to_owned()),
            Strategy::BlueGreen | Strategy::BlueGreenMirroring => Some("Blue/Green".to_owned()),
            Strategy::Canary if settings.step_weight > 0 => Some(format!(
                "Weight step: {} max: {}",
                settings.step_weight, self.spec_max_weight
            )),
            Strategy::Canary if !settings.step_weights.is_empty() => {
                let steps: Vec<String> = settings.step_weights.iter().map(u32::to_string).collect();
                Some(format!(
                    "Weight steps: {} max: {}",
                    steps.join(","),
                    self.spec_max_weight
                ))
            }
            Strategy::Canary => None,
        };
        let mut fields = vec![
            (
                "Target",
                format!("{}/{}", self.target_kind, self.subject.target),
            ),
            ("Failed checks threshold", settings.threshold.to_string()),
            (
                "Progress deadline",
                format!("{}s", settings.progress_deadline.as_secs()),
            ),
        ];
        if let Some(routing) = routing {
            fields.push(("Traffic routing", routing));
        }
        fields
    }

    /// `name.namespace` of the Canary, as messages print it.
    pub fn canary_id(&self) -> &str {
        &self.subject.canary
    }

    pub(crate) fn hooks_of(&self, hook_type: HookType) -> impl Iterator<Item = &Hook> {
        self.hooks.iter().filter(move |h| h.kind == hook_type)
    }
}

/// The metric checks, in the order Flagger runs them: the builtin and inline-query checks
/// first, then the templates.
fn prepare_checks(metrics: &[CanaryMetric]) -> Result<Vec<MetricCheck>> {
    unique(
        metrics.iter().map(|m| m.name.as_str()),
        "spec.analysis.metrics",
    )?;
    let (first, second): (Vec<_>, Vec<_>) =
        metrics.iter().map(MetricCheck::of).partition(|check| {
            matches!(
                check.kind,
                MetricKind::SuccessRate | MetricKind::RequestDuration | MetricKind::InlineQuery
            )
        });
    Ok(first.into_iter().chain(second).collect())
}

fn affinity(settings: &SessionAffinity) -> Option<Affinity> {
    let cookie_name = settings
        .cookie_name
        .clone()
        .filter(|name| !name.is_empty())?;
    Some(Affinity {
        cookie_name,
        primary_cookie_name: settings
            .primary_cookie_name
            .clone()
            .filter(|n| !n.is_empty()),
        max_age_seconds: settings
            .max_age
            .and_then(|age| u32::try_from(age).ok())
            .filter(|age| *age > 0)
            .unwrap_or(COOKIE_MAX_AGE_SECS),
    })
}

fn hook(webhook: &CanaryWebhook) -> Hook {
    let name = &webhook.name;
    let kind = webhook.hook_type();
    let go_on_message = match kind {
        HookType::ConfirmRollout => format!("Confirm-rollout check {name} passed"),
        HookType::PreRollout => format!("Pre-rollout check {name} passed"),
        HookType::ConfirmTrafficIncrease => format!("Confirm-traffic-increase check {name} passed"),
        HookType::ConfirmPromotion => format!("Confirm-promotion check {name} passed"),
        HookType::Rollback => format!("Rollback hook {name} not signaling a rollback"),
        HookType::Rollout | HookType::PostRollout | HookType::Event => String::new(),
    };
    Hook {
        name: name.clone(),
        kind,
        mute_alert: webhook.mute_alert,
        go_on_message,
    }
}

fn unique<'a>(names: impl Iterator<Item = &'a str>, field: &'static str) -> Result<()> {
    let mut seen = BTreeSet::new();
    for name in names {
        if !seen.insert(name) {
            return Err(Error::DuplicateName {
                field,
                name: name.to_owned(),
            });
        }
    }
    Ok(())
}

/// The metrics provider Flagger names in its messages: the canary's provider (Linkerd when
/// the operator's mesh is Linkerd), else the operator's (Crossover for `smi:crossover`).
fn metrics_provider(
    spec_provider: Option<&str>,
    default_provider: Option<&str>,
    effective: &str,
) -> String {
    let mesh = default_provider.unwrap_or_default();
    match spec_provider.filter(|p| !p.is_empty()) {
        Some(_) if mesh.contains("linkerd") => "linkerd".to_owned(),
        Some(provider) => provider.to_owned(),
        None if mesh.contains("crossover") => "crossover".to_owned(),
        None => effective.to_owned(),
    }
}
