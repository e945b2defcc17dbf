//! Reading `flagger.app/v1alpha3` canaries and converting them to `v1beta1`.
//!
//! The legacy form differs in three ways: the API version, the block name `canaryAnalysis`
//! (now `analysis`), and metric checks with a single `threshold` (now `thresholdRange`: a
//! minimum for the success rate, a maximum for everything else, as Flagger read it).

use crate::canary::{CanaryMetric, CanaryThresholdRange};
use crate::validation::{Problem, validate_document};
use crate::{Canary, GROUP, VERSION};

/// Why a manifest could not be migrated.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The text is not YAML.
    #[error(transparent)]
    Yaml(#[from] crate::yaml::YamlError),
    /// A Canary in it is invalid; it must be fixed before it can be converted.
    #[error("document {index} is not a valid Canary, fix it first:\n{}", format_problems(.problems))]
    Invalid {
        /// Position of the document in the stream.
        index: usize,
        /// What is wrong with it.
        problems: Vec<Problem>,
    },
}

fn format_problems(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// What a conversion changed, one line per change, for the user to review.
pub type Changes = Vec<String>;

/// Converts a Canary to its `flagger.app/v1beta1` form, listing what changed.
/// A Canary already in that form comes back unchanged, with no changes listed.
pub fn to_v1beta1(mut canary: Canary) -> (Canary, Changes) {
    // The apiVersion needs no change here: `Canary` always serializes as v1beta1.
    let mut changes = Changes::new();
    if let Some(legacy) = canary.spec.canary_analysis.take() {
        if canary.spec.analysis.is_none() {
            canary.spec.analysis = Some(legacy);
            changes.push("spec.canaryAnalysis renamed to spec.analysis".to_owned());
        } else {
            changes.push("spec.canaryAnalysis dropped: spec.analysis takes precedence".to_owned());
        }
    }
    if let Some(analysis) = canary.spec.analysis.as_mut() {
        for (index, metric) in analysis.metrics.iter_mut().enumerate() {
            if let Some(change) = convert_threshold(metric) {
                changes.push(format!(
                    "spec.analysis.metrics[{index}] ({}): {change}",
                    metric.name
                ));
            }
        }
    }
    (canary, changes)
}

fn convert_threshold(metric: &mut CanaryMetric) -> Option<String> {
    let threshold = metric.threshold.take()?;
    if metric.threshold_range.is_some() {
        return Some("deprecated threshold dropped: thresholdRange is already set".to_owned());
    }
    let (range, bound) = if metric.name == "request-success-rate" {
        (
            CanaryThresholdRange {
                min: Some(threshold),
                max: None,
            },
            "min",
        )
    } else {
        (
            CanaryThresholdRange {
                min: None,
                max: Some(threshold),
            },
            "max",
        )
    };
    metric.threshold_range = Some(range);
    Some(format!(
        "threshold {threshold} became thresholdRange.{bound}"
    ))
}

/// Converts every legacy Canary of a YAML stream and returns the stream in `v1beta1` form,
/// with the changes made. Documents that are not Canaries are passed through as written.
pub fn migrate_yaml(text: &str) -> Result<(String, Changes), MigrateError> {
    let documents = crate::yaml::documents(text)?;
    let sources = split_documents(text);
    let mut out = String::new();
    let mut changes = Changes::new();
    for (index, document) in documents.iter().enumerate() {
        let is_canary = document.get("kind").and_then(serde_json::Value::as_str) == Some("Canary")
            && document
                .get("apiVersion")
                .and_then(serde_json::Value::as_str)
                .is_some_and(|v| v.starts_with(&format!("{GROUP}/")));
        if !out.is_empty() {
            out.push_str("---\n");
        }
        if !is_canary {
            out.push_str(sources.get(index).map_or("", String::as_str));
            continue;
        }
        let report = validate_document(index, document);
        if !report.is_valid() {
            return Err(MigrateError::Invalid {
                index,
                problems: report.problems,
            });
        }
        let canary: Canary = serde_json::from_value(document.clone())
            .map_err(|e| crate::yaml::YamlError::from_message(format!("document {index}: {e}")))?;
        let from = document
            .get("apiVersion")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default();
        if from != format!("{GROUP}/{VERSION}") {
            changes.push(format!(
                "document {index}: apiVersion {from} became {GROUP}/{VERSION}"
            ));
        }
        let (converted, converted_changes) = to_v1beta1(canary);
        changes.extend(
            converted_changes
                .into_iter()
                .map(|c| format!("document {index}: {c}")),
        );
        out.push_str(&crate::yaml::to_string(&converted)?);
    }
    Ok((out, changes))
}

/// The source text of each document of a stream, so untouched documents keep their comments.
fn split_documents(text: &str) -> Vec<String> {
    let mut documents = vec![String::new()];
    for line in text.lines() {
        if line.trim_end() == "---" || line.starts_with("--- ") {
            documents.push(String::new());
        } else if let Some(current) = documents.last_mut() {
            current.push_str(line);
            current.push('\n');
        }
    }
    // A leading `---` opens the first document rather than closing an empty one.
    if text.trim_start().starts_with("---")
        && documents.first().is_some_and(|d| d.trim().is_empty())
    {
        documents.remove(0);
    }
    documents
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEGACY: &str = "apiVersion: flagger.app/v1alpha3
kind: Canary
metadata:
  name: podinfo
  namespace: test
spec:
  provider: istio
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  service: {port: 8081}
  canaryAnalysis:
    interval: 10s
    threshold: 10
    maxWeight: 50
    stepWeight: 5
    metrics:
    - name: request-success-rate
      threshold: 99
      interval: 1m
    - name: request-duration
      threshold: 500
      interval: 30s
";

    #[test]
    fn converts_the_seed_canary_to_a_valid_v1beta1_one() {
        let (text, changes) = migrate_yaml(LEGACY).expect("migrates");
        assert_eq!(
            changes,
            [
                "document 0: apiVersion flagger.app/v1alpha3 became flagger.app/v1beta1",
                "document 0: spec.canaryAnalysis renamed to spec.analysis",
                "document 0: spec.analysis.metrics[0] (request-success-rate): threshold 99 became thresholdRange.min",
                "document 0: spec.analysis.metrics[1] (request-duration): threshold 500 became thresholdRange.max",
            ]
        );
        let reports = crate::validation::validate_yaml(&text).expect("yaml");
        assert!(reports[0].is_valid(), "{:?}", reports[0].problems);
        assert!(reports[0].notes.is_empty(), "{:?}", reports[0].notes);
        assert!(
            text.starts_with("apiVersion: flagger.app/v1beta1\nkind: Canary\n"),
            "{text}"
        );
        assert!(!text.contains("canaryAnalysis"), "{text}");
    }

    #[test]
    fn a_v1beta1_canary_migrates_to_itself() {
        let (once, _) = migrate_yaml(LEGACY).expect("migrates");
        let (twice, changes) = migrate_yaml(&once).expect("migrates");
        assert_eq!(once, twice);
        assert!(changes.is_empty(), "{changes:?}");
    }

    #[test]
    fn other_documents_pass_through_with_their_comments() {
        let text = format!(
            "# the app\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: podinfo}}\n---\n{LEGACY}"
        );
        let (out, _) = migrate_yaml(&text).expect("migrates");
        assert!(
            out.starts_with("# the app\napiVersion: apps/v1\nkind: Deployment\n"),
            "{out}"
        );
        assert!(
            out.contains("---\napiVersion: flagger.app/v1beta1\n"),
            "{out}"
        );
    }

    #[test]
    fn an_invalid_canary_is_not_converted() {
        let err =
            migrate_yaml(&LEGACY.replace("interval: 10s", "intervall: 10s")).expect_err("invalid");
        assert!(
            err.to_string().contains("did you mean `interval`?"),
            "{err}"
        );
    }
}
