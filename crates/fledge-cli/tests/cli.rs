//! The `fledge` command as a user runs it.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn fledge(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fledge"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("fledge runs");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write stdin");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("fledge exits")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A seed article's manifest from fledge-api's fixtures (see their README).
fn seed_fixture(name: &str) -> String {
    let path = workspace()
        .join("crates/fledge-api/tests/fixtures/seeds")
        .join(name);
    path.display().to_string()
}

/// The examples of the providers Fledge routes are valid; those of Flagger providers it does
/// not route yet (kuma, appmesh, knative) are refused with the reason, as the operator
/// refuses them.
#[test]
fn every_shipped_example_is_valid_where_fledge_routes_its_provider() {
    let dir = workspace().join("examples/podinfo");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("examples/podinfo")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    assert!(files.len() >= 14, "a canary per provider: {files:?}");
    for provider in [
        "istio",
        "linkerd",
        "gatewayapi",
        "contour",
        "nginx",
        "traefik",
        "gloo",
        "skipper",
        "kuma",
        "apisix",
        "appmesh",
        "knative",
        "kubernetes",
        "osm",
    ] {
        assert!(
            files
                .iter()
                .any(|f| f.ends_with(&format!("canary-{provider}.yaml"))),
            "no example for {provider}"
        );
    }
    let unrouted = |file: &String| {
        ["kuma", "appmesh", "knative"]
            .iter()
            .any(|provider| file.ends_with(&format!("canary-{provider}.yaml")))
    };
    let (refused, routed): (Vec<String>, Vec<String>) = files.into_iter().partition(unrouted);

    let args: Vec<&str> = std::iter::once("validate")
        .chain(routed.iter().map(String::as_str))
        .collect();
    let out = fledge(&args, None);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let canaries = stdout
        .lines()
        .filter(|l| l.contains(" Canary podinfo: valid"))
        .count();
    assert_eq!(canaries, routed.len() - 1, "{stdout}");

    for file in refused {
        let out = fledge(&["validate", &file], None);
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{stdout}");
        assert!(
            stdout.contains("spec.provider: `") && stdout.contains("Fledge does not route yet"),
            "{stdout}"
        );
    }
}

#[test]
fn the_seed_typos_are_rejected_with_the_field_named() {
    let path = seed_fixture("000-podinfo-v1alpha3.invalid.yaml");
    let out = fledge(&["validate", &path], None);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(stdout.contains(&format!("{path} #0 spec.progressDeadlineSes: unknown field `progressDeadlineSes`; did you mean `progressDeadlineSeconds`?")), "{stdout}");
    assert!(
        stdout.contains("spec.autoscalerRef.apiVerseersion: unknown field"),
        "{stdout}"
    );
}

#[test]
fn json_output_is_machine_readable() {
    let manifest = "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {name: podinfo}\nspec:\n  targetRef: {name: podinfo}\n  service: {port: 9898}\n  analysis: {stepWeight: 200}\n---\napiVersion: v1\nkind: ConfigMap\n";
    let out = fledge(&["validate", "--output", "json", "-"], Some(manifest));
    assert_eq!(out.status.code(), Some(1));
    let reports: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(reports[0]["file"], "<stdin>");
    assert_eq!(reports[0]["verdict"], "invalid");
    assert_eq!(
        reports[0]["problems"][0]["path"],
        "spec.analysis.stepWeight"
    );
    assert_eq!(reports[1]["verdict"], "skipped");
}

/// Flagger's own Linkerd e2e Canary (test/linkerd/test-canary.sh): maxWeight beside stepWeights.
const LINKERD_E2E_CANARY: &str = "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {name: podinfo, namespace: test}\nspec:\n  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}\n  service: {port: 9898}\n  analysis:\n    interval: 15s\n    threshold: 15\n    maxWeight: 50\n    stepWeights: [10, 20, 30, 40, 50, 60]\n";

#[test]
fn what_flagger_resolves_is_a_warning_and_an_error_only_under_strict() {
    let out = fledge(&["validate", "-"], Some(LINKERD_E2E_CANARY));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("<stdin> #0 Canary podinfo: valid\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  WARN <stdin> #0 spec.analysis.maxWeight: beside stepWeights Flagger ignores maxWeight (50)"),
        "{stdout}"
    );

    let out = fledge(&["validate", "--strict", "-"], Some(LINKERD_E2E_CANARY));
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("<stdin> #0 Canary podinfo: INVALID (--strict)\n")
            && stdout.contains("  ERROR <stdin> #0 spec.analysis.maxWeight"),
        "{stdout}"
    );

    let out = fledge(
        &["validate", "--output", "json", "-"],
        Some(LINKERD_E2E_CANARY),
    );
    let reports: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(reports[0]["verdict"], "valid");
    assert_eq!(reports[0]["warnings"][0]["path"], "spec.analysis.maxWeight");
}

#[test]
fn flaggers_linkerd_canary_walks_to_sixty_as_in_flagger() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("canary.yaml");
    std::fs::write(&path, LINKERD_E2E_CANARY).expect("written");
    let out = fledge(
        &[
            "simulate",
            path.to_str().expect("utf-8"),
            "--provider",
            "linkerd",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for weight in [10, 20, 30, 40, 50, 60] {
        assert!(
            stdout.contains(&format!("Advance podinfo.test canary weight {weight}\n")),
            "no step to {weight}: {stdout}"
        );
    }
    assert!(!stdout.contains("canary weight 70"), "{stdout}");
}

#[test]
fn migrate_turns_the_legacy_seed_canary_into_a_valid_v1beta1_one() {
    let path = seed_fixture("000-podinfo-v1alpha3.yaml");
    let out = fledge(&["migrate", &path], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let migrated = text(&out.stdout);
    assert!(
        migrated.starts_with("apiVersion: flagger.app/v1beta1\n"),
        "{migrated}"
    );
    assert!(text(&out.stderr).contains("spec.canaryAnalysis renamed to spec.analysis"));
    let check = fledge(&["validate", "-"], Some(&migrated));
    let verdict = text(&check.stdout);
    assert!(check.status.success(), "{verdict}");
    assert!(
        !verdict.contains("note:"),
        "no legacy notes remain: {verdict}"
    );
}

#[test]
fn crd_prints_the_three_definitions() {
    let out = fledge(&["crd"], None);
    assert!(out.status.success());
    let crds = text(&out.stdout);
    for name in [
        "canaries.flagger.app",
        "metrictemplates.flagger.app",
        "alertproviders.flagger.app",
    ] {
        assert!(crds.contains(&format!("name: {name}")), "{name} missing");
    }
}

#[test]
fn unreadable_input_is_an_error_not_a_verdict() {
    let out = fledge(&["validate", "/no/such/file.yaml"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("reading /no/such/file.yaml"));
    let out = fledge(&["validate", "-"], Some("key: [unclosed"));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("<stdin> is not YAML"),
        "{}",
        text(&out.stderr)
    );
}
