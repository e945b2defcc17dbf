//! `fledge validate`: a verdict per document, every problem with file, document and JSON path;
//! what Flagger resolves on its own is shown as `WARN` (exit 0), an error under `--strict`.

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use fledge_api::MetricProviderType;
use fledge_api::validation::{DocumentReport, Problem, Verdict, validate_yaml};
use fledge_metrics::{ProviderSupport, provider_support, provider_type_name};
use serde::Serialize;

/// Arguments of `fledge validate`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Manifest files (multi-document YAML); `-` reads standard input.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Format::Text)]
    pub output: Format,
    /// Refuse what Flagger resolves on its own (`maxWeight` or `stepWeight` beside
    /// `stepWeights`, `iterations` beside weights) instead of warning.
    #[arg(long)]
    pub strict: bool,
}

/// How reports are printed.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One line per document, problems indented below it.
    Text,
    /// A JSON array of reports, for tools.
    Json,
}

#[derive(Serialize)]
struct FileReport<'a> {
    file: String,
    #[serde(flatten)]
    report: &'a DocumentReport,
}

/// Reads a file, or standard input for `-`.
pub fn read_input(path: &PathBuf) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading standard input")?;
        Ok(text)
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
    }
}

/// Validates every document of every file; exits 1 when any document is invalid (or, with
/// `--strict`, has a warning).
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let mut all = Vec::new();
    for path in &args.files {
        let text = read_input(path)?;
        let name = if path.as_os_str() == "-" {
            "<stdin>".to_owned()
        } else {
            path.display().to_string()
        };
        let mut reports = validate_yaml(&text).with_context(|| format!("{name} is not YAML"))?;
        warn_about_provider_types(&text, &mut reports);
        refuse_unrouted_providers(&text, &mut reports);
        all.push((name, reports));
    }
    let invalid = all
        .iter()
        .flat_map(|(_, r)| r)
        .any(|r| r.verdict == Verdict::Invalid || (args.strict && !r.warnings.is_empty()));
    match args.output {
        Format::Json => {
            let flat: Vec<FileReport<'_>> = all
                .iter()
                .flat_map(|(file, reports)| {
                    reports.iter().map(|report| FileReport {
                        file: file.clone(),
                        report,
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&flat)?);
        }
        Format::Text => {
            for (file, reports) in &all {
                for report in reports {
                    print!("{}", render(file, report, args.strict));
                }
            }
        }
    }
    Ok(if invalid {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Adds a warning to each valid MetricTemplate whose provider type this build of Fledge does
/// not query, or that lacks the address its provider type needs: every check using it
/// would fail, and a failing check rolls the canary back.
pub fn warn_about_provider_types(text: &str, reports: &mut [DocumentReport]) {
    let Ok(documents) = fledge_api::yaml::documents(text) else {
        return;
    };
    for report in reports.iter_mut() {
        if report.kind.as_deref() != Some("MetricTemplate") || report.verdict != Verdict::Valid {
            continue;
        }
        let kind = documents
            .get(report.index)
            .and_then(|document| document.pointer("/spec/provider/type"))
            .and_then(|value| serde_json::from_value::<MetricProviderType>(value.clone()).ok());
        let Some(kind) = kind else {
            continue;
        };
        let name = provider_type_name(kind);
        let no_address = documents
            .get(report.index)
            .and_then(|document| document.pointer("/spec/provider/address"))
            .and_then(serde_json::Value::as_str)
            .is_none_or(|address| address.trim().is_empty());
        let (path, message) = match provider_support(kind) {
            // Graphite's missing address is already a problem (fledge-api's rules).
            ProviderSupport::Supported
                if no_address
                    && matches!(
                        kind,
                        MetricProviderType::Dynatrace | MetricProviderType::Influxdb
                    ) =>
            {
                (
                    "spec.provider.address",
                    format!(
                        "required for provider type `{name}`, which has no default address: every check using this template fails until it names the server"
                    ),
                )
            }
            ProviderSupport::Supported => continue,
            ProviderSupport::NotCompiled { feature } => (
                "spec.provider.type",
                format!(
                    "provider type `{name}` is not compiled into this build of Fledge (cargo feature `{feature}` of fledge-metrics): every check using this template fails, which rolls the canary back"
                ),
            ),
            ProviderSupport::NotImplemented => (
                "spec.provider.type",
                format!(
                    "provider type `{name}` is not supported by Fledge yet: every check using this template fails, which rolls the canary back; use a provider Fledge queries (prometheus, graphite, datadog, newrelic, dynatrace, influxdb)"
                ),
            ),
        };
        report.warnings.push(Problem::new(path, message));
    }
}

/// Marks invalid each Canary whose `spec.provider` is a Flagger provider Fledge does not route
/// yet (`kuma`, `appmesh`, `knative`): the operator refuses it with the same words, so
/// `fledge validate` and the operator agree on what runs.
pub fn refuse_unrouted_providers(text: &str, reports: &mut [DocumentReport]) {
    let Ok(documents) = fledge_api::yaml::documents(text) else {
        return;
    };
    for report in reports.iter_mut() {
        if report.kind.as_deref() != Some("Canary") {
            continue;
        }
        let provider = documents
            .get(report.index)
            .and_then(|document| document.pointer("/spec/provider"))
            .and_then(serde_json::Value::as_str)
            .filter(|provider| fledge_api::validation::UNROUTED_PROVIDERS.contains(provider));
        if let Some(problem) = provider.and_then(fledge_api::validation::provider_problem) {
            report.problems.push(Problem::new("spec.provider", problem));
            report.verdict = Verdict::Invalid;
        }
    }
}

/// The text form of one document's verdict.
fn render(file: &str, report: &DocumentReport, strict: bool) -> String {
    let what = match (&report.kind, &report.name) {
        (Some(kind), Some(name)) => format!("{kind} {name}"),
        (Some(kind), None) => kind.clone(),
        _ => "document".to_owned(),
    };
    let verdict = match report.verdict {
        Verdict::Valid if strict && !report.warnings.is_empty() => "INVALID (--strict)",
        Verdict::Valid => "valid",
        Verdict::Invalid => "INVALID",
        Verdict::Skipped => "skipped",
    };
    let mut out = format!("{file} #{} {what}: {verdict}\n", report.index);
    for problem in &report.problems {
        let _ = writeln!(out, "  {file} #{} {problem}", report.index);
    }
    let severity = if strict { "ERROR" } else { "WARN" };
    for warning in &report.warnings {
        let _ = writeln!(out, "  {severity} {file} #{} {warning}", report.index);
    }
    for note in &report.notes {
        let _ = writeln!(out, "  note: {note}");
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (house rule).
mod tests {
    use super::*;

    fn template(kind: &str, address: &str) -> String {
        format!(
            "apiVersion: flagger.app/v1beta1\nkind: MetricTemplate\nmetadata:\n  name: {kind}\nspec:\n  provider:\n    type: {kind}\n    address: {address}\n    region: eu-west-1\n  query: q\n"
        )
    }

    #[test]
    fn a_template_of_a_provider_type_not_queried_is_warned_about() {
        let text = [
            template("cloudwatch", "https://monitoring.eu-west-1.amazonaws.com"),
            template("datadog", "https://api.datadoghq.com"),
            template("graphite", "http://graphite"),
            template("influxdb", "''"),
        ]
        .join("---\n");
        let mut reports = validate_yaml(&text).unwrap();
        warn_about_provider_types(&text, &mut reports);
        assert!(reports.iter().all(DocumentReport::is_valid), "{reports:#?}");
        let shown = render("t.yaml", &reports[0], false);
        assert!(
            shown.contains(
                "WARN t.yaml #0 spec.provider.type: provider type `cloudwatch` is not supported by Fledge yet"
            ),
            "{shown}"
        );
        assert!(reports[1].warnings.is_empty(), "{:?}", reports[1].warnings);
        assert!(reports[2].warnings.is_empty(), "{:?}", reports[2].warnings);
        assert_eq!(
            reports[3].warnings[0].to_string(),
            "spec.provider.address: required for provider type `influxdb`, which has no default address: every check using this template fails until it names the server"
        );
    }

    #[test]
    fn a_canary_on_a_provider_fledge_does_not_route_is_invalid() {
        let canary = |provider: &str| {
            format!(
                "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {{ name: podinfo }}\n\
                 spec:\n  provider: {provider}\n  \
                 targetRef: {{ apiVersion: apps/v1, kind: Deployment, name: podinfo }}\n  \
                 service: {{ port: 9898 }}\n  \
                 analysis: {{ interval: 1m, threshold: 5, maxWeight: 50, stepWeight: 10 }}\n"
            )
        };
        let text = [canary("kuma"), canary("contour")].join("---\n");
        let mut reports = validate_yaml(&text).unwrap();
        assert!(
            reports.iter().all(DocumentReport::is_valid),
            "both are valid Flagger manifests: {reports:#?}"
        );
        refuse_unrouted_providers(&text, &mut reports);
        let shown = render("c.yaml", &reports[0], false);
        assert!(
            shown.contains("spec.provider: `kuma` is a Flagger provider Fledge does not route yet"),
            "{shown}"
        );
        assert_eq!(reports[0].verdict, Verdict::Invalid);
        assert!(reports[1].is_valid(), "{:#?}", reports[1]);
    }
}
