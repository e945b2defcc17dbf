//! The controller against a real kube-apiserver, with the cluster simulator making pods
//! ready: a Canary is initialized (primary, Services, target scaled to zero), and a new image
//! is detected, rolled out blue/green and promoted, every step recorded as an Event.

use std::time::{Duration, Instant};

use fledge_api::{Canary, CanaryPhase};
use fledge_operator::config::OperatorConfig;
use fledge_operator::controller;
use fledge_testkit::{ClusterSim, ClusterSimConfig, LocalCluster, TempNamespace};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

fn podinfo(image: &str, replicas: Option<i32>) -> Value {
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
async fn wait_for_phase(canaries: &Api<Canary>, phase: CanaryPhase, limit: Duration) -> Canary {
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

async fn messages(events: &Api<Event>) -> Vec<String> {
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

fn image(deployment: &Deployment) -> Option<String> {
    deployment.spec.as_ref()?.template.spec.as_ref()?.containers[0]
        .image
        .clone()
}

/// A control plane with the simulator, the podinfo Deployment and its Canary.
struct Stage {
    cluster: LocalCluster,
    namespace: TempNamespace,
    _sim: ClusterSim,
    deployments: Api<Deployment>,
    canaries: Api<Canary>,
    events: Api<Event>,
}

impl Stage {
    async fn set_up() -> Self {
        let cluster = LocalCluster::start().await.expect("a local control plane");
        cluster
            .install_fledge_crds()
            .await
            .expect("Fledge's CRDs install");
        let namespace = cluster
            .temp_namespace("controller")
            .await
            .expect("a namespace");
        let ns = namespace.name().to_owned();
        let client = cluster.client();
        let sim_config = ClusterSimConfig {
            ready_delay: Duration::from_millis(200),
            namespace: Some(ns.clone()),
        };
        let stage = Self {
            _sim: ClusterSim::start(client.clone(), sim_config),
            deployments: Api::namespaced(client.clone(), &ns),
            canaries: Api::namespaced(client.clone(), &ns),
            events: Api::namespaced(client, &ns),
            cluster,
            namespace,
        };
        stage.kubectl_apply(podinfo("podinfo:6.0.0", Some(2))).await;
        let canary: Canary = fledge_api::yaml::from_str(&format!(
            "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {{ name: podinfo, namespace: {ns} }}\nspec:\n  \
             provider: kubernetes\n  targetRef: {{ apiVersion: apps/v1, kind: Deployment, name: podinfo }}\n  \
             progressDeadlineSeconds: 60\n  service: {{ port: 9898 }}\n  analysis: {{ interval: 10s, threshold: 2, iterations: 2 }}\n"
        ))
        .expect("a valid Canary");
        let created = stage.canaries.create(&PostParams::default(), &canary).await;
        created.expect("the Canary is created");
        stage
    }

    fn ns(&self) -> &str {
        self.namespace.name()
    }

    async fn kubectl_apply(&self, manifest: Value) {
        let params = PatchParams::apply("kubectl").force();
        let applied = self
            .deployments
            .patch("podinfo", &params, &Patch::Apply(manifest))
            .await;
        applied.expect("the target is applied");
    }

    /// Runs the operator's controller (as the binary does) until the sender is used.
    fn run_operator(&self) -> (oneshot::Sender<()>, JoinHandle<fledge_operator::Result<()>>) {
        let namespace = format!("-namespace={}", self.ns());
        let config = OperatorConfig::try_parse_args([
            "fledge-operator",
            "-mesh-provider=kubernetes",
            &namespace,
        ]);
        let config = config.expect("valid flags");
        let client = self.cluster.client();
        let (stop, stopped) = oneshot::channel::<()>();
        let operator = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            controller::run(&config, client, shutdown).await
        });
        (stop, operator)
    }

    async fn replicas(&self, name: &str) -> Option<i32> {
        let deployment = self
            .deployments
            .get(name)
            .await
            .expect("the Deployment exists");
        deployment.spec.and_then(|s| s.replicas)
    }

    async fn primary_image(&self) -> Option<String> {
        image(
            &self
                .deployments
                .get("podinfo-primary")
                .await
                .expect("the primary exists"),
        )
    }
}

#[tokio::test]
async fn a_canary_is_initialized_then_a_new_image_is_detected_and_promoted() {
    // The operator's log lines go to the test's output, shown when it fails.
    let logs = fledge_operator::logging::subscriber(
        fledge_operator::config::LogLevel::Info,
        tracing_subscriber::fmt::TestWriter::new(),
    );
    let _logging = tracing::subscriber::set_default(logs);
    let stage = Stage::set_up().await;
    let ns = stage.ns().to_owned();
    let (stop, operator) = stage.run_operator();

    // Initialization: the primary serves, the target is scaled to zero, three Services exist.
    wait_for_phase(
        &stage.canaries,
        CanaryPhase::Initialized,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(
        stage.primary_image().await.as_deref(),
        Some("podinfo:6.0.0")
    );
    assert_eq!(stage.replicas("podinfo").await, Some(0));
    let services: Api<Service> = Api::namespaced(stage.cluster.client(), &ns);
    for name in ["podinfo", "podinfo-primary", "podinfo-canary"] {
        assert!(
            services
                .get_opt(name)
                .await
                .expect("services are read")
                .is_some(),
            "service {name}"
        );
    }
    let initialized = messages(&stage.events).await;
    assert!(
        initialized.contains(&format!("Initialization done! podinfo.{ns}")),
        "{initialized:#?}"
    );

    // `kubectl set image`: detected, analysed for two iterations, promoted, scaled down.
    stage.kubectl_apply(podinfo("podinfo:6.0.1", None)).await;
    let succeeded = wait_for_phase(
        &stage.canaries,
        CanaryPhase::Succeeded,
        Duration::from_secs(150),
    )
    .await;
    assert_eq!(
        stage.primary_image().await.as_deref(),
        Some("podinfo:6.0.1")
    );
    assert_eq!(stage.replicas("podinfo").await, Some(0));
    let status = succeeded.status.unwrap_or_default();
    assert_eq!(status.last_applied_spec, status.last_promoted_spec);
    let story = messages(&stage.events).await;
    for expected in [
        format!("New revision detected! Scaling up podinfo.{ns}"),
        format!("Advance podinfo.{ns} canary iteration 2/2"),
        format!("Copying podinfo.{ns} template spec to podinfo-primary.{ns}"),
        format!("Promotion completed! Scaling down podinfo.{ns}"),
    ] {
        assert!(
            story.contains(&expected),
            "missing {expected:?} in {story:#?}"
        );
    }

    let _ = stop.send(());
    let finished = tokio::time::timeout(Duration::from_secs(10), operator).await;
    assert!(
        matches!(finished, Ok(Ok(Ok(())))),
        "the controller stops cleanly: {finished:?}"
    );
}
