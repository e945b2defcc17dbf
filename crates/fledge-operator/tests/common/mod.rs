//! A stage for controller stories: a control plane, the cluster simulator, the podinfo
//! Deployment and its Canary, and the operator's controller running in the test (or its
//! binary, see [`operator_process`]).
//!
//! The operator, in the test or as the binary, acts as the ServiceAccount of
//! `deploy/kustomize/base` with exactly the shipped RBAC (the testkit's
//! `install_operator_rbac`); the test's own set-up and assertions use the admin client. When
//! a stage ends, a request of the operator that was forbidden fails the test.

#![allow(
    dead_code,
    reason = "each test binary uses the part of the stage its stories need"
)]

pub mod dry_run;
pub mod istio;
pub mod operator_process;
pub mod receiver;

use std::time::{Duration, Instant};

use fledge_api::{Canary, CanaryPhase};
use fledge_operator::config::OperatorConfig;
use fledge_operator::controller;
use fledge_testkit::{ClusterSim, ClusterSimConfig, LocalCluster, TempNamespace};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub fn podinfo(image: &str, replicas: Option<i32>) -> Value {
    let mut manifest = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": "podinfo", "labels": { "app": "podinfo" } },
        "spec": {
            "selector": { "matchLabels": { "app": "podinfo" } },
            "template": {
                "metadata": { "labels": { "app": "podinfo" } },
                "spec": { "containers": [{ "name": "podinfod", "image": image, "ports": [{ "containerPort": 9898 }] }] },
            },
        },
    });
    if let Some(replicas) = replicas {
        manifest["spec"]["replicas"] = json!(replicas);
    }
    manifest
}

/// Waits until the Canary reaches `phase`, failing with its last status after `limit`.
/// (Analysis intervals are at least 10 s, as in Flagger: a whole rollout takes about a minute.)
pub async fn wait_for_phase(canaries: &Api<Canary>, phase: CanaryPhase, limit: Duration) -> Canary {
    let started = Instant::now();
    loop {
        let canary = canaries.get("podinfo").await.expect("the Canary is read");
        if canary.status.as_ref().is_some_and(|s| s.phase == phase) {
            return canary;
        }
        assert!(
            started.elapsed() < limit,
            "the canary did not reach {phase}: {:#?}",
            canary.status
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// (primary, canary) weights of the default (last) HTTP route of a VirtualService's `spec`.
pub fn virtual_service_weights(spec: &Value) -> (i64, i64) {
    let default_route = spec["http"]
        .as_array()
        .and_then(|http| http.last())
        .cloned()
        .unwrap_or(Value::Null);
    let weight_of = |host: &str| {
        default_route["route"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["destination"]["host"] == host)
            .and_then(|r| r["weight"].as_i64())
            .unwrap_or(0)
    };
    (weight_of("podinfo-primary"), weight_of("podinfo-canary"))
}

/// Waits until `done` holds, failing with `what` after `limit`.
pub async fn wait_until<F, Fut>(what: &str, limit: Duration, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !done().await {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn messages(events: &Api<Event>) -> Vec<String> {
    let list = events
        .list(&ListParams::default())
        .await
        .expect("events are listed");
    let mut items = list.items;
    items.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
    items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("Synced"))
        .filter_map(|e| e.note)
        .collect()
}

pub fn image(deployment: &Deployment) -> Option<String> {
    deployment.spec.as_ref()?.template.spec.as_ref()?.containers[0]
        .image
        .clone()
}

/// Fails the test naming every request of the operator's ServiceAccount that RBAC refused:
/// a right the shipped ClusterRole or Role lacks. Skipped when the test narrowed the rights
/// on purpose (`narrow_operator_rights`).
pub fn assert_operator_never_forbidden(cluster: &LocalCluster) {
    if !cluster.operator_rights_are_shipped() {
        return;
    }
    let forbidden = cluster
        .operator_forbidden_requests()
        .expect("the audit log reads");
    assert!(
        forbidden.is_empty(),
        "the shipped RBAC forbade the operator {} request(s):\n{}",
        forbidden.len(),
        forbidden
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// A control plane with the simulator, the podinfo Deployment and its Canary.
pub struct Stage {
    pub cluster: LocalCluster,
    pub namespace: TempNamespace,
    pub sim: ClusterSim,
    pub deployments: Api<Deployment>,
    pub canaries: Api<Canary>,
    pub events: Api<Event>,
}

impl Stage {
    /// Sets up with the Canary's spec lines after `targetRef` (`analysis`, `provider` ...).
    pub async fn set_up(spec: &str) -> Self {
        Self::set_up_targeting(
            "{ apiVersion: apps/v1, kind: Deployment, name: podinfo }",
            spec,
        )
        .await
    }

    /// Sets up with the Canary's `targetRef` and its spec lines after it (with a progress
    /// deadline of 60 s unless they set one).
    pub async fn set_up_targeting(target_ref: &str, spec: &str) -> Self {
        let stage = Self::prepare(Duration::from_millis(200)).await;
        let deadline = if spec.contains("progressDeadlineSeconds:") {
            ""
        } else {
            "progressDeadlineSeconds: 60\n  "
        };
        stage
            .create_canary(&format!(
                "targetRef: {target_ref}\n  {deadline}service: {{ port: 9898 }}\n{spec}"
            ))
            .await;
        stage
    }

    /// A control plane, the simulator (pods ready `ready_delay` after a change) and the
    /// podinfo Deployment (2 replicas), without a Canary yet.
    pub async fn prepare(ready_delay: Duration) -> Self {
        let cluster = LocalCluster::start().await.expect("a local control plane");
        cluster
            .install_fledge_crds()
            .await
            .expect("Fledge's CRDs install");
        cluster
            .install_operator_rbac()
            .await
            .expect("the operator's ServiceAccount and RBAC install");
        let namespace = cluster
            .temp_namespace("controller")
            .await
            .expect("a namespace");
        let ns = namespace.name().to_owned();
        let client = cluster.client();
        let sim_config = ClusterSimConfig {
            ready_delay,
            namespace: Some(ns.clone()),
        };
        let stage = Self {
            sim: ClusterSim::start(client.clone(), sim_config),
            deployments: Api::namespaced(client.clone(), &ns),
            canaries: Api::namespaced(client.clone(), &ns),
            events: Api::namespaced(client, &ns),
            cluster,
            namespace,
        };
        stage.kubectl_apply(podinfo("podinfo:6.0.0", Some(2))).await;
        stage
    }

    /// Creates the Canary `podinfo` with `spec` (the lines under `spec:`, indented by two).
    pub async fn create_canary(&self, spec: &str) {
        let canary: Canary = fledge_api::yaml::from_str(&format!(
            "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {{ name: podinfo, namespace: {} }}\nspec:\n  {spec}",
            self.ns()
        ))
        .expect("a valid Canary");
        let created = self.canaries.create(&PostParams::default(), &canary).await;
        created.expect("the Canary is created");
    }

    /// Waits until the Canary reaches `phase`, failing after `seconds`.
    pub async fn reaches(&self, phase: CanaryPhase, seconds: u64) -> Canary {
        wait_for_phase(&self.canaries, phase, Duration::from_secs(seconds)).await
    }

    /// The messages of the Canary's `Synced` events so far.
    pub async fn story(&self) -> Vec<String> {
        messages(&self.events).await
    }

    /// Waits until the story tells every `expected` line and returns it; fails after 15 s
    /// showing the story. The operator records a tick's events right after it writes the
    /// status, so a test that saw the phase change may still be a moment early for them.
    pub async fn tells(&self, expected: &[String]) -> Vec<String> {
        let started = Instant::now();
        loop {
            let story = self.story().await;
            let missing = expected.iter().find(|line| !story.contains(line));
            match missing {
                None => return story,
                Some(line) => assert!(
                    started.elapsed() < Duration::from_secs(15),
                    "missing {line:?} in {story:#?}"
                ),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn ns(&self) -> &str {
        self.namespace.name()
    }

    pub async fn kubectl_apply(&self, manifest: Value) {
        let params = PatchParams::apply("kubectl").force();
        let applied = self
            .deployments
            .patch("podinfo", &params, &Patch::Apply(manifest))
            .await;
        applied.expect("the target is applied");
    }

    /// The namespace of the operator's ServiceAccount and Role (`fledge-system`).
    pub fn operator_ns(&self) -> &str {
        &self.cluster.operator_identity().namespace
    }

    /// The binary's flags that scope it to the stage: `-namespace=<the stage's>` and
    /// `-flagger-lease-namespace=<the operator's>`. Flagger's Lease is looked for in the
    /// operator's own namespace, where the shipped Role lets it read it (given `-namespace`,
    /// the binary would look in the watched namespace, which the shipped rights do not cover).
    pub fn operator_scope(&self) -> [String; 2] {
        [
            format!("-namespace={}", self.ns()),
            format!("-flagger-lease-namespace={}", self.operator_ns()),
        ]
    }

    /// Starts the operator binary as its ServiceAccount with `flags` after
    /// [`Stage::operator_scope`].
    pub fn start_operator(&self, flags: &[&str]) -> operator_process::Operator {
        let scope = self.operator_scope();
        let mut all: Vec<&str> = scope.iter().map(String::as_str).collect();
        all.extend_from_slice(flags);
        let operator = operator_process::Operator::spawn(
            self.cluster.operator_kubeconfig_path(),
            "fledge-operator",
            &all,
        );
        // A test binary killed outright leaves it to the next run's sweep.
        self.cluster
            .adopt(operator.pid())
            .expect("the operator is recorded");
        operator
    }

    /// Runs the operator's controller as its ServiceAccount with `flags` (as the binary does)
    /// until the sender is used.
    pub fn run_operator(
        &self,
        flags: &[&str],
    ) -> (oneshot::Sender<()>, JoinHandle<fledge_operator::Result<()>>) {
        let namespace = format!("-namespace={}", self.ns());
        let mut command_line = vec!["fledge-operator", namespace.as_str()];
        command_line.extend_from_slice(flags);
        let config = OperatorConfig::try_parse_args(command_line);
        let config = config.expect("valid flags");
        let client = self.cluster.operator_client();
        let (stop, stopped) = oneshot::channel::<()>();
        let operator = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            controller::run(&config, client, shutdown).await
        });
        (stop, operator)
    }

    pub async fn replicas(&self, name: &str) -> Option<i32> {
        let deployment = self
            .deployments
            .get(name)
            .await
            .expect("the Deployment exists");
        deployment.spec.and_then(|s| s.replicas)
    }

    pub async fn primary_image(&self) -> Option<String> {
        image(
            &self
                .deployments
                .get("podinfo-primary")
                .await
                .expect("the primary exists"),
        )
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            assert_operator_never_forbidden(&self.cluster);
        }
    }
}

/// Shows the operator's log lines in the test's output (printed when it fails).
pub fn capture_logs() -> tracing::subscriber::DefaultGuard {
    let logs = fledge_operator::logging::subscriber(
        fledge_operator::config::LogLevel::Info,
        tracing_subscriber::fmt::TestWriter::new(),
    );
    tracing::subscriber::set_default(logs)
}
