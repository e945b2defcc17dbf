//! The real `fledge-operator` binary for `cargo xtask demo` and `cargo xtask bench operator`:
//! built with the cargo that runs xtask, started as a child process logging to a file, and
//! stopped (SIGTERM, then SIGKILL) when its handle is dropped.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// How long the operator may take to stop after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Builds the binary `name` of the workspace package of the same name (`cargo build -p
/// <name> --bin <name>`, `--release` when asked) with the cargo that runs xtask, and returns
/// the path of the executable cargo reports.
pub(crate) fn build_binary(name: &str, release: bool) -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(&cargo);
    command
        .args(["build", "-p", name, "--bin", name])
        .args(["--message-format", "json-render-diagnostics"])
        .current_dir(crate::workspace_root())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if release {
        command.arg("--release");
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("run {cargo} build -p {name}"))?;
    let stdout = child.stdout.take().context("cargo's piped stdout")?;
    let mut executable = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.context("read cargo's output")?;
        let Ok(message) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if message["reason"] == "compiler-artifact"
            && message["target"]["name"] == name
            && let Some(path) = message["executable"].as_str()
        {
            executable = Some(PathBuf::from(path));
        }
    }
    let status = child.wait().context("wait for cargo build")?;
    if !status.success() {
        bail!("cargo build -p {name} failed ({status})");
    }
    let executable: PathBuf = executable
        .with_context(|| format!("cargo build -p {name} reported no {name} executable"))?;
    if !executable.exists() {
        bail!("{} does not exist after the build", executable.display());
    }
    Ok(executable)
}

/// Builds `fledge-operator` (`--release` when asked) and returns the path of the binary.
pub(crate) fn build(release: bool) -> Result<PathBuf> {
    build_binary("fledge-operator", release)
}

/// A running `fledge-operator`; dropping it stops the process.
pub(crate) struct Operator {
    child: Child,
    log: PathBuf,
}

impl Operator {
    /// Starts `binary` with `args`, its stdout and stderr appended to `log`.
    pub(crate) fn spawn(binary: &Path, args: &[String], log: &Path) -> Result<Self> {
        let out = File::create(log).with_context(|| format!("create {}", log.display()))?;
        let err = out
            .try_clone()
            .with_context(|| format!("open {} twice", log.display()))?;
        let mut command = Command::new(binary);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        // The operator reads FLEDGE_* and KUBECONFIG from the environment: only the flags
        // given here may configure it.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("FLEDGE_") || key == "KUBECONFIG" {
                command.env_remove(key);
            }
        }
        let child = command
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;
        Ok(Self {
            child,
            log: log.to_owned(),
        })
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Where the operator's log lines go.
    pub(crate) fn log_path(&self) -> &Path {
        &self.log
    }

    /// Fails, with the log's last lines, when the operator has exited.
    pub(crate) fn check_alive(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => bail!(
                "fledge-operator exited ({status}); last log lines from {}:\n{}",
                self.log.display(),
                self.log_tail(20)
            ),
            Err(e) => Err(e).context("check on fledge-operator"),
        }
    }

    /// The log's last `lines` lines.
    pub(crate) fn log_tail(&self, lines: usize) -> String {
        fledge_testkit::process::log_tail(&self.log, lines)
    }

    /// Stops the operator: SIGTERM, then SIGKILL after a grace period.
    pub(crate) fn stop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        // std only sends SIGKILL; the operator deserves the chance to finish its tick.
        let terminated = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if terminated {
            let started = Instant::now();
            while started.elapsed() < STOP_GRACE {
                if !matches!(self.child.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The operator's flags for a run against the cluster of `kubeconfig`, watching `namespace`
/// (Flagger's spelling; `-port` on a free port so runs side by side do not collide).
pub(crate) fn flags(
    kubeconfig: &Path,
    namespace: &str,
    mesh_provider: &str,
    metrics_server: Option<&str>,
) -> Result<Vec<String>> {
    let port = fledge_testkit::process::free_port()?;
    let mut flags = vec![
        format!("-kubeconfig={}", kubeconfig.display()),
        format!("-namespace={namespace}"),
        format!("-mesh-provider={mesh_provider}"),
    ];
    if let Some(url) = metrics_server {
        flags.push(format!("-metrics-server={url}"));
    }
    flags.extend(["-log-level=info".to_owned(), format!("-port={port}")]);
    Ok(flags)
}

/// A directory for a run's files (the operator's log), kept after the run for reading.
pub(crate) fn run_dir(prefix: &str) -> Result<PathBuf> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let dir = std::env::temp_dir().join(format!("{prefix}-{stamp}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    Ok(dir)
}
