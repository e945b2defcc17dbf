//! Where the control plane's binaries come from.
//!
//! The lookup order for each binary is
//!
//! 1. an explicit path: `FLEDGE_KUBE_APISERVER`, `FLEDGE_ETCD`, `FLEDGE_PROMETHEUS` (an empty
//!    value counts as unset);
//! 2. the envtest convention: `$KUBEBUILDER_ASSETS/kube-apiserver` and `$KUBEBUILDER_ASSETS/etcd`;
//! 3. the cache `cargo xtask control-plane` fills: `~/.cache/fledge/kubernetes-<version>/bin/`;
//! 4. `PATH` (Debian's `etcd-server` and `prometheus` packages put theirs there).
//!
//! When none has it, [`Tool::locate`] returns [`Error::BinaryMissing`] naming the command
//! that gets it.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The Kubernetes version whose kube-apiserver the testkit builds and runs.
pub const KUBERNETES_VERSION: &str = "1.20.2";

/// A binary the local test infrastructure runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tool {
    /// The Kubernetes API server.
    KubeApiserver,
    /// etcd, the API server's store.
    Etcd,
    /// The Prometheus server.
    Prometheus,
}

impl Tool {
    /// Every tool, in the order they are checked.
    pub const ALL: [Tool; 3] = [Tool::Etcd, Tool::KubeApiserver, Tool::Prometheus];

    /// The binary's file name.
    pub fn binary_name(self) -> &'static str {
        match self {
            Tool::KubeApiserver => "kube-apiserver",
            Tool::Etcd => "etcd",
            Tool::Prometheus => "prometheus",
        }
    }

    /// The environment variable that names the binary explicitly.
    pub fn env_var(self) -> &'static str {
        match self {
            Tool::KubeApiserver => "FLEDGE_KUBE_APISERVER",
            Tool::Etcd => "FLEDGE_ETCD",
            Tool::Prometheus => "FLEDGE_PROMETHEUS",
        }
    }

    /// Finds the binary (see the module documentation for the order).
    ///
    /// # Errors
    /// [`Error::BinaryMissing`] when an explicitly named file does not exist, or when no
    /// place has the binary; the message says what to run or install.
    pub fn locate(self) -> Result<PathBuf> {
        if let Some(explicit) = std::env::var_os(self.env_var()).filter(|p| !p.is_empty()) {
            let path = PathBuf::from(explicit);
            return if is_executable(&path) {
                Ok(path)
            } else {
                Err(Error::BinaryMissing {
                    tool: self.binary_name(),
                    how: format!(
                        "{} points at {}, which is not an executable file",
                        self.env_var(),
                        path.display()
                    ),
                })
            };
        }
        if self != Tool::Prometheus
            && let Some(assets) = std::env::var_os("KUBEBUILDER_ASSETS")
        {
            let path = Path::new(&assets).join(self.binary_name());
            if is_executable(&path) {
                return Ok(path);
            }
        }
        if self == Tool::KubeApiserver {
            let cached = cached_kube_apiserver();
            if is_executable(&cached) {
                return Ok(cached);
            }
        }
        if let Some(found) = on_path(self.binary_name()) {
            return Ok(found);
        }
        Err(Error::BinaryMissing {
            tool: self.binary_name(),
            how: self.how_to_get(),
        })
    }

    /// What a developer does to get this binary.
    pub fn how_to_get(self) -> String {
        let assets = match std::env::var_os("KUBEBUILDER_ASSETS") {
            Some(dir) => format!(
                " (KUBEBUILDER_ASSETS={} has none)",
                Path::new(&dir).display()
            ),
            None => String::new(),
        };
        match self {
            Tool::KubeApiserver => format!(
                "run `cargo xtask control-plane` (builds kube-apiserver {KUBERNETES_VERSION} into {}), \
                 or set KUBEBUILDER_ASSETS to a directory with kube-apiserver and etcd{assets}, \
                 or FLEDGE_KUBE_APISERVER to the binary",
                cached_kube_apiserver().display()
            ),
            Tool::Etcd => format!(
                "run `cargo xtask control-plane` or `apt-get install etcd-server`, \
                 or set KUBEBUILDER_ASSETS to a directory with kube-apiserver and etcd{assets}, \
                 or FLEDGE_ETCD to the binary"
            ),
            Tool::Prometheus => "run `cargo xtask control-plane` or `apt-get install prometheus`, \
                 or set FLEDGE_PROMETHEUS to the binary"
                .to_owned(),
        }
    }
}

impl std::fmt::Display for Tool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.binary_name())
    }
}

/// The testkit's cache directory: `$FLEDGE_CACHE_DIR`, else `$XDG_CACHE_HOME/fledge`, else
/// `~/.cache/fledge`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FLEDGE_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("fledge");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
    home.join(".cache").join("fledge")
}

/// The directory a given Kubernetes version is built in and cached under.
pub fn kubernetes_cache_dir() -> PathBuf {
    cache_dir().join(format!("kubernetes-{KUBERNETES_VERSION}"))
}

/// Where `cargo xtask control-plane` puts the kube-apiserver it builds.
pub fn cached_kube_apiserver() -> PathBuf {
    kubernetes_cache_dir().join("bin").join("kube-apiserver")
}

/// Finds an executable by name on `PATH`.
pub fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
