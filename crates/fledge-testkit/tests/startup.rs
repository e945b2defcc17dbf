//! Start-up of the local control plane. Alone in its test binary, so no other test's work
//! competes with it. The 10 s target is measured by `cargo xtask bench cluster` (figures in
//! docs/benchmarks.md); here a generous bound only catches a hang or a regression by a
//! multiple, since one timed run on a shared machine proves little.

use std::time::{Duration, Instant};

use fledge_testkit::LocalCluster;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};

#[tokio::test]
async fn cluster_is_ready_within_thirty_seconds_and_serves_a_kubeconfig_client() {
    let started = Instant::now();
    let cluster = LocalCluster::start().await.expect("local control plane");
    let ready_in = cluster.startup_duration();
    eprintln!(
        "local control plane ready in {} ms ({} ms including the wait for other starts)",
        ready_in.as_millis(),
        started.elapsed().as_millis()
    );
    assert!(ready_in < Duration::from_secs(30), "took {ready_in:?}");

    // The kubeconfig is what an operator under test would use: a client built from it works.
    let client = fledge_testkit::client_from_kubeconfig(cluster.kubeconfig_path())
        .await
        .expect("client from kubeconfig");
    let version = client.apiserver_version().await.expect("server version");
    assert_eq!(
        (version.major.as_str(), version.minor.as_str()),
        ("1", "20")
    );

    let ns = cluster.temp_namespace("smoke").await.expect("namespace");
    assert!(ns.name().starts_with("smoke-"), "{}", ns.name());
    let configmaps: Api<ConfigMap> = Api::namespaced(client, ns.name());
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("hello".into());
    cm.data = Some([("greeting".to_owned(), "hi".to_owned())].into());
    configmaps
        .create(&PostParams::default(), &cm)
        .await
        .expect("create configmap");
    let stored = configmaps.get("hello").await.expect("read it back");
    assert_eq!(stored.data.expect("data")["greeting"], "hi");
}
