//! Judges turn a metric result into a verdict. The state machine only sees the [`Verdict`];
//! it does not know which judge gave it, so new judges (canary-versus-primary comparison,
//! statistical tests, no-data policies) slot in without touching it.

use fledge_api::canary::{CanaryMetric, CanaryThresholdRange};

use crate::go_fmt;
use crate::observation::MetricResult;
use crate::plan::EventLevel;

/// What a metric check is, as Flagger distinguishes them (the kind decides units and words).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetricKind {
    /// The builtin `request-success-rate`: percent of non-5xx responses.
    SuccessRate,
    /// The builtin `request-duration`: P99 latency in milliseconds.
    RequestDuration,
    /// A deprecated inline PromQL `query`.
    InlineQuery,
    /// A `templateRef` to a MetricTemplate.
    Template,
    /// Neither builtin nor query nor template: Flagger fails the check every tick.
    Unusable,
}

/// A metric check of the spec, prepared for judging.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricCheck {
    /// `spec.analysis.metrics[].name`.
    pub name: String,
    /// What kind of check it is.
    pub kind: MetricKind,
    /// The range the value must stay in (`thresholdRange`).
    pub range: Option<CanaryThresholdRange>,
    /// The deprecated single bound (`threshold`, 0 when absent as in Flagger).
    pub legacy_threshold: f64,
}

impl MetricCheck {
    /// Prepares a spec metric.
    pub fn of(metric: &CanaryMetric) -> Self {
        let kind = if metric.name == "request-success-rate" {
            MetricKind::SuccessRate
        } else if metric.name == "request-duration" {
            MetricKind::RequestDuration
        } else if metric.query.as_deref().is_some_and(|q| !q.is_empty()) {
            MetricKind::InlineQuery
        } else if metric.template_ref.is_some() {
            MetricKind::Template
        } else {
            MetricKind::Unusable
        };
        Self {
            name: metric.name.clone(),
            kind,
            range: metric.threshold_range,
            legacy_threshold: metric.threshold.unwrap_or(0.0),
        }
    }

    /// Whether a query runs for this check (Flagger queries nothing for unusable ones).
    pub fn is_queried(&self) -> bool {
        self.kind != MetricKind::Unusable
    }
}

/// Who is being judged, for the words of the verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject {
    /// `name.namespace` of the Canary (`podinfo.test`).
    pub canary: String,
    /// `name.namespace` of the target (`podinfo.test`).
    pub target: String,
    /// The metrics provider named in "no values found" messages (`istio`, `linkerd`, ...).
    pub metrics_provider: String,
}

/// A judge's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The check passed.
    Pass,
    /// The check failed: a failed check is counted, and this is said.
    Fail {
        /// How loud the message is.
        level: EventLevel,
        /// The message, in Flagger's words.
        message: String,
    },
}

impl Verdict {
    /// Whether the check passed.
    pub fn passed(&self) -> bool {
        matches!(self, Self::Pass)
    }

    fn warn(message: String) -> Self {
        Self::Fail {
            level: EventLevel::Warning,
            message,
        }
    }
}

/// Turns a metric result into a verdict.
pub trait Judge: Send + Sync + std::fmt::Debug {
    /// Judges `result` for `check` of `subject`.
    fn judge(&self, subject: &Subject, check: &MetricCheck, result: &MetricResult) -> Verdict;
}

/// Flagger's judge: the value must lie within `thresholdRange` (or meet the deprecated
/// `threshold`); "no data" and query errors fail the check, with Flagger's messages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThresholdRangeJudge;

impl Judge for ThresholdRangeJudge {
    fn judge(&self, subject: &Subject, check: &MetricCheck, result: &MetricResult) -> Verdict {
        if check.kind == MetricKind::Unusable {
            return unusable();
        }
        match result {
            MetricResult::Value(value) => judge_value(subject, check, *value),
            MetricResult::NoData => Verdict::warn(no_data_message(subject, check)),
            MetricResult::Error(error) => Verdict::Fail {
                level: EventLevel::Error,
                message: query_error_message(check, error),
            },
        }
    }
}

fn judge_value(subject: &Subject, check: &MetricCheck, value: f64) -> Verdict {
    // Values are formatted only when a message is due: a passing check allocates nothing.
    let canary = &subject.canary;
    match check.kind {
        MetricKind::SuccessRate => {
            if let Some(range) = check.range {
                if let Some(min) = range.min.filter(|min| value < *min) {
                    let shown = go_fmt::float2(value);
                    return Verdict::warn(format!(
                        "Halt {canary} advancement success rate {shown}% < {}%",
                        go_fmt::float(min)
                    ));
                }
                if let Some(max) = range.max.filter(|max| value > *max) {
                    let shown = go_fmt::float2(value);
                    return Verdict::warn(format!(
                        "Halt {canary} advancement success rate {shown}% > {}%",
                        go_fmt::float(max)
                    ));
                }
            } else if check.legacy_threshold > value {
                let shown = go_fmt::float2(value);
                return Verdict::warn(format!(
                    "Halt {canary} advancement success rate {shown}% < {}%",
                    go_fmt::float(check.legacy_threshold)
                ));
            }
            Verdict::Pass
        }
        MetricKind::RequestDuration => {
            let observed = go_fmt::millis_as_duration(value);
            if let Some(range) = check.range {
                if let Some(min) = range
                    .min
                    .map(go_fmt::millis_as_duration)
                    .filter(|min| observed < *min)
                {
                    let shown = go_fmt::duration(observed);
                    return Verdict::warn(format!(
                        "Halt {canary} advancement request duration {shown} < {}",
                        go_fmt::duration(min)
                    ));
                }
                if let Some(max) = range
                    .max
                    .map(go_fmt::millis_as_duration)
                    .filter(|max| observed > *max)
                {
                    let shown = go_fmt::duration(observed);
                    return Verdict::warn(format!(
                        "Halt {canary} advancement request duration {shown} > {}",
                        go_fmt::duration(max)
                    ));
                }
            } else {
                let max = go_fmt::millis_as_duration(check.legacy_threshold);
                if observed > max {
                    let shown = go_fmt::duration(observed);
                    return Verdict::warn(format!(
                        "Halt {canary} advancement request duration {shown} > {}",
                        go_fmt::duration(max)
                    ));
                }
            }
            Verdict::Pass
        }
        MetricKind::InlineQuery | MetricKind::Template => {
            let name = &check.name;
            if let Some(range) = check.range {
                if let Some(min) = range.min.filter(|min| value < *min) {
                    let shown = go_fmt::float2(value);
                    return Verdict::warn(format!(
                        "Halt {canary} advancement {name} {shown} < {}",
                        go_fmt::float(min)
                    ));
                }
                if let Some(max) = range.max.filter(|max| value > *max) {
                    let shown = go_fmt::float2(value);
                    return Verdict::warn(format!(
                        "Halt {canary} advancement {name} {shown} > {}",
                        go_fmt::float(max)
                    ));
                }
            } else if value > check.legacy_threshold {
                let shown = go_fmt::float2(value);
                return Verdict::warn(format!(
                    "Halt {canary} advancement {name} {shown} > {}",
                    go_fmt::float(check.legacy_threshold)
                ));
            }
            Verdict::Pass
        }
        MetricKind::Unusable => unusable(),
    }
}

fn unusable() -> Verdict {
    Verdict::Fail {
        level: EventLevel::Error,
        message: "Metric query failed for no usable metrics template and query were configured"
            .to_owned(),
    }
}

fn no_data_message(subject: &Subject, check: &MetricCheck) -> String {
    let Subject {
        target,
        metrics_provider,
        ..
    } = subject;
    let name = &check.name;
    match check.kind {
        MetricKind::SuccessRate => format!(
            "Halt advancement no values found for {metrics_provider} metric {name} probably {target} is not receiving traffic: no values found"
        ),
        MetricKind::RequestDuration => format!(
            "Halt advancement no values found for {metrics_provider} metric {name} probably {target} is not receiving traffic"
        ),
        MetricKind::InlineQuery => format!("Halt advancement no values found for metric: {name}"),
        MetricKind::Template | MetricKind::Unusable => {
            format!("Halt advancement no values found for custom metric: {name}: no values found")
        }
    }
}

fn query_error_message(check: &MetricCheck, error: &str) -> String {
    let name = &check.name;
    match check.kind {
        MetricKind::SuccessRate | MetricKind::RequestDuration => {
            format!("Prometheus query failed: {error}")
        }
        MetricKind::InlineQuery => format!("Prometheus query failed for {name}: {error}"),
        MetricKind::Template | MetricKind::Unusable => {
            format!("Metric query failed for {name}: {error}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject() -> Subject {
        Subject {
            canary: "podinfo.test".into(),
            target: "podinfo.test".into(),
            metrics_provider: "istio".into(),
        }
    }

    fn check(name: &str, kind: MetricKind, min: Option<f64>, max: Option<f64>) -> MetricCheck {
        MetricCheck {
            name: name.into(),
            kind,
            range: Some(CanaryThresholdRange { min, max }),
            legacy_threshold: 0.0,
        }
    }

    fn message(verdict: Verdict) -> String {
        match verdict {
            Verdict::Fail { message, .. } => message,
            Verdict::Pass => "pass".into(),
        }
    }

    #[test]
    fn success_rate_below_min_halts_with_percentages() {
        let rate = check(
            "request-success-rate",
            MetricKind::SuccessRate,
            Some(99.0),
            None,
        );
        let verdict = ThresholdRangeJudge.judge(&subject(), &rate, &MetricResult::Value(61.3912));
        assert_eq!(
            message(verdict),
            "Halt podinfo.test advancement success rate 61.39% < 99%"
        );
        assert!(
            ThresholdRangeJudge
                .judge(&subject(), &rate, &MetricResult::Value(99.0))
                .passed()
        );
    }

    #[test]
    fn request_duration_is_judged_in_milliseconds_and_printed_as_go_durations() {
        let latency = check(
            "request-duration",
            MetricKind::RequestDuration,
            None,
            Some(500.0),
        );
        let verdict = ThresholdRangeJudge.judge(&subject(), &latency, &MetricResult::Value(1515.0));
        assert_eq!(
            message(verdict),
            "Halt podinfo.test advancement request duration 1.515s > 500ms"
        );
        assert!(
            ThresholdRangeJudge
                .judge(&subject(), &latency, &MetricResult::Value(500.9))
                .passed()
        );
    }

    #[test]
    fn custom_metrics_print_two_decimals() {
        let not_found = check("404s percentage", MetricKind::Template, None, Some(5.0));
        let verdict = ThresholdRangeJudge.judge(&subject(), &not_found, &MetricResult::Value(6.2));
        assert_eq!(
            message(verdict),
            "Halt podinfo.test advancement 404s percentage 6.20 > 5"
        );
    }

    #[test]
    fn no_data_and_errors_fail_with_different_words() {
        let rate = check(
            "request-success-rate",
            MetricKind::SuccessRate,
            Some(99.0),
            None,
        );
        let no_data = ThresholdRangeJudge.judge(&subject(), &rate, &MetricResult::NoData);
        assert_eq!(
            message(no_data),
            "Halt advancement no values found for istio metric request-success-rate probably podinfo.test is not receiving traffic: no values found"
        );
        let error =
            ThresholdRangeJudge.judge(&subject(), &rate, &MetricResult::Error("timeout".into()));
        assert_eq!(
            error,
            Verdict::Fail {
                level: EventLevel::Error,
                message: "Prometheus query failed: timeout".into()
            }
        );
    }

    #[test]
    fn legacy_threshold_is_a_minimum_for_success_rate_and_a_maximum_otherwise() {
        let mut rate = check("request-success-rate", MetricKind::SuccessRate, None, None);
        rate.range = None;
        rate.legacy_threshold = 99.0;
        assert!(
            !ThresholdRangeJudge
                .judge(&subject(), &rate, &MetricResult::Value(69.17))
                .passed()
        );
        let mut latency = check("request-duration", MetricKind::RequestDuration, None, None);
        latency.range = None;
        latency.legacy_threshold = 500.0;
        assert_eq!(
            message(ThresholdRangeJudge.judge(&subject(), &latency, &MetricResult::Value(2050.0))),
            "Halt podinfo.test advancement request duration 2.05s > 500ms"
        );
    }
}
