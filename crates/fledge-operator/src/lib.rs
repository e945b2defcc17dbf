//! The thin operator of Fledge: it observes canaries on a cluster, asks the engine
//! ([`fledge_engine`]) what to do, and carries it out.
//!
//! This crate holds the Kubernetes side of that loop:
//!
//! - [`workload`]: the `<name>-primary` Deployment or DaemonSet made from the target, the
//!   tracked ConfigMaps and Secrets and their `-primary` copies, the primary's autoscaler,
//!   scaling the target to and from zero, and the revision and readiness the engine reads.
//!   Rendering is pure; [`workload::apply::WorkloadApplier`] writes with server-side apply
//!   (field manager `fledge`) and skips writes that change nothing.
//! - [`config`]: Flagger's command-line flags (single or double dash), each also settable by
//!   an environment variable; [`logging`]: JSON log lines whose `msg` is the engine's message;
//!   [`cluster`]: the API client the flags describe, rate-limited by `-kubeconfig-qps` and
//!   `-kubeconfig-burst` ([`rate_limit`]) and counting its requests.
//! - [`telemetry`]: Flagger's Prometheus metrics (`flagger_canary_status`,
//!   `flagger_canary_weight`, ...) and `fledge_kube_requests_total`, served with `/healthz`
//!   and `/readyz` on `-port`.
//! - [`leader`]: leader election on a Lease (`-enable-leader-election`), so that only one
//!   replica acts.
//! - [`controller`]: the kube-runtime Controller over Canaries that ticks each canary with
//!   the engine, reading its dependencies from watch caches.
//!
//! ```no_run
//! # async fn run(client: kube::Client, canary: fledge_api::Canary) -> fledge_operator::Result<()> {
//! use fledge_operator::workload::apply::WorkloadApplier;
//! use fledge_operator::workload::config_tracking::{TrackedConfigs, referenced_configs};
//! use fledge_operator::workload::{TargetKind, WorkloadSettings, primary_name};
//!
//! let applier = WorkloadApplier::new(client, WorkloadSettings::default());
//! let (kind, name) = (TargetKind::of(&canary)?, &canary.spec.target_ref.name);
//! let namespace = canary.metadata.namespace.clone().unwrap_or_default();
//! let Some(target) = applier.get_workload(kind, &namespace, name).await? else { return Ok(()) };
//! let references = referenced_configs(target.template().and_then(|t| t.spec.as_ref()).unwrap_or(&Default::default()));
//! let sources = applier.get_config_sources(&namespace, &references).await?;
//! let configs = TrackedConfigs::resolve(&namespace, &references, &sources)?;
//! let primary = applier.get_workload(kind, &namespace, &primary_name(name)).await?;
//! applier.ensure_primary(&canary, &target, &configs, &sources, primary.as_ref()).await?;
//! # Ok(()) }
//! ```

pub mod cluster;
pub mod config;
pub mod controller;
pub mod cutover;
mod error;
pub mod leader;
pub mod logging;
pub mod rate_limit;
pub mod telemetry;
pub mod workload;

pub use error::{Error, Result};
