//! `fledge validate`: a verdict per document, every problem with file, document and JSON path;
//! what Flagger resolves on its own is shown as `WARN` (exit 0), an error under `--strict`.

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use fledge_api::validation::{DocumentReport, Verdict, validate_yaml};
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
        let reports = validate_yaml(&text).with_context(|| format!("{name} is not YAML"))?;
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
