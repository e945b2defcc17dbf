//! The operator's configuration: every command-line flag of Flagger's `cmd/flagger/main.go`
//! (single dash, as Flagger's Helm chart passes them, or double dash), each also settable by an
//! environment variable `FLEDGE_<FLAG>` (`FLEDGE_MESH_PROVIDER=linkerd`); and Flagger's own
//! environment variables (`SLACK_URL`, `MSTEAMS_URL`, `EVENT_WEBHOOK_URL`, ...), which win
//! over the flag as in Flagger (see [`OperatorConfig::apply_flagger_environment`]).

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{ArgAction, CommandFactory, Parser, ValueEnum};
use fledge_api::GoDuration;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::workload::WorkloadSettings;

/// How much the operator logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Everything, including each API write.
    Debug,
    /// Canary events and lifecycle.
    Info,
    /// Problems that do not stop a canary.
    #[value(alias = "warn")]
    Warning,
    /// Only failures.
    Error,
}

impl LogLevel {
    /// The `tracing` level filter of this level.
    pub fn filter(self) -> tracing::level_filters::LevelFilter {
        use tracing::level_filters::LevelFilter;
        match self {
            Self::Debug => LevelFilter::DEBUG,
            Self::Info => LevelFilter::INFO,
            Self::Warning => LevelFilter::WARN,
            Self::Error => LevelFilter::ERROR,
        }
    }
}

/// The configuration of one operator process.
#[derive(Clone, Debug, PartialEq, Parser, Serialize)]
#[serde(rename_all = "kebab-case")]
#[allow(
    clippy::struct_excessive_bools,
    reason = "each bool is one of Flagger's boolean flags"
)]
#[command(
    name = "fledge-operator",
    disable_version_flag = true,
    about = "Progressive delivery for Kubernetes: runs Flagger Canaries.",
    long_about = "Progressive delivery for Kubernetes: runs Flagger Canaries. Flags take one dash or two \
                  (-mesh-provider=istio or --mesh-provider istio); every flag can also be set through \
                  the environment variable shown with it."
)]
pub struct OperatorConfig {
    /// Default traffic provider of canaries that name none (`spec.provider`).
    #[arg(long, env = "FLEDGE_MESH_PROVIDER", default_value = "istio")]
    pub mesh_provider: String,

    /// Default metrics server (Prometheus URL) of the builtin metrics.
    #[arg(
        long,
        env = "FLEDGE_METRICS_SERVER",
        default_value = "http://prometheus:9090"
    )]
    pub metrics_server: String,

    /// Only watch canaries in this namespace (all namespaces when empty).
    #[arg(long, env = "FLEDGE_NAMESPACE", default_value = "")]
    pub namespace: String,

    /// Pod labels looked for, in order, to build the primary's selector.
    #[arg(
        long,
        env = "FLEDGE_SELECTOR_LABELS",
        default_value = "app,name,app.kubernetes.io/name",
        value_delimiter = ','
    )]
    pub selector_labels: Vec<String>,

    /// Prefixes of the labels and annotations copied to primary objects (`*` for all).
    #[arg(
        long,
        env = "FLEDGE_INCLUDE_LABEL_PREFIX",
        default_value = "",
        value_delimiter = ','
    )]
    pub include_label_prefix: Vec<String>,

    /// Track ConfigMaps and Secrets: a change starts an analysis, the primary gets copies.
    #[arg(long, env = "FLEDGE_ENABLE_CONFIG_TRACKING", default_value_t = true, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub enable_config_tracking: bool,

    /// URL that receives every canary event as Flagger's webhook payload.
    #[arg(long, env = "FLEDGE_EVENT_WEBHOOK")]
    pub event_webhook: Option<String>,

    /// Slack incoming webhook URL for alerts.
    #[arg(long, env = "FLEDGE_SLACK_URL")]
    #[serde(serialize_with = "redacted")]
    pub slack_url: Option<String>,

    /// Slack bot token, sent as a bearer token (with a `chat.postMessage` URL).
    #[arg(long, env = "FLEDGE_SLACK_TOKEN")]
    #[serde(serialize_with = "redacted")]
    pub slack_token: Option<String>,

    /// Proxy the Slack alerts go through.
    #[arg(long, env = "FLEDGE_SLACK_PROXY_URL")]
    #[serde(serialize_with = "redacted")]
    pub slack_proxy_url: Option<String>,

    /// Slack channel for alerts.
    #[arg(long, env = "FLEDGE_SLACK_CHANNEL")]
    pub slack_channel: Option<String>,

    /// Slack user name alerts are posted as.
    #[arg(long, env = "FLEDGE_SLACK_USER", default_value = "flagger")]
    pub slack_user: String,

    /// Microsoft Teams incoming webhook URL for alerts.
    #[arg(long, env = "FLEDGE_MSTEAMS_URL")]
    #[serde(serialize_with = "redacted")]
    pub msteams_url: Option<String>,

    /// Proxy the Microsoft Teams alerts go through.
    #[arg(long, env = "FLEDGE_MSTEAMS_PROXY_URL")]
    #[serde(serialize_with = "redacted")]
    pub msteams_proxy_url: Option<String>,

    /// Cluster name shown first in every alert (a `Cluster` field), as Flagger does.
    #[arg(long, env = "FLEDGE_CLUSTER_NAME", default_value = "")]
    pub cluster_name: String,

    /// Refuse Canaries that reference a MetricTemplate or an AlertProvider (or a Gloo
    /// upstream) in another namespace.
    #[arg(long, env = "FLEDGE_NO_CROSS_NAMESPACE_REFS", default_value_t = false, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub no_cross_namespace_refs: bool,

    /// Ingress class of the HTTPProxy objects the Contour router writes
    /// (`spec.ingressClassName`, as Flagger); none when empty.
    #[arg(long, env = "FLEDGE_INGRESS_CLASS", default_value = "")]
    pub ingress_class: String,

    /// Annotation prefix of NGINX ingresses; kept for Fledge's NGINX router, which does not
    /// exist yet.
    #[arg(
        long,
        env = "FLEDGE_INGRESS_ANNOTATIONS_PREFIX",
        default_value = "nginx.ingress.kubernetes.io"
    )]
    pub ingress_annotations_prefix: String,

    /// Log level: debug, info, warning or error.
    #[arg(
        long,
        env = "FLEDGE_LOG_LEVEL",
        value_enum,
        default_value = "info",
        ignore_case = true
    )]
    pub log_level: LogLevel,

    /// Path to a kubeconfig; in-cluster configuration (or `KUBECONFIG`) when unset.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,

    /// The address of the API server; overrides the one of the kubeconfig (or of the
    /// in-cluster configuration).
    #[arg(long, env = "FLEDGE_MASTER")]
    pub master: Option<String>,

    /// Path to a kubeconfig of the service-mesh control-plane cluster. Accepted, not used:
    /// Fledge writes routing objects to the cluster of `-kubeconfig` (logged at start).
    #[arg(long, env = "FLEDGE_KUBECONFIG_SERVICE_MESH")]
    pub kubeconfig_service_mesh: Option<PathBuf>,

    /// Sustained requests per second to the API server.
    #[arg(long, env = "FLEDGE_KUBECONFIG_QPS", default_value_t = 100)]
    pub kubeconfig_qps: u32,

    /// Burst of requests to the API server above the sustained rate.
    #[arg(long, env = "FLEDGE_KUBECONFIG_BURST", default_value_t = 250)]
    pub kubeconfig_burst: u32,

    /// Run as one of several replicas, only the holder of a Lease acting.
    #[arg(long, env = "FLEDGE_ENABLE_LEADER_ELECTION", default_value_t = false, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub enable_leader_election: bool,

    /// Namespace of the leader-election Lease.
    #[arg(
        long,
        env = "FLEDGE_LEADER_ELECTION_NAMESPACE",
        default_value = "kube-system"
    )]
    pub leader_election_namespace: String,

    /// How long standby replicas wait, after the leader's last renewal they saw, before
    /// taking over (Flagger: 60s).
    #[arg(
        long,
        env = "FLEDGE_LEADER_ELECTION_LEASE_DURATION",
        default_value = "60s",
        hide = true
    )]
    pub leader_election_lease_duration: GoDuration,

    /// How long the leader tries to renew its Lease before it stops (Flagger: 15s).
    #[arg(
        long,
        env = "FLEDGE_LEADER_ELECTION_RENEW_DEADLINE",
        default_value = "15s",
        hide = true
    )]
    pub leader_election_renew_deadline: GoDuration,

    /// Time between attempts to acquire or renew the Lease (Flagger: 5s).
    #[arg(
        long,
        env = "FLEDGE_LEADER_ELECTION_RETRY_PERIOD",
        default_value = "5s",
        hide = true
    )]
    pub leader_election_retry_period: GoDuration,

    /// Namespace of Flagger's leader-election Lease (`flagger-leader-election`): Fledge does
    /// not act while a Flagger holds it. Defaults to where Flagger run with the same flags puts
    /// it: `-namespace` when one is watched, else `-leader-election-namespace`.
    #[arg(long, env = "FLEDGE_FLAGGER_LEASE_NAMESPACE")]
    pub flagger_lease_namespace: Option<String>,

    /// Port of /metrics, /healthz and /readyz.
    #[arg(long, env = "FLEDGE_PORT", default_value_t = 8080)]
    pub port: u16,

    /// Print the effective configuration (flags and environment) as JSON and exit.
    #[arg(long)]
    #[serde(skip)]
    pub print_config: bool,

    /// Print the version and exit (Flagger's `-version`).
    #[arg(long, short = 'V', action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true",
          default_value_t = false)]
    #[serde(skip)]
    pub version: bool,

    /// Flags of Flagger that Fledge accepts so that Flagger's manifests run unchanged, but
    /// that have no effect.
    #[command(flatten)]
    pub ignored: IgnoredFlaggerFlags,
}

impl OperatorConfig {
    /// Parses the process arguments (after [`normalize_flags`]) and the environment.
    ///
    /// # Errors
    /// The clap error (also for `--help` and `--version`), ready for [`clap::Error::exit`].
    pub fn try_parse_args<I, T>(args: I) -> std::result::Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        let mut config = Self::try_parse_from(normalize_flags(args.into_iter().map(Into::into)))?;
        config.apply_flagger_environment(|name| std::env::var(name).ok());
        Ok(config)
    }

    /// Applies Flagger's environment variables, read by `variable`: as Flagger's `fromEnv`,
    /// each one set and not empty replaces its flag's value (and so its `FLEDGE_*` variable).
    /// Flagger reads no others (not `SLACK_USER` nor `SLACK_CHANNEL`), so neither does Fledge.
    pub fn apply_flagger_environment(&mut self, variable: impl Fn(&str) -> Option<String>) {
        let overridden = [
            ("SLACK_URL", &mut self.slack_url),
            ("SLACK_TOKEN", &mut self.slack_token),
            ("SLACK_PROXY_URL", &mut self.slack_proxy_url),
            ("MSTEAMS_URL", &mut self.msteams_url),
            ("MSTEAMS_PROXY_URL", &mut self.msteams_proxy_url),
            ("EVENT_WEBHOOK_URL", &mut self.event_webhook),
        ];
        for (name, flag) in overridden {
            if let Some(value) = variable(name).filter(|v| !v.is_empty()) {
                *flag = Some(value);
            }
        }
    }

    /// The settings the routers read: `-ingress-class` (none when empty) and
    /// `-ingress-annotations-prefix`.
    pub fn router_options(&self) -> fledge_router::RouterOptions {
        fledge_router::RouterOptions {
            ingress_class: Some(self.ingress_class.clone()).filter(|class| !class.is_empty()),
            ingress_annotations_prefix: self.ingress_annotations_prefix.clone(),
        }
    }

    /// Flags that are accepted and set but change nothing in Fledge today, each with why: to
    /// be logged once at start.
    pub fn without_effect(&self) -> Vec<(String, &'static str)> {
        let mut flags: Vec<(String, &'static str)> = self
            .ignored
            .set()
            .into_iter()
            .map(|flag| (flag, "Flagger flag accepted but without effect in Fledge"))
            .collect();
        if let Some(path) = &self.kubeconfig_service_mesh {
            flags.push((
                format!("-kubeconfig-service-mesh={}", path.display()),
                "ignored: Fledge writes routing objects to the cluster of -kubeconfig",
            ));
        }
        flags
    }

    /// Namespace of Flagger's leader-election Lease: `-flagger-lease-namespace`, else where
    /// Flagger given the same flags keeps it (`-namespace`, else `-leader-election-namespace`).
    pub fn flagger_lease_namespace(&self) -> String {
        self.flagger_lease_namespace
            .as_deref()
            .map(str::trim)
            .filter(|ns| !ns.is_empty())
            .or(self.watched_namespace())
            .unwrap_or(self.leader_election_namespace.trim())
            .to_owned()
    }

    /// Checks what clap cannot: the provider is one Fledge routes, the selector labels and
    /// the rates are usable.
    ///
    /// # Errors
    /// [`Error::Config`] naming the flag and what it accepts.
    pub fn validate(&self) -> Result<()> {
        fledge_router::Provider::parse(&self.mesh_provider).map_err(|e| Error::Config {
            flag: "-mesh-provider (FLEDGE_MESH_PROVIDER)".to_owned(),
            reason: e
                .to_string()
                .trim_start_matches("spec.provider: ")
                .to_owned(),
        })?;
        if self.selector_labels().is_empty() {
            return Err(Error::Config {
                flag: "-selector-labels (FLEDGE_SELECTOR_LABELS)".to_owned(),
                reason: "needs at least one label, e.g. app,name,app.kubernetes.io/name".to_owned(),
            });
        }
        if self.kubeconfig_qps == 0 {
            return Err(Error::Config {
                flag: "-kubeconfig-qps (FLEDGE_KUBECONFIG_QPS)".to_owned(),
                reason: "must be at least 1".to_owned(),
            });
        }
        if self.kubeconfig_burst < self.kubeconfig_qps {
            return Err(Error::Config {
                flag: "-kubeconfig-burst (FLEDGE_KUBECONFIG_BURST)".to_owned(),
                reason: format!(
                    "must be at least -kubeconfig-qps ({}), got {}",
                    self.kubeconfig_qps, self.kubeconfig_burst
                ),
            });
        }
        self.validate_leader_election()
    }

    /// client-go's rules: the renew deadline is shorter than the lease, the retry period
    /// (with 20% jitter) shorter than the renew deadline.
    fn validate_leader_election(&self) -> Result<()> {
        let lease = self.leader_election_lease_duration.as_duration();
        let deadline = self.leader_election_renew_deadline.as_duration();
        let retry = self.leader_election_retry_period.as_duration();
        let refuse = |flag: &str, reason: String| {
            Err(Error::Config {
                flag: flag.to_owned(),
                reason,
            })
        };
        if lease < std::time::Duration::from_secs(1) {
            return refuse(
                "-leader-election-lease-duration (FLEDGE_LEADER_ELECTION_LEASE_DURATION)",
                format!(
                    "must be at least 1s, got {}",
                    self.leader_election_lease_duration
                ),
            );
        }
        if retry.is_zero() {
            return refuse(
                "-leader-election-retry-period (FLEDGE_LEADER_ELECTION_RETRY_PERIOD)",
                "must be more than 0s".to_owned(),
            );
        }
        if deadline >= lease {
            return refuse(
                "-leader-election-renew-deadline (FLEDGE_LEADER_ELECTION_RENEW_DEADLINE)",
                format!(
                    "must be shorter than -leader-election-lease-duration ({}), got {}",
                    self.leader_election_lease_duration, self.leader_election_renew_deadline
                ),
            );
        }
        if deadline <= retry.mul_f64(1.2) {
            return refuse(
                "-leader-election-renew-deadline (FLEDGE_LEADER_ELECTION_RENEW_DEADLINE)",
                format!(
                    "must be longer than 1.2 times -leader-election-retry-period ({}), got {}",
                    self.leader_election_retry_period, self.leader_election_renew_deadline
                ),
            );
        }
        Ok(())
    }

    /// How this replica takes part in leader election: the Lease lives in `-namespace` when
    /// one is watched (as in Flagger), else in `-leader-election-namespace`.
    pub fn election_settings(&self, identity: String) -> crate::leader::ElectionSettings {
        crate::leader::ElectionSettings {
            namespace: self
                .watched_namespace()
                .unwrap_or(self.leader_election_namespace.trim())
                .to_owned(),
            lease_name: crate::leader::LEASE_NAME.to_owned(),
            identity,
            lease_duration: self.leader_election_lease_duration.as_duration(),
            renew_deadline: self.leader_election_renew_deadline.as_duration(),
            retry_period: self.leader_election_retry_period.as_duration(),
        }
    }

    /// The namespace to watch; `None` for all namespaces.
    pub fn watched_namespace(&self) -> Option<&str> {
        Some(self.namespace.trim()).filter(|ns| !ns.is_empty())
    }

    /// The selector labels, without blanks.
    pub fn selector_labels(&self) -> Vec<String> {
        non_blank(&self.selector_labels)
    }

    /// How workloads are rendered.
    pub fn workload_settings(&self) -> WorkloadSettings {
        WorkloadSettings {
            selector_labels: self.selector_labels(),
            include_label_prefixes: non_blank(&self.include_label_prefix),
            config_tracking: self.enable_config_tracking,
        }
    }
}

/// Incoming-webhook URLs are credentials: printed configuration only says whether one is set.
#[allow(
    clippy::ref_option,
    reason = "serde's serialize_with passes &Option<T>"
)]
fn redacted<S: serde::Serializer>(
    value: &Option<String>,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    serde::Serialize::serialize(&value.as_ref().map(|_| "(set)"), serializer)
}

fn non_blank(values: &[String]) -> Vec<String> {
    values
        .iter()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect()
}

/// Turns Flagger's Go-style single-dash long flags (`-mesh-provider=istio`,
/// `-log-level info`) into clap's double-dash form. Arguments naming one of the operator's
/// long flags are rewritten; so is any other `-word` that is not the value of the flag before
/// it, so that clap names an unknown flag whole and suggests the closest one
/// (`-slack-chanel` → did you mean `--slack-channel`). Single letters (`-h`, `-V`), values of
/// flags (`-include-label-prefix -x`) and everything after a bare `--` pass unchanged.
pub fn normalize_flags(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let command = OperatorConfig::command();
    let long_flags: Vec<(&str, bool)> = command
        .get_arguments()
        .filter_map(|arg| {
            let takes_value = arg.get_action().takes_values()
                && arg
                    .get_num_args()
                    .is_none_or(|range| range.min_values() > 0);
            arg.get_long().map(|long| (long, takes_value))
        })
        .collect();
    let mut after_separator = false;
    let mut value_expected = false;
    args.into_iter()
        .enumerate()
        .map(|(index, arg)| {
            let is_value = std::mem::take(&mut value_expected);
            if index == 0 || after_separator || is_value {
                return arg;
            }
            let Some(text) = arg.to_str() else { return arg };
            if text == "--" {
                after_separator = true;
                return arg;
            }
            let Some(rest) = text.strip_prefix('-').filter(|r| !r.starts_with('-')) else {
                return arg;
            };
            let (name, inline_value) = rest
                .split_once('=')
                .map_or((rest, None), |(name, value)| (name, Some(value)));
            if let Some((_, takes_value)) = long_flags.iter().find(|(long, _)| *long == name) {
                value_expected = *takes_value && inline_value.is_none();
                return OsString::from(format!("-{text}"));
            }
            let looks_like_flag = name.len() > 1
                && name.starts_with(|c: char| c.is_ascii_alphabetic())
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if looks_like_flag {
                OsString::from(format!("-{text}"))
            } else {
                arg
            }
        })
        .collect()
}

#[path = "config_ignored.rs"]
mod ignored;
pub use ignored::IgnoredFlaggerFlags;

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
