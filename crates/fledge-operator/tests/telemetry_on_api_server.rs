//! The `fledge-operator` binary's endpoint on `-port`: `/healthz` answers as soon as the
//! process runs, `/readyz` only once the API server answered and the watch caches synced
//! (the API server is held back behind a gated proxy to see it), and `/metrics` shows
//! Flagger's metrics for a canary it initialized, and the operator's own API requests. A
//! port already in use stops the operator with an error naming `-port`.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::Stage;
use common::operator_process::Operator;
use fledge_api::CanaryPhase;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A TCP proxy to `upstream` that holds every connection until `gate` opens; its port.
async fn gated_proxy(upstream: String, gate: watch::Receiver<bool>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a proxy port");
    let port = listener.local_addr().expect("the proxy's address").port();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let (mut gate, upstream) = (gate.clone(), upstream.clone());
            tokio::spawn(async move {
                if gate.wait_for(|open| *open).await.is_err() {
                    return;
                }
                if let Ok(mut outbound) = TcpStream::connect(&upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    port
}

/// The operator's kubeconfig with its server a [`gated_proxy`] to the stage's.
async fn kubeconfig_through_proxy(stage: &Stage, gate: watch::Receiver<bool>) -> PathBuf {
    let upstream = stage
        .cluster
        .server_url()
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_owned();
    let proxy_port = gated_proxy(upstream, gate).await;
    let mut kubeconfig =
        kube::config::Kubeconfig::read_from(stage.cluster.operator_kubeconfig_path())
            .expect("a kubeconfig");
    for named in &mut kubeconfig.clusters {
        if let Some(cluster) = named.cluster.as_mut() {
            cluster.server = Some(format!("https://127.0.0.1:{proxy_port}"));
        }
    }
    let proxied = stage
        .cluster
        .kubeconfig_path()
        .with_file_name("proxied-kubeconfig.json");
    // JSON is YAML: kube reads it as a kubeconfig.
    std::fs::write(
        &proxied,
        serde_json::to_vec(&kubeconfig).expect("the kubeconfig as JSON"),
    )
    .expect("the proxied kubeconfig is written");
    proxied
}

/// Polls `/metrics` until the lines starting with `prefix` are `expected` (in any order).
async fn wait_for_metrics(operator: &Operator, prefix: &str, expected: &[String]) {
    let started = Instant::now();
    let mut expected = expected.to_vec();
    expected.sort();
    loop {
        let mut lines = operator.metrics(prefix).await;
        lines.sort();
        if lines == expected {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{prefix}: {lines:#?}, expected {expected:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn the_endpoint_is_healthy_at_once_ready_once_synced_and_shows_flaggers_metrics() {
    let stage = Stage::set_up(
        "  provider: kubernetes\n  analysis: { interval: 10s, threshold: 2, iterations: 2 }\n",
    )
    .await;
    let ns = stage.ns().to_owned();

    // The operator reaches the API server through a proxy that holds connections back.
    let (open, gate) = watch::channel(false);
    let proxied = kubeconfig_through_proxy(&stage, gate).await;
    let [namespace, flagger_lease] = stage.operator_scope();
    let mut operator = Operator::spawn(
        &proxied,
        "fledge-telemetry",
        &[
            namespace.as_str(),
            flagger_lease.as_str(),
            "-mesh-provider=kubernetes",
        ],
    );

    // Before the API server answers: alive, not ready, and flagger_info is set.
    let serving = format!("Starting HTTP server on port {}", operator.port);
    operator
        .wait_for_line(&serving, Duration::from_secs(10))
        .await;
    assert_eq!(operator.get("/healthz").await, (200, "OK\n".to_owned()));
    assert_eq!(
        operator.get("/readyz").await,
        (503, "starting\n".to_owned())
    );
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        operator.metrics("flagger_info").await,
        [format!(
            "flagger_info{{version=\"{version}\",mesh_provider=\"kubernetes\"}} 1"
        )]
    );

    // The API server answers: once the caches synced, ready.
    open.send(true).expect("the proxy listens");
    operator
        .wait_for_line("Watch caches synced", Duration::from_secs(30))
        .await;
    assert_eq!(operator.get("/readyz").await, (200, "synced\n".to_owned()));

    // The canary is initialized: its status and both weights, labelled by the target.
    stage.reaches(CanaryPhase::Initialized, 30).await;
    wait_for_metrics(
        &operator,
        "flagger_canary_status{",
        &[format!(
            "flagger_canary_status{{name=\"podinfo\",namespace=\"{ns}\"}} 1"
        )],
    )
    .await;
    wait_for_metrics(
        &operator,
        "flagger_canary_weight{",
        &[
            format!("flagger_canary_weight{{workload=\"podinfo-primary\",namespace=\"{ns}\"}} 100"),
            format!("flagger_canary_weight{{workload=\"podinfo\",namespace=\"{ns}\"}} 0"),
        ],
    )
    .await;
    assert_eq!(
        operator.metrics("flagger_canary_total{").await,
        [format!("flagger_canary_total{{namespace=\"{ns}\"}} 1")]
    );

    // The operator's own requests: watches of the caches, the status written.
    let requests = operator.metrics("fledge_kube_requests_total{").await;
    for expected in [
        "fledge_kube_requests_total{verb=\"watch\",resource=\"deployments\"}",
        "fledge_kube_requests_total{verb=\"list\",resource=\"deployments\"}",
        "fledge_kube_requests_total{verb=\"patch\",resource=\"canaries/status\"}",
        "fledge_kube_requests_total{verb=\"get\",resource=\"nonresource\"}",
    ] {
        assert!(
            requests.iter().any(|line| line.starts_with(expected)),
            "no {expected} in {requests:#?}"
        );
    }

    operator.terminate();
    let exit = operator.exit_status(Duration::from_secs(20)).await;
    assert!(exit.success(), "{exit}");
}

#[tokio::test]
async fn a_deleted_canary_leaves_no_series_in_metrics() {
    let stage = Stage::set_up(
        "  provider: kubernetes\n  analysis: { interval: 10s, threshold: 2, iterations: 2 }\n",
    )
    .await;
    let ns = stage.ns().to_owned();
    let operator = stage.start_operator(&["-mesh-provider=kubernetes"]);
    stage.reaches(CanaryPhase::Initialized, 30).await;
    wait_for_metrics(
        &operator,
        "flagger_canary_status{",
        &[format!(
            "flagger_canary_status{{name=\"podinfo\",namespace=\"{ns}\"}} 1"
        )],
    )
    .await;

    stage
        .canaries
        .delete("podinfo", &kube::api::DeleteParams::default())
        .await
        .expect("the Canary is deleted");

    // Its status and weights go from the exposition (Flagger's dashboards would otherwise
    // show a canary that no longer exists, and /metrics would grow with every one deleted).
    for prefix in ["flagger_canary_status{", "flagger_canary_weight{"] {
        wait_for_metrics(&operator, prefix, &[]).await;
    }
    operator.terminate();
}

#[tokio::test]
async fn a_port_in_use_stops_the_operator_with_an_error_naming_the_flag() {
    let taken = std::net::TcpListener::bind("0.0.0.0:0").expect("a port");
    let port = taken.local_addr().expect("its address").port();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_fledge-operator"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("FLEDGE_") {
            command.env_remove(key);
        }
    }
    let output = command
        .arg(format!("-port={port}"))
        .arg("-kubeconfig=/nonexistent/kubeconfig")
        .output()
        .expect("the binary runs");
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stopped: serde_json::Value = stdout
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .find(|line: &serde_json::Value| line["msg"] == "fledge-operator stopped")
        .unwrap_or_else(|| panic!("no error line in {stdout}"));
    let error = stopped["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with(&format!(
            "-port (FLEDGE_PORT): cannot listen on port {port}:"
        )),
        "{error}"
    );
}
