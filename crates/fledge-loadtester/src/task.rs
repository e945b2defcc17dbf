//! Tasks: what `POST /` runs, as Flagger's loadtester runs them.
//!
//! - `cmd` (the default type) runs in the background under `sh -c`; the call is answered
//!   `202 Accepted` at once. A task with the same canary and command as one still running is
//!   skipped (`command skipped ... is already running`), so a load test posted at every
//!   analysis interval keeps one generator going.
//! - `bash` runs under `bash -c` and the call waits for it: `200` (with the output when
//!   `returnCmdOutput` is `"true"`), or `500` with the failure.
//! - `helm`/`helmv3` and `kubectl` run the tool with the command's words as arguments, and
//!   wait like `bash`.
//!
//! A command that is a plain `hey ...` (no pipes, redirections or variables) runs in the
//! built-in generator ([`crate::hey`]) instead of a process, for `cmd` and `bash` alike; its
//! output is hey's summary. Every task stops at the runner's timeout (`-timeout`, 1 h).

use std::collections::HashSet;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::task::JoinSet;

use crate::goflag::split_simple_command;
use crate::hey::{Generator, HeyError};

/// The type of a task (`metadata.type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskKind {
    /// `cmd`: `sh -c`, in the background.
    Cmd,
    /// `bash`: `bash -c`, blocking.
    Bash,
    /// `helm` or `helmv3`: `helm <words>`, blocking.
    Helm,
    /// `kubectl`: `kubectl <words>`, blocking.
    Kubectl,
}

impl TaskKind {
    /// Reads `metadata.type`; `None` for a type this loadtester does not run.
    pub fn parse(kind: &str) -> Option<Self> {
        match kind {
            "cmd" => Some(Self::Cmd),
            "bash" => Some(Self::Bash),
            "helm" | "helmv3" => Some(Self::Helm),
            "kubectl" => Some(Self::Kubectl),
            _ => None,
        }
    }

    /// The program that runs the command.
    pub fn program(self) -> &'static str {
        match self {
            Self::Cmd => "sh",
            Self::Bash => "bash",
            Self::Helm => "helm",
            Self::Kubectl => "kubectl",
        }
    }
}

/// One task to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Task {
    /// `name.namespace` of the canary that posted it.
    pub canary: String,
    /// How to run it.
    pub kind: TaskKind,
    /// `metadata.cmd`.
    pub command: String,
    /// Log the command's output (`logCmdOutput`; always for blocking tasks, as Flagger).
    pub log_output: bool,
}

/// How a task ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Whether it succeeded.
    pub ok: bool,
    /// Its combined standard output and error (hey's summary for the built-in hey).
    pub output: Vec<u8>,
    /// Why it failed, in Flagger's words (`command <cmd> failed: <output>: <error>`).
    pub error: Option<String>,
}

/// Whether a background task started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Submitted {
    /// It runs now.
    Started,
    /// The same canary's same command is still running; this one was dropped.
    AlreadyRunning,
}

/// A task that cannot run, found before running it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TaskError {
    /// A program the task needs is not installed.
    #[error(
        "{tool} is not installed: no `{tool}` on the loadtester's PATH; use an image that has \
         {tool} (see docs/loadtester.md) or a task type that does not need it"
    )]
    MissingTool {
        /// The program.
        tool: String,
    },
    /// A `hey` command line the built-in generator refuses.
    #[error("{0}")]
    Hey(#[from] HeyError),
}

/// Runs tasks, remembers which background ones are running and counts them.
#[derive(Debug)]
pub struct TaskRunner {
    timeout: Duration,
    running: Arc<Mutex<HashSet<(String, String)>>>,
    executions: Arc<AtomicU64>,
    background: Mutex<JoinSet<()>>,
}

impl TaskRunner {
    /// A runner stopping every task after `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            running: Arc::default(),
            executions: Arc::default(),
            background: Mutex::new(JoinSet::new()),
        }
    }

    /// `-timeout`.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// How many tasks ran (or run), blocking and background.
    pub fn total_executions(&self) -> u64 {
        self.executions.load(Ordering::Relaxed)
    }

    /// The background tasks running now, as `(canary, command)`.
    pub fn running(&self) -> Vec<(String, String)> {
        let mut running: Vec<_> = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect();
        running.sort();
        running
    }

    /// Checks that `task` can run: its program is installed, its hey command line is valid.
    pub fn check(task: &Task) -> Result<(), TaskError> {
        if let Some(args) = builtin_hey(&task.command) {
            Generator::from_command_line(&args)?;
            return Ok(());
        }
        let program = task.kind.program();
        if find_program(program).is_none() {
            return Err(TaskError::MissingTool {
                tool: program.to_owned(),
            });
        }
        if task.kind == TaskKind::Cmd
            && let Some(tool) = first_program(&task.command)
            && find_program(&tool).is_none()
        {
            return Err(TaskError::MissingTool { tool });
        }
        Ok(())
    }

    /// Starts a background task unless the same one is running.
    pub fn submit(&self, task: Task) -> Submitted {
        let key = (task.canary.clone(), task.command.clone());
        {
            let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
            if !running.insert(key.clone()) {
                tracing::info!(
                    canary = %task.canary,
                    "command skipped {} is already running",
                    task.command
                );
                return Submitted::AlreadyRunning;
            }
        }
        self.executions.fetch_add(1, Ordering::Relaxed);
        let running = self.running.clone();
        let timeout = self.timeout;
        let mut background = self
            .background
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Forget the finished ones so the set does not grow with every task ever run.
        while background.try_join_next().is_some() {}
        background.spawn(async move {
            tracing::info!(canary = %task.canary, "task starting {}", task.command);
            execute(&task, timeout).await;
            running
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&key);
        });
        Submitted::Started
    }

    /// Runs a blocking task to its end.
    pub async fn run(&self, task: &Task) -> Outcome {
        self.executions.fetch_add(1, Ordering::Relaxed);
        execute(task, self.timeout).await
    }

    /// Stops every background task (their processes are killed).
    pub fn shutdown(&self) {
        tracing::info!("shutting down the task runner");
        self.background
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .abort_all();
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// Runs a task and logs how it went, in Flagger's words.
async fn execute(task: &Task, timeout: Duration) -> Outcome {
    let outcome = if let Some(args) = builtin_hey(&task.command) {
        run_hey(&args, timeout).await
    } else {
        {
            let args: Vec<String> = match task.kind {
                TaskKind::Cmd | TaskKind::Bash => vec!["-c".to_owned(), task.command.clone()],
                TaskKind::Helm | TaskKind::Kubectl => {
                    task.command.split_whitespace().map(str::to_owned).collect()
                }
            };
            if matches!(task.kind, TaskKind::Helm | TaskKind::Kubectl) {
                tracing::info!(
                    canary = %task.canary,
                    "running command {} {}",
                    task.kind.program(),
                    task.command
                );
            }
            run_program(task.kind.program(), &args, timeout).await
        }
    };
    let output = String::from_utf8_lossy(&outcome.output);
    if let Some(error) = &outcome.error {
        tracing::error!(
            canary = %task.canary,
            "command failed {} {error} {output}",
            task.command
        );
    } else {
        if task.log_output {
            tracing::info!(canary = %task.canary, "{output}");
        }
        tracing::info!(canary = %task.canary, "command finished {}", task.command);
    }
    Outcome {
        error: outcome.error.map(|error| {
            format!(
                "command {} failed: {}: {error}",
                task.command,
                output.trim_end()
            )
        }),
        ..outcome
    }
}

/// The arguments of `command` when it is a plain `hey ...` command line.
pub fn builtin_hey(command: &str) -> Option<Vec<String>> {
    let words = split_simple_command(command)?;
    (words.first().map(String::as_str) == Some("hey")).then_some(words)
}

async fn run_hey(args: &[String], timeout: Duration) -> Outcome {
    let generator = match Generator::from_command_line(args) {
        Ok(generator) => generator,
        Err(error) => {
            return Outcome {
                ok: false,
                output: Vec::new(),
                error: Some(error.to_string()),
            };
        }
    };
    let stop = generator.stop_handle();
    let timer = tokio::spawn(async move {
        tokio::time::sleep(timeout).await;
        stop.stop();
    });
    let report = generator.run().await;
    let timed_out = timer.is_finished();
    timer.abort();
    tracing::info!(
        requests = report.results,
        errors = report.results - report.answered,
        requests_per_second = report.requests_per_second(),
        "hey sent {} requests in {:.3}s ({:.1} requests/s)",
        report.results,
        report.total.as_secs_f64(),
        report.requests_per_second()
    );
    Outcome {
        ok: !timed_out,
        output: report.summary().into_bytes(),
        error: timed_out.then(|| format!("timed out after {} (-timeout)", go_duration(timeout))),
    }
}

/// Runs `program args`, collecting its standard output and error in one buffer, as Go's
/// `CombinedOutput`. The program runs in its own process group, killed whole at the timeout
/// or when the task is dropped (a stopped loadtester), so `sleep` started by a `bash` task
/// does not outlive it.
pub async fn run_program(program: &str, args: &[String], timeout: Duration) -> Outcome {
    let failed = |error: String| Outcome {
        ok: false,
        output: Vec::new(),
        error: Some(error),
    };
    let Some(path) = find_program(program) else {
        return failed(
            TaskError::MissingTool {
                tool: program.to_owned(),
            }
            .to_string(),
        );
    };
    let (mut reader, writer) = match std::io::pipe() {
        Ok(pipe) => pipe,
        Err(error) => return failed(format!("cannot create a pipe: {error}")),
    };
    let stderr = match writer.try_clone() {
        Ok(stderr) => stderr,
        Err(error) => return failed(format!("cannot create a pipe: {error}")),
    };
    let mut command = tokio::process::Command::new(path);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(stderr)
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(error) => return failed(format!("cannot start {program}: {error}")),
    };
    let mut group = GroupKill(child.id());
    // The parent's copies of the write ends go with `command`: the reader sees EOF once the
    // program and whatever it started are done with the pipe. A detached thread reads, so a
    // leftover background process holding the pipe blocks nothing.
    drop(command);
    let output = Arc::new(Mutex::new(Vec::new()));
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    {
        let output = output.clone();
        std::thread::spawn(move || {
            let mut chunk = [0_u8; 8192];
            while let Ok(read) = reader.read(&mut chunk) {
                if read == 0 {
                    break;
                }
                output
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .extend_from_slice(&chunk[..read]);
            }
            let _ = done_tx.send(());
        });
    }
    let collected = || {
        output
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    };
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => {
            group.0 = None;
            let _ = tokio::time::timeout(Duration::from_secs(2), done_rx).await;
            Outcome {
                ok: status.success(),
                output: collected(),
                error: (!status.success()).then(|| exit_text(status)),
            }
        }
        Ok(Err(error)) => failed(format!("waiting for {program}: {error}")),
        Err(_) => {
            drop(group);
            let _ = child.kill().await;
            let _ = tokio::time::timeout(Duration::from_secs(1), done_rx).await;
            Outcome {
                ok: false,
                output: collected(),
                error: Some(format!(
                    "signal: killed (timed out after {} (-timeout))",
                    go_duration(timeout)
                )),
            }
        }
    }
}

/// Kills a process group when dropped (`kill -9 -<pgid>` through `sh`, as std has no
/// safe `killpg`); disarmed by setting the id to `None`.
struct GroupKill(Option<u32>);

impl Drop for GroupKill {
    fn drop(&mut self) {
        if let Some(group) = self.0.take() {
            let _ = std::process::Command::new("sh")
                .args(["-c", &format!("kill -9 -{group} 2>/dev/null")])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Go's `*exec.ExitError` text: `exit status 1`, `signal: killed`.
fn exit_text(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(9)) => "signal: killed".to_owned(),
        (None, Some(15)) => "signal: terminated".to_owned(),
        (None, Some(signal)) => format!("signal: {signal}"),
        (None, None) => status.to_string(),
    }
}

/// Go's `time.Duration.String` for whole seconds and above (`1h0m0s`, `2m30s`, `500ms`).
pub fn go_duration(duration: Duration) -> String {
    let total = duration.as_secs();
    if total == 0 {
        return format!("{}ms", duration.as_millis());
    }
    let (hours, minutes, seconds) = (total / 3600, total / 60 % 60, total % 60);
    let fraction = duration.subsec_millis();
    let seconds = if fraction == 0 {
        format!("{seconds}s")
    } else {
        format!(
            "{seconds}.{}s",
            format!("{fraction:03}").trim_end_matches('0')
        )
    };
    match (hours, minutes) {
        (0, 0) => seconds,
        (0, m) => format!("{m}m{seconds}"),
        (h, m) => format!("{h}h{m}m{seconds}"),
    }
}

/// Where `program` is: itself when it contains a `/`, else the first executable of that name
/// on `PATH`.
pub fn find_program(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let executable = |path: &Path| {
        path.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let path = PathBuf::from(program);
        return executable(&path).then_some(path);
    }
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(program))
        .find(|candidate| executable(candidate))
}

/// Shell words that are not programs on PATH.
const SHELL_WORDS: [&str; 28] = [
    "cd", "echo", "exec", "exit", "export", "set", "unset", "test", "[", "true", "false", "read",
    "eval", "if", "for", "while", "until", "case", "{", "(", "!", "printf", "sleep", "wait",
    "trap", "command", "type", "local",
];

/// The program a simple `cmd` starts (`ghz` in `ghz --insecure host:9898`), when the command
/// is simple enough to tell; `None` for shell syntax, builtins and variable assignments.
fn first_program(command: &str) -> Option<String> {
    let words = split_simple_command(command)?;
    let first = words.first()?;
    if SHELL_WORDS.contains(&first.as_str()) || first.contains('=') {
        return None;
    }
    Some(first.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_prints_durations_this_way() {
        assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(go_duration(Duration::from_secs(150)), "2m30s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_millis(200)), "200ms");
    }

    #[test]
    fn only_plain_hey_command_lines_are_built_in() {
        assert!(builtin_hey("hey -z 1m -q 10 -c 2 http://podinfo-canary.test:9898/").is_some());
        assert!(builtin_hey("  hey http://x/").is_some());
        assert!(builtin_hey("hey http://x/ | tail -1").is_none());
        assert!(builtin_hey("heyo http://x/").is_none());
        assert!(builtin_hey("curl http://x/").is_none());
    }

    #[test]
    fn the_first_program_of_a_simple_command_is_known() {
        assert_eq!(
            first_program("ghz --insecure podinfo:9898"),
            Some("ghz".to_owned())
        );
        assert_eq!(first_program("sleep 5"), None);
        assert_eq!(first_program("A=1 env"), None);
        assert_eq!(first_program("curl -s x | grep y"), None);
    }
}
