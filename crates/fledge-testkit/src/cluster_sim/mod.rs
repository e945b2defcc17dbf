//! [`ClusterSim`]: stands in for kubelet and the workload controllers.
//!
//! There are no nodes and no pods behind the local API server. The simulator watches
//! Deployments, DaemonSets and HorizontalPodAutoscalers and writes the status the real
//! controllers would: observedGeneration, replica counts and the Progressing/Available
//! conditions, with pods becoming ready a configurable delay after each spec change. A pod
//! template with `FLEDGE_SIM_READY=false` never becomes ready and, after the Deployment's
//! `progressDeadlineSeconds`, reports `ProgressDeadlineExceeded`.

mod hpa;
pub mod workload;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use tokio::task::JoinHandle;

/// How often the simulator compares what is stored with what should be.
const TICK: Duration = Duration::from_millis(100);

/// Settings of a [`ClusterSim`].
#[derive(Debug, Clone)]
pub struct ClusterSimConfig {
    /// How long after a spec change the pods become ready.
    pub ready_delay: Duration,
    /// Only this namespace (all namespaces when `None`).
    pub namespace: Option<String>,
}

impl Default for ClusterSimConfig {
    fn default() -> Self {
        Self {
            ready_delay: Duration::from_secs(1),
            namespace: None,
        }
    }
}

/// Generations of a Deployment that never become ready: those after `after`, up to `until`.
#[derive(Clone, Copy, Debug)]
struct Hold {
    after: i64,
    until: Option<i64>,
}

impl Hold {
    fn holds(self, generation: i64) -> bool {
        generation > self.after && self.until.is_none_or(|until| generation <= until)
    }
}

/// Deployments whose rollouts are held unready, by `namespace/name`.
type Held = Arc<Mutex<HashMap<(String, String), Hold>>>;

/// A running simulator; dropping it stops it.
#[derive(Debug)]
pub struct ClusterSim {
    tasks: Vec<JoinHandle<()>>,
    deployments: Store<Deployment>,
    held: Held,
}

impl ClusterSim {
    /// Starts simulating in the background of the current tokio runtime.
    pub fn start(client: kube::Client, config: ClusterSimConfig) -> Self {
        let deployments: Api<Deployment> = api(&client, config.namespace.as_deref());
        let daemonsets: Api<DaemonSet> = api(&client, config.namespace.as_deref());
        let (deployment_store, deployment_watch) = watch(deployments);
        let (daemonset_store, daemonset_watch) = watch(daemonsets);
        let held = Held::default();
        let tasks = vec![
            deployment_watch,
            daemonset_watch,
            tokio::spawn(run_workloads(
                client.clone(),
                deployment_store.clone(),
                daemonset_store,
                config.ready_delay,
                held.clone(),
            )),
            tokio::spawn(hpa::run(client, config.namespace)),
        ];
        Self {
            tasks,
            deployments: deployment_store,
            held,
        }
    }

    /// From now on, every new rollout of the Deployment `namespace/name` (the next spec change,
    /// or its creation when it does not exist yet) never becomes ready and, after its progress
    /// deadline, reports `ProgressDeadlineExceeded`; the pods of the generation running now
    /// keep serving. A primary that cannot start, whatever its template says.
    pub fn hold_next_rollout(&self, namespace: &str, name: &str) {
        let key = (namespace.to_owned(), name.to_owned());
        let hold = Hold {
            after: self.generation(namespace, name),
            until: None,
        };
        if let Ok(mut held) = self.held.lock() {
            held.insert(key, hold);
        }
    }

    /// Lets the rollouts of `namespace/name` become ready again from its next spec change on
    /// (the generation running now stays as it is: unready if it was held).
    pub fn release(&self, namespace: &str, name: &str) {
        let key = (namespace.to_owned(), name.to_owned());
        let current = self.generation(namespace, name);
        if let Ok(mut held) = self.held.lock()
            && let Some(hold) = held.get_mut(&key)
        {
            hold.until = Some(current);
        }
    }

    fn generation(&self, namespace: &str, name: &str) -> i64 {
        self.deployments
            .get(&reflector::ObjectRef::new(name).within(namespace))
            .and_then(|d| d.metadata.generation)
            .unwrap_or(0)
    }

    /// Stops the simulator.
    pub fn stop(self) {}
}

impl Drop for ClusterSim {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn api<K>(client: &kube::Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as Resource>::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// A watch-fed cache of one kind, and the task feeding it.
fn watch<K>(api: Api<K>) -> (Store<K>, JoinHandle<()>)
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
    <K as Resource>::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .applied_objects();
    let task = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            if let Err(e) = event {
                tracing::debug!(error = %e, "cluster sim watch error");
            }
        }
    });
    (reader, task)
}

/// When each (object, generation) was first seen: readiness and deadlines count from there.
#[derive(Default)]
struct FirstSeen(HashMap<(String, i64), Instant>);

impl FirstSeen {
    fn elapsed(&mut self, uid: String, generation: i64, now: Instant) -> Duration {
        now - *self.0.entry((uid, generation)).or_insert(now)
    }
}

async fn run_workloads(
    client: kube::Client,
    deployment_store: Store<Deployment>,
    daemonset_store: Store<DaemonSet>,
    ready_delay: Duration,
    held: Held,
) {
    let mut seen = FirstSeen::default();
    let mut ticker = tokio::time::interval(TICK);
    loop {
        ticker.tick().await;
        let now = Instant::now();
        for deployment in deployment_store.state() {
            let elapsed = seen.elapsed(
                deployment.uid().unwrap_or_default(),
                deployment.metadata.generation.unwrap_or(0),
                now,
            );
            let generation = deployment.metadata.generation.unwrap_or(0);
            let key = (
                deployment.metadata.namespace.clone().unwrap_or_default(),
                deployment.name_any(),
            );
            let is_held = held
                .lock()
                .is_ok_and(|held| held.get(&key).is_some_and(|hold| hold.holds(generation)));
            let mut desired = workload::rollout_status(&deployment, elapsed, ready_delay, is_held);
            let current = deployment.status.as_ref();
            if current.is_some_and(|c| workload::same_deployment_status(c, &desired)) {
                continue;
            }
            workload::stamp_conditions(
                &mut desired,
                current,
                &Time(k8s_openapi::jiff::Timestamp::now()),
            );
            write_status(
                &namespaced::<Deployment>(&client, &deployment),
                &deployment.name_any(),
                serde_json::json!({ "status": desired }),
            )
            .await;
        }
        for daemonset in daemonset_store.state() {
            let elapsed = seen.elapsed(
                daemonset.uid().unwrap_or_default(),
                daemonset.metadata.generation.unwrap_or(0),
                now,
            );
            let desired = workload::daemonset_status(&daemonset, elapsed, ready_delay);
            if daemonset
                .status
                .as_ref()
                .is_some_and(|c| workload::same_daemonset_status(c, &desired))
            {
                continue;
            }
            write_status(
                &namespaced::<DaemonSet>(&client, &daemonset),
                &daemonset.name_any(),
                serde_json::json!({ "status": desired }),
            )
            .await;
        }
    }
}

/// The same API scoped to the object's namespace (the watch may span all namespaces).
fn namespaced<K>(client: &kube::Client, object: &K) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as Resource>::DynamicType: Default,
{
    Api::namespaced(
        client.clone(),
        object.meta().namespace.as_deref().unwrap_or("default"),
    )
}

async fn write_status<K>(api: &Api<K>, name: &str, patch: serde_json::Value)
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
{
    if let Err(e) = api
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        // The object may be gone, or changed meanwhile; the next tick sees the new state.
        tracing::debug!(name, error = %e, "cluster sim status write failed");
    }
}
