use pretty_assertions::assert_eq;

use super::*;
use std::time::Duration;

fn parse(args: &[&str]) -> OperatorConfig {
    let mut command_line = vec!["fledge-operator"];
    command_line.extend_from_slice(args);
    OperatorConfig::try_parse_args(command_line).unwrap_or_else(|e| panic!("{e}"))
}

/// The arguments of Flagger's Helm chart (`charts/flagger/templates/deployment.yaml`), as a
/// Flagger user passes them today.
const FLAGGER_CHART_ARGS: [&str; 12] = [
    "-log-level=info",
    "-mesh-provider=linkerd",
    "-metrics-server=http://prometheus.monitoring:9090",
    "-include-label-prefix=app.kubernetes.io,team",
    "-selector-labels=app,name",
    "-enable-config-tracking=false",
    "-enable-leader-election=true",
    "-leader-election-namespace=flagger-system",
    "-kubeconfig-qps=50",
    "-kubeconfig-burst=100",
    "-slack-user=flagger",
    "-threadiness=2",
];

#[test]
fn flaggers_single_dash_flags_parse_as_flagger_means_them() {
    let config = parse(&FLAGGER_CHART_ARGS);
    assert_eq!(config.log_level, LogLevel::Info);
    assert_eq!(config.mesh_provider, "linkerd");
    assert_eq!(config.metrics_server, "http://prometheus.monitoring:9090");
    assert_eq!(config.include_label_prefix, ["app.kubernetes.io", "team"]);
    assert_eq!(config.selector_labels, ["app", "name"]);
    assert!(!config.enable_config_tracking);
    assert!(config.enable_leader_election);
    assert_eq!(config.leader_election_namespace, "flagger-system");
    assert_eq!((config.kubeconfig_qps, config.kubeconfig_burst), (50, 100));
    assert_eq!(config.ignored.set(), ["-threadiness=2"]);
    assert!(config.validate().is_ok());
}

#[test]
fn single_dash_flags_take_separate_values_and_double_dash_still_works() {
    let config = parse(&[
        "-namespace",
        "test",
        "--port",
        "9090",
        "-slack-url",
        "https://hooks.slack.com/x",
    ]);
    assert_eq!(config.watched_namespace(), Some("test"));
    assert_eq!(config.port, 9090);
    assert_eq!(
        config.slack_url.as_deref(),
        Some("https://hooks.slack.com/x")
    );
}

#[test]
fn bare_boolean_flags_mean_true_as_in_go() {
    let config = parse(&["-enable-leader-election"]);
    assert!(config.enable_leader_election);
    assert!(config.enable_config_tracking);
}

#[test]
fn defaults_are_flaggers() {
    let config = parse(&[]);
    assert_eq!(config.mesh_provider, "istio");
    assert_eq!(config.metrics_server, "http://prometheus:9090");
    assert_eq!(config.watched_namespace(), None);
    assert_eq!(
        config.selector_labels(),
        ["app", "name", "app.kubernetes.io/name"]
    );
    assert_eq!(config.workload_settings(), WorkloadSettings::default());
    assert_eq!(config.slack_user, "flagger");
    assert_eq!(config.leader_election_namespace, "kube-system");
    assert_eq!(config.port, 8080);
    assert!(config.ignored.set().is_empty());
}

#[test]
fn only_known_flags_are_rewritten() {
    let rewritten = normalize_flags(
        [
            "fledge-operator",
            "-mesh-provider=istio",
            "-include-label-prefix",
            "-x",
            "-h",
            "--",
            "-port",
        ]
        .map(OsString::from),
    );
    assert_eq!(
        rewritten,
        [
            "fledge-operator",
            "--mesh-provider=istio",
            "--include-label-prefix",
            "-x",
            "-h",
            "--",
            "-port"
        ]
        .map(OsString::from)
    );
}

#[test]
fn bad_values_are_refused_naming_the_flag() {
    let error = OperatorConfig::try_parse_args(["fledge-operator", "-log-level=loud"]).err();
    let text = error.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        text.contains("--log-level") && text.contains("debug, info, warning, error"),
        "{text}"
    );

    let unknown = parse(&["-mesh-provider=nginx"])
        .validate()
        .err()
        .map(|e| e.to_string());
    assert!(
        unknown
            .as_deref()
            .is_some_and(|t| t.starts_with("-mesh-provider (FLEDGE_MESH_PROVIDER): unknown")),
        "{unknown:?}"
    );
    let burst = parse(&["-kubeconfig-qps=100", "-kubeconfig-burst=10"])
        .validate()
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        burst.as_deref(),
        Some(
            "-kubeconfig-burst (FLEDGE_KUBECONFIG_BURST): must be at least -kubeconfig-qps (100), got 10"
        )
    );
    let labels = parse(&["-selector-labels=,"])
        .validate()
        .err()
        .map(|e| e.to_string());
    assert!(labels.is_some_and(|t| t.starts_with("-selector-labels")));
}

#[test]
fn the_log_level_accepts_zaps_spellings() {
    assert_eq!(parse(&["-log-level=warn"]).log_level, LogLevel::Warning);
    assert_eq!(parse(&["-log-level=ERROR"]).log_level, LogLevel::Error);
}

#[test]
fn leader_election_durations_default_to_flaggers_and_are_checked() {
    let defaults = parse(&["-enable-leader-election"]);
    let settings = defaults.election_settings("a".to_owned());
    assert_eq!(settings.namespace, "kube-system");
    assert_eq!(settings.lease_name, "fledge-leader-election");
    assert_eq!(
        (
            settings.lease_duration,
            settings.renew_deadline,
            settings.retry_period
        ),
        (
            Duration::from_secs(60),
            Duration::from_secs(15),
            Duration::from_secs(5)
        )
    );
    assert!(defaults.validate().is_ok());
    let short = parse(&[
        "-namespace=test",
        "-leader-election-lease-duration=6s",
        "-leader-election-renew-deadline=4s",
        "-leader-election-retry-period=500ms",
    ]);
    assert!(short.validate().is_ok());
    assert_eq!(
        short.election_settings("a".to_owned()).namespace,
        "test",
        "a watched namespace holds the Lease, as in Flagger"
    );
    let inverted = parse(&["-leader-election-renew-deadline=90s"]);
    let error = inverted.validate().expect_err("a deadline past the lease");
    assert!(
        error
            .to_string()
            .starts_with("-leader-election-renew-deadline (FLEDGE_LEADER_ELECTION_RENEW_DEADLINE): must be shorter"),
        "{error}"
    );
    let zero = parse(&["-leader-election-retry-period=0s"]);
    assert!(zero.validate().is_err());
    assert!(
        OperatorConfig::try_parse_args(["fledge-operator", "-leader-election-lease-duration=soon"])
            .is_err(),
        "not a duration"
    );
}
