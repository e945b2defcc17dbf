//! Connecting to the API server the way the operator is configured to.

use std::sync::Arc;

use kube::client::ClientBuilder;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::config::OperatorConfig;
use crate::error::{Error, Result};
use crate::rate_limit::RateLimitLayer;
use crate::telemetry::{CountRequestsLayer, Telemetry};

/// A client from `-kubeconfig` when given, otherwise from the environment (`KUBECONFIG`,
/// `~/.kube/config`, or the in-cluster service account), at `-master` when given, sending at most `-kubeconfig-qps`
/// requests per second (bursts of `-kubeconfig-burst`) and counting each request into
/// `telemetry` (`fledge_kube_requests_total`).
///
/// # Errors
/// [`Error::ClientConfig`] when no configuration is found or it is unusable.
pub async fn connect(config: &OperatorConfig, telemetry: &Arc<Telemetry>) -> Result<kube::Client> {
    let failed = |reason: String| Error::ClientConfig { reason };
    let mut client_config = match &config.kubeconfig {
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
    if let Some(master) = config.master.as_deref().filter(|m| !m.trim().is_empty()) {
        // Flagger's -master: the API server's address, whatever the kubeconfig says.
        client_config.cluster_url = master
            .trim()
            .parse()
            .map_err(|e| failed(format!("-master {master:?} is not a URL: {e}")))?;
    }
    let builder = ClientBuilder::try_from(client_config).map_err(|e| failed(e.to_string()))?;
    Ok(builder
        .with_layer(&RateLimitLayer::new(
            config.kubeconfig_qps,
            config.kubeconfig_burst,
        ))
        .with_layer(&CountRequestsLayer::new(telemetry.clone()))
        .build())
}
