//! Scenario files: how the simulated world behaves — when workloads become ready, what the
//! metrics read tick by tick, which webhooks fail, when new revisions arrive, and what
//! outcome the story should end with.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use fledge_api::canary::{CanaryMetric, HookType};
use fledge_api::{CanaryPhase, CanarySpec};
use fledge_engine::simulation::{CheckSource, Timing};
use fledge_engine::{MetricResult, WebhookOutcome};
use serde::Deserialize;

/// Ticks when the scenario sets no limit.
const DEFAULT_MAX_TICKS: u32 = 100;
/// The most ticks a scenario may ask for: a simulation always ends, and soon.
pub const MAX_TICKS: u32 = 10_000;
/// The most entries of `newRevisionAt` (each is looked up every tick).
const MAX_NEW_REVISIONS: usize = 1_000;

/// A scenario as written in YAML.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scenario {
    /// One line saying what the scenario shows.
    #[serde(default)]
    pub description: Option<String>,
    /// Replicas of the target (default 2).
    #[serde(default)]
    pub replicas: Option<u32>,
    /// How the canary rolls out.
    #[serde(default)]
    pub canary: WorkloadBehaviour,
    /// How the primary rolls out.
    #[serde(default)]
    pub primary: WorkloadBehaviour,
    /// Metric behaviour by metric name; unlisted metrics read a passing value.
    #[serde(default)]
    pub metrics: BTreeMap<String, MetricBehaviour>,
    /// Webhook behaviour by webhook name; unlisted webhooks pass (rollback hooks stay quiet).
    #[serde(default)]
    pub webhooks: BTreeMap<String, WebhookBehaviour>,
    /// Ticks at which a further new revision of the target is deployed.
    #[serde(default)]
    pub new_revision_at: Vec<u32>,
    /// Stop after this many ticks (default 100).
    #[serde(default)]
    pub max_ticks: Option<u32>,
    /// The phase the story should end in; the exit status says whether it did.
    #[serde(default)]
    pub expect: Option<CanaryPhase>,
}

/// When a workload becomes ready after it changes.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadBehaviour {
    /// Ticks it stays not ready after a change (default 0).
    #[serde(default)]
    pub ready_after_ticks: Option<u32>,
    /// It never becomes ready (a primary that never does keeps the canary Initializing).
    #[serde(default)]
    pub never_ready: bool,
    /// Primary only: ready when created, but it never becomes ready again once a promoted
    /// revision is copied to it (stuck during promotion).
    #[serde(default)]
    pub stuck_after_promotion: bool,
}

impl WorkloadBehaviour {
    /// Ticks a rollout of this workload takes; `None`: never ready.
    fn ready_after(&self) -> Option<u32> {
        (!self.never_ready).then(|| self.ready_after_ticks.unwrap_or(0))
    }
}

/// What a metric reads, tick by tick.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum MetricBehaviour {
    /// Always this value.
    Constant(f64),
    /// From `from` to `to`, linearly over `ticks` ticks starting at tick `start`.
    Ramp {
        /// First value.
        from: f64,
        /// Last value.
        to: f64,
        /// First tick of the ramp.
        #[serde(default)]
        start: u32,
        /// Length of the ramp.
        ticks: u32,
    },
    /// `before` until tick `at`, `after` from then on.
    Step {
        /// Value before the change.
        before: f64,
        /// Value from the change on.
        after: f64,
        /// Tick of the change.
        at: u32,
    },
    /// `mean` ± `spread`, reproducibly random by `seed`.
    Noise {
        /// Centre.
        mean: f64,
        /// Largest deviation.
        spread: f64,
        /// Seed of the generator.
        #[serde(default)]
        seed: u64,
    },
    /// The query returns no series.
    NoData,
    /// The query fails with this error.
    Error(String),
}

/// Whether a webhook answers 2xx.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum WebhookBehaviour {
    /// Always 2xx.
    Pass,
    /// Never 2xx.
    Fail,
    /// Fails before tick `n`, passes from it on.
    PassFrom(u32),
    /// Passes before tick `n`, fails from it on.
    FailFrom(u32),
}

impl Scenario {
    /// Reads a scenario file's text.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        // Through JSON values, so behaviours read as plain maps (`{constant: 99}`), not YAML tags.
        let mut documents =
            fledge_api::yaml::documents(text).context("the scenario is not YAML")?;
        if documents.len() != 1 {
            bail!(
                "a scenario file holds one YAML document, found {}",
                documents.len()
            );
        }
        let document = documents.swap_remove(0);
        let document = if document.is_null() {
            serde_json::Value::Object(serde_json::Map::new())
        } else {
            document
        };
        serde_json::from_value(document).context("the scenario does not read as a scenario")
    }

    /// The tick limit: `maxTicks`, or 100.
    ///
    /// # Errors
    /// When `maxTicks` is above [`MAX_TICKS`] or `newRevisionAt` has more than 1,000 entries.
    pub fn max_ticks(&self) -> anyhow::Result<u32> {
        let max_ticks = self.max_ticks.unwrap_or(DEFAULT_MAX_TICKS);
        if max_ticks > MAX_TICKS {
            bail!("scenario maxTicks: must be at most {MAX_TICKS}, got {max_ticks}");
        }
        if self.new_revision_at.len() > MAX_NEW_REVISIONS {
            bail!(
                "scenario newRevisionAt: has {} entries, at most {MAX_NEW_REVISIONS} are allowed",
                self.new_revision_at.len()
            );
        }
        Ok(max_ticks)
    }

    /// Checks that every metric and webhook named exists in the canary, and that only the
    /// primary is said to get stuck after promotion.
    pub fn check_names(&self, spec: &CanarySpec) -> anyhow::Result<()> {
        if self.canary.stuck_after_promotion {
            bail!(
                "scenario canary.stuckAfterPromotion: only the primary takes over a promoted revision (move it to primary)"
            );
        }
        let analysis = spec.analysis();
        let metrics: Vec<&str> = analysis
            .map(|a| a.metrics.iter().map(|m| m.name.as_str()).collect())
            .unwrap_or_default();
        let hooks: Vec<&str> = analysis
            .map(|a| a.webhooks.iter().map(|w| w.name.as_str()).collect())
            .unwrap_or_default();
        for name in self.metrics.keys() {
            if !metrics.contains(&name.as_str()) {
                bail!(
                    "scenario metrics.{name}: the canary has no such metric (it has: {})",
                    metrics.join(", ")
                );
            }
        }
        for name in self.webhooks.keys() {
            if !hooks.contains(&name.as_str()) {
                bail!(
                    "scenario webhooks.{name}: the canary has no such webhook (it has: {})",
                    hooks.join(", ")
                );
            }
        }
        Ok(())
    }

    /// Rollout speed of the workloads.
    pub fn timing(&self) -> Timing {
        Timing {
            canary_ready_after: self.canary.ready_after(),
            primary_ready_after: self.primary.ready_after(),
            promoted_primary_ready_after: self
                .primary
                .ready_after()
                .filter(|_| !self.primary.stuck_after_promotion),
        }
    }

    /// The check source that plays this scenario against `spec`'s metrics.
    pub fn checks(&self, spec: &CanarySpec) -> ScriptedChecks {
        let passing = spec
            .analysis()
            .map(|a| {
                a.metrics
                    .iter()
                    .map(|m| (m.name.clone(), passing_value(m)))
                    .collect()
            })
            .unwrap_or_default();
        ScriptedChecks {
            metrics: self.metrics.clone(),
            webhooks: self.webhooks.clone(),
            passing,
        }
    }
}

/// A value inside the metric's range, for metrics the scenario does not script.
fn passing_value(metric: &CanaryMetric) -> f64 {
    match metric.threshold_range {
        Some(range) => match (range.min, range.max) {
            (Some(min), Some(max)) => f64::midpoint(min, max),
            (Some(min), None) => min,
            (None, Some(max)) => max,
            (None, None) => 0.0,
        },
        None => metric.threshold.unwrap_or(0.0),
    }
}

/// The scenario's metrics and webhooks as a [`CheckSource`].
#[derive(Clone, Debug)]
pub struct ScriptedChecks {
    metrics: BTreeMap<String, MetricBehaviour>,
    webhooks: BTreeMap<String, WebhookBehaviour>,
    passing: BTreeMap<String, f64>,
}

impl CheckSource for ScriptedChecks {
    fn metric(&mut self, name: &str, tick: u32) -> MetricResult {
        let Some(behaviour) = self.metrics.get(name) else {
            return MetricResult::Value(self.passing.get(name).copied().unwrap_or(0.0));
        };
        match behaviour {
            MetricBehaviour::Constant(value) => MetricResult::Value(*value),
            MetricBehaviour::Ramp {
                from,
                to,
                start,
                ticks,
            } => {
                let progress = f64::from(tick.saturating_sub(*start)) / f64::from((*ticks).max(1));
                MetricResult::Value(from + (to - from) * progress.min(1.0))
            }
            MetricBehaviour::Step { before, after, at } => {
                MetricResult::Value(if tick < *at { *before } else { *after })
            }
            MetricBehaviour::Noise { mean, spread, seed } => {
                let unit = unit_interval(seed.wrapping_add(u64::from(tick)));
                MetricResult::Value(mean + spread * (2.0 * unit - 1.0))
            }
            MetricBehaviour::NoData => MetricResult::NoData,
            MetricBehaviour::Error(error) => MetricResult::Error(error.clone()),
        }
    }

    fn webhook(&mut self, name: &str, hook_type: HookType, tick: u32) -> WebhookOutcome {
        let passes = match self.webhooks.get(name) {
            None => hook_type != HookType::Rollback,
            Some(WebhookBehaviour::Pass) => true,
            Some(WebhookBehaviour::Fail) => false,
            Some(WebhookBehaviour::PassFrom(at)) => tick >= *at,
            Some(WebhookBehaviour::FailFrom(at)) => tick < *at,
        };
        if passes {
            WebhookOutcome::Passed
        } else {
            WebhookOutcome::Failed(format!("{name} answered 403 (simulated)"))
        }
    }
}

/// A reproducible number in [0, 1) from a seed (SplitMix64).
fn unit_interval(seed: u64) -> f64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_behaviour() {
        let scenario = Scenario::parse(
            "metrics:\n  a: {constant: 99.5}\n  b: {ramp: {from: 100, to: 900, ticks: 4}}\n  c: {step: {before: 1, after: 9, at: 3}}\n  d: {noise: {mean: 300, spread: 50, seed: 7}}\n  e: noData\n  f: {error: timeout}\nwebhooks:\n  g: fail\n  h: {passFrom: 5}\ncanary: {neverReady: true}\nexpect: Failed\n",
        )
        .expect("a valid scenario");
        let mut checks = ScriptedChecks {
            metrics: scenario.metrics.clone(),
            webhooks: scenario.webhooks.clone(),
            passing: BTreeMap::new(),
        };
        assert_eq!(checks.metric("a", 0), MetricResult::Value(99.5));
        assert_eq!(checks.metric("b", 2), MetricResult::Value(500.0));
        assert_eq!(checks.metric("b", 9), MetricResult::Value(900.0));
        assert_eq!(checks.metric("c", 2), MetricResult::Value(1.0));
        assert_eq!(checks.metric("c", 3), MetricResult::Value(9.0));
        let MetricResult::Value(noisy) = checks.metric("d", 4) else {
            panic!("a value")
        };
        assert!((250.0..=350.0).contains(&noisy));
        assert_eq!(
            checks.metric("d", 4),
            MetricResult::Value(noisy),
            "noise is reproducible"
        );
        assert_eq!(checks.metric("e", 0), MetricResult::NoData);
        assert_eq!(checks.metric("f", 0), MetricResult::Error("timeout".into()));
        assert!(!checks.webhook("g", HookType::Rollout, 0).passed());
        assert!(!checks.webhook("h", HookType::ConfirmPromotion, 4).passed());
        assert!(checks.webhook("h", HookType::ConfirmPromotion, 5).passed());
        assert_eq!(scenario.timing().canary_ready_after, None);
        assert_eq!(scenario.expect, Some(CanaryPhase::Failed));
    }

    #[test]
    fn a_primary_can_never_be_ready_or_get_stuck_once_promoted_but_a_canary_cannot_be_promoted() {
        let never = Scenario::parse("primary: {neverReady: true}\n").expect("valid");
        assert_eq!(
            (
                never.timing().primary_ready_after,
                never.timing().promoted_primary_ready_after
            ),
            (None, None)
        );
        let stuck = Scenario::parse("primary: {readyAfterTicks: 1, stuckAfterPromotion: true}\n")
            .expect("valid");
        assert_eq!(
            (
                stuck.timing().primary_ready_after,
                stuck.timing().promoted_primary_ready_after
            ),
            (Some(1), None)
        );
        let misplaced = Scenario::parse("canary: {stuckAfterPromotion: true}\n").expect("valid");
        let canary: fledge_api::Canary = fledge_api::yaml::from_str(
            "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {name: podinfo}\nspec:\n  targetRef: {name: podinfo}\n  service: {port: 80}\n",
        )
        .expect("a valid Canary");
        let error = misplaced
            .check_names(&canary.spec)
            .expect_err("only the primary is promoted to");
        assert!(
            error
                .to_string()
                .starts_with("scenario canary.stuckAfterPromotion:"),
            "{error}"
        );
    }

    #[test]
    fn a_misspelled_field_is_an_error() {
        let error = Scenario::parse("metrics: {}\nmaxTick: 3\n").expect_err("unknown field");
        assert!(format!("{error:#}").contains("maxTick"), "{error:#}");
    }
}
