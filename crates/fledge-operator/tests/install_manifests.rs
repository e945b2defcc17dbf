//! Installing Fledge as a Flagger user does: every kustomize overlay under `deploy/kustomize/`
//! renders with `kubectl kustomize` and is accepted by a real API server
//! (`kubectl apply --dry-run=server`); `deploy/install.yaml` is what the Istio overlay renders;
//! the Deployment, its ServiceAccount and the RBAC bindings name each other; and the operator
//! binary the image holds starts with exactly the container arguments of each overlay,
//! answering `/healthz` and `/readyz` and taking its Lease where the Role allows it.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::dry_run::{kubectl, prepare_cluster};
use fledge_operator::config::OperatorConfig;
use fledge_testkit::LocalCluster;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use serde_json::{Value, json};

/// One overlay per provider Fledge routes, as Flagger ships them.
const OVERLAYS: [&str; 5] = ["istio", "linkerd", "osm", "kubernetes", "gatewayapi"];

/// The namespace the base installs into.
const NAMESPACE: &str = "fledge-system";

fn kustomize_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/kustomize")
}

/// `kubectl kustomize <dir>`, failing the test with kubectl's message and `what`.
fn render_dir(dir: &Path, what: &str) -> String {
    let output = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .expect("kubectl runs");
    assert!(
        output.status.success(),
        "{what}: `kubectl kustomize {}` failed: {}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 YAML")
}

fn render(overlay: &str) -> String {
    render_dir(
        &kustomize_dir().join(overlay),
        &format!("overlay {overlay}"),
    )
}

/// The objects of a YAML stream, without empty documents.
fn objects(yaml: &str) -> Vec<Value> {
    fledge_api::yaml::documents(yaml)
        .expect("YAML")
        .into_iter()
        .filter(|document| !document.is_null())
        .collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} rendered"))
}

/// The operator container of the rendered `fledge-operator` Deployment.
fn operator_container(objects: &[Value]) -> &Value {
    let deployment = find(objects, "Deployment", "fledge-operator");
    &deployment["spec"]["template"]["spec"]["containers"][0]
}

fn container_args(objects: &[Value]) -> Vec<String> {
    operator_container(objects)["args"]
        .as_array()
        .expect("the container has args")
        .iter()
        .map(|arg| arg.as_str().expect("string args").to_owned())
        .collect()
}

#[tokio::test]
async fn every_overlay_renders_and_a_real_api_server_accepts_it_in_a_dry_run() {
    let cluster = LocalCluster::start().await.expect("a local control plane");
    // A dry run creates nothing, so the namespaces the overlays put objects in must exist
    // (as the rendered Namespace would on a real apply).
    prepare_cluster(&cluster, &[NAMESPACE]).await;

    let mut refused = Vec::new();
    for overlay in OVERLAYS {
        let rendered = render(overlay);
        let applied = kubectl(
            &cluster,
            &["apply", "--dry-run=server", "-f", "-"],
            &rendered,
        );
        let stdout = String::from_utf8_lossy(&applied.stdout);
        if !applied.status.success() {
            refused.push(format!(
                "overlay {overlay}: {}",
                String::from_utf8_lossy(&applied.stderr)
            ));
            continue;
        }
        // kubectl prints one line per object it sent; every rendered object was accepted.
        let accepted = stdout
            .lines()
            .filter(|l| l.ends_with("(server dry run)"))
            .count();
        assert_eq!(
            accepted,
            objects(&rendered).len(),
            "overlay {overlay}: not every object was sent:\n{stdout}"
        );
    }
    assert!(
        refused.is_empty(),
        "the API server refused:\n{}",
        refused.join("\n")
    );
}

#[test]
fn install_yaml_is_what_the_istio_overlay_renders() {
    let committed = std::fs::read_to_string(kustomize_dir().join("../install.yaml"))
        .expect("deploy/install.yaml exists");
    assert_eq!(
        objects(&committed),
        objects(&render("istio")),
        "deploy/install.yaml drifted from deploy/kustomize/istio: run `cargo xtask install`"
    );
}

#[test]
fn the_base_installs_every_crd_the_rust_types_generate() {
    let rendered = objects(&render("base"));
    let rendered_crds: Vec<&Value> = rendered
        .iter()
        .filter(|o| o["kind"] == "CustomResourceDefinition")
        .collect();
    let generated = fledge_api::crd::all();
    assert_eq!(
        rendered_crds.len(),
        generated.len(),
        "deploy/crds/kustomization.yaml must list every file `cargo xtask crd` writes"
    );
    for crd in generated {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let mut expected = serde_json::to_value(&crd).expect("a CRD serializes");
        // The base labels every object it installs.
        expected["metadata"]["labels"] = json!({"app.kubernetes.io/part-of": "fledge"});
        assert_eq!(
            *find(&rendered, "CustomResourceDefinition", &name),
            expected,
            "the base installs {name} as the Rust types generate it"
        );
    }
}

#[test]
fn each_overlay_sets_its_provider_and_prometheus_after_the_base_flags() {
    let expected = [
        ("istio", "istio", "http://prometheus.istio-system:9090"),
        (
            "linkerd",
            "gatewayapi:v1beta1",
            "http://prometheus.linkerd-viz:9090",
        ),
        ("osm", "osm", "http://osm-prometheus.osm-system.svc:7070"),
        ("kubernetes", "kubernetes", "http://fledge-prometheus:9090"),
        (
            "gatewayapi",
            "gatewayapi:v1",
            "http://fledge-prometheus:9090",
        ),
    ];
    for (overlay, provider, prometheus) in expected {
        let args = container_args(&objects(&render(overlay)));
        assert_eq!(
            args,
            [
                "-log-level=info",
                "-include-label-prefix=app.kubernetes.io",
                "-enable-leader-election",
                "-leader-election-namespace=fledge-system",
                &format!("-mesh-provider={provider}"),
                &format!("-metrics-server={prometheus}"),
            ],
            "overlay {overlay}"
        );
    }
}

#[test]
fn the_deployment_its_account_its_rights_and_its_probes_agree() {
    for overlay in OVERLAYS {
        let objects = objects(&render(overlay));
        let deployment = find(&objects, "Deployment", "fledge-operator");
        let pod = &deployment["spec"]["template"]["spec"];
        let account = pod["serviceAccountName"]
            .as_str()
            .expect("a ServiceAccount");
        let service_account =
            json!({"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE});
        find(&objects, "ServiceAccount", account);
        for (binding, role_kind) in [
            ("ClusterRoleBinding", "ClusterRole"),
            ("RoleBinding", "Role"),
        ] {
            let name = if binding == "RoleBinding" {
                "fledge-leader-election"
            } else {
                "fledge"
            };
            let bound = find(&objects, binding, name);
            assert_eq!(
                bound["subjects"],
                json!([service_account]),
                "overlay {overlay}: {binding} {name} binds the operator's account"
            );
            assert_eq!(bound["roleRef"]["kind"], role_kind);
            find(
                &objects,
                role_kind,
                bound["roleRef"]["name"].as_str().expect("a role"),
            );
        }

        // The flags as the binary reads them: valid, and consistent with the manifests.
        let args = container_args(&objects);
        let config = OperatorConfig::try_parse_args(
            std::iter::once("fledge-operator".to_owned()).chain(args.iter().cloned()),
        )
        .unwrap_or_else(|e| panic!("overlay {overlay}: the binary refuses {args:?}: {e}"));
        config
            .validate()
            .unwrap_or_else(|e| panic!("overlay {overlay}: {e}"));
        let lease_namespace = config.election_settings("x".to_owned()).namespace;
        let role = find(&objects, "Role", "fledge-leader-election");
        assert_eq!(
            role["metadata"]["namespace"], lease_namespace,
            "overlay {overlay}: the Lease must live where the Role grants it"
        );
        let container = operator_container(&objects);
        assert_eq!(
            container["ports"],
            json!([{"name": "http", "containerPort": config.port, "protocol": "TCP"}]),
            "overlay {overlay}: the container port is the operator's -port"
        );
        for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
            assert_eq!(
                container[probe]["httpGet"],
                json!({"path": path, "port": "http"}),
                "overlay {overlay}"
            );
        }
        let service = find(&objects, "Service", "fledge-operator");
        assert_eq!(
            service["spec"]["selector"], deployment["spec"]["selector"]["matchLabels"],
            "overlay {overlay}: the metrics Service selects the operator's pods"
        );
    }
}

#[test]
fn the_podmonitor_component_scrapes_the_operators_pods() {
    // Kustomize refuses absolute paths: the temporary kustomization names the overlay and
    // the component relative to itself.
    let dir = std::env::temp_dir().join(format!("fledge-podmonitor-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let dir = dir.canonicalize().expect("the temporary directory");
    let up = "../".repeat(dir.components().count() - 1);
    let kustomize = kustomize_dir().canonicalize().expect("deploy/kustomize");
    let relative = format!(
        "{up}{}",
        kustomize.display().to_string().trim_start_matches('/')
    );
    std::fs::write(
        dir.join("kustomization.yaml"),
        format!(
            "resources:\n  - {relative}/istio\ncomponents:\n  - {relative}/components/podmonitor\n"
        ),
    )
    .expect("write the kustomization");
    let rendered = objects(&render_dir(&dir, "istio with the podmonitor component"));
    let _ = std::fs::remove_dir_all(&dir);
    let monitor = find(&rendered, "PodMonitor", "fledge-operator");
    let deployment = find(&rendered, "Deployment", "fledge-operator");
    assert_eq!(
        monitor["spec"]["selector"]["matchLabels"],
        deployment["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"]
            .as_str()
            .map(|name| json!({"app.kubernetes.io/name": name}))
            .expect("the pod's name label")
    );
    assert_eq!(
        monitor["spec"]["namespaceSelector"]["matchNames"],
        json!([NAMESPACE])
    );
    assert_eq!(monitor["metadata"]["namespace"], NAMESPACE);
    let port = monitor["spec"]["podMetricsEndpoints"][0]["port"].clone();
    assert_eq!(operator_container(&rendered)["ports"][0]["name"], port);
}

/// The operator binary started as the container would be: the overlay's args exactly, a
/// kubeconfig acting as the pod's ServiceAccount as `KUBECONFIG` (the in-cluster
/// configuration's stand-in) and a free port through `FLEDGE_PORT` (8080 may be taken here).
struct Container {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    port: u16,
}

impl Container {
    fn start(kubeconfig: &Path, args: &[String]) -> Self {
        let port = fledge_testkit::process::free_port().expect("a free port");
        let mut command = Command::new(env!("CARGO_BIN_EXE_fledge-operator"));
        for (key, _) in std::env::vars_os() {
            let key_text = key.to_string_lossy();
            if key_text.starts_with("FLEDGE_") || key_text == "KUBECONFIG" || key_text == "RUST_LOG"
            {
                command.env_remove(key);
            }
        }
        let mut child = command
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env("FLEDGE_PORT", port.to_string())
            .env("HOSTNAME", "fledge-operator-0")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let lines = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    lines.lock().expect("the lines").push(line);
                }
            });
        }
        Self { child, lines, port }
    }

    fn output(&self) -> String {
        self.lines.lock().expect("the lines").join("\n")
    }

    /// Polls `path` until it answers 200 with `body`; fails after `limit`, or at once when
    /// the process exited (a refused flag exits 2).
    async fn wait_ok(&mut self, path: &str, body: &str, limit: Duration, overlay: &str) {
        let started = Instant::now();
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        loop {
            if let Some(status) = self.child.try_wait().expect("the process status") {
                panic!(
                    "overlay {overlay}: the operator exited ({status}) before {path} answered:\n{}",
                    self.output()
                );
            }
            if let Ok(response) = reqwest::get(&url).await
                && response.status() == 200
                && response.text().await.is_ok_and(|text| text == body)
            {
                return;
            }
            assert!(
                started.elapsed() < limit,
                "overlay {overlay}: {path} did not answer 200 {body:?} in {limit:?}:\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM, as the kubelet stops the container: the exit status and everything logged.
    async fn stop(mut self, overlay: &str) -> (std::process::ExitStatus, String) {
        let signalled = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(signalled.success());
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("the process status") {
                // The reader threads end with the process's pipes.
                tokio::time::sleep(Duration::from_millis(200)).await;
                return (status, self.output());
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "overlay {overlay}: the operator did not stop on SIGTERM:\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn the_operator_binary_runs_with_each_overlays_container_args_under_the_shipped_rbac() {
    let cluster = LocalCluster::start().await.expect("a local control plane");
    // Installed as a user would: the Istio overlay for real (CRDs, namespace, account,
    // RBAC; the Deployment stays without pods, nothing runs them here).
    let applied = kubectl(&cluster, &["apply", "-f", "-"], &render("istio"));
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let established = kubectl(
        &cluster,
        &[
            "wait",
            "--for=condition=established",
            "--timeout=60s",
            "crd/canaries.flagger.app",
            "crd/metrictemplates.flagger.app",
            "crd/alertproviders.flagger.app",
        ],
        "",
    );
    assert!(
        established.status.success(),
        "{}",
        String::from_utf8_lossy(&established.stderr)
    );
    // The pod's ServiceAccount (the testkit's token for it), bound by the overlay's RBAC.
    let kubeconfig = cluster.operator_kubeconfig_path().to_owned();
    let leases: Api<Lease> = Api::namespaced(cluster.client(), NAMESPACE);
    for overlay in OVERLAYS {
        let args = container_args(&objects(&render(overlay)));
        let mut container = Container::start(&kubeconfig, &args);
        container
            .wait_ok("/healthz", "OK\n", Duration::from_secs(30), overlay)
            .await;
        // `synced`: elected (-enable-leader-election) and every watch cache filled, which
        // needs list and watch on each kind; a standby would answer `standby`.
        container
            .wait_ok("/readyz", "synced\n", Duration::from_secs(60), overlay)
            .await;
        let mut lease_held = false;
        let started = Instant::now();
        while !lease_held && started.elapsed() < Duration::from_secs(30) {
            let lease = leases
                .get_opt("fledge-leader-election")
                .await
                .expect("the Lease is read");
            lease_held = lease
                .and_then(|l| l.spec)
                .and_then(|s| s.holder_identity)
                .is_some_and(|holder| holder.starts_with("fledge-operator-0_"));
            if !lease_held {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        assert!(
            lease_held,
            "overlay {overlay}: the operator holds no Lease in {NAMESPACE}:\n{}",
            container.output()
        );
        let (status, output) = container.stop(overlay).await;
        assert!(
            status.success(),
            "overlay {overlay}: the operator exited with {status} on SIGTERM:\n{output}"
        );
        assert!(
            output.contains("Leader-election Lease released"),
            "overlay {overlay}: the Lease was not released (its Role allows update):\n{output}"
        );
        for refused in ["forbidden", "Forbidden"] {
            assert!(
                !output.contains(refused),
                "overlay {overlay}: a request was refused under the shipped RBAC:\n{output}"
            );
        }
        assert!(
            !output.contains("accepted but without effect"),
            "overlay {overlay}: the manifests pass a flag Fledge ignores:\n{output}"
        );
    }
    let forbidden = cluster
        .operator_forbidden_requests()
        .expect("the audit log");
    assert!(forbidden.is_empty(), "forbidden: {forbidden:#?}");
}
