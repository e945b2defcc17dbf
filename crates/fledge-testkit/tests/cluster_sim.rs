//! ClusterSim on the real API server: Deployments become ready after the delay, a template
//! that never gets ready exceeds its progress deadline, and HPAs keep their target in range.

use std::time::{Duration, Instant};

use fledge_testkit::{ClusterSim, ClusterSimConfig, LocalCluster};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use kube::api::{Api, Patch, PatchParams};

fn deployment_yaml(name: &str, env: &str) -> String {
    format!(
        r"
apiVersion: apps/v1
kind: Deployment
metadata: {{ name: {name} }}
spec:
  replicas: 2
  progressDeadlineSeconds: 3
  selector: {{ matchLabels: {{ app: {name} }} }}
  template:
    metadata: {{ labels: {{ app: {name} }} }}
    spec:
      containers:
      - name: app
        image: ghcr.io/stefanprodan/podinfo:6.0.0
        env: [{env}]
"
    )
}

fn condition(d: &Deployment, type_: &str) -> Option<(String, String)> {
    d.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone().unwrap_or_default()))
}

async fn wait_for<F: Fn(&Deployment) -> bool>(
    api: &Api<Deployment>,
    name: &str,
    timeout: Duration,
    what: &str,
    check: F,
) -> (Deployment, Duration) {
    let start = Instant::now();
    loop {
        let d = api.get(name).await.expect("get deployment");
        if check(&d) {
            return (d, start.elapsed());
        }
        assert!(
            start.elapsed() < timeout,
            "{what}: not reached after {timeout:?}; status {:?}",
            d.status
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn deployments_become_ready_after_the_delay_and_bad_ones_exceed_their_deadline() {
    let cluster = LocalCluster::start().await.expect("local control plane");
    let ns = cluster.temp_namespace("sim").await.expect("namespace");
    // Long enough that the "not ready yet" reads below fall inside it on a busy machine.
    let delay = Duration::from_secs(4);
    let _sim = ClusterSim::start(
        cluster.client(),
        ClusterSimConfig {
            ready_delay: delay,
            namespace: Some(ns.name().to_owned()),
        },
    );
    let api: Api<Deployment> = Api::namespaced(cluster.client(), ns.name());

    let applied_at = Instant::now();
    cluster
        .apply_yaml(&deployment_yaml("podinfo", ""), ns.name())
        .await
        .expect("apply");
    let (d, _) = wait_for(&api, "podinfo", Duration::from_secs(5), "observed", |d| {
        d.status.as_ref().and_then(|s| s.observed_generation) == Some(1)
    })
    .await;
    assert_eq!(
        d.status
            .as_ref()
            .and_then(|s| s.available_replicas)
            .unwrap_or(0),
        0,
        "not ready before the delay"
    );
    assert_eq!(
        condition(&d, "Progressing"),
        Some(("True".into(), "ReplicaSetUpdated".into()))
    );
    let (d, _) = wait_for(&api, "podinfo", Duration::from_secs(15), "ready", |d| {
        d.status.as_ref().and_then(|s| s.available_replicas) == Some(2)
    })
    .await;
    let waited = applied_at.elapsed();
    assert_eq!(
        condition(&d, "Available"),
        Some(("True".into(), "MinimumReplicasAvailable".into()))
    );
    assert_eq!(
        condition(&d, "Progressing"),
        Some(("True".into(), "NewReplicaSetAvailable".into()))
    );
    assert!(
        waited >= delay,
        "ready {waited:?} after the apply, before the delay"
    );

    new_revision_restarts_the_clock(&api).await;
    never_ready_exceeds_the_deadline(&cluster, ns.name(), &api).await;
}

async fn new_revision_restarts_the_clock(api: &Api<Deployment>) {
    // A new revision restarts the clock: the spec change bumps the generation.
    let patch = serde_json::json!({ "spec": { "template": { "metadata": { "annotations": { "rev": "2" } } } } });
    api.patch("podinfo", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("new revision");
    let (d, _) = wait_for(
        api,
        "podinfo",
        Duration::from_secs(5),
        "generation 2 observed",
        |d| d.status.as_ref().and_then(|s| s.observed_generation) == Some(2),
    )
    .await;
    // A rolling update: the old pods keep serving while none of the new ones is ready.
    let status = d.status.clone().unwrap_or_default();
    assert_eq!(
        (
            status.updated_replicas.unwrap_or(0),
            status.available_replicas
        ),
        (0, Some(2))
    );
    wait_for(
        api,
        "podinfo",
        Duration::from_secs(15),
        "generation 2 ready",
        |d| d.status.as_ref().and_then(|s| s.updated_replicas) == Some(2),
    )
    .await;
}

async fn never_ready_exceeds_the_deadline(
    cluster: &LocalCluster,
    namespace: &str,
    api: &Api<Deployment>,
) {
    // `kubectl set env deploy/bad FLEDGE_SIM_READY=false`: never ready, then the deadline.
    cluster
        .apply_yaml(
            &deployment_yaml("bad", "{ name: FLEDGE_SIM_READY, value: \"false\" }"),
            namespace,
        )
        .await
        .expect("apply bad");
    let (d, waited) = wait_for(
        api,
        "bad",
        Duration::from_secs(15),
        "deadline exceeded",
        |d| {
            condition(d, "Progressing")
                .is_some_and(|(_, reason)| reason == "ProgressDeadlineExceeded")
        },
    )
    .await;
    assert!(
        waited >= Duration::from_secs(2),
        "deadline of 3 s reported after {waited:?}"
    );
    assert_eq!(
        condition(&d, "Progressing").map(|c| c.0),
        Some("False".into())
    );
    assert_eq!(
        d.status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0),
        0
    );
}

#[tokio::test]
async fn daemonsets_and_hpas_are_simulated() {
    let cluster = LocalCluster::start().await.expect("local control plane");
    let ns = cluster.temp_namespace("sim").await.expect("namespace");
    let _sim = ClusterSim::start(
        cluster.client(),
        ClusterSimConfig {
            ready_delay: Duration::from_millis(200),
            namespace: Some(ns.name().to_owned()),
        },
    );
    let manifests = r"
apiVersion: apps/v1
kind: DaemonSet
metadata: { name: agent }
spec:
  selector: { matchLabels: { app: agent } }
  template:
    metadata: { labels: { app: agent } }
    spec: { containers: [{ name: agent, image: agent }] }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: web }
spec:
  replicas: 1
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web } }
    spec: { containers: [{ name: web, image: web }] }
---
apiVersion: autoscaling/v2beta2
kind: HorizontalPodAutoscaler
metadata: { name: web }
spec:
  scaleTargetRef: { apiVersion: apps/v1, kind: Deployment, name: web }
  minReplicas: 3
  maxReplicas: 5
  metrics: [{ type: Resource, resource: { name: cpu, target: { type: Utilization, averageUtilization: 80 } } }]
";
    cluster
        .apply_yaml(manifests, ns.name())
        .await
        .expect("apply");
    let daemonsets: Api<DaemonSet> = Api::namespaced(cluster.client(), ns.name());
    let deployments: Api<Deployment> = Api::namespaced(cluster.client(), ns.name());
    let start = Instant::now();
    loop {
        let ds = daemonsets
            .get("agent")
            .await
            .expect("daemonset")
            .status
            .unwrap_or_default();
        let web = deployments.get("web").await.expect("deployment");
        let replicas = web.spec.as_ref().and_then(|s| s.replicas);
        let available = web.status.as_ref().and_then(|s| s.available_replicas);
        if ds.number_ready == 1
            && ds.observed_generation == Some(1)
            && replicas == Some(3)
            && available == Some(3)
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "daemonset {ds:?}; web replicas {replicas:?} available {available:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
