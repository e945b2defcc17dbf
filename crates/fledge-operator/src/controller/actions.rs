//! Carrying out the engine's actions, in order. Each is an idempotent target, so a tick
//! interrupted half-way is completed by the next one.

use fledge_api::Canary;
use fledge_engine::{Action, RouteTarget};
use fledge_router::{Router, Routes, ServiceRouter, ServiceTarget};

use crate::controller::Context;
use crate::controller::target::{Target, WorkloadTarget};
use crate::error::{Error, Result};
use crate::workload::labels::PRIMARY_SUFFIX;
use crate::workload::primary::selector_label;
use crate::workload::{Workload, canary_namespace};

/// Everything a tick observed that actions act on.
pub(crate) struct Execution<'a> {
    pub ctx: &'a Context,
    pub rollout: &'a fledge_engine::Rollout,
    pub canary: &'a Canary,
    pub target: &'a Target,
    pub router: &'a dyn Router,
}

impl Execution<'_> {
    /// Carries out one action; a post-rollout hook's outcome comes back as the event to record.
    pub async fn carry_out(&self, action: &Action) -> Result<Option<fledge_engine::Event>> {
        let applier = &self.ctx.applier;
        match (action, self.target) {
            (Action::InitializePrimary, _) => self.initialize_primary().await?,
            (Action::InitializeRouting, _) => self.initialize_routing().await?,
            (Action::SetRoutes(target), _) => {
                self.router
                    .set_routes(self.canary, routes(target))
                    .await
                    .map_err(Error::Router)?;
            }
            (Action::ScaleCanary { replicas }, Target::Workload(w)) => {
                applier.scale_target(&w.target, *replicas).await?;
            }
            (Action::ScaleCanaryToZero, Target::Workload(w)) => {
                applier.scale_target(&w.target, 0).await?;
            }
            (Action::PromotePrimary, Target::Workload(w)) => self.promote(w).await?,
            (Action::PromotePrimary, Target::Service(s)) => {
                applier
                    .promote_service(self.canary, &s.target, s.primary.as_ref())
                    .await?;
            }
            (Action::ReconcilePrimaryAutoscaler, _) => self.reconcile_primary_autoscaler().await?,
            // Like Flagger's HPA reconciler: the target's autoscaler cannot scale a target
            // below its own minimum, and scaling to zero goes through spec.replicas. A Service
            // target has no replicas at all (Flagger's ServiceController does nothing either).
            (Action::PauseCanaryAutoscaler | Action::ResumeCanaryAutoscaler, _)
            | (
                Action::ScaleCanary { .. } | Action::ScaleCanaryToZero | Action::RevertTarget,
                Target::Service(_),
            ) => {}
            (Action::CallWebhook { name, phase, .. }, _) => {
                let outcome = self
                    .ctx
                    .webhooks
                    .call_named(self.canary, name, *phase)
                    .await;
                return Ok(Some(
                    self.rollout.post_rollout_event(name, *phase, &outcome),
                ));
            }
            (Action::RevertTarget, Target::Workload(w)) => {
                let replicas = w.primary.as_ref().map_or(1, |primary| {
                    crate::workload::primary::primary_replicas(primary, None, false).unsigned_abs()
                });
                applier.scale_target(&w.target, replicas).await?;
            }
            (Action::RevertRouting, _) => self.revert_routing().await?,
        }
        Ok(None)
    }

    /// The primary (made to run the target's template while the canary initializes) and the
    /// `-primary` / `-canary` Services. The apex Service and the mesh routes are not touched:
    /// until the primary is ready, the target keeps serving its clients.
    async fn initialize_primary(&self) -> Result<()> {
        let Target::Workload(w) = self.target else {
            // A Service target's copies are kept on every tick and its apex is the user's own.
            return Ok(());
        };
        // Re-applied while initializing (a no-op once it matches), so a new revision of a
        // target whose primary never became ready starts over with the new template.
        self.promote(w).await?;
        let (services, selector) = self.apex_services(&w.target)?;
        services
            .reconcile_generated(self.canary, &selector)
            .await
            .map_err(Error::Router)
    }

    /// The primary runs the target's pod template (and its config copies).
    async fn promote(&self, w: &WorkloadTarget) -> Result<()> {
        self.ctx
            .applier
            .promote(
                self.canary,
                &w.target,
                &w.configs,
                &w.sources,
                w.primary.as_ref(),
            )
            .await?;
        Ok(())
    }

    /// Once the primary is ready: the apex Service selects the primary's pods, then the mesh
    /// routes are created or taken over (all traffic to the primary).
    async fn initialize_routing(&self) -> Result<()> {
        if let Target::Workload(w) = self.target {
            let (services, selector) = self.apex_services(&w.target)?;
            services
                .reconcile_apex(self.canary, &selector)
                .await
                .map_err(Error::Router)?;
        }
        self.router
            .reconcile(self.canary)
            .await
            .map_err(Error::Router)
    }

    /// Gives back the mesh routes, then the apex Service a workload target's canary adopted.
    async fn revert_routing(&self) -> Result<()> {
        self.router
            .finalize(self.canary)
            .await
            .map_err(Error::Router)?;
        if let Target::Workload(w) = self.target {
            let (services, selector) = self.apex_services(&w.target)?;
            services
                .finalize(self.canary, &selector)
                .await
                .map_err(Error::Router)?;
        }
        Ok(())
    }

    /// The apex, primary and canary Services' router and the selector they route by.
    fn apex_services(&self, target: &Workload) -> Result<(ServiceRouter, ServiceTarget)> {
        let selector = selector_label(target, self.ctx.applier.settings())?;
        Ok((
            ServiceRouter::new(self.ctx.client.clone()),
            ServiceTarget::new(selector.key, selector.value),
        ))
    }

    async fn reconcile_primary_autoscaler(&self) -> Result<()> {
        let Some(reference) = &self.canary.spec.autoscaler_ref else {
            return Ok(());
        };
        if reference
            .kind
            .as_deref()
            .is_some_and(|k| k != "HorizontalPodAutoscaler")
        {
            tracing::warn!(kind = ?reference.kind, "only HorizontalPodAutoscalers are reconciled");
            return Ok(());
        }
        let namespace = canary_namespace(self.canary)?;
        let target = self
            .ctx
            .autoscaler(namespace, &reference.name)
            .await?
            .ok_or_else(|| Error::Autoscaler {
                namespace: namespace.to_owned(),
                name: reference.name.clone(),
                reason: "not found; create it or remove spec.autoscalerRef".to_owned(),
            })?;
        let primary_name = format!("{}{PRIMARY_SUFFIX}", reference.name);
        let existing = self.ctx.autoscaler(namespace, &primary_name).await?;
        let version = self.ctx.autoscaling;
        self.ctx
            .applier
            .reconcile_primary_autoscaler(self.canary, version, &target, existing.as_ref())
            .await?;
        Ok(())
    }
}

/// The router's split for the engine's target.
fn routes(target: &RouteTarget) -> Routes {
    Routes::weighted(target.primary, target.canary).with_mirror(target.mirror.is_some())
}
