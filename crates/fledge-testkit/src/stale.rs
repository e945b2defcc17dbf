//! Clean-up of what an earlier, abruptly killed test run left behind.
//!
//! Dropping a [`crate::LocalCluster`] or [`crate::LocalPrometheus`] stops its processes, but a
//! test binary killed with SIGKILL never drops anything. Each run therefore marks its
//! temporary directory with its own pid and its children's pids; the next start removes
//! directories whose owner is gone and ends their processes — only those whose command line
//! names that very directory, so nothing else is ever touched.

use std::path::Path;

use crate::error::{Error, Result};

/// Prefix of a [`crate::LocalCluster`]'s temporary directory.
pub const CLUSTER_DIR_PREFIX: &str = "fledge-cluster-";
/// Prefix of a [`crate::LocalPrometheus`]'s temporary directory.
pub const PROMETHEUS_DIR_PREFIX: &str = "fledge-prometheus-";

const OWNER_FILE: &str = "owner.pid";
const PIDS_FILE: &str = "children.pids";

/// Writes the current process id into `dir`.
pub(crate) fn mark_owner(dir: &Path) -> Result<()> {
    let path = dir.join(OWNER_FILE);
    std::fs::write(&path, std::process::id().to_string()).map_err(|e| Error::io("write", path, e))
}

/// Records the processes started for `dir`.
pub(crate) fn record_pids(dir: &Path, pids: &[u32]) -> Result<()> {
    let path = dir.join(PIDS_FILE);
    let text: Vec<String> = pids.iter().map(u32::to_string).collect();
    std::fs::write(&path, text.join("\n")).map_err(|e| Error::io("write", path, e))
}

/// Removes stale directories (and their leftover processes) from the temp directory.
pub fn sweep() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if ![
            CLUSTER_DIR_PREFIX,
            PROMETHEUS_DIR_PREFIX,
            crate::graphite::GRAPHITE_DIR_PREFIX,
        ]
        .iter()
        .any(|prefix| name.starts_with(prefix))
        {
            continue;
        }
        let dir = entry.path();
        let Some(owner) = read_pid(&dir.join(OWNER_FILE)) else {
            continue;
        };
        if process_alive(owner) {
            continue;
        }
        end_leftovers(&dir);
        tracing::info!(dir = %dir.display(), owner, "removing a stale test directory");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Ends the processes recorded for `dir` whose command line still names `dir`.
fn end_leftovers(dir: &Path) {
    let Ok(text) = std::fs::read_to_string(dir.join(PIDS_FILE)) else {
        return;
    };
    let needle = dir.to_string_lossy().into_owned();
    for pid in text.lines().filter_map(|l| l.trim().parse::<u32>().ok()) {
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).contains(&needle) {
            let _ = std::process::Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
            // The signal is asynchronous: wait (briefly) until it has taken effect.
            for _ in 0..100 {
                if !process_alive(pid) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    }
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Whether a process exists (and is not a zombie).
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the field after the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z"),
        Err(_) => false,
    }
}
