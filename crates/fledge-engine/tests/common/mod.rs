//! Shared set-up of the engine's integration tests: canaries from YAML, a simulation that
//! runs until the rollout ends, and scripted check sources.

#![allow(dead_code)]

pub mod random;

use std::collections::BTreeMap;

use fledge_api::canary::HookType;
use fledge_api::{Canary, CanaryPhase};
use fledge_engine::simulation::{CheckSource, Cluster, Simulation, TickRecord, Timing};
use fledge_engine::{MetricResult, Rollout, Timestamp, WebhookOutcome};

/// Reads a Canary manifest.
pub fn canary(yaml: &str) -> Canary {
    fledge_api::yaml::from_str(yaml).expect("a valid Canary manifest")
}

/// Reads a fixture of the seed articles.
pub fn fixture(name: &str) -> Canary {
    let path = format!(
        "{}/../fledge-api/tests/fixtures/seeds/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    canary(&text)
}

/// A simulation of `canary` that has been initialised and then given revision `v2`.
pub fn started(canary: &Canary, timing: Timing, checks: &mut dyn CheckSource) -> Simulation {
    let rollout = Rollout::new(canary, Some("istio")).expect("a plannable canary");
    let cluster = Cluster::new("v1", 2, timing);
    let start = Timestamp::from_second(1_600_000_000).expect("a valid time");
    let mut sim = Simulation::new(rollout, cluster, start);
    for _ in 0..10 {
        sim.step(checks).expect("initialisation plans");
        if sim.status.phase == CanaryPhase::Initialized {
            break;
        }
    }
    assert_eq!(sim.status.phase, CanaryPhase::Initialized);
    let (tick, now) = (sim.tick, sim.now);
    sim.cluster.deploy("v2", tick, now);
    sim
}

/// Ticks until the rollout ends (Succeeded or Failed) or `limit` ticks pass.
pub fn run_to_end(
    sim: &mut Simulation,
    checks: &mut dyn CheckSource,
    limit: u32,
) -> Vec<TickRecord> {
    let mut records = Vec::new();
    for _ in 0..limit {
        let record = sim.step(checks).expect("every tick plans");
        let phase = record.plan.status.phase;
        records.push(record);
        if matches!(phase, CanaryPhase::Succeeded | CanaryPhase::Failed) {
            break;
        }
    }
    records
}

/// The messages of the records, in order.
pub fn messages(records: &[TickRecord]) -> Vec<String> {
    records
        .iter()
        .flat_map(|r| r.events.iter().map(|e| e.message.clone()))
        .collect()
}

/// Metric values by name and tick, and webhook failures by name; everything else passes.
#[derive(Clone, Debug, Default)]
pub struct Script {
    /// For each metric, the values returned one after another (the last repeats).
    pub metrics: BTreeMap<String, Vec<MetricResult>>,
    /// Value of metrics without a script.
    pub default_value: f64,
    /// Webhooks that fail, with their error.
    pub failing: BTreeMap<String, String>,
    served: BTreeMap<String, usize>,
}

impl Script {
    pub fn passing(value: f64) -> Self {
        Self {
            default_value: value,
            ..Self::default()
        }
    }

    pub fn metric(mut self, name: &str, values: Vec<MetricResult>) -> Self {
        self.metrics.insert(name.to_owned(), values);
        self
    }

    pub fn failing(mut self, hook: &str, error: &str) -> Self {
        self.failing.insert(hook.to_owned(), error.to_owned());
        self
    }
}

impl CheckSource for Script {
    fn metric(&mut self, name: &str, _tick: u32) -> MetricResult {
        let Some(values) = self.metrics.get(name) else {
            return MetricResult::Value(self.default_value);
        };
        let served = self.served.entry(name.to_owned()).or_default();
        let value = values
            .get(*served)
            .or(values.last())
            .cloned()
            .unwrap_or(MetricResult::NoData);
        *served += 1;
        value
    }

    fn webhook(&mut self, name: &str, hook_type: HookType, _tick: u32) -> WebhookOutcome {
        match self.failing.get(name) {
            Some(error) => WebhookOutcome::Failed(error.clone()),
            // A rollback hook that answers 2xx asks for a rollback; by default it does not.
            None if hook_type == HookType::Rollback => WebhookOutcome::Failed("not now".into()),
            None => WebhookOutcome::Passed,
        }
    }
}
