//! Validation of manifests: every problem at once, each with its JSON path and a fix.
//!
//! A document goes through three checks, each one only when the one before found nothing
//! (later checks would otherwise repeat the same mistake in other words):
//!
//! 1. the **schema** the CRD installs — unknown fields (with "did you mean"), wrong types,
//!    values outside an enum, missing required fields;
//! 2. the **types** — values the schema cannot describe, such as durations (`1m30s`);
//! 3. the **rules** — what Flagger would do wrong or silently ignore: weights out of range,
//!    stepWeights not ascending, maxWeight below stepWeight, provider and strategy
//!    combinations that cannot work — and the [`bounds`] on every duration, count and text,
//!    so no document can overflow what later reads it.
//!
//! Settings that Flagger resolves on its own, deterministically (`maxWeight` or `stepWeight`
//! beside `stepWeights`, `iterations` beside weights), are **warnings**: the document is
//! valid and runs as Flagger runs it; `fledge validate --strict` refuses them.
//!
//! Documents of other kinds (Deployments, Secrets...) are skipped with a note.

pub mod bounds;
mod canary_rules;
mod nginx_match;
mod path;
mod resource_rules;
mod schema_check;

use std::fmt;
use std::sync::OnceLock;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use canary_rules::{PROVIDERS, UNROUTED_PROVIDERS, provider_problem};
pub use nginx_match::nginx_match_problems;
pub use path::JsonPath;

use crate::{AlertProvider, Canary, GROUP, LEGACY_VERSION, MetricTemplate, VERSION};

/// Pre-v1beta1 versions whose documents read as v1beta1 (Flagger's own docs still show them).
const LEGACY_ALPHAS: [&str; 3] = ["v1alpha1", "v1alpha2", LEGACY_VERSION];

/// One thing wrong with a document: where, and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// JSON path of the offending field (`spec.analysis.stepWeight`).
    pub path: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl Problem {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// The kinds of document Fledge reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Kind {
    /// `Canary`.
    Canary,
    /// `MetricTemplate`.
    MetricTemplate,
    /// `AlertProvider`.
    AlertProvider,
}

impl Kind {
    fn from_name(kind: &str) -> Option<Self> {
        match kind {
            "Canary" => Some(Self::Canary),
            "MetricTemplate" => Some(Self::MetricTemplate),
            "AlertProvider" => Some(Self::AlertProvider),
            _ => None,
        }
    }
}

/// The verdict on one document of a YAML stream.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DocumentReport {
    /// Position of the document in its stream, from 0.
    pub index: usize,
    /// `kind` of the document, when it has one.
    pub kind: Option<String>,
    /// `metadata.name` of the document, when it has one.
    pub name: Option<String>,
    /// Whether the document was checked, and what was found.
    pub verdict: Verdict,
    /// Problems that make the document invalid.
    pub problems: Vec<Problem>,
    /// Settings Flagger resolves on its own, run as Flagger runs them; valid, but refused
    /// under `fledge validate --strict`.
    pub warnings: Vec<Problem>,
    /// Remarks that do not make it invalid (legacy API version, values Flagger would clamp).
    pub notes: Vec<String>,
}

/// Whether a document was checked and passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// A Fledge resource with no problems.
    Valid,
    /// A Fledge resource with problems.
    Invalid,
    /// Not a Fledge resource (or an empty document); not checked.
    Skipped,
}

impl DocumentReport {
    /// Whether the document is a valid Fledge resource.
    pub fn is_valid(&self) -> bool {
        self.verdict == Verdict::Valid
    }
}

/// Checks every document of a multi-document YAML stream.
///
/// # Errors
/// Only when the text is not YAML at all; problems with the documents are in the reports.
pub fn validate_yaml(text: &str) -> Result<Vec<DocumentReport>, crate::yaml::YamlError> {
    Ok(crate::yaml::documents(text)?
        .iter()
        .enumerate()
        .map(|(index, document)| validate_document(index, document))
        .collect())
}

/// Checks one document, given as JSON.
pub fn validate_document(index: usize, document: &Value) -> DocumentReport {
    let text_at = |pointer: &str| {
        document
            .pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let mut report = DocumentReport {
        index,
        kind: text_at("/kind"),
        name: text_at("/metadata/name"),
        verdict: Verdict::Skipped,
        problems: Vec::new(),
        warnings: Vec::new(),
        notes: Vec::new(),
    };
    if document.is_null() {
        report.notes.push("empty document".to_owned());
        return report;
    }
    if !document.is_object() {
        report.verdict = Verdict::Invalid;
        report.problems.push(Problem::new(
            "$",
            "a manifest must be a mapping with apiVersion, kind, metadata and spec",
        ));
        return report;
    }
    let api_version = text_at("/apiVersion").unwrap_or_default();
    let (group, version) = api_version
        .split_once('/')
        .unwrap_or(("", api_version.as_str()));
    let kind = report.kind.as_deref().and_then(Kind::from_name);
    let Some(kind) = kind.filter(|_| group == GROUP) else {
        report.notes.push(format!(
            "skipped: {} {} is not a Fledge resource",
            if api_version.is_empty() {
                "(no apiVersion)"
            } else {
                api_version.as_str()
            },
            report.kind.as_deref().unwrap_or("(no kind)")
        ));
        return report;
    };
    if version == LEGACY_VERSION && kind == Kind::Canary {
        report.notes.push(format!(
            "{GROUP}/{LEGACY_VERSION} is the legacy API: `fledge migrate` prints the {GROUP}/{VERSION} form"
        ));
    } else if LEGACY_ALPHAS.contains(&version) {
        report.notes.push(format!(
            "{api_version} is a legacy API version: write {GROUP}/{VERSION}"
        ));
    } else if version != VERSION {
        report.problems.push(Problem::new(
            "apiVersion",
            format!("{api_version} is not served: use {GROUP}/{VERSION}"),
        ));
    }
    report
        .problems
        .extend(schema_check::check(document, schema_of(kind)));
    if report.problems.is_empty() {
        let mut warnings = Vec::new();
        let (problems, notes) = match kind {
            Kind::Canary => typed::<Canary>(document, |c| {
                warnings = canary_rules::flagger_resolutions(c);
                let (mut problems, notes) = canary_rules::check(c, version == LEGACY_VERSION);
                problems.extend(bounds::canary(&c.spec, &spec_path()));
                (problems, notes)
            }),
            Kind::MetricTemplate => typed::<MetricTemplate>(document, |t| {
                let (mut problems, notes) = resource_rules::metric_template(t);
                problems.extend(bounds::metric_template(&t.spec, &spec_path()));
                (problems, notes)
            }),
            Kind::AlertProvider => typed::<AlertProvider>(document, |p| {
                let (mut problems, notes) = resource_rules::alert_provider(p);
                problems.extend(bounds::alert_provider(&p.spec, &spec_path()));
                (problems, notes)
            }),
        };
        report.problems.extend(problems);
        report.warnings = warnings;
        report.notes.extend(notes);
        if let Some(spec) = document.get("spec") {
            bounds::long_texts(spec, &spec_path(), &mut report.problems);
        }
        report.problems.extend(bounds::metadata_name(document));
    }
    report.verdict = if report.problems.is_empty() {
        Verdict::Valid
    } else {
        Verdict::Invalid
    };
    report
}

/// Checks the rules of a Canary that is already typed — one read from the API server, whose
/// schema the server enforced — without the schema pass: the operator calls this on every
/// spec change and reports the problems on the Canary instead of acting on it.
pub fn check_canary(canary: &Canary) -> Vec<Problem> {
    let mut problems = canary_rules::check(canary, false).0;
    problems.extend(bounds::canary(&canary.spec, &spec_path()));
    if let Ok(spec) = serde_json::to_value(&canary.spec) {
        bounds::long_texts(&spec, &spec_path(), &mut problems);
    }
    problems
}

/// What Flagger resolves on its own in a typed Canary ([`DocumentReport::warnings`]): the
/// operator runs it as Flagger does and records each warning as a Warning event.
pub fn canary_warnings(canary: &Canary) -> Vec<Problem> {
    canary_rules::flagger_resolutions(canary)
}

fn spec_path() -> JsonPath {
    JsonPath::root().field("spec")
}

/// What a rule check found: problems that invalidate, notes that do not.
pub(crate) type Findings = (Vec<Problem>, Vec<String>);

/// Reads the document into its type (reporting the path of a value the type refuses) and runs
/// the rules on it.
fn typed<T: DeserializeOwned>(document: &Value, rules: impl FnOnce(&T) -> Findings) -> Findings {
    match serde_path_to_error::deserialize::<_, T>(document) {
        Ok(resource) => rules(&resource),
        Err(err) => {
            let path = err.path().to_string();
            let message = err.into_inner().to_string();
            (vec![Problem::new(path, message)], Vec::new())
        }
    }
}

fn schema_of(kind: Kind) -> &'static JSONSchemaProps {
    static SCHEMAS: OnceLock<Vec<JSONSchemaProps>> = OnceLock::new();
    let schemas = SCHEMAS.get_or_init(|| {
        crate::crd::all()
            .into_iter()
            .map(|crd| {
                crd.spec
                    .versions
                    .into_iter()
                    .find_map(|v| v.schema.and_then(|s| s.open_api_v3_schema))
                    .unwrap_or_default()
            })
            .collect()
    });
    let position = match kind {
        Kind::Canary => 0,
        Kind::MetricTemplate => 1,
        Kind::AlertProvider => 2,
    };
    &schemas[position]
}

#[cfg(test)]
mod tests;
