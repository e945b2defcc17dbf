//! The values Flagger fills in when a field is left out, as a resolved view.
//!
//! Nothing here changes what the user stored: [`CanarySpec::resolved`] reads the spec and
//! answers with concrete values. Each default is written down once, in this file.

use std::time::Duration;

use crate::canary::{CanaryAnalysis, CanarySpec};
use crate::strategy::Strategy;

/// Time between analysis ticks when `analysis.interval` is not set.
pub const ANALYSIS_INTERVAL: Duration = Duration::from_secs(60);
/// The shortest analysis interval; shorter ones are raised to it (as Flagger).
pub const MIN_ANALYSIS_INTERVAL: Duration = Duration::from_secs(10);
/// Failed checks tolerated when `analysis.threshold` is not set.
pub const THRESHOLD: u32 = 1;
/// Seconds a canary may take to make progress when `progressDeadlineSeconds` is not set.
pub const PROGRESS_DEADLINE: Duration = Duration::from_secs(600);
/// Percentage of ready pods required when the ready thresholds are not set.
pub const READY_THRESHOLD: u32 = 100;
/// The whole of the traffic, in percent.
pub const TOTAL_WEIGHT: u32 = 100;
/// Window of a metric query when `metrics[].interval` is not set.
pub const METRIC_INTERVAL: Duration = Duration::from_secs(60);
/// Timeout of a webhook call when `webhooks[].timeout` is not set.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// Lifetime of a session-affinity cookie when `sessionAffinity.maxAge` is not set.
pub const COOKIE_MAX_AGE_SECS: u32 = 86_400;
/// Percentage of traffic mirrored when `analysis.mirrorWeight` is not set.
pub const MIRROR_WEIGHT: u32 = 100;
/// Name of the service port when `service.portName` is not set.
pub const PORT_NAME: &str = "http";

/// A canary's analysis settings with every default applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedAnalysis {
    /// Which release strategy the settings ask for.
    pub strategy: Strategy,
    /// Time between ticks.
    pub interval: Duration,
    /// Failed checks tolerated before rollback.
    pub threshold: u32,
    /// Checks before promotion (A/B testing and blue/green).
    pub iterations: u32,
    /// Highest canary weight before promotion (canary strategy).
    pub max_weight: u32,
    /// Weight added each tick; 0 when stepWeights drive the steps.
    pub step_weight: u32,
    /// Explicit canary weights, ascending.
    pub step_weights: Vec<u32>,
    /// Weight moved to the primary each promotion tick; `None` promotes in one step.
    pub step_weight_promotion: Option<u32>,
    /// Percentage of traffic mirrored to the canary (blue/green with mirroring).
    pub mirror_weight: u32,
    /// Percentage of primary pods that must be ready.
    pub primary_ready_threshold: u32,
    /// Percentage of canary pods that must be ready.
    pub canary_ready_threshold: u32,
    /// Time a canary may take to make progress before it is rolled back.
    pub progress_deadline: Duration,
    /// Promote without running the analysis.
    pub skip_analysis: bool,
}

fn non_negative(value: Option<i32>) -> Option<u32> {
    value.and_then(|v| u32::try_from(v).ok())
}

fn positive(value: Option<i32>) -> Option<u32> {
    non_negative(value).filter(|v| *v > 0)
}

impl CanarySpec {
    /// The analysis settings with Flagger's defaults applied, for the given effective provider
    /// (`spec.provider`, or the operator's `-mesh-provider` when the spec names none).
    pub fn resolved(&self, default_provider: Option<&str>) -> ResolvedAnalysis {
        let empty = CanaryAnalysis::default();
        let analysis = self.analysis().unwrap_or(&empty);
        let step_weights: Vec<u32> = analysis
            .step_weights
            .iter()
            .filter_map(|w| u32::try_from(*w).ok())
            .collect();
        let max_weight = match step_weights.last() {
            Some(last) => (*last).min(TOTAL_WEIGHT),
            None => positive(analysis.max_weight)
                .unwrap_or(TOTAL_WEIGHT)
                .min(TOTAL_WEIGHT),
        };
        ResolvedAnalysis {
            strategy: Strategy::of(self, default_provider),
            interval: analysis.interval.as_ref().map_or(ANALYSIS_INTERVAL, |i| {
                i.as_duration().max(MIN_ANALYSIS_INTERVAL)
            }),
            threshold: positive(analysis.threshold).unwrap_or(THRESHOLD),
            iterations: non_negative(analysis.iterations).unwrap_or(0),
            max_weight,
            step_weight: non_negative(analysis.step_weight).unwrap_or(0),
            step_weights,
            step_weight_promotion: positive(analysis.step_weight_promotion),
            mirror_weight: positive(analysis.mirror_weight).unwrap_or(MIRROR_WEIGHT),
            primary_ready_threshold: non_negative(analysis.primary_ready_threshold)
                .unwrap_or(READY_THRESHOLD),
            canary_ready_threshold: non_negative(analysis.canary_ready_threshold)
                .unwrap_or(READY_THRESHOLD),
            progress_deadline: non_negative(self.progress_deadline_seconds)
                .map_or(PROGRESS_DEADLINE, |s| Duration::from_secs(u64::from(s))),
            skip_analysis: self.skip_analysis || self.analysis().is_none(),
        }
    }

    /// The provider that routes this canary: `spec.provider`, else the operator's default,
    /// else `kubernetes`.
    pub fn effective_provider<'a>(&'a self, default_provider: Option<&'a str>) -> &'a str {
        self.provider
            .as_deref()
            .filter(|p| !p.is_empty())
            .or(default_provider.filter(|p| !p.is_empty()))
            .unwrap_or("kubernetes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml;

    fn spec(analysis: &str) -> CanarySpec {
        let text = format!(
            "targetRef: {{name: podinfo}}\nservice: {{port: 9898}}\nanalysis: {analysis}\nprovider: istio"
        );
        yaml::from_str(&text).expect("valid spec")
    }

    #[test]
    fn fills_in_flaggers_defaults() {
        let r = spec("{stepWeight: 10}").resolved(None);
        assert_eq!(r.interval, Duration::from_secs(60));
        assert_eq!(r.threshold, 1);
        assert_eq!(r.max_weight, 100);
        assert_eq!(r.primary_ready_threshold, 100);
        assert_eq!(r.canary_ready_threshold, 100);
        assert_eq!(r.progress_deadline, Duration::from_secs(600));
        assert_eq!(r.mirror_weight, 100);
        assert!(!r.skip_analysis);
    }

    #[test]
    fn raises_short_intervals_to_ten_seconds() {
        assert_eq!(
            spec("{interval: 1s, stepWeight: 5}")
                .resolved(None)
                .interval,
            MIN_ANALYSIS_INTERVAL
        );
    }

    #[test]
    fn step_weights_set_the_max_weight() {
        let r = spec("{stepWeights: [1, 2, 10, 80], maxWeight: 30}").resolved(None);
        assert_eq!(r.max_weight, 80);
        assert_eq!(r.step_weights, vec![1, 2, 10, 80]);
    }

    #[test]
    fn a_canary_without_analysis_skips_it() {
        let s: CanarySpec =
            yaml::from_str("targetRef: {name: a}\nservice: {port: 80}").expect("valid");
        assert!(s.resolved(None).skip_analysis);
    }
}
