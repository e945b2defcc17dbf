//! Embedding the engine in another controller.
//!
//! A controller owns the I/O; the engine owns the decisions. Each tick the controller
//! 1. reads the world from its caches,
//! 2. asks the engine which checks this tick needs and runs them,
//! 3. asks the engine for a plan,
//! 4. carries the actions out in order, writes the status, records the events.
//!
//! Here the "cluster" is a few fields and the checks are canned, so the example runs
//! anywhere: `cargo run -p fledge-engine --example embed`.

use std::collections::BTreeMap;

use fledge_api::{Canary, CanaryPhase, CanaryStatus};
use fledge_engine::{
    Action, MetricResult, Observation, Revision, Rollout, Routes, Timestamp, WebhookOutcome,
    WorkloadState, World, advance,
};

/// What your controller would read from watch caches and write with server-side apply.
struct MyCluster {
    target_revision: String,
    primary_revision: Option<String>,
    canary_replicas: u32,
    routes: Routes,
    status: CanaryStatus,
}

impl MyCluster {
    fn observe(&self) -> World {
        World {
            primary: self
                .primary_revision
                .as_ref()
                .map(|_| WorkloadState::ready(2)),
            canary: WorkloadState::ready(self.canary_replicas),
            revision: Revision::new(self.target_revision.clone()),
            routes: self.routes,
            ..World::default()
        }
    }

    fn execute(&mut self, action: &Action) {
        match action {
            Action::InitializePrimary if self.primary_revision.is_none() => {
                self.primary_revision = Some(self.target_revision.clone());
            }
            Action::SetRoutes(target) => {
                self.routes = Routes {
                    primary: target.primary,
                    canary: target.canary,
                    mirrored: target.mirror.is_some(),
                };
            }
            Action::ScaleCanary { replicas } => self.canary_replicas = *replicas,
            Action::ScaleCanaryToZero => self.canary_replicas = 0,
            Action::PromotePrimary => self.primary_revision = Some(self.target_revision.clone()),
            // Autoscalers, post-rollout webhooks and deletion are not part of this example.
            _ => {}
        }
    }
}

/// Your metric provider and webhook client; here every check passes.
fn run_checks(
    rollout: &Rollout,
    status: &CanaryStatus,
    world: World,
    now: Timestamp,
) -> Observation {
    let request = rollout.needs(status, &world, now);
    let metrics: BTreeMap<_, _> = request
        .metrics
        .into_iter()
        .map(|name| (name, MetricResult::Value(99.9)))
        .collect();
    let webhooks: BTreeMap<_, _> = request
        .webhooks
        .into_iter()
        .map(|hook| (hook.name, WebhookOutcome::Passed))
        .collect();
    Observation {
        world,
        metrics,
        webhooks,
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let canary: Canary = fledge_api::yaml::from_str(
        r"
apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: podinfo, namespace: test}
spec:
  provider: istio
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  service: {port: 9898}
  analysis:
    interval: 1m
    maxWeight: 30
    stepWeight: 10
    metrics: [{name: request-success-rate, thresholdRange: {min: 99}}]
",
    )?;
    // Build the rollout once per spec change; plan with it every tick.
    let rollout = Rollout::new(&canary, Some("istio"))?;
    let mut cluster = MyCluster {
        target_revision: "v1".into(),
        primary_revision: None,
        canary_replicas: 2,
        routes: Routes::ALL_TO_PRIMARY,
        status: CanaryStatus::default(),
    };
    let mut now = Timestamp::from_second(1_767_225_600)?;
    for tick in 0..12 {
        if cluster.status.phase == CanaryPhase::Initialized {
            cluster.target_revision = "v2".into(); // someone deploys a new version
        }
        let observation = run_checks(&rollout, &cluster.status, cluster.observe(), now);
        let plan = rollout.plan(&cluster.status, &observation, now)?;
        for action in &plan.actions {
            cluster.execute(action);
        }
        for event in &plan.events {
            println!(
                "{now} tick {tick:>2} [{}] {}",
                event.level.event_type(),
                event.message
            );
        }
        cluster.status = plan.status;
        now = advance(now, plan.requeue_after);
        if cluster.status.phase == CanaryPhase::Succeeded {
            break;
        }
    }
    println!(
        "primary runs {:?}",
        cluster.primary_revision.unwrap_or_default()
    );
    Ok(())
}
