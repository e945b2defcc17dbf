//! The `fledge-loadtester` binary as a Deployment runs it: Flagger's flags, JSON logs in
//! Flagger's words, and tasks whose tool is (or is not) on PATH.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{payload, post_json};
use pretty_assertions::assert_eq;
use serde_json::Value;

/// The binary on a free port, its log lines arriving on a channel.
struct Running {
    child: Child,
    address: SocketAddr,
    lines: mpsc::Receiver<Value>,
}

impl Running {
    fn start(path_dirs: &str, flags: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fledge-loadtester"))
            .args(flags)
            .env("PATH", path_dirs)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the binary starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let value: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
                if send.send(value).is_err() {
                    break;
                }
            }
        });
        let first = lines
            .recv_timeout(Duration::from_secs(10))
            .expect("a first log line");
        let message = first["msg"].as_str().unwrap_or_default().to_owned();
        let port = message
            .strip_prefix(&format!(
                "Starting load tester v{} API on port ",
                env!("CARGO_PKG_VERSION")
            ))
            .and_then(|port| port.parse::<u16>().ok())
            .unwrap_or_else(|| panic!("unexpected first line {first}"));
        assert_eq!(first["level"], "info");
        assert!(
            first["ts"].as_str().is_some_and(|ts| ts.ends_with('Z')),
            "{first}"
        );
        Self {
            child,
            address: SocketAddr::from(([127, 0, 0, 1], port)),
            lines,
        }
    }

    /// Log messages until one contains `needle` (within 10 s).
    fn wait_for(&self, needle: &str) -> Value {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| panic!("no log line containing {needle:?}"));
            if line["msg"].as_str().is_some_and(|msg| msg.contains(needle)) {
                return line;
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A PATH of one directory: a fake `helm` that prints its arguments and links to the
/// system's `sh` and `bash` (nothing else, so `kubectl` and `ghz` are missing even on a
/// machine that has them).
fn tools() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let helm = dir.path().join("helm");
    std::fs::write(&helm, "#!/bin/sh\necho \"helm $*\"\n").expect("write helm");
    let mut permissions = std::fs::metadata(&helm).expect("helm").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&helm, permissions).expect("chmod helm");
    for shell in ["sh", "bash"] {
        let real = fledge_loadtester::task::find_program(shell).expect("sh and bash are installed");
        std::os::unix::fs::symlink(real, dir.path().join(shell)).expect("link a shell");
    }
    let path = dir.path().display().to_string();
    (dir, path)
}

#[tokio::test]
async fn flaggers_flags_start_it_and_the_logs_speak_flaggers_words() {
    let (_dir, path) = tools();
    let running = Running::start(&path, &["-port=0", "-log-level=info", "-timeout=1h"]);
    let address = running.address;
    assert_eq!(post_json(address, "/gate/open", &payload(&[])).await.0, 202);
    assert_eq!(
        running.wait_for("gate opened")["msg"],
        "podinfo.test gate opened"
    );
    assert_eq!(
        post_json(address, "/gate/check", &payload(&[])).await.0,
        200
    );
    assert_eq!(
        running.wait_for("gate check")["msg"],
        "podinfo.test gate check: approved true"
    );
    assert_eq!(
        post_json(address, "/rollback/open", &payload(&[])).await.0,
        202
    );
    assert_eq!(
        running.wait_for("rollback opened")["msg"],
        "rollback.podinfo.test rollback opened"
    );
    assert_eq!(
        post_json(
            address,
            "/",
            &payload(&[("type", "bash"), ("cmd", "echo ok")])
        )
        .await
        .0,
        200
    );
    let line = running.wait_for("bash command");
    assert_eq!(
        (&line["msg"], &line["canary"]),
        (
            &Value::from("bash command echo ok"),
            &Value::from("podinfo")
        )
    );
    let line = running.wait_for("command finished");
    assert_eq!(
        (&line["msg"], &line["canary"]),
        (
            &Value::from("command finished echo ok"),
            &Value::from("podinfo.test")
        )
    );
}

#[tokio::test]
async fn helm_and_kubectl_run_when_installed_and_are_named_when_not() {
    let (_dir, path) = tools();
    let running = Running::start(&path, &["-port", "0"]);
    let address = running.address;
    let helm = payload(&[
        ("type", "helmv3"),
        ("cmd", "test podinfo -n test"),
        ("returnCmdOutput", "true"),
    ]);
    assert_eq!(
        post_json(address, "/", &helm).await,
        (200, "helm test podinfo -n test\n".to_owned())
    );
    assert_eq!(
        running.wait_for("running command")["msg"],
        "running command helm test podinfo -n test"
    );
    for (kind, tool) in [("kubectl", "kubectl"), ("cmd", "ghz")] {
        let cmd = if kind == "cmd" {
            "ghz --insecure podinfo.test:9898"
        } else {
            "get pods"
        };
        let (status, body) =
            post_json(address, "/", &payload(&[("type", kind), ("cmd", cmd)])).await;
        assert_eq!(status, 500, "{kind}");
        assert!(
            body.starts_with(&format!(
                "{tool} is not installed: no `{tool}` on the loadtester's PATH"
            )),
            "{body}"
        );
    }
}

#[test]
fn bad_flags_exit_2_naming_the_flag() {
    let output = Command::new(env!("CARGO_BIN_EXE_fledge-loadtester"))
        .arg("-prot=8080")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with(
            "fledge-loadtester: flag provided but not defined: -prot (did you mean -port?)"
        ),
        "{stderr}"
    );
    let output = Command::new(env!("CARGO_BIN_EXE_fledge-loadtester"))
        .args(["hey", "-disable-keepalives", "http://127.0.0.1:1/"])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("did you mean -disable-keepalive?"),
        "{stderr}"
    );
}
