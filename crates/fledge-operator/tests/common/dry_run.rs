//! Server dry runs of install manifests (kustomize overlays, the Helm chart) with `kubectl` on
//! a [`LocalCluster`], prepared as a real cluster would be for them.

use std::io::Write;
use std::process::{Command, Stdio};

use fledge_testkit::LocalCluster;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

/// Runs `kubectl --kubeconfig <cluster> <args>` with `input` on stdin.
pub fn kubectl(cluster: &LocalCluster, args: &[&str], input: &str) -> std::process::Output {
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig_path())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(input.as_bytes())
        .expect("kubectl reads its input");
    child.wait_with_output().expect("kubectl finishes")
}

/// Creates the namespace `name`.
pub async fn create_namespace(cluster: &LocalCluster, name: &str) {
    let namespace: Namespace =
        serde_json::from_value(json!({"metadata": {"name": name}})).expect("a Namespace");
    Api::<Namespace>::all(cluster.client())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap_or_else(|e| panic!("create namespace {name}: {e}"));
}

/// Makes what install manifests expect to exist on a cluster: the `namespaces` they put
/// objects in (a dry run creates nothing, so a rendered Namespace does not count), and what a
/// Linkerd cluster has — the `linkerd-viz` namespace and Linkerd's AuthorizationPolicy CRD,
/// established.
pub async fn prepare_cluster(cluster: &LocalCluster, namespaces: &[&str]) {
    for name in namespaces.iter().copied().chain(["linkerd-viz"]) {
        create_namespace(cluster, name).await;
    }
    let crd = kubectl(
        cluster,
        &["apply", "-f", "-"],
        include_str!("../fixtures/upstream/linkerd-authorizationpolicies.yaml"),
    );
    assert!(
        crd.status.success(),
        "{}",
        String::from_utf8_lossy(&crd.stderr)
    );
    let established = kubectl(
        cluster,
        &[
            "wait",
            "--for=condition=established",
            "--timeout=60s",
            "crd/authorizationpolicies.policy.linkerd.io",
        ],
        "",
    );
    assert!(
        established.status.success(),
        "{}",
        String::from_utf8_lossy(&established.stderr)
    );
}
