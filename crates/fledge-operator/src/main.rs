//! `fledge-operator`: runs Flagger Canaries on a cluster.
//!
//! Reads Flagger's flags (or `FLEDGE_*` environment variables), logs JSON lines, serves
//! `/metrics`, `/healthz` and `/readyz` on `-port`, connects to the API server, waits to be
//! told Flagger stopped (its leader Lease free or stale, see `cutover`), waits to be
//! elected leader when `-enable-leader-election` is set, and runs the canary controller until
//! SIGTERM or Ctrl-C (releasing the Lease then) or until leadership is lost (exiting 1).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use fledge_operator::config::OperatorConfig;
use fledge_operator::cutover::{CutoverGuard, DEFAULT_POLL};
use fledge_operator::leader::{LeaderElector, identity};
use fledge_operator::telemetry::{Readiness, Telemetry, server};
use fledge_operator::workload::autoscaler::AutoscalingVersion;
use fledge_operator::{cluster, controller, logging};

/// How long running ticks may take to finish after SIGTERM (Kubernetes waits 30 s). Also
/// bounds kube-runtime's graceful shutdown, which waits for the Canary cache's first list
/// when the signal comes before it.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> ExitCode {
    let config = match OperatorConfig::try_parse_args(std::env::args_os()) {
        Ok(config) => config,
        Err(error) => error.exit(),
    };
    if config.version {
        // Flagger prints "Flagger version <v> revision <r>" and exits 0.
        println!("fledge-operator version {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    if config.print_config {
        return match serde_json::to_string_pretty(&config) {
            Ok(json) => {
                println!("{json}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("cannot print the configuration: {error}");
                ExitCode::FAILURE
            }
        };
    }
    if let Err(error) = tracing::subscriber::set_global_default(logging::subscriber(
        config.log_level,
        std::io::stdout,
    )) {
        eprintln!("cannot install the logger: {error}");
        return ExitCode::FAILURE;
    }
    if let Err(error) = config.validate() {
        tracing::error!(error = %error, "Invalid configuration");
        return ExitCode::from(2);
    }
    match run(&config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %error, "fledge-operator stopped");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: &OperatorConfig) -> fledge_operator::Result<()> {
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        mesh_provider = %config.mesh_provider,
        metrics_server = %fledge_api::redaction::redact_url(&config.metrics_server),
        namespace = config.watched_namespace().unwrap_or("*"),
        "Starting fledge-operator"
    );
    for (flag, why) in config.without_effect() {
        tracing::warn!(%flag, "{why}");
    }
    let telemetry = Arc::new(Telemetry::new(
        env!("CARGO_PKG_VERSION"),
        &config.mesh_provider,
    ));
    let listener = server::bind(config.port).await?;
    tracing::info!(
        port = config.port,
        "Starting HTTP server on port {}",
        config.port
    );
    let endpoint = tokio::spawn(server::serve(listener, telemetry.clone()));
    let result = connect_and_run(config, telemetry).await;
    endpoint.abort();
    result
}

async fn connect_and_run(
    config: &OperatorConfig,
    telemetry: Arc<Telemetry>,
) -> fledge_operator::Result<()> {
    let client = connect(config, &telemetry).await?;
    // Signal handlers are installed now, before anything else can take long.
    let (stop, stopping) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    // Never act while a Flagger does: wait for its Lease to go (before electing a leader, so
    // that a waiting leader does not let its own Lease run out).
    let mut guard = CutoverGuard::new(
        client.clone(),
        &config.flagger_lease_namespace(),
        DEFAULT_POLL,
    );
    if !flagger_stopped(&mut guard, &telemetry, stopping.clone()).await {
        tracing::info!("Shutting down");
        return Ok(());
    }
    let mut election_stopping = stopping.clone();
    let graceful = {
        let mut stopping = stopping.clone();
        async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        }
    };
    let deadline = async move {
        let mut stopping = stopping;
        let _ = stopping.wait_for(|stop| *stop).await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    let mut elector = None;
    if config.enable_leader_election {
        let settings =
            config.election_settings(identity(std::env::var("HOSTNAME").ok().as_deref()));
        tracing::info!(
            id = %settings.identity,
            lease = %settings.lease_name,
            namespace = %settings.namespace,
            "Starting leader election id: {} lease: {} namespace: {}",
            settings.identity,
            settings.lease_name,
            settings.namespace
        );
        // Its own client: renewals never wait behind the controller's traffic.
        let lease_client = cluster::connect_for_leases(config, &telemetry).await?;
        let mut candidate = LeaderElector::new(lease_client, settings);
        telemetry.set_readiness(Readiness::Standby);
        tokio::select! {
            () = candidate.acquire() => {}
            _ = election_stopping.wait_for(|stop| *stop) => {
                tracing::info!("Shutting down");
                return Ok(());
            }
        }
        telemetry.set_readiness(Readiness::Starting);
        tracing::info!("Acting as elected leader");
        elector = Some(candidate);
    }
    let controller = controller::run_with(config, client, telemetry, graceful);
    let Some(mut elector) = elector else {
        tokio::select! {
            result = controller => result?,
            () = deadline => warn_still_running(),
            reason = guard.flagger_returned() => return Err(flagger_returned(reason)),
        }
        tracing::info!("Shutting down");
        return Ok(());
    };
    let finished = tokio::select! {
        result = controller => result,
        () = deadline => {
            warn_still_running();
            Ok(())
        }
        reason = guard.flagger_returned() => {
            // Release: a standby may take over once Flagger is gone again.
            let _ = elector.release().await;
            return Err(flagger_returned(reason));
        }
        lost = elector.keep_leading() => {
            // Another replica may act from now on: stop at once, without finishing ticks.
            tracing::error!(reason = %lost, "Leadership lost");
            return Err(fledge_operator::Error::LeadershipLost { reason: lost });
        }
    };
    match elector.release().await {
        Ok(true) => tracing::info!("Leader-election Lease released"),
        Ok(false) => {}
        Err(error) => tracing::warn!(%error, "cannot release the leader-election Lease"),
    }
    finished?;
    tracing::info!("Shutting down");
    Ok(())
}

/// Connects to the API server and says what it found, as Flagger does at start.
async fn connect(
    config: &OperatorConfig,
    telemetry: &Arc<Telemetry>,
) -> fledge_operator::Result<kube::Client> {
    let client = cluster::connect(config, telemetry).await?;
    let server =
        client
            .apiserver_version()
            .await
            .map_err(|e| fledge_operator::Error::ClientConfig {
                reason: format!("the API server does not answer: {e}"),
            })?;
    tracing::info!(server_version = %server.git_version, "Connected to Kubernetes API {}", server.git_version);
    let autoscaling = AutoscalingVersion::detect(&client).await?;
    tracing::info!(
        autoscaling = autoscaling.api_version(),
        "Using {} for primary autoscalers",
        autoscaling.api_version()
    );
    if let Some(namespace) = config.watched_namespace() {
        tracing::info!("Watching namespace {namespace}");
    } else {
        tracing::info!("Watching all namespaces");
    }
    Ok(client)
}

/// Waits until no Flagger holds its Lease (true), or until the operator is stopped (false).
async fn flagger_stopped(
    guard: &mut CutoverGuard,
    telemetry: &Telemetry,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) -> bool {
    tokio::select! {
        () = guard.wait_until_flagger_stopped(telemetry) => {
            telemetry.set_readiness(Readiness::Starting);
            true
        }
        _ = stopping.wait_for(|stop| *stop) => false,
    }
}

/// Stops at once, without finishing ticks: Flagger acts on the same canaries.
fn flagger_returned(reason: String) -> fledge_operator::Error {
    tracing::error!(reason = %reason, "Flagger is running again; stopping");
    fledge_operator::Error::FlaggerActive { reason }
}

fn warn_still_running() {
    tracing::warn!(
        "Ticks still running after {}s; stopping anyway",
        SHUTDOWN_GRACE.as_secs()
    );
}

/// Resolves on SIGTERM (how Kubernetes stops a pod) or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; stopping on Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
