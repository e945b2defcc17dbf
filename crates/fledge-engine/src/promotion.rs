//! The end of a successful rollout: traffic returns to the freshly promoted primary (at once
//! or by stepWeightPromotion), the canary is scaled down, the rollout is Succeeded. Also the
//! shortcut of skipAnalysis.

use fledge_api::CanaryPhase;
use fledge_api::canary::{AlertSeverity, HookType};

use crate::plan::{Action, EventLevel};
use crate::status_update;
use crate::tick::Tick;

impl Tick<'_> {
    /// Promoting: route traffic back to the primary, which now runs the new revision.
    pub(crate) fn shift_traffic_to_primary(&mut self) {
        let r = self.rollout;
        if r.kubernetes_provider {
            self.enter(CanaryPhase::Finalising);
            return;
        }
        let Some(step) = r.settings.step_weight_promotion else {
            self.info("Routing all traffic to primary".to_owned());
            self.set_routes(100, 0, false);
            self.enter(CanaryPhase::Finalising);
            return;
        };
        let routes = self.world.routes;
        if routes.canary == 0 {
            // Nothing left on the canary (Flagger would wait here forever).
            self.enter(CanaryPhase::Finalising);
            return;
        }
        let primary = routes.primary.saturating_add(step).min(100);
        let canary = 100 - primary;
        self.set_routes(primary, canary, false);
        self.info(format!(
            "Advance {} primary weight {primary}",
            r.subject.canary
        ));
        if primary == 100 {
            self.enter(CanaryPhase::Finalising);
        } else {
            self.status.canary_weight = status_update::as_i32(canary);
            status_update::touch(&mut self.status, self.now);
        }
    }

    /// Finalising: scale the canary down and declare success.
    pub(crate) fn finalise(&mut self) {
        let r = self.rollout;
        if r.has_autoscaler {
            self.act(Action::PauseCanaryAutoscaler);
        }
        self.act(Action::ScaleCanaryToZero);
        self.enter(CanaryPhase::Succeeded);
        self.post_rollout(CanaryPhase::Succeeded);
        self.event(
            EventLevel::Info,
            format!("Promotion completed! Scaling down {}", r.subject.target),
            CanaryPhase::Succeeded,
        );
        self.alert(
            "Canary analysis completed successfully, promotion finished.".to_owned(),
            AlertSeverity::Info,
            false,
        );
    }

    /// skipAnalysis: promote at once, without judging.
    pub(crate) fn skip_analysis(&mut self) {
        let r = self.rollout;
        self.set_routes(100, 0, false);
        self.info(format!(
            "Copying {} template spec to {}",
            r.subject.target, r.primary_id
        ));
        self.act(Action::PromotePrimary);
        if r.has_autoscaler {
            self.act(Action::ReconcilePrimaryAutoscaler);
            self.act(Action::PauseCanaryAutoscaler);
        }
        self.act(Action::ScaleCanaryToZero);
        self.enter(CanaryPhase::Succeeded);
        self.post_rollout(CanaryPhase::Succeeded);
        self.event(
            EventLevel::Info,
            format!(
                "Promotion completed! Canary analysis was skipped for {}",
                r.subject.target
            ),
            CanaryPhase::Succeeded,
        );
        self.alert(
            "Canary analysis was skipped, promotion finished.".to_owned(),
            AlertSeverity::Info,
            false,
        );
    }

    /// Post-rollout hooks: called with the final phase; their answers are only logged.
    pub(crate) fn post_rollout(&mut self, phase: CanaryPhase) {
        let r = self.rollout;
        for hook in r.hooks_of(HookType::PostRollout) {
            self.act(Action::CallWebhook {
                name: hook.name.clone(),
                hook_type: HookType::PostRollout,
                phase,
            });
        }
    }

    /// Flagger's `SetStatusPhase`.
    pub(crate) fn enter(&mut self, phase: CanaryPhase) {
        let r = self.rollout;
        status_update::set_phase(
            &mut self.status,
            phase,
            r.iterations,
            &r.target_kind,
            self.now,
        );
    }
}
