//! Every manifest from Flagger's documentation and the seed articles, read as a user would.
//!
//! The manifests live in `tests/fixtures/` (see its README for their source).

use std::fs;
use std::path::{Path, PathBuf};

use fledge_api::validation::{DocumentReport, Verdict, validate_yaml};

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn manifests(folder: &str) -> Vec<(PathBuf, Vec<DocumentReport>)> {
    let dir = fixtures_dir();
    let mut files: Vec<PathBuf> = fs::read_dir(dir.join(folder))
        .expect("fixture folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {folder}");
    files
        .into_iter()
        .map(|path| {
            let text = fs::read_to_string(&path).expect("readable fixture");
            let reports =
                validate_yaml(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path, reports)
        })
        .collect()
}

fn failures(reports: &[(PathBuf, Vec<DocumentReport>)]) -> Vec<String> {
    reports
        .iter()
        .flat_map(|(path, docs)| {
            docs.iter().flat_map(move |d| {
                d.problems
                    .iter()
                    .map(move |p| format!("{} #{}: {p}", path.display(), d.index))
            })
        })
        .collect()
}

#[test]
fn every_flagger_docs_manifest_is_accepted_unchanged() {
    let reports = manifests("flagger-docs");
    let failed = failures(&reports);
    assert!(failed.is_empty(), "rejected:\n{}", failed.join("\n"));
    let checked = reports
        .iter()
        .flat_map(|(_, d)| d)
        .filter(|d| d.verdict == Verdict::Valid)
        .count();
    assert!(
        reports.is_empty() || checked >= reports.len(),
        "only {checked} Fledge documents in {} files",
        reports.len()
    );
}

#[test]
fn every_valid_seed_manifest_is_accepted_and_the_invalid_ones_name_the_typos() {
    let reports = manifests("seeds");
    let (invalid, valid): (Vec<_>, Vec<_>) = reports
        .into_iter()
        .partition(|(p, _)| p.to_string_lossy().ends_with(".invalid.yaml"));
    let failed = failures(&valid);
    assert!(failed.is_empty(), "rejected:\n{}", failed.join("\n"));
    for (path, docs) in &invalid {
        let problems: Vec<String> = docs
            .iter()
            .flat_map(|d| d.problems.iter().map(ToString::to_string))
            .collect();
        assert!(!problems.is_empty(), "{} was accepted", path.display());
        assert!(
            problems.iter().all(|p| p.contains("unknown field")),
            "{problems:?}"
        );
    }
    if let Some((_, docs)) = invalid
        .iter()
        .find(|(p, _)| p.ends_with("000-podinfo-v1alpha3.invalid.yaml"))
    {
        let problems: Vec<String> = docs[0].problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            problems,
            [
                "spec.autoscalerRef.apiVerseersion: unknown field `apiVerseersion`; did you mean `apiVersion`?",
                "spec.progressDeadlineSes: unknown field `progressDeadlineSes`; did you mean `progressDeadlineSeconds`?",
            ]
        );
    }
}

#[test]
fn documentation_snippets_get_only_missing_field_reports_and_never_crash() {
    let reports = manifests("flagger-docs-snippets");
    for (path, docs) in &reports {
        for problem in docs.iter().flat_map(|d| &d.problems) {
            let text = problem.to_string();
            assert!(
                !text.contains("unknown field") && !text.contains("expected "),
                "{}: {text}",
                path.display()
            );
        }
    }
}
