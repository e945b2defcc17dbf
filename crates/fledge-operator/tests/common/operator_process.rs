//! The `fledge-operator` binary as a user runs it: its JSON log lines are collected as they
//! come (and their tail printed when a story fails), its HTTP endpoint is asked over HTTP,
//! SIGKILL stands for a crashed pod, and it is killed when dropped.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// One running `fledge-operator`.
pub struct Operator {
    child: Child,
    lines: Arc<Mutex<Vec<Value>>>,
    /// Its `-port`.
    pub port: u16,
    /// Its `HOSTNAME`.
    pub hostname: String,
}

impl Operator {
    /// Starts the binary against `kubeconfig` with `HOSTNAME=hostname`, `-port` on a free
    /// port, and `flags`; `FLEDGE_*` variables of the test's environment are removed.
    pub fn spawn(kubeconfig: &Path, hostname: &str, flags: &[&str]) -> Self {
        let port = fledge_testkit::process::free_port().expect("a free port");
        let mut command = Command::new(env!("CARGO_BIN_EXE_fledge-operator"));
        for (key, _) in std::env::vars_os() {
            let key_text = key.to_string_lossy();
            if key_text.starts_with("FLEDGE_") || key_text == "KUBECONFIG" || key_text == "RUST_LOG"
            {
                command.env_remove(key);
            }
        }
        let mut child = command
            .arg(format!("-kubeconfig={}", kubeconfig.display()))
            .arg(format!("-port={port}"))
            .args(flags)
            .env("HOSTNAME", hostname)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the binary starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let collected = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let value = serde_json::from_str(&line).unwrap_or(Value::String(line));
                collected.lock().expect("the log lines").push(value);
            }
        });
        Self {
            child,
            lines,
            port,
            hostname: hostname.to_owned(),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The lines logged so far.
    pub fn lines(&self) -> Vec<Value> {
        self.lines.lock().expect("the log lines").clone()
    }

    /// The `msg` of each line logged so far, in order.
    pub fn messages(&self) -> Vec<String> {
        self.lines()
            .iter()
            .filter_map(|line| line["msg"].as_str().map(str::to_owned))
            .collect()
    }

    /// The position of the first line whose `msg` is `msg`, if logged yet.
    pub fn position(&self, msg: &str) -> Option<usize> {
        self.lines().iter().position(|line| line["msg"] == msg)
    }

    /// Waits until a line with `msg` is logged, failing after `limit` with the lines so far.
    pub async fn wait_for_line(&self, msg: &str, limit: Duration) -> Value {
        let started = Instant::now();
        loop {
            let lines = self.lines();
            if let Some(line) = lines.iter().find(|line| line["msg"] == msg) {
                return line.clone();
            }
            assert!(
                started.elapsed() < limit,
                "{} logged no {msg:?} in {limit:?}: {lines:#?}",
                self.hostname
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until a line whose `msg` starts with `prefix` is logged.
    pub async fn wait_for_line_starting(&self, prefix: &str, limit: Duration) -> Value {
        let started = Instant::now();
        loop {
            let lines = self.lines();
            let found = lines
                .iter()
                .find(|line| line["msg"].as_str().is_some_and(|m| m.starts_with(prefix)));
            if let Some(line) = found {
                return line.clone();
            }
            assert!(
                started.elapsed() < limit,
                "{} logged no {prefix:?}... in {limit:?}: {lines:#?}",
                self.hostname
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `GET http://127.0.0.1:<port><path>`: the status code and the body.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        let response = reqwest::get(&url)
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = response.status().as_u16();
        (status, response.text().await.expect("a body"))
    }

    /// The `/metrics` lines starting with `prefix`.
    pub async fn metrics(&self, prefix: &str) -> Vec<String> {
        let (status, body) = self.get("/metrics").await;
        assert_eq!(status, 200, "{body}");
        body.lines()
            .filter(|line| line.starts_with(prefix))
            .map(str::to_owned)
            .collect()
    }

    /// Sends SIGTERM, as Kubernetes does to stop a pod.
    pub fn terminate(&self) {
        let signalled = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(signalled.success());
    }

    /// Kills the process at once (SIGKILL), as a node failure would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit, failing after `limit`.
    pub async fn exit_status(&mut self, limit: Duration) -> std::process::ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("the process state") {
                return status;
            }
            assert!(
                started.elapsed() < limit,
                "{} did not exit within {limit:?}",
                self.hostname
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let lines = self.lines.lock().map(|l| l.clone()).unwrap_or_default();
            let tail: Vec<String> = lines[lines.len().saturating_sub(80)..]
                .iter()
                .map(Value::to_string)
                .collect();
            eprintln!(
                "--- fledge-operator {} (pid {}) log tail ---\n{}",
                self.hostname,
                self.child.id(),
                tail.join("\n")
            );
        }
    }
}
