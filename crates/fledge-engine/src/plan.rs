//! What a tick decides: the [`Plan`] — actions to carry out in order, the new status, the
//! events and alerts to send, and when to tick again.

use std::time::Duration;

use fledge_api::canary::{AlertSeverity, HookType};
use fledge_api::{CanaryPhase, CanaryStatus};

/// The outcome of one tick. The operator executes `actions` in order, then writes `status`,
/// records `events` (and forwards each to the canary's `event` webhooks), sends `alerts`, and
/// ticks again after `requeue_after`.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Idempotent targets, to be carried out in this order.
    pub actions: Vec<Action>,
    /// The status to write once the actions are done.
    pub status: CanaryStatus,
    /// Kubernetes Events and log lines, in Flagger's words.
    pub events: Vec<Event>,
    /// Notifications for the canary's alert providers.
    pub alerts: Vec<Alert>,
    /// Time until the next tick (the analysis interval).
    pub requeue_after: Duration,
}

impl Plan {
    /// The messages of the events, in order (what `kubectl logs | jq .msg` shows).
    pub fn messages(&self) -> impl Iterator<Item = &str> {
        self.events.iter().map(|event| event.message.as_str())
    }

    /// Whether the plan changes nothing: no actions, same status, nothing to say.
    pub fn is_quiet(&self, previous: &CanaryStatus) -> bool {
        self.actions.is_empty() && self.events.is_empty() && self.status == *previous
    }
}

/// A target state for the operator to reach. Every action is idempotent: carrying it out
/// twice leaves the world as carrying it out once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Create the primary workload from the target (while Initializing, make it run the
    /// target's current pod template, so a new revision of a target whose primary never
    /// became ready starts over), its ConfigMap/Secret copies, and the `-primary` and
    /// `-canary` ClusterIP Services. Touches neither the apex Service nor the routing
    /// objects, so no traffic moves. Never scales the primary to zero.
    InitializePrimary,
    /// Point the apex Service at the primary and create (or take over) the routing objects
    /// with all traffic on the primary. Planned only once the primary is ready (or the
    /// analysis is skipped), before the target is scaled down: onboarding a live service
    /// costs no request.
    InitializeRouting,
    /// Set the routes to exactly these weights.
    SetRoutes(RouteTarget),
    /// Scale the target (the canary) to `replicas`.
    ScaleCanary {
        /// Replicas to run.
        replicas: u32,
    },
    /// Scale the target (the canary) to zero.
    ScaleCanaryToZero,
    /// Copy the target's pod template (and its ConfigMaps/Secrets) to the primary.
    PromotePrimary,
    /// Let the target's autoscaler act again.
    ResumeCanaryAutoscaler,
    /// Stop the target's autoscaler from scaling it (before it goes to zero).
    PauseCanaryAutoscaler,
    /// Make the primary's autoscaler match the target's.
    ReconcilePrimaryAutoscaler,
    /// Call a webhook whose answer is only logged (post-rollout). Record its outcome with
    /// [`crate::Rollout::post_rollout_event`].
    CallWebhook {
        /// `spec.analysis.webhooks[].name`.
        name: String,
        /// The hook's type.
        hook_type: HookType,
        /// The `phase` of the payload.
        phase: CanaryPhase,
    },
    /// Restore the target as it was before Fledge (deletion with `revertOnDeletion`).
    RevertTarget,
    /// Restore the Services and mesh objects as they were before Fledge.
    RevertRouting,
}

/// Weights for the routers. `primary + canary == 100` always.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteTarget {
    /// Share of the primary, in percent.
    pub primary: u32,
    /// Share of the canary, in percent.
    pub canary: u32,
    /// Percentage of the primary's traffic mirrored to the canary; `None` when not mirroring.
    pub mirror: Option<u32>,
    /// Cookies that pin users to a version (session affinity); `None` when not configured.
    pub session_affinity: Option<StickyCookies>,
}

/// The session-affinity cookies of a rollout, as written in `status`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StickyCookies {
    /// `name=value` that pins a user to the canary (empty when no canary traffic).
    pub canary: Option<String>,
    /// `name=value` that pins a user to the primary.
    pub primary: Option<String>,
    /// The canary cookie of the previous rollout, to be expired.
    pub previous: Option<String>,
    /// `Max-Age` of the canary cookie, in seconds.
    pub max_age_seconds: u32,
}

/// How loud an event is: Flagger's `recordEventInfof` / `Warningf` / `Errorf`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventLevel {
    /// A Normal event, logged at info.
    Info,
    /// A Warning event, logged at info.
    Warning,
    /// A Warning event, logged at error.
    Error,
}

impl EventLevel {
    /// The Kubernetes Event type (`Normal` or `Warning`).
    pub fn event_type(self) -> &'static str {
        match self {
            Self::Info => "Normal",
            Self::Warning | Self::Error => "Warning",
        }
    }
}

/// One Kubernetes Event (reason `Synced`) and log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// How loud it is.
    pub level: EventLevel,
    /// Flagger's message, word for word.
    pub message: String,
    /// The phase sent with the event to `event` webhooks.
    pub phase: CanaryPhase,
}

/// A notification for the canary's alert providers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alert {
    /// Flagger's alert text.
    pub message: String,
    /// Its severity.
    pub severity: AlertSeverity,
    /// Attach the canary's target, threshold, deadline and routing fields.
    pub with_metadata: bool,
}

impl Alert {
    /// Whether an alert entry configured with `configured` severity receives this alert
    /// (Flagger: `info` receives everything, `warn` receives warnings and errors, `error`
    /// only errors).
    pub fn reaches(&self, configured: AlertSeverity) -> bool {
        match configured {
            AlertSeverity::Info => true,
            AlertSeverity::Warn => {
                matches!(self.severity, AlertSeverity::Warn | AlertSeverity::Error)
            }
            AlertSeverity::Error => self.severity == AlertSeverity::Error,
        }
    }
}
