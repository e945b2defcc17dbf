use pretty_assertions::assert_eq;

use super::*;
use std::time::Duration;

fn parse(args: &[&str]) -> OperatorConfig {
    let mut command_line = vec!["fledge-operator"];
    command_line.extend_from_slice(args);
    OperatorConfig::try_parse_args(command_line).unwrap_or_else(|e| panic!("{e}"))
}

/// The container command of Flagger's Helm chart (fluxcd/flagger v1.44.0,
/// `charts/flagger/templates/deployment.yaml`) rendered by hand with every value set:
/// `meshProvider`, `metricsServer`, `selectorLabels`, `configTracking.enabled`, `namespace`,
/// `slack.{url,proxyUrl,user,channel}`, `msteams.{url,proxyUrl}`, `leaderElection.enabled`
/// (release namespace `flagger-system`), `ingressAnnotationsPrefix`, `includeLabelPrefix`,
/// `ingressClass`, `eventWebhook`, `kubeconfigQPS`, `kubeconfigBurst`,
/// `controlplane.kubeconfig.secretName` (key `kubeconfig`), `threadiness`, `clusterName`,
/// `noCrossNamespaceRefs`; in the template's order, after `./flagger`.
const FLAGGER_CHART_ARGS: [&str; 25] = [
    "./flagger",
    "-log-level=info",
    "-mesh-provider=linkerd",
    "-metrics-server=http://prometheus.monitoring:9090",
    "-selector-labels=app,name",
    "-enable-config-tracking=false",
    "-namespace=apps",
    "-slack-url=https://hooks.slack.com/services/T/B/secret",
    "-slack-proxy-url=http://proxy.internal:3128",
    "-slack-user=flagger-prod",
    "-slack-channel=deploys",
    "-msteams-url=https://outlook.office.com/webhook/secret",
    "-msteams-proxy-url=http://proxy.internal:3128",
    "-enable-leader-election=true",
    "-leader-election-namespace=flagger-system",
    "-ingress-annotations-prefix=custom.ingress.kubernetes.io",
    "-include-label-prefix=app.kubernetes.io,team",
    "-ingress-class=contour",
    "-event-webhook=http://events.monitoring/flagger",
    "-kubeconfig-qps=50",
    "-kubeconfig-burst=100",
    "-kubeconfig-service-mesh=/tmp/controlplane/kubeconfig",
    "-threadiness=2",
    "-cluster-name=prod-eu-1",
    "-no-cross-namespace-refs=true",
];

#[test]
fn every_flag_of_flaggers_chart_parses_as_flagger_means_it() {
    let config = OperatorConfig::try_parse_args(FLAGGER_CHART_ARGS)
        .unwrap_or_else(|e| panic!("Flagger's chart arguments parse: {e}"));
    assert_eq!(config.log_level, LogLevel::Info);
    assert_eq!(config.mesh_provider, "linkerd");
    assert_eq!(config.metrics_server, "http://prometheus.monitoring:9090");
    assert_eq!(config.selector_labels, ["app", "name"]);
    assert!(!config.enable_config_tracking);
    assert_eq!(config.watched_namespace(), Some("apps"));
    assert_eq!(
        config.slack_url.as_deref(),
        Some("https://hooks.slack.com/services/T/B/secret")
    );
    assert_eq!(
        config.slack_proxy_url.as_deref(),
        Some("http://proxy.internal:3128")
    );
    assert_eq!(config.slack_user, "flagger-prod");
    assert_eq!(config.slack_channel.as_deref(), Some("deploys"));
    assert_eq!(
        config.msteams_url.as_deref(),
        Some("https://outlook.office.com/webhook/secret")
    );
    assert_eq!(
        config.msteams_proxy_url.as_deref(),
        Some("http://proxy.internal:3128")
    );
    assert!(config.enable_leader_election);
    assert_eq!(config.leader_election_namespace, "flagger-system");
    assert_eq!(
        config.ingress_annotations_prefix,
        "custom.ingress.kubernetes.io"
    );
    assert_eq!(config.include_label_prefix, ["app.kubernetes.io", "team"]);
    assert_eq!(config.ingress_class, "contour");
    // Read by the Contour router.
    assert_eq!(
        config.router_options().ingress_class.as_deref(),
        Some("contour")
    );
    assert_eq!(
        config.event_webhook.as_deref(),
        Some("http://events.monitoring/flagger")
    );
    assert_eq!((config.kubeconfig_qps, config.kubeconfig_burst), (50, 100));
    assert_eq!(config.cluster_name, "prod-eu-1");
    assert!(config.no_cross_namespace_refs);
    assert!(config.validate().is_ok());
    let without_effect: Vec<String> = config
        .without_effect()
        .into_iter()
        .map(|(flag, _)| flag)
        .collect();
    assert_eq!(
        without_effect,
        [
            "-threadiness=2",
            "-kubeconfig-service-mesh=/tmp/controlplane/kubeconfig",
        ],
        "each flag without effect is named once in the start-up log"
    );
}

#[test]
fn every_other_flag_of_flaggers_main_parses_too() {
    // Flagger's flags its chart does not pass, and the klog flags its main registers.
    let config = parse(&[
        "-kubeconfig=/etc/kube/config",
        "-master=https://10.0.0.1:6443",
        "-control-loop-interval=10s",
        "-port=8080",
        "-slack-token=xoxb-secret",
        "-zap-replace-globals",
        "-zap-encoding=console",
        "-version=false",
        "-v=4",
        "-vmodule=controller=5",
        "-logtostderr=true",
        "-alsologtostderr",
        "-log_dir=/tmp",
        "-log_file=/tmp/f.log",
        "-log_file_max_size=1800",
        "-skip_headers",
        "-skip_log_headers=false",
        "-add_dir_header",
        "-stderrthreshold=2",
        "-one_output",
        "-log_backtrace_at=main.go:1",
        "-legacy_stderr_threshold_behavior=false",
    ]);
    assert_eq!(config.master.as_deref(), Some("https://10.0.0.1:6443"));
    assert_eq!(config.slack_token.as_deref(), Some("xoxb-secret"));
    assert!(!config.version);
    assert_eq!(config.ignored.set().len(), 17);
    assert!(config.ignored.set().contains(&"-v=4".to_owned()));
}

#[test]
fn flaggers_environment_wins_over_the_flag_as_in_flagger() {
    let mut config = parse(&[
        "-slack-url=https://hooks.slack.com/from-flag",
        "-msteams-proxy-url=http://flag-proxy",
        "-slack-channel=from-flag",
    ]);
    let environment = [
        ("SLACK_URL", "https://hooks.slack.com/from-env"),
        ("SLACK_TOKEN", "xoxb-env"),
        ("SLACK_PROXY_URL", "http://env-proxy"),
        ("MSTEAMS_URL", "https://teams/from-env"),
        ("MSTEAMS_PROXY_URL", ""),
        ("EVENT_WEBHOOK_URL", "http://events/from-env"),
        ("SLACK_CHANNEL", "from-env"),
        ("SLACK_USER", "from-env"),
    ];
    config.apply_flagger_environment(|name| {
        environment
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| (*value).to_owned())
    });
    assert_eq!(
        config.slack_url.as_deref(),
        Some("https://hooks.slack.com/from-env")
    );
    assert_eq!(config.slack_token.as_deref(), Some("xoxb-env"));
    assert_eq!(config.slack_proxy_url.as_deref(), Some("http://env-proxy"));
    assert_eq!(
        config.msteams_url.as_deref(),
        Some("https://teams/from-env")
    );
    assert_eq!(
        config.msteams_proxy_url.as_deref(),
        Some("http://flag-proxy"),
        "an empty variable leaves the flag (Flagger's fromEnv)"
    );
    assert_eq!(
        config.event_webhook.as_deref(),
        Some("http://events/from-env")
    );
    assert_eq!(
        (config.slack_channel.as_deref(), config.slack_user.as_str()),
        (Some("from-flag"), "flagger"),
        "Flagger reads no SLACK_CHANNEL nor SLACK_USER"
    );
}

#[test]
fn flaggers_lease_is_looked_for_where_flagger_keeps_it() {
    assert_eq!(parse(&[]).flagger_lease_namespace(), "kube-system");
    assert_eq!(
        parse(&["-leader-election-namespace=flagger-system"]).flagger_lease_namespace(),
        "flagger-system"
    );
    assert_eq!(
        parse(&[
            "-leader-election-namespace=flagger-system",
            "-namespace=apps"
        ])
        .flagger_lease_namespace(),
        "apps"
    );
    assert_eq!(
        parse(&["-namespace=apps", "-flagger-lease-namespace=istio-system"])
            .flagger_lease_namespace(),
        "istio-system"
    );
}

#[test]
fn unknown_flags_are_refused_with_a_suggestion() {
    let error = OperatorConfig::try_parse_args(["fledge-operator", "-slack-chanel=x"])
        .expect_err("a typo is refused");
    assert_eq!(error.exit_code(), 2);
    let text = error.to_string();
    assert!(text.contains("--slack-chanel"), "{text}");
    assert!(text.contains("--slack-channel"), "a suggestion: {text}");
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
    assert!(config.without_effect().is_empty());
    assert_eq!(
        config.ingress_annotations_prefix,
        "nginx.ingress.kubernetes.io"
    );
    assert_eq!(config.cluster_name, "");
    assert!(!config.no_cross_namespace_refs);
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

    let unknown = parse(&["-mesh-provider=haproxy"])
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
