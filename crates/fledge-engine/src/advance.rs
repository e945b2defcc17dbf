//! Moving a passing canary forward: weight steps (canary, with optional mirroring), A/B
//! iterations, blue/green iterations — and, at the end of each, the promotion.

use std::fmt::Write as _;

use fledge_api::CanaryPhase;
use fledge_api::strategy::Strategy;

use crate::plan::{Action, RouteTarget};
use crate::status_update;
use crate::tick::Tick;

impl Tick<'_> {
    /// One step of the strategy after a passing analysis.
    pub(crate) fn advance(&mut self) {
        match self.rollout.strategy {
            Strategy::AbTesting => self.advance_ab_testing(),
            Strategy::BlueGreen | Strategy::BlueGreenMirroring => self.advance_blue_green(),
            Strategy::Canary => {
                let routes = self.world.routes;
                let gated = !routes.mirrored
                    && !matches!(
                        self.phase(),
                        CanaryPhase::Promoting
                            | CanaryPhase::WaitingPromotion
                            | CanaryPhase::Finalising
                    );
                if gated && !self.confirm_traffic_increase() {
                    return;
                }
                self.advance_canary();
            }
        }
    }

    /// One interval of analysis per step: in Progressing, routes that give the canary another
    /// weight than `status.canaryWeight` mean that a route write landed without its status
    /// (a failed status write, a crash between the two) or that someone edited them. Routes
    /// above the recorded weight are set back to it; routes below it are recorded as they
    /// are (traffic to the canary only grows after a passing analysis). Either way the clock
    /// restarts and this tick neither analyses nor steps. Only the canary strategy records
    /// its weight (A/B testing and blue/green do not; WaitingPromotion clears it).
    pub(crate) fn routes_differ_from_recorded_weight(&mut self) -> bool {
        let r = self.rollout;
        if self.phase() != CanaryPhase::Progressing || r.strategy != Strategy::Canary {
            return false;
        }
        let recorded = u32::try_from(self.status.canary_weight)
            .unwrap_or(0)
            .min(100);
        let observed = self.world.routes.canary;
        if observed == recorded {
            return false;
        }
        if observed > recorded {
            self.info(format!(
                "Routes of {} differ from the recorded canary weight {recorded}; setting them back",
                r.subject.canary
            ));
            // A mirroring canary at weight 0 had its mirror on: only mirrored routes step up.
            self.set_routes(100 - recorded, recorded, r.mirror && recorded == 0);
        } else {
            self.info(format!(
                "Routes of {} give the canary weight {observed}, below the recorded {recorded}; recording {observed}",
                r.subject.canary
            ));
            self.status.canary_weight = status_update::as_i32(observed);
        }
        status_update::touch(&mut self.status, self.now);
        true
    }

    /// The canary weight after `current`: one stepWeight more, or the next of stepWeights —
    /// never above maxWeight (where Flagger would overshoot).
    pub(crate) fn next_weight(&self, current: u32) -> u32 {
        let settings = &self.rollout.settings;
        let next = if settings.step_weight > 0 || settings.step_weights.is_empty() {
            current.saturating_add(settings.step_weight)
        } else {
            settings
                .step_weights
                .iter()
                .copied()
                .find(|w| *w > current)
                .unwrap_or(settings.max_weight)
        };
        next.min(settings.max_weight).min(100)
    }

    fn advance_canary(&mut self) {
        let r = self.rollout;
        let routes = self.world.routes;
        let max_weight = r.settings.max_weight;
        if routes.canary < max_weight {
            // With mirroring, the first step mirrors traffic before any is shifted.
            let (canary, mirrored) = if r.mirror && routes.canary == 0 {
                if routes.mirrored {
                    (self.next_weight(0), false)
                } else {
                    (0, true)
                }
            } else {
                (self.next_weight(routes.canary), false)
            };
            self.set_routes(100 - canary, canary, mirrored);
            self.status.canary_weight = status_update::as_i32(canary);
            status_update::touch(&mut self.status, self.now);
            let mut message = String::with_capacity(r.advance_weight.len() + 3);
            message.push_str(&r.advance_weight);
            let _ = write!(message, "{canary}");
            self.info(message);
            return;
        }
        if !self.confirm_promotion() {
            return;
        }
        self.promote();
    }

    fn advance_ab_testing(&mut self) {
        let r = self.rollout;
        let done = self.iterations_done();
        if r.iterations > done {
            self.set_routes(0, 100, false);
            self.count_iteration(done + 1);
            return;
        }
        if !self.confirm_promotion() {
            return;
        }
        if r.iterations == done {
            self.promote();
        }
    }

    fn advance_blue_green(&mut self) {
        let r = self.rollout;
        let done = self.iterations_done();
        let routes = self.world.routes;
        if r.iterations > done {
            if !r.kubernetes_provider && r.mirror && !routes.mirrored {
                self.set_routes(100, 0, true);
            }
            self.count_iteration(done + 1);
            return;
        }
        if !self.confirm_promotion() {
            return;
        }
        if r.iterations == done {
            if !r.kubernetes_provider {
                self.info(
                    if r.mirror {
                        "Stop traffic mirroring and route all traffic to canary"
                    } else {
                        "Routing all traffic to canary"
                    }
                    .to_owned(),
                );
                self.set_routes(0, 100, false);
            }
            self.status.iterations = status_update::as_i32(done + 1);
            status_update::touch(&mut self.status, self.now);
            return;
        }
        self.promote();
    }

    fn count_iteration(&mut self, done: u32) {
        let r = self.rollout;
        self.status.iterations = status_update::as_i32(done);
        status_update::touch(&mut self.status, self.now);
        self.info(format!(
            "Advance {} canary iteration {done}/{}",
            r.subject.canary, r.iterations
        ));
    }

    /// Copy the canary's spec to the primary and enter Promoting.
    fn promote(&mut self) {
        let r = self.rollout;
        self.info(format!(
            "Copying {} template spec to {}",
            r.subject.target, r.primary_id
        ));
        self.act(Action::PromotePrimary);
        status_update::set_phase(
            &mut self.status,
            CanaryPhase::Promoting,
            r.iterations,
            &r.target_kind,
            self.now,
        );
    }

    /// Sets the routes, with the mirror weight and the session-affinity cookies they need.
    pub(crate) fn set_routes(&mut self, primary: u32, canary: u32, mirrored: bool) {
        let r = self.rollout;
        let mirror = mirrored.then_some(r.settings.mirror_weight);
        let session_affinity = self.sticky_cookies(canary);
        self.act(Action::SetRoutes(RouteTarget {
            primary,
            canary,
            mirror,
            session_affinity,
        }));
    }
}
