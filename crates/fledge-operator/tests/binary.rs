//! The `fledge-operator` binary as a user runs it: Flagger's flags, the environment, JSON
//! log lines, a real API server, and a clean stop on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use fledge_testkit::LocalCluster;
use serde_json::Value;

fn operator() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fledge-operator"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("FLEDGE_") || key == "KUBECONFIG" || key == "RUST_LOG"
        {
            command.env_remove(key);
        }
    }
    command
}

fn printed_config(command: &mut Command) -> Value {
    let output: Output = command
        .arg("-print-config")
        .output()
        .expect("the binary runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the configuration is JSON")
}

#[test]
fn flags_take_flaggers_single_dash_and_the_environment_fills_the_rest() {
    let config = printed_config(
        operator()
            .args([
                "-mesh-provider=linkerd",
                "-include-label-prefix",
                "app.kubernetes.io,team",
            ])
            .args([
                "-enable-config-tracking=false",
                "-slack-url=https://hooks.slack.com/services/T/B/secret",
            ])
            .env("FLEDGE_NAMESPACE", "test")
            .env("FLEDGE_MESH_PROVIDER", "istio")
            .env("FLEDGE_LOG_LEVEL", "debug"),
    );
    assert_eq!(
        config["mesh-provider"], "linkerd",
        "a flag beats the environment"
    );
    assert_eq!(config["namespace"], "test");
    assert_eq!(config["log-level"], "debug");
    assert_eq!(
        config["include-label-prefix"],
        serde_json::json!(["app.kubernetes.io", "team"])
    );
    assert_eq!(config["enable-config-tracking"], false);
    assert_eq!(
        config["slack-url"], "(set)",
        "webhook URLs are credentials and never printed"
    );
}

#[test]
fn version_prints_and_exits_zero_as_flaggers() {
    for flag in ["-version", "--version", "-version=true"] {
        let output = operator().arg(flag).output().expect("the binary runs");
        assert!(output.status.success(), "{flag}: {}", output.status);
        assert_eq!(
            String::from_utf8_lossy(&output.stdout).trim(),
            format!("fledge-operator version {}", env!("CARGO_PKG_VERSION")),
            "{flag}"
        );
    }
}

#[test]
fn flaggers_environment_variables_are_read_and_unknown_flags_exit_2() {
    let config = printed_config(
        operator()
            .arg("-event-webhook=http://from-flag/")
            .env("EVENT_WEBHOOK_URL", "http://from-env/")
            .env("SLACK_TOKEN", "xoxb-secret"),
    );
    assert_eq!(config["event-webhook"], "http://from-env/");
    assert_eq!(config["slack-token"], "(set)");

    let output = operator()
        .arg("-slack-chanel=deploys")
        .output()
        .expect("the binary runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--slack-channel"), "a suggestion: {stderr}");
}

#[test]
fn an_invalid_configuration_is_one_json_line_naming_the_flag() {
    let output = operator()
        .arg("-mesh-provider=haproxy")
        .output()
        .expect("the binary runs");
    assert_eq!(output.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line: Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(line["level"], "error");
    assert_eq!(line["msg"], "Invalid configuration");
    assert!(
        line["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("-mesh-provider (FLEDGE_MESH_PROVIDER): unknown")),
        "{line}"
    );

    let output = operator()
        .arg("-log-level=loud")
        .output()
        .expect("the binary runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--log-level"));
}

/// The lines the operator writes, read on a thread so a test can wait with a timeout.
struct Lines {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Lines {
    fn spawn(command: &mut Command) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the binary starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    /// Reads lines until one has `msg`, returning it; fails after 30 s or at end of output.
    fn until(&self, msg: &str, seen: &mut Vec<Value>) -> Value {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|e| panic!("no line {msg:?} ({e}); lines so far: {seen:#?}"));
            let value: Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            seen.push(value.clone());
            if value["msg"] == msg {
                return value;
            }
        }
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn the_operator_connects_to_a_real_api_server_and_stops_cleanly_on_sigterm() {
    let cluster = LocalCluster::start().await.expect("a local control plane");
    cluster
        .install_fledge_crds()
        .await
        .expect("Fledge's CRDs install");
    cluster
        .install_operator_rbac()
        .await
        .expect("the operator's ServiceAccount and RBAC install");
    let kubeconfig = cluster.operator_kubeconfig_path().to_owned();
    let flagger_lease = format!(
        "-flagger-lease-namespace={}",
        cluster.operator_identity().namespace
    );
    let running = Lines::spawn(
        operator()
            .arg("-kubeconfig")
            .arg(&kubeconfig)
            .args(["-namespace=test", "-threadiness=4", flagger_lease.as_str()])
            .arg(format!(
                "-port={}",
                fledge_testkit::process::free_port().expect("a free port")
            )),
    );
    let mut seen = Vec::new();

    let started = running.until("Starting fledge-operator", &mut seen);
    assert_eq!(started["level"], "info");
    assert_eq!(started["mesh_provider"], "istio");
    assert_eq!(started["namespace"], "test");
    let ignored = running.until(
        "Flagger flag accepted but without effect in Fledge",
        &mut seen,
    );
    assert_eq!(ignored["flag"], "-threadiness=4");
    let connected = running.until("Connected to Kubernetes API v1.20.2", &mut seen);
    assert_eq!(connected["server_version"], "v1.20.2");
    running.until(
        "Using autoscaling/v2beta2 for primary autoscalers",
        &mut seen,
    );
    running.until("Watching namespace test", &mut seen);
    running.until("Watch caches synced", &mut seen);

    let pid = running.child.id().to_string();
    let signalled = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(signalled.success());
    running.until("Shutting down", &mut seen);
    let mut running = running;
    let status = running.child.wait().expect("the operator exits");
    assert!(status.success(), "{status}");
    let forbidden = cluster
        .operator_forbidden_requests()
        .expect("the audit log");
    assert!(forbidden.is_empty(), "forbidden: {forbidden:#?}");
}
