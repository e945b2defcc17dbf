//! The checks of a tick: the gates (confirm-rollout, confirm-traffic-increase,
//! confirm-promotion), the manual rollback hook, and the analysis proper (pre-rollout or
//! rollout hooks, then the metrics through the judge).

use fledge_api::CanaryPhase;
use fledge_api::canary::{AlertSeverity, HookType};

use crate::judge::Verdict;
use crate::observation::WebhookOutcome;
use crate::status_update;
use crate::tick::Tick;

/// What needs mode assumes for a check whose failure stops the walk.
const GO_ON: WebhookOutcome = WebhookOutcome::Passed;

impl Tick<'_> {
    /// Confirm-rollout gates: a closed gate holds the canary in Waiting.
    pub(crate) fn confirm_rollout(&mut self) -> bool {
        let r = self.rollout;
        let phase = self.phase();
        for hook in r.hooks_of(HookType::ConfirmRollout) {
            if self.call(hook, phase, GO_ON).passed() {
                self.info(hook.go_on_message.clone());
                continue;
            }
            if phase != CanaryPhase::Waiting {
                self.warn(format!(
                    "Halt {} advancement waiting for approval {}",
                    r.subject.canary, hook.name
                ));
                status_update::set_phase(
                    &mut self.status,
                    CanaryPhase::Waiting,
                    r.iterations,
                    &r.target_kind,
                    self.now,
                );
                if !hook.mute_alert {
                    self.alert(
                        "Canary is waiting for approval.".to_owned(),
                        AlertSeverity::Warn,
                        false,
                    );
                }
            }
            return false;
        }
        true
    }

    /// Rollback hooks: the first one answering 2xx asks for a manual rollback.
    pub(crate) fn rollback_requested(&mut self) -> bool {
        let r = self.rollout;
        let phase = self.phase();
        for hook in r.hooks_of(HookType::Rollback) {
            if self
                .call(hook, phase, WebhookOutcome::Failed(String::new()))
                .passed()
            {
                self.warn(format!("Rollback check {} passed", hook.name));
                return true;
            }
            self.info(hook.go_on_message.clone());
        }
        false
    }

    /// The analysis of this tick. With no traffic on the canary yet it starts the analysis
    /// and runs the pre-rollout hooks; otherwise the rollout hooks and the metrics. Returns
    /// whether every check passed (a failure counts one failed check).
    pub(crate) fn analyse(&mut self) -> bool {
        let r = self.rollout;
        let routes = self.world.routes;
        if routes.canary == 0 && self.status.iterations == 0 && !(r.mirror && routes.mirrored) {
            self.info(format!("Starting canary analysis for {}", r.subject.target));
            for hook in r.hooks_of(HookType::PreRollout) {
                match self.call(hook, CanaryPhase::Progressing, GO_ON) {
                    WebhookOutcome::Passed => {
                        self.info(hook.go_on_message.clone());
                    }
                    WebhookOutcome::Failed(error) => {
                        self.warn(format!(
                            "Halt {} advancement pre-rollout check {} failed {error}",
                            r.subject.canary, hook.name
                        ));
                        return false;
                    }
                }
            }
            return true;
        }
        for hook in r.hooks_of(HookType::Rollout) {
            if let WebhookOutcome::Failed(error) = self.call(hook, CanaryPhase::Progressing, GO_ON)
            {
                self.warn(format!(
                    "Halt {} advancement external check {} failed {error}",
                    r.subject.canary, hook.name
                ));
                return false;
            }
        }
        for check in &r.checks {
            if let Verdict::Fail { level, message } = self.verdict(check) {
                self.event(level, message, self.phase());
                return false;
            }
        }
        true
    }

    /// Confirm-traffic-increase gates, consulted before each weight step.
    pub(crate) fn confirm_traffic_increase(&mut self) -> bool {
        let r = self.rollout;
        for hook in r.hooks_of(HookType::ConfirmTrafficIncrease) {
            if self.call(hook, CanaryPhase::Progressing, GO_ON).passed() {
                self.info(hook.go_on_message.clone());
                continue;
            }
            self.warn(format!(
                "Halt {} advancement waiting for traffic increase approval {}",
                r.subject.canary, hook.name
            ));
            if !hook.mute_alert {
                self.alert(
                    "Canary traffic increase is waiting for approval.".to_owned(),
                    AlertSeverity::Warn,
                    false,
                );
            }
            return false;
        }
        true
    }

    /// Confirm-promotion gates: a closed gate holds the canary in WaitingPromotion, where
    /// the analysis goes on.
    pub(crate) fn confirm_promotion(&mut self) -> bool {
        let r = self.rollout;
        for hook in r.hooks_of(HookType::ConfirmPromotion) {
            if self.call(hook, CanaryPhase::Progressing, GO_ON).passed() {
                self.info(hook.go_on_message.clone());
                continue;
            }
            if self.phase() == CanaryPhase::WaitingPromotion {
                self.status.iterations = status_update::as_i32(r.iterations.saturating_sub(1));
                status_update::touch(&mut self.status, self.now);
            } else {
                self.warn(format!(
                    "Halt {} advancement waiting for promotion approval {}",
                    r.subject.canary, hook.name
                ));
                status_update::set_phase(
                    &mut self.status,
                    CanaryPhase::WaitingPromotion,
                    r.iterations,
                    &r.target_kind,
                    self.now,
                );
                if !hook.mute_alert {
                    self.alert(
                        "Canary promotion is waiting for approval.".to_owned(),
                        AlertSeverity::Warn,
                        false,
                    );
                }
            }
            return false;
        }
        true
    }
}
