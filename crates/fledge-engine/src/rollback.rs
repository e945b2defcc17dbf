//! The end of a failed rollout: all traffic back to the primary first, then the canary
//! scaled down, the rollout Failed. And the failed promotion, where the primary is the
//! unhealthy one and traffic goes to the canary instead.

use fledge_api::CanaryPhase;
use fledge_api::canary::AlertSeverity;

use crate::plan::{Action, EventLevel};
use crate::status_update::{self, Counters};
use crate::tick::Tick;

impl Tick<'_> {
    /// Roll back: routes to the primary before the canary goes to zero.
    pub(crate) fn rollback(&mut self) {
        let r = self.rollout;
        let failed = self.failed_checks();
        if failed >= r.settings.threshold {
            self.warn(format!(
                "Rolling back {} failed checks threshold reached {failed}",
                r.subject.canary
            ));
            self.alert(
                format!("Failed checks threshold reached {failed}"),
                AlertSeverity::Error,
                false,
            );
        }
        self.set_routes(100, 0, false);
        self.event(
            EventLevel::Warning,
            format!("Canary failed! Scaling down {}", r.subject.canary),
            CanaryPhase::Failed,
        );
        if r.has_autoscaler {
            self.act(Action::PauseCanaryAutoscaler);
        }
        self.act(Action::ScaleCanaryToZero);
        let revision = &self.world.revision;
        status_update::sync(
            &mut self.status,
            CanaryPhase::Failed,
            Counters::default(),
            revision,
            &r.target_kind,
            self.now,
        );
        self.post_rollout(CanaryPhase::Failed);
    }

    /// The primary got stuck while taking over the new revision: the canary is the only
    /// healthy copy, so traffic goes to it and the rollout is Failed.
    pub(crate) fn fail_promotion(&mut self, error: &str) {
        let r = self.rollout;
        self.warn(format!(
            "Promotion of {} failed, primary not ready: {error}",
            r.subject.target
        ));
        self.alert(
            format!("Promotion failed, primary not ready: {error}"),
            AlertSeverity::Error,
            false,
        );
        self.set_routes(0, 100, false);
        let revision = &self.world.revision;
        let counters = Counters {
            weight: 100,
            ..Counters::default()
        };
        status_update::sync(
            &mut self.status,
            CanaryPhase::Failed,
            counters,
            revision,
            &r.target_kind,
            self.now,
        );
        self.post_rollout(CanaryPhase::Failed);
    }
}
