//! Installing Fledge with Helm, as Flagger's chart users do: the chart `deploy/chart/fledge`
//! rendered by `deploy/chart/render` (Go's text/template, sprig and Helm's render rules; no
//! helm binary can be had here) gives, with default values, exactly the objects of
//! `kubectl kustomize deploy/kustomize/base`; Flagger's values (`meshProvider`,
//! `metricsServer`, `slack.*`, `podMonitor`, ...) become the flags and objects Flagger's chart
//! makes of them; the operator binary parses every rendered container's arguments; a real API
//! server accepts each rendering (`kubectl apply --dry-run=server`); and values Fledge cannot
//! honour fail, naming the value.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::dry_run::{kubectl, prepare_cluster};
use fledge_operator::config::OperatorConfig;
use fledge_testkit::LocalCluster;
use serde_json::{Value, json};

/// The release every test installs, as docs/install.md does.
const RELEASE: &str = "fledge";
const NAMESPACE: &str = "fledge-system";

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The renderer, built once per source version into the cache `cargo xtask chart` uses
/// (`chart-render-<FNV-1a of main.go>`), from Debian's Go packages in GOPATH mode.
fn renderer() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let source = repository().join("deploy/chart/render/main.go");
        let text = std::fs::read(&source).expect("deploy/chart/render/main.go");
        let hash = text.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
        });
        let dir = fledge_testkit::binaries::cache_dir().join(format!("chart-render-{hash:016x}"));
        let binary = dir.join("chart-render");
        if binary.is_file() {
            return binary;
        }
        std::fs::create_dir_all(&dir).expect("the cache directory");
        let partial = dir.join(format!("chart-render.{}.partial", std::process::id()));
        let output = Command::new("go")
            .args(["build", "-o"])
            .arg(&partial)
            .arg(&source)
            .env("GO111MODULE", "off")
            .env("GOPATH", "/usr/share/gocode")
            .env("GOFLAGS", "")
            .output()
            .expect("go runs (`cargo xtask control-plane` installs golang-go)");
        assert!(
            output.status.success(),
            "building the chart renderer failed (`cargo xtask control-plane` installs \
             golang-github-masterminds-sprig-dev and golang-k8s-sigs-yaml-dev): {}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::fs::rename(&partial, &binary).expect("the renderer moves into the cache");
        binary
    })
}

/// `helm template fledge deploy/chart/fledge -n fledge-system --include-crds <args>`: the
/// YAML, or the renderer's error message.
fn try_render(args: &[&str]) -> Result<String, String> {
    let output = Command::new(renderer())
        .arg("--chart")
        .arg(repository().join("deploy/chart/fledge"))
        .args([
            "--name",
            RELEASE,
            "--namespace",
            NAMESPACE,
            "--include-crds",
        ])
        .args(args)
        .output()
        .expect("the renderer runs");
    if output.status.success() {
        Ok(String::from_utf8(output.stdout).expect("UTF-8 YAML"))
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

fn render(args: &[&str]) -> Vec<Value> {
    let yaml = try_render(args).unwrap_or_else(|e| panic!("the chart with {args:?}: {e}"));
    objects(&yaml)
}

/// `kubectl kustomize deploy/kustomize/<dir>`.
fn kustomize(dir: &str) -> Vec<Value> {
    let output = Command::new("kubectl")
        .arg("kustomize")
        .arg(repository().join("deploy/kustomize").join(dir))
        .output()
        .expect("kubectl runs");
    assert!(
        output.status.success(),
        "kubectl kustomize {dir}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    objects(&String::from_utf8(output.stdout).expect("UTF-8 YAML"))
}

fn objects(yaml: &str) -> Vec<Value> {
    fledge_api::yaml::documents(yaml)
        .expect("YAML")
        .into_iter()
        .filter(|document| !document.is_null())
        .collect()
}

/// `Kind namespace/name` of each object, the key objects are compared by (kustomize and
/// Helm order them differently).
fn by_key(objects: Vec<Value>) -> BTreeMap<String, Value> {
    objects
        .into_iter()
        .map(|o| {
            let key = format!(
                "{} {}/{}",
                o["kind"].as_str().unwrap_or_default(),
                o["metadata"]["namespace"].as_str().unwrap_or_default(),
                o["metadata"]["name"].as_str().unwrap_or_default()
            );
            (key, o)
        })
        .collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} rendered"))
}

fn deployment(objects: &[Value]) -> &Value {
    find(objects, "Deployment", "fledge-operator")
}

fn container(objects: &[Value]) -> &Value {
    &deployment(objects)["spec"]["template"]["spec"]["containers"][0]
}

fn args(objects: &[Value]) -> Vec<String> {
    container(objects)["args"]
        .as_array()
        .expect("the container has args")
        .iter()
        .map(|a| a.as_str().expect("string args").to_owned())
        .collect()
}

/// The configuration the operator binary reads from the rendered arguments (as the container
/// runs it), checked as the binary checks it at start.
fn parsed(objects: &[Value], what: &str) -> OperatorConfig {
    let args = args(objects);
    let config = OperatorConfig::try_parse_args(
        std::iter::once("fledge-operator".to_owned()).chain(args.iter().cloned()),
    )
    .unwrap_or_else(|e| panic!("{what}: the binary refuses {args:?}: {e}"));
    config
        .validate()
        .unwrap_or_else(|e| panic!("{what}: {args:?}: {e}"));
    config
}

#[test]
fn default_values_render_exactly_what_the_kustomize_base_renders() {
    let chart = by_key(render(&[]));
    let mut base = by_key(kustomize("base"));
    // Two justified differences, and no other: Helm makes the namespace itself
    // (`--create-namespace`) and refuses to install a chart that renders it too, so the chart
    // has no Namespace; and Helm installs the chart's crds/ (links to deploy/crds) verbatim,
    // without templating, so the base's part-of label is not on them.
    base.remove(&format!("Namespace /{NAMESPACE}"))
        .expect("the base makes the namespace");
    let mut crds = 0;
    for (key, object) in &mut base {
        if key.starts_with("CustomResourceDefinition ") {
            let labels = object["metadata"]
                .as_object_mut()
                .expect("metadata")
                .remove("labels");
            assert_eq!(labels, Some(json!({"app.kubernetes.io/part-of": "fledge"})));
            crds += 1;
        }
    }
    assert_eq!(crds, 3, "the base installs the three flagger.app CRDs");
    assert_eq!(
        chart.keys().collect::<Vec<_>>(),
        base.keys().collect::<Vec<_>>(),
        "the chart renders the base's objects, no more, no fewer"
    );
    for (key, object) in &base {
        pretty_assertions::assert_eq!(&chart[key], object, "{key}");
    }
    // Without a provider the operator runs its defaults, as the base does: istio and
    // http://prometheus:9090.
    let config = parsed(&render(&[]), "default values");
    assert_eq!(config.mesh_provider, "istio");
    assert_eq!(config.metrics_server, "http://prometheus:9090");
    assert!(config.enable_leader_election);
    assert_eq!(
        config.election_settings("x".to_owned()).namespace,
        NAMESPACE
    );
}

#[test]
fn the_chart_grants_the_rules_of_the_kustomize_rbac_files_read_through_its_links() {
    // The links are what keeps the chart and the base from drifting: the rules are read from
    // the very files the base installs.
    for (link, target) in [
        ("files/rbac.yaml", "deploy/kustomize/base/rbac.yaml"),
        (
            "files/leader-election-rbac.yaml",
            "deploy/kustomize/base/leader-election-rbac.yaml",
        ),
        (
            "crds/canaries.flagger.app.yaml",
            "deploy/crds/canaries.flagger.app.yaml",
        ),
        (
            "crds/metrictemplates.flagger.app.yaml",
            "deploy/crds/metrictemplates.flagger.app.yaml",
        ),
        (
            "crds/alertproviders.flagger.app.yaml",
            "deploy/crds/alertproviders.flagger.app.yaml",
        ),
    ] {
        let link = repository().join("deploy/chart/fledge").join(link);
        assert!(
            std::fs::symlink_metadata(&link).is_ok_and(|m| m.file_type().is_symlink()),
            "{} must be a symbolic link to {target}",
            link.display()
        );
        assert_eq!(
            link.canonicalize().expect("the link resolves"),
            repository()
                .join(target)
                .canonicalize()
                .expect("the target exists")
        );
    }
    // Another release name names the cluster-wide objects after it and binds its own account.
    let objects = render(&["--name", "canary-ops"]);
    let role = find(&objects, "ClusterRole", "canary-ops-fledge");
    let base = kustomize("base");
    assert_eq!(role["rules"], find(&base, "ClusterRole", "fledge")["rules"]);
    let binding = find(&objects, "ClusterRoleBinding", "canary-ops-fledge");
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "canary-ops-fledge", "namespace": NAMESPACE}])
    );
    let operator = find(&objects, "Deployment", "canary-ops-fledge-operator");
    assert_eq!(
        operator["spec"]["template"]["spec"]["serviceAccountName"],
        "canary-ops-fledge"
    );
}

#[test]
fn each_provider_renders_the_deployment_of_its_kustomize_overlay() {
    // The overlays append -mesh-provider and -metrics-server to the base's flags; the chart
    // given the same two values renders the same Deployment, flags in the same order.
    for overlay in ["istio", "linkerd", "osm", "kubernetes", "gatewayapi"] {
        let kustomized = kustomize(overlay);
        let overlay_args = args(&kustomized);
        let [.., provider, prometheus] = overlay_args.as_slice() else {
            panic!("overlay {overlay}: {overlay_args:?}")
        };
        let provider = provider.strip_prefix("-mesh-provider=").expect(provider);
        let prometheus = prometheus
            .strip_prefix("-metrics-server=")
            .expect(prometheus);
        let set = format!("meshProvider={provider},metricsServer={prometheus}");
        let objects = render(&["--set", &set]);
        pretty_assertions::assert_eq!(
            deployment(&objects),
            deployment(&kustomized),
            "overlay {overlay} and --set {set}"
        );
        let config = parsed(&objects, overlay);
        assert_eq!(config.mesh_provider, provider);
        assert_eq!(config.metrics_server, prometheus);
    }
    // Linkerd's SMI provider, by its Flagger name.
    let objects = render(&["--set", "meshProvider=linkerd"]);
    assert!(args(&objects).contains(&"-mesh-provider=linkerd".to_owned()));
    assert_eq!(parsed(&objects, "linkerd").mesh_provider, "linkerd");
}

#[test]
fn the_linkerd_authorization_policy_is_the_overlays() {
    let objects = render(&["--set", "linkerdAuthPolicy.create=true"]);
    let chart = find(&objects, "AuthorizationPolicy", "prometheus-admin-fledge");
    let overlay = kustomize("linkerd");
    let kustomized = find(&overlay, "AuthorizationPolicy", "prometheus-admin-fledge");
    assert_eq!(chart["spec"], kustomized["spec"]);
    assert_eq!(chart["metadata"]["namespace"], "linkerd-viz");
    assert!(
        render(&[])
            .iter()
            .all(|o| o["kind"] != "AuthorizationPolicy"),
        "off by default, as in Flagger's chart"
    );
}

#[test]
fn flaggers_values_become_the_flags_flaggers_chart_passes() {
    let objects = render(&[
        "--set",
        "namespace=apps,selectorLabels=app\\,name,configTracking.enabled=false",
        "--set",
        "slack.user=fledge,slack.channel=#deploys,clusterName=prod-eu,noCrossNamespaceRefs=true",
        "--set",
        "kubeconfigQPS=200,kubeconfigBurst=400,logLevel=debug",
        "--set",
        "ingressClass=nginx,ingressAnnotationsPrefix=custom.ingress.kubernetes.io",
    ]);
    let rendered = args(&objects);
    for flag in [
        "-namespace=apps",
        "-selector-labels=app,name",
        "-enable-config-tracking=false",
        "-slack-user=fledge",
        "-slack-channel=#deploys",
        "-cluster-name=prod-eu",
        "-no-cross-namespace-refs=true",
        "-kubeconfig-qps=200",
        "-kubeconfig-burst=400",
        "-log-level=debug",
        "-ingress-class=nginx",
        "-ingress-annotations-prefix=custom.ingress.kubernetes.io",
    ] {
        assert!(
            rendered.contains(&flag.to_owned()),
            "{flag} in {rendered:?}"
        );
    }
    let config = parsed(&objects, "Flagger's values");
    assert_eq!(config.watched_namespace(), Some("apps"));
    assert_eq!(config.selector_labels(), ["app", "name"]);
    assert!(!config.enable_config_tracking);
    assert_eq!(config.slack_user, "fledge");
    assert_eq!(config.slack_channel.as_deref(), Some("#deploys"));
    assert_eq!(config.cluster_name, "prod-eu");
    assert!(config.no_cross_namespace_refs);
    assert_eq!((config.kubeconfig_qps, config.kubeconfig_burst), (200, 400));
    // Watching one namespace moves the Lease there (as Flagger), and its Role with it.
    let lease_namespace = config.election_settings("x".to_owned()).namespace;
    assert_eq!(lease_namespace, "apps");
    let role = find(&objects, "Role", "fledge-leader-election");
    assert_eq!(role["metadata"]["namespace"], "apps");
    assert_eq!(
        find(&objects, "RoleBinding", "fledge-leader-election")["metadata"]["namespace"],
        "apps"
    );

    // Without leader election: one pod, recreated on upgrade, and no election flags.
    let objects = render(&["--set", "leaderElection.enabled=false"]);
    let spec = &deployment(&objects)["spec"];
    assert_eq!(spec["strategy"], json!({"type": "Recreate"}));
    assert_eq!(spec["replicas"], 1);
    assert!(!parsed(&objects, "no election").enable_leader_election);
    // With it, the standby replicas Flagger's leaderElection.replicaCount asks for.
    let objects = render(&["--set", "leaderElection.replicaCount=2"]);
    assert_eq!(deployment(&objects)["spec"]["replicas"], 2);
}

#[test]
fn the_pod_values_land_on_the_pod() {
    let values =
        std::env::temp_dir().join(format!("fledge-chart-values-{}.yaml", std::process::id()));
    std::fs::write(
        &values,
        r#"
image: {repository: registry.example/fledge, tag: "9.9.9", pullSecret: regcred}
nodeSelector: {kubernetes.io/os: linux}
tolerations: [{key: dedicated, operator: Equal, value: ops, effect: NoSchedule}]
affinity:
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          labelSelector:
            matchLabels:
              app.kubernetes.io/name: '{{ include "fledge.operatorName" . }}'
          topologyKey: kubernetes.io/hostname
resources: {requests: {cpu: 50m, memory: 64Mi}, limits: {cpu: null, memory: 256Mi}}
podAnnotations: {linkerd.io/inject: enabled}
podLabels: {team: ops}
env: [{name: RUST_BACKTRACE, value: "1"}]
"#,
    )
    .expect("write the values file");
    let objects = render(&["-f", values.to_str().expect("UTF-8 path")]);
    let _ = std::fs::remove_file(&values);
    let pod = &deployment(&objects)["spec"]["template"];
    let spec = &pod["spec"];
    assert_eq!(
        container(&objects)["image"],
        "registry.example/fledge:9.9.9"
    );
    assert_eq!(spec["imagePullSecrets"], json!([{"name": "regcred"}]));
    assert_eq!(spec["nodeSelector"], json!({"kubernetes.io/os": "linux"}));
    assert_eq!(spec["tolerations"][0]["key"], "dedicated");
    // Affinity goes through `tpl`, as in Flagger's chart.
    assert_eq!(
        spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
            ["labelSelector"]["matchLabels"],
        json!({"app.kubernetes.io/name": "fledge-operator"})
    );
    // Tables merge into the defaults' as in Helm; a null removes a default (the CPU limit).
    assert_eq!(
        container(&objects)["resources"],
        json!({"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}})
    );
    // A values file merges into the defaults' tables: the scrape annotations stay.
    assert_eq!(
        pod["metadata"]["annotations"],
        json!({"linkerd.io/inject": "enabled", "prometheus.io/scrape": "true", "prometheus.io/port": "8080"})
    );
    assert_eq!(
        pod["metadata"]["labels"],
        json!({"app.kubernetes.io/name": "fledge-operator", "team": "ops"})
    );
    assert_eq!(
        container(&objects)["env"],
        json!([{"name": "RUST_BACKTRACE", "value": "1"}])
    );
}

#[test]
fn webhook_urls_reach_the_operator_from_a_secret_as_flaggers_variables() {
    let slack = "https://hooks.slack.com/services/T0/B0/secret";
    let teams = "https://example.webhook.office.com/webhookb2/secret";
    let objects = render(&[
        "--set",
        &format!("slack.url={slack},slack.proxy=http://proxy:3128,msteams.url={teams}"),
        "--set",
        "eventWebhook=http://events.ops:8080/",
    ]);
    let secret = find(&objects, "Secret", "fledge-webhooks");
    assert_eq!(
        secret["stringData"],
        json!({
            "SLACK_URL": slack,
            "SLACK_PROXY_URL": "http://proxy:3128",
            "MSTEAMS_URL": teams,
            "EVENT_WEBHOOK_URL": "http://events.ops:8080/",
        })
    );
    // No URL shows in the pod's arguments; each is a variable from the Secret.
    for arg in args(&objects) {
        assert!(!arg.contains("secret") && !arg.contains("proxy"), "{arg}");
    }
    let env = container(&objects)["env"].as_array().expect("env").clone();
    let mut environment = BTreeMap::new();
    for variable in &env {
        let reference = &variable["valueFrom"]["secretKeyRef"];
        assert_eq!(reference["name"], "fledge-webhooks");
        let key = reference["key"].as_str().expect("a key");
        let value = secret["stringData"][key]
            .as_str()
            .expect("the key is in the Secret");
        environment.insert(
            variable["name"].as_str().expect("a name").to_owned(),
            value.to_owned(),
        );
    }
    let mut config = parsed(&objects, "webhooks");
    config.apply_flagger_environment(|name| environment.get(name).cloned());
    assert_eq!(config.slack_url.as_deref(), Some(slack));
    assert_eq!(config.slack_proxy_url.as_deref(), Some("http://proxy:3128"));
    assert_eq!(config.msteams_url.as_deref(), Some(teams));
    assert_eq!(
        config.event_webhook.as_deref(),
        Some("http://events.ops:8080/")
    );
    // The pod restarts when a URL changes (the operator reads them at start).
    let checksum = |objects: &[Value]| {
        deployment(objects)["spec"]["template"]["metadata"]["annotations"]["checksum/webhooks"]
            .clone()
    };
    let changed = render(&[
        "--set",
        "slack.url=https://hooks.slack.com/services/T0/B0/other",
    ]);
    assert!(checksum(&objects).is_string());
    assert_ne!(checksum(&objects), checksum(&changed));
    assert!(render(&[]).iter().all(|o| o["kind"] != "Secret"));
}

#[test]
fn pod_monitor_enabled_renders_the_kustomize_components_pod_monitor() {
    let objects = render(&[
        "--set",
        "podMonitor.enabled=true,podMonitor.additionalLabels.release=kube-prometheus",
    ]);
    let monitor = find(&objects, "PodMonitor", "fledge-operator");
    let component: Value = fledge_api::yaml::documents(
        &std::fs::read_to_string(
            repository().join("deploy/kustomize/components/podmonitor/podmonitor.yaml"),
        )
        .expect("the component"),
    )
    .expect("YAML")
    .remove(0);
    assert_eq!(monitor["spec"], component["spec"]);
    assert_eq!(
        monitor["metadata"]["namespace"],
        component["metadata"]["namespace"]
    );
    assert_eq!(
        monitor["metadata"]["labels"],
        json!({
            "app.kubernetes.io/name": "fledge-operator",
            "app.kubernetes.io/part-of": "fledge",
            "release": "kube-prometheus",
        })
    );
    assert_eq!(
        monitor["spec"]["selector"]["matchLabels"],
        deployment(&objects)["spec"]["selector"]["matchLabels"]
    );
    assert!(render(&[]).iter().all(|o| o["kind"] != "PodMonitor"));
}

#[test]
fn values_fledge_cannot_honour_fail_naming_the_value() {
    for (set, message) in [
        (
            "meshProvider=nginx",
            "meshProvider=nginx is not a provider Fledge routes; use one of istio, linkerd, osm",
        ),
        (
            "image.repository=",
            "image.repository is required: the operator's image",
        ),
        (
            "logLevel=verbose",
            "logLevel=verbose: use debug, info, warning or error",
        ),
        (
            "leaderElection.enabled=false,leaderElection.replicaCount=2",
            "leaderElection.replicaCount=2 needs leaderElection.enabled=true",
        ),
        (
            "prometheus.install=true",
            "prometheus.install is not supported by Fledge's chart",
        ),
        ("crd.create=true", "crd.create is not supported"),
    ] {
        let error = try_render(&["--set", set]).expect_err(set);
        assert!(
            error.contains(message) && error.contains("execution error at (fledge/templates/"),
            "--set {set}: {error}"
        );
    }
    // Chart.yaml's kubeVersion, checked as Helm checks it.
    let error = try_render(&["--kube-version", "v1.19.0"]).expect_err("Kubernetes 1.19");
    assert!(
        error.contains("chart requires kubeVersion: >=1.20.0-0"),
        "{error}"
    );
}

/// Tables of values.yaml given whole (Kubernetes objects, the user's annotations).
const WHOLE: [&str; 4] = [
    "podAnnotations",
    "resources",
    "podSecurityContext",
    "securityContext.context",
];
/// The dotted paths of the values a user sets (`image.tag`), as the README table names them.
fn leaves(value: &Value, prefix: &str, out: &mut Vec<String>) {
    match value.as_object() {
        // Tables given whole (Kubernetes objects, the user's annotations) are one value.
        Some(table) if !table.is_empty() && !WHOLE.contains(&prefix) => {
            for (key, child) in table {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                leaves(child, &path, out);
            }
        }
        _ => out.push(prefix.to_owned()),
    }
}

#[test]
fn every_value_is_in_the_readme_table() {
    let values: Value = fledge_api::yaml::documents(
        &std::fs::read_to_string(repository().join("deploy/chart/fledge/values.yaml"))
            .expect("values.yaml"),
    )
    .expect("YAML")
    .remove(0);
    let readme = std::fs::read_to_string(repository().join("deploy/chart/fledge/README.md"))
        .expect("the chart's README.md");
    let mut paths = Vec::new();
    leaves(&values, "", &mut paths);
    let missing: Vec<&String> = paths
        .iter()
        .filter(|path| !readme.contains(&format!("| `{path}` |")))
        .collect();
    assert!(
        missing.is_empty(),
        "values missing from README.md's table: {missing:?}"
    );
}

#[tokio::test]
async fn a_real_api_server_accepts_each_rendering_in_a_dry_run() {
    let cluster = LocalCluster::start().await.expect("a local control plane");
    // `helm install --create-namespace` makes the release's namespace; `apps` is the
    // `namespace` value of one case.
    prepare_cluster(&cluster, &[NAMESPACE, "apps"]).await;
    let cases: [&[&str]; 8] = [
        &[],
        &[
            "--set",
            "meshProvider=istio,metricsServer=http://prometheus.istio-system:9090",
        ],
        &[
            "--set",
            "meshProvider=linkerd,linkerdAuthPolicy.create=true",
        ],
        &["--set", "meshProvider=osm"],
        &["--set", "meshProvider=kubernetes"],
        &["--set", "meshProvider=gatewayapi:v1"],
        &[
            "--set",
            "slack.url=https://hooks.slack.com/x,msteams.url=https://teams/x",
        ],
        &["--set", "namespace=apps,leaderElection.enabled=false"],
    ];
    let mut refused = Vec::new();
    for case in cases {
        let yaml = try_render(case).unwrap_or_else(|e| panic!("{case:?}: {e}"));
        let applied = kubectl(&cluster, &["apply", "--dry-run=server", "-f", "-"], &yaml);
        if !applied.status.success() {
            refused.push(format!(
                "{case:?}: {}",
                String::from_utf8_lossy(&applied.stderr)
            ));
            continue;
        }
        let stdout = String::from_utf8_lossy(&applied.stdout);
        let accepted = stdout
            .lines()
            .filter(|l| l.ends_with("(server dry run)"))
            .count();
        assert_eq!(
            accepted,
            objects(&yaml).len(),
            "{case:?}: not every object was sent:\n{stdout}"
        );
    }
    assert!(
        refused.is_empty(),
        "the API server refused:\n{}",
        refused.join("\n")
    );
}
