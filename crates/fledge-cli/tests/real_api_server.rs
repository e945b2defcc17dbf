//! The CRDs `fledge crd` prints, on a real Kubernetes 1.20 API server: they install, and the
//! server accepts every shipped example and every Flagger manifest unchanged — the same
//! validation a user's cluster applies.

use std::path::{Path, PathBuf};
use std::process::Command;

use fledge_testkit::LocalCluster;
use fledge_testkit::manifests::apply_value;

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "yaml")
                && !p.to_string_lossy().ends_with(".invalid.yaml")
        })
        .collect();
    files.sort();
    files
}

/// The Fledge documents of a file, without their namespace so they land in the test's own.
fn fledge_documents(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).expect("readable manifest");
    fledge_api::yaml::documents(&text)
        .expect("yaml")
        .into_iter()
        .filter(|d| {
            d.get("apiVersion")
                .and_then(|v| v.as_str())
                .is_some_and(|v| v.starts_with("flagger.app/"))
        })
        .map(|mut d| {
            if let Some(metadata) = d.get_mut("metadata").and_then(|m| m.as_object_mut()) {
                metadata.remove("namespace");
            }
            d
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_server_accepts_every_example_and_flagger_manifest() {
    let cluster = LocalCluster::start()
        .await
        .expect("a local control plane (run `cargo xtask control-plane`)");
    cluster
        .install_fledge_crds()
        .await
        .expect("Fledge's CRDs install on a 1.20 API server");
    let namespace = cluster
        .temp_namespace("crd-accept")
        .await
        .expect("namespace");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = yaml_files(&root.join("examples/podinfo"));
    let fixtures = root.join("crates/fledge-api/tests/fixtures");
    files.extend(yaml_files(&fixtures.join("flagger-docs")));
    files.extend(yaml_files(&fixtures.join("seeds")));
    let mut applied = 0;
    for path in &files {
        for document in fledge_documents(path) {
            // The legacy API version is read by Fledge but not served; the server sees the converted form.
            let document = if document["apiVersion"] == "flagger.app/v1beta1" {
                document
            } else {
                let mut converted = document;
                converted["apiVersion"] = serde_json::json!("flagger.app/v1beta1");
                converted
            };
            apply_value(
                &cluster.client(),
                document,
                &path.display().to_string(),
                namespace.name(),
            )
            .await
            .unwrap_or_else(|e| panic!("{}: the API server refused it: {e}", path.display()));
            applied += 1;
        }
    }
    assert!(applied >= 40, "only {applied} documents applied");

    // `kubectl get canaries` shows Flagger's columns.
    let table = Command::new("kubectl")
        .args([
            "--kubeconfig",
            &cluster.kubeconfig_path().display().to_string(),
            "get",
            "canaries",
            "-n",
            namespace.name(),
        ])
        .output()
        .expect("kubectl runs");
    let header = String::from_utf8_lossy(&table.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    let columns: Vec<&str> = header.split_whitespace().collect();
    assert_eq!(
        columns,
        ["NAME", "STATUS", "WEIGHT", "LASTTRANSITIONTIME"],
        "{}",
        String::from_utf8_lossy(&table.stderr)
    );
}
