//! A child process the testkit owns: its log file, its readiness, its end.
//!
//! Every server the testkit starts (etcd, kube-apiserver, prometheus) runs as a
//! [`ManagedProcess`]. Its stdout and stderr go to a log file; dropping it kills the process
//! and waits for it, so a test that returns, fails or panics leaves nothing behind. When the
//! drop happens during a panic, the tail of the log is printed to help explain the failure.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How many log lines a failure report shows.
pub const LOG_TAIL_LINES: usize = 30;

/// A running server process, killed when dropped.
#[derive(Debug)]
pub struct ManagedProcess {
    name: String,
    child: Child,
    log: PathBuf,
}

impl ManagedProcess {
    /// Starts `program` with `args`, sending both output streams to `log`.
    ///
    /// # Errors
    /// [`Error::Io`] when the log cannot be created, [`Error::Spawn`] when the program cannot run.
    pub fn spawn(name: &str, program: &Path, args: &[String], log: &Path) -> Result<Self> {
        let out = File::create(log).map_err(|e| Error::io("create log", log, e))?;
        let err = out
            .try_clone()
            .map_err(|e| Error::io("create log", log, e))?;
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(|source| Error::Spawn {
                name: name.to_owned(),
                path: program.to_owned(),
                source,
            })?;
        tracing::debug!(name, pid = child.id(), log = %log.display(), "started");
        Ok(Self {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
        })
    }

    /// The process's role (`etcd`, `kube-apiserver`, `prometheus`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The operating system's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The file holding its stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log, lines)
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Fails with [`Error::ExitedEarly`] (and the log tail) if the process has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(self.exited(status.to_string())),
            Err(e) => Err(self.exited(format!("status unknown: {e}"))),
        }
    }

    /// Polls `probe` until it returns `Ok(true)`, failing early if the process exits.
    ///
    /// # Errors
    /// [`Error::ExitedEarly`] when the process dies first, [`Error::NotReady`] after `timeout`.
    pub async fn wait_ready<F, Fut>(&mut self, timeout: Duration, mut probe: F) -> Result<()>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<bool, String>>,
    {
        let start = Instant::now();
        let mut last = String::new();
        loop {
            self.check_alive()?;
            match probe().await {
                Ok(true) => return Ok(()),
                Ok(false) => last.clear(),
                Err(reason) => last = reason,
            }
            if start.elapsed() > timeout {
                let mut detail = String::new();
                if !last.is_empty() {
                    detail = format!("; last probe: {last}");
                }
                let _ = write!(
                    detail,
                    "; last lines of its log ({}):\n{}",
                    self.log.display(),
                    self.log_tail(LOG_TAIL_LINES)
                );
                return Err(Error::NotReady {
                    what: self.name.clone(),
                    waited_ms: timeout.as_millis(),
                    detail,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills the process and waits for it to end.
    pub fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }

    fn exited(&self, status: String) -> Error {
        Error::ExitedEarly {
            name: self.name.clone(),
            status,
            log: self.log.clone(),
            tail: self.log_tail(LOG_TAIL_LINES),
        }
    }
}

impl Drop for ManagedProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- {} (pid {}) log tail, full log at {} ---\n{}",
                self.name,
                self.child.id(),
                self.log.display(),
                self.log_tail(LOG_TAIL_LINES)
            );
        }
        self.stop();
    }
}

/// The last `lines` lines of a log file (reads at most its last 64 KiB).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let Ok(mut file) = File::open(path) else {
        return format!("(no log at {})", path.display());
    };
    let len = file.metadata().map_or(0, |m| m.len());
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A loopback port that was free a moment ago.
///
/// Another process may take it before the server binds it; callers that start servers retry
/// on "address already in use" (see [`is_port_conflict`]).
///
/// # Errors
/// [`Error::Io`] when no loopback socket can be bound at all.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .map_err(|e| Error::io("bind a loopback port", "127.0.0.1:0", e))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| Error::io("bind a loopback port", "127.0.0.1:0", e))
}

/// Whether a start-up failure was a port taken by someone else (worth a retry on new ports).
pub fn is_port_conflict(error: &Error) -> bool {
    match error {
        Error::ExitedEarly { tail, .. } | Error::NotReady { detail: tail, .. } => {
            tail.contains("address already in use")
        }
        _ => false,
    }
}
