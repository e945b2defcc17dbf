//! Random canaries and random worlds for the property tests: release strategies with their
//! settings, checks that fail at random but reproducibly, and observing a simulated cluster
//! the way the operator does.

use fledge_api::canary::HookType;
use fledge_api::{Canary, CanaryStatus};
use fledge_engine::simulation::{CheckSource, Cluster};
use fledge_engine::{MetricResult, Observation, Rollout, Timestamp, WebhookOutcome};
use proptest::prelude::*;

/// A release strategy with its settings.
#[derive(Clone, Debug)]
pub enum Shape {
    Canary { step: u32, max: u32, mirror: bool },
    StepWeights(Vec<u32>),
    AbTesting { iterations: u32 },
    BlueGreen { iterations: u32, mirror: bool },
}

#[derive(Clone, Debug)]
pub struct Case {
    pub shape: Shape,
    pub threshold: u32,
    pub promotion_step: Option<u32>,
    pub gates: bool,
}

pub fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        (1u32..=60, 1u32..=100, any::<bool>()).prop_map(|(step, max, mirror)| Shape::Canary {
            step,
            max,
            mirror
        }),
        proptest::collection::btree_set(1u32..=100, 1..6)
            .prop_map(|set| Shape::StepWeights(set.into_iter().collect())),
        (1u32..=8).prop_map(|iterations| Shape::AbTesting { iterations }),
        (1u32..=8, any::<bool>())
            .prop_map(|(iterations, mirror)| Shape::BlueGreen { iterations, mirror }),
    ]
}

pub fn case() -> impl Strategy<Value = Case> {
    (
        shape(),
        1u32..=5,
        proptest::option::of(1u32..=60),
        any::<bool>(),
    )
        .prop_map(|(shape, threshold, promotion_step, gates)| Case {
            shape,
            threshold,
            promotion_step,
            gates,
        })
}

impl Case {
    pub fn canary(&self) -> Canary {
        let traffic = match &self.shape {
            Shape::Canary { step, max, mirror } => {
                format!("stepWeight: {step}\n    maxWeight: {max}\n    mirror: {mirror}")
            }
            Shape::StepWeights(weights) => format!("stepWeights: {weights:?}"),
            Shape::AbTesting { iterations } => {
                format!(
                    "iterations: {iterations}\n    match: [{{headers: {{x-canary: {{exact: insider}}}}}}]"
                )
            }
            Shape::BlueGreen { iterations, mirror } => {
                format!("iterations: {iterations}\n    mirror: {mirror}")
            }
        };
        let promotion = self
            .promotion_step
            .map(|s| format!("\n    stepWeightPromotion: {s}"))
            .unwrap_or_default();
        let gates = if self.gates {
            "\n      - {name: traffic-gate, type: confirm-traffic-increase, url: http://gate/}\n      - {name: promotion-gate, type: confirm-promotion, url: http://gate/}\n      - {name: rollback-gate, type: rollback, url: http://gate/}"
        } else {
            ""
        };
        super::canary(&format!(
            r"apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {{name: podinfo, namespace: test}}
spec:
  provider: istio
  targetRef: {{apiVersion: apps/v1, kind: Deployment, name: podinfo}}
  service: {{port: 9898}}
  analysis:
    interval: 30s
    threshold: {threshold}
    {traffic}{promotion}
    metrics:
      - {{name: request-success-rate, thresholdRange: {{min: 99}}, interval: 1m}}
      - {{name: request-duration, thresholdRange: {{max: 500}}, interval: 1m}}
    webhooks:
      - {{name: smoke, type: pre-rollout, url: http://tester/}}
      - {{name: load-test, type: rollout, url: http://tester/}}{gates}
",
            threshold = self.threshold,
        ))
    }

    /// Ticks from the new revision to Succeeded with every check passing: the detection, the
    /// analysis steps, the promotion (copy), the traffic shift back, the finalisation.
    pub fn ticks_to_success(&self) -> u32 {
        let (steps, weight_at_promotion) = match &self.shape {
            Shape::Canary { step, max, mirror } => (max.div_ceil(*step) + u32::from(*mirror), *max),
            Shape::StepWeights(weights) => (weights.len() as u32, *weights.last().unwrap_or(&100)),
            Shape::AbTesting { iterations } => (*iterations, 100),
            Shape::BlueGreen { iterations, .. } => (iterations + 1, 100),
        };
        let shift = self
            .promotion_step
            .map_or(1, |step| weight_at_promotion.div_ceil(step));
        1 + steps + 1 + shift + 1
    }
}

/// Checks that fail at random but reproducibly.
pub struct Flaky {
    pub seed: u64,
    pub failure_percent: u64,
}

impl Flaky {
    fn roll(&self, name: &str, tick: u32) -> u64 {
        let mut hash = self.seed ^ 0xcbf2_9ce4_8422_2325;
        for byte in name.bytes().chain(tick.to_le_bytes()) {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        // Finish with SplitMix64 so every seed gives a different world.
        hash = (hash ^ (hash >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        hash = (hash ^ (hash >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (hash ^ (hash >> 31)) % 100
    }
}

impl CheckSource for Flaky {
    fn metric(&mut self, name: &str, tick: u32) -> MetricResult {
        match self.roll(name, tick) {
            r if r < self.failure_percent / 2 => MetricResult::NoData,
            r if r < self.failure_percent => MetricResult::Value(if name == "request-duration" {
                900.0
            } else {
                50.0
            }),
            _ => MetricResult::Value(100.0),
        }
    }

    fn webhook(&mut self, name: &str, hook_type: HookType, tick: u32) -> WebhookOutcome {
        let fails = self.roll(name, tick) < self.failure_percent;
        // The rollback gate signals rarely: it answers 2xx only on a failure roll below 3.
        let passes = if hook_type == HookType::Rollback {
            self.roll(name, tick) < 3
        } else {
            !fails
        };
        if passes {
            WebhookOutcome::Passed
        } else {
            WebhookOutcome::Failed("no".into())
        }
    }
}

pub fn start() -> Timestamp {
    Timestamp::from_second(1_700_000_000).expect("a valid time")
}

pub fn observe(
    rollout: &Rollout,
    status: &CanaryStatus,
    cluster: &Cluster,
    tick: u32,
    now: Timestamp,
    checks: &mut dyn CheckSource,
) -> Observation {
    let world = cluster.world(tick);
    let request = rollout.needs(status, &world, now);
    let mut observation = Observation::of(world);
    for name in request.metrics {
        let result = checks.metric(&name, tick);
        observation.metrics.insert(name, result);
    }
    for hook in request.webhooks {
        let outcome = checks.webhook(&hook.name, hook.hook_type, tick);
        observation.webhooks.insert(hook.name, outcome);
    }
    observation
}

pub fn passing(observation: &Observation) -> bool {
    observation
        .metrics
        .iter()
        .all(|(name, result)| match result {
            MetricResult::Value(v) if name == "request-duration" => *v <= 500.0,
            MetricResult::Value(v) => *v >= 99.0,
            _ => false,
        })
}
