//! The one error type of the testkit.

use std::path::PathBuf;

/// What can go wrong while starting or driving the local test infrastructure.
#[derive(thiserror::Error)]
pub enum Error {
    /// A binary the control plane needs was not found; the message says how to get it.
    #[error("{tool} not found: {how}")]
    BinaryMissing {
        /// The binary's name (`kube-apiserver`, `etcd`, `prometheus`).
        tool: &'static str,
        /// How to get it, in words a developer can act on.
        how: String,
    },
    /// A process could not be started at all.
    #[error("cannot start {name} ({path}): {source}")]
    Spawn {
        /// The process's role (`etcd`, `kube-apiserver`, ...).
        name: String,
        /// The binary that was run.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// A process exited while it was expected to serve; its log tail is included.
    #[error("{name} exited during start-up ({status}); last lines of its log ({log}):\n{tail}")]
    ExitedEarly {
        /// The process's role.
        name: String,
        /// How it exited.
        status: String,
        /// Where its whole log is kept.
        log: PathBuf,
        /// The last lines of that log.
        tail: String,
    },
    /// A process or resource did not become ready in time.
    #[error("{what} was not ready after {waited_ms} ms{detail}")]
    NotReady {
        /// What was waited for.
        what: String,
        /// How long it was waited for.
        waited_ms: u128,
        /// The last observation (an error, a log tail), prefixed with a separator, or empty.
        detail: String,
    },
    /// Reading or writing a local file failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done (`write kubeconfig`, ...).
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// Generating the test certificates or keys failed.
    #[error("generate test certificates: {0}")]
    Certificates(#[from] rcgen::Error),
    /// The Kubernetes API refused or failed a request.
    #[error("{action}: {source}")]
    Kube {
        /// The request, in words (`create namespace fledge-test-ab12`).
        action: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// A kubeconfig could not be turned into a client configuration.
    #[error("load kubeconfig {path}: {reason}")]
    Kubeconfig {
        /// The kubeconfig file.
        path: PathBuf,
        /// Why it could not be used.
        reason: String,
    },
    /// A manifest (CRD or other) could not be read.
    #[error("manifest {origin}: {reason}")]
    Manifest {
        /// Where the manifest came from (file name or a description).
        origin: String,
        /// What is wrong with it and how to fix it.
        reason: String,
    },
    /// A Prometheus request failed or returned something unexpected.
    #[error("prometheus {action}: {reason}")]
    Prometheus {
        /// The request (`query sum(rate(...))`).
        action: String,
        /// Why it failed.
        reason: String,
    },
    /// A simulator setting in a pod template (or given in code) is invalid.
    #[error("{field}: {reason}")]
    Setting {
        /// The setting, e.g. `env FLEDGE_SIM_ERROR_RATE of deployment test/podinfo`.
        field: String,
        /// What is wrong and what is accepted.
        reason: String,
    },
}

// Tests `expect` these errors; Debug shows the readable message and its causes (the log
// tails in it keep their line breaks).
impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")?;
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            write!(f, "\n  caused by: {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

/// The testkit's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps a client error with the request it belonged to.
    pub(crate) fn kube(action: impl Into<String>, source: kube::Error) -> Self {
        Self::Kube {
            action: action.into(),
            source,
        }
    }

    /// Wraps an I/O error with the file it concerned.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
