//! Deletion with `revertOnDeletion`: Terminating restores the target, waits for it to be
//! ready, then restores routing and ends Terminated (the operator then drops its finalizer).

use fledge_api::CanaryPhase;

use crate::plan::Action;
use crate::readiness::Readiness;
use crate::tick::Tick;

impl Tick<'_> {
    pub(crate) fn terminate(&mut self) {
        let r = self.rollout;
        match self.phase() {
            CanaryPhase::Terminated => {}
            CanaryPhase::Terminating => {
                if r.has_autoscaler {
                    self.act(Action::ResumeCanaryAutoscaler);
                }
                self.act(Action::RevertTarget);
                // The target is back once it runs pods again and they are ready.
                let restored = self.world.canary.desired_replicas > 0;
                match self.canary_readiness() {
                    Readiness::Ready if restored => {
                        self.act(Action::RevertRouting);
                        self.enter(CanaryPhase::Terminated);
                        self.info(format!("Terminated canary {}", r.subject.canary));
                    }
                    Readiness::NotReady {
                        retriable: false,
                        reason,
                    } => {
                        self.warn(format!(
                            "canary not ready during finalizing: canary deployment {} not ready: {reason}",
                            r.subject.target
                        ));
                    }
                    Readiness::Ready
                    | Readiness::NotReady { .. }
                    | Readiness::ScaledToZero { .. } => {}
                }
            }
            _ => {
                self.enter(CanaryPhase::Terminating);
                self.info(format!("Terminating canary {}", r.subject.canary));
                if r.has_autoscaler {
                    self.act(Action::ResumeCanaryAutoscaler);
                }
                self.act(Action::RevertTarget);
            }
        }
    }
}
