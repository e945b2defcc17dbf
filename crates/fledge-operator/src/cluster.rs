//! Connecting to the API server the way the operator is configured to.

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::config::OperatorConfig;
use crate::error::{Error, Result};

/// A client from `-kubeconfig` when given, otherwise from the environment (`KUBECONFIG`,
/// `~/.kube/config`, or the in-cluster service account).
///
/// # Errors
/// [`Error::ClientConfig`] when no configuration is found or it is unusable.
pub async fn connect(config: &OperatorConfig) -> Result<kube::Client> {
    let failed = |reason: String| Error::ClientConfig { reason };
    let client_config = match &config.kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .map_err(|e| failed(format!("{}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(|e| failed(format!("{}: {e}", path.display())))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| failed(e.to_string()))?,
    };
    kube::Client::try_from(client_config).map_err(|e| failed(e.to_string()))
}
