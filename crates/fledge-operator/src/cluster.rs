//! Connecting to the API server the way the operator is configured to.
//!
//! Two clients: one for everything the controller does (rate limited as `-kubeconfig-qps`
//! and `-kubeconfig-burst` say) and one for the leader-election Lease alone, with its own
//! connections, no client-side rate limit and timeouts, so that a renewal never queues
//! behind bulk traffic nor hangs past the renew deadline. Neither retries inside the client:
//! a throttled or failed request fails its tick, which backs off per canary
//! ([`crate::controller::backoff`]), and a failed renewal is tried again by the elector.

use std::sync::Arc;

use kube::client::ClientBuilder;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::config::OperatorConfig;
use crate::error::{Error, Result};
use crate::rate_limit::RateLimitLayer;
use crate::telemetry::{CountRequestsLayer, Telemetry};

/// A client from `-kubeconfig` when given, otherwise from the environment (`KUBECONFIG`,
/// `~/.kube/config`, or the in-cluster service account), at `-master` when given, sending
/// at most `-kubeconfig-qps` requests per second (bursts of `-kubeconfig-burst`) and counting each request into
/// `telemetry` (`fledge_kube_requests_total`).
///
/// # Errors
/// [`Error::ClientConfig`] when no configuration is found or it is unusable.
pub async fn connect(config: &OperatorConfig, telemetry: &Arc<Telemetry>) -> Result<kube::Client> {
    let builder =
        ClientBuilder::try_from(client_config(config).await?).map_err(|e| Error::ClientConfig {
            reason: e.to_string(),
        })?;
    Ok(builder
        .with_layer(&RateLimitLayer::new(
            config.kubeconfig_qps,
            config.kubeconfig_burst,
        ))
        .with_layer(&CountRequestsLayer::new(telemetry.clone()))
        .build())
}

/// The client of the leader-election Lease: the same server and credentials as
/// [`connect`]'s, but its own connection pool, no client-side rate limit, and connect, read
/// and write timeouts of `-leader-election-renew-deadline`.
///
/// # Errors
/// [`Error::ClientConfig`] when no configuration is found or it is unusable.
pub async fn connect_for_leases(
    config: &OperatorConfig,
    telemetry: &Arc<Telemetry>,
) -> Result<kube::Client> {
    let mut client_config = client_config(config).await?;
    let deadline = config.leader_election_renew_deadline.as_duration();
    client_config.connect_timeout = Some(deadline);
    client_config.read_timeout = Some(deadline);
    client_config.write_timeout = Some(deadline);
    let builder = ClientBuilder::try_from(client_config).map_err(|e| Error::ClientConfig {
        reason: e.to_string(),
    })?;
    Ok(builder
        .with_layer(&CountRequestsLayer::new(telemetry.clone()))
        .build())
}

/// The client configuration `config` points at, without kube's built-in retries.
async fn client_config(config: &OperatorConfig) -> Result<kube::Config> {
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
    // kube retries 429/503/504 up to 15 times, for up to minutes, below the rate limit: a
    // tick would hang inside one request and the retries would not be limited. The
    // operator's own backoff retries instead.
    client_config.default_retry = false;
    Ok(client_config)
}
