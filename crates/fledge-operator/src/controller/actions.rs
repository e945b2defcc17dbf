//! Carrying out the engine's actions, in order. Each is an idempotent target, so a tick
//! interrupted half-way is completed by the next one.

use fledge_api::Canary;
use fledge_engine::{Action, RouteTarget};
use fledge_router::{Router, Routes, ServiceRouter, ServiceTarget};

use crate::controller::Context;
use crate::error::{Error, Result};
use crate::workload::config_tracking::{ConfigSources, TrackedConfigs};
use crate::workload::labels::PRIMARY_SUFFIX;
use crate::workload::primary::selector_label;
use crate::workload::{Workload, canary_namespace};

/// Everything a tick observed that actions act on.
pub(crate) struct Execution<'a> {
    pub ctx: &'a Context,
    pub rollout: &'a fledge_engine::Rollout,
    pub canary: &'a Canary,
    pub target: &'a Workload,
    pub configs: &'a TrackedConfigs,
    pub sources: &'a ConfigSources,
    pub primary: Option<&'a Workload>,
    pub router: &'a dyn Router,
}

impl Execution<'_> {
    /// Carries out one action; a post-rollout hook's outcome comes back as the event to record.
    pub async fn carry_out(&self, action: &Action) -> Result<Option<fledge_engine::Event>> {
        let applier = &self.ctx.applier;
        match action {
            Action::InitializePrimary => {
                applier
                    .ensure_primary(
                        self.canary,
                        self.target,
                        self.configs,
                        self.sources,
                        self.primary,
                    )
                    .await?;
                let (services, selector) = self.apex_services()?;
                services
                    .reconcile(self.canary, &selector)
                    .await
                    .map_err(Error::Router)?;
                self.router
                    .reconcile(self.canary)
                    .await
                    .map_err(Error::Router)?;
            }
            Action::SetRoutes(target) => {
                self.router
                    .set_routes(self.canary, routes(target))
                    .await
                    .map_err(Error::Router)?;
            }
            Action::ScaleCanary { replicas } => {
                applier.scale_target(self.target, *replicas).await?;
            }
            Action::ScaleCanaryToZero => {
                applier.scale_target(self.target, 0).await?;
            }
            Action::PromotePrimary => {
                applier
                    .promote(
                        self.canary,
                        self.target,
                        self.configs,
                        self.sources,
                        self.primary,
                    )
                    .await?;
            }
            Action::ReconcilePrimaryAutoscaler => self.reconcile_primary_autoscaler().await?,
            // Like Flagger's HPA reconciler: the target's autoscaler cannot scale a target
            // below its own minimum, and scaling to zero goes through spec.replicas.
            Action::PauseCanaryAutoscaler | Action::ResumeCanaryAutoscaler => {}
            Action::CallWebhook { name, phase, .. } => {
                let outcome = self
                    .ctx
                    .webhooks
                    .call_named(self.canary, name, *phase)
                    .await;
                return Ok(Some(
                    self.rollout.post_rollout_event(name, *phase, &outcome),
                ));
            }
            Action::RevertTarget => {
                let replicas = self.primary.map_or(1, |primary| {
                    crate::workload::primary::primary_replicas(primary, None, false).unsigned_abs()
                });
                applier.scale_target(self.target, replicas).await?;
            }
            Action::RevertRouting => {
                self.router
                    .finalize(self.canary)
                    .await
                    .map_err(Error::Router)?;
                let (services, selector) = self.apex_services()?;
                services
                    .finalize(self.canary, &selector)
                    .await
                    .map_err(Error::Router)?;
            }
        }
        Ok(None)
    }

    /// The apex, primary and canary Services' router and the selector they route by.
    fn apex_services(&self) -> Result<(ServiceRouter, ServiceTarget)> {
        let selector = selector_label(self.target, self.ctx.applier.settings())?;
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
