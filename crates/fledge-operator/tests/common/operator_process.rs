//! The `fledge-operator` binary as a user runs it against a stage's control plane: its JSON
//! log lines go to a file (printed when a test fails), SIGKILL stands for a crashed pod.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

static STARTED: AtomicUsize = AtomicUsize::new(0);

/// A running operator process; dropping it kills it.
pub struct OperatorProcess {
    child: Child,
    log: PathBuf,
}

impl OperatorProcess {
    /// Starts the binary with `-kubeconfig` and `-namespace` set and `flags` after them.
    pub fn start(
        kubeconfig: &std::path::Path,
        namespace: &str,
        log_dir: &std::path::Path,
        flags: &[&str],
    ) -> Self {
        let n = STARTED.fetch_add(1, Ordering::SeqCst);
        let log = log_dir.join(format!("fledge-operator-{}-{n}.log", std::process::id()));
        let out = std::fs::File::create(&log).expect("the log file is created");
        let err = out.try_clone().expect("the log file is shared");
        let mut command = Command::new(env!("CARGO_BIN_EXE_fledge-operator"));
        for (key, _) in std::env::vars_os() {
            let key_text = key.to_string_lossy();
            if key_text.starts_with("FLEDGE_") || key_text == "KUBECONFIG" {
                command.env_remove(&key);
            }
        }
        let child = command
            .arg(format!("-kubeconfig={}", kubeconfig.display()))
            .arg(format!("-namespace={namespace}"))
            .args(flags)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("the operator binary starts");
        Self { child, log }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process at once (SIGKILL: no clean-up, like a node failure).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for the exit status, as Kubernetes stops a pod.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..150 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        None
    }

    /// Everything the process logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The `msg` of each JSON log line, in order.
    pub fn messages(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter_map(|line| line["msg"].as_str().map(str::to_owned))
            .collect()
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(80)..];
            eprintln!(
                "--- fledge-operator (pid {}) log tail, {} ---\n{}",
                self.child.id(),
                self.log.display(),
                tail.join("\n")
            );
        }
    }
}
