//! The workload side against a real kube-apiserver: the primary made from a target, config
//! tracking, the primary autoscaler and scaling, each written with server-side apply and
//! idempotent on the server itself (a second apply leaves the resourceVersion alone).

use std::collections::BTreeMap;

use fledge_api::Canary;
use fledge_operator::workload::apply::{Applied, FIELD_MANAGER, WorkloadApplier};
use fledge_operator::workload::autoscaler::AutoscalingVersion;
use fledge_operator::workload::config_tracking::{
    ConfigSources, TrackedConfigs, referenced_configs,
};
use fledge_operator::workload::primary::PROMOTION_ID_ANNOTATION;
use fledge_operator::workload::revision::revision;
use fledge_operator::workload::scaling::SCALE_TO_ZERO_NODE_SELECTOR;
use fledge_operator::workload::{TargetKind, Workload, WorkloadSettings, primary_name};
use fledge_testkit::{LocalCluster, TempNamespace};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, PodSpec, Secret};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// A control plane with Fledge's CRDs, one namespace, a client and the applier under test.
struct Env {
    _cluster: LocalCluster,
    namespace: TempNamespace,
    client: kube::Client,
    applier: WorkloadApplier,
}

/// What one tick of the operator sees of a target: the target, its configs and its primary.
struct Observed {
    target: Workload,
    configs: TrackedConfigs,
    sources: ConfigSources,
    primary: Option<Workload>,
}

impl Env {
    async fn start(prefix: &str) -> Self {
        let cluster = LocalCluster::start().await.expect("a local control plane");
        cluster
            .install_fledge_crds()
            .await
            .expect("Fledge's CRDs install");
        cluster
            .install_operator_rbac()
            .await
            .expect("the operator's ServiceAccount and RBAC install");
        let namespace = cluster.temp_namespace(prefix).await.expect("a namespace");
        let client = cluster.client();
        let settings = WorkloadSettings {
            include_label_prefixes: vec!["team".into()],
            ..WorkloadSettings::default()
        };
        // The operator's workload code acts as its ServiceAccount; the test's own set-up and
        // reads as the admin.
        let applier = WorkloadApplier::new(cluster.operator_client(), settings);
        Self {
            _cluster: cluster,
            namespace,
            client,
            applier,
        }
    }

    fn ns(&self) -> &str {
        self.namespace.name()
    }

    fn api<K: kube::Resource<Scope = NamespaceResourceScope, DynamicType = ()>>(&self) -> Api<K> {
        Api::namespaced(self.client.clone(), self.ns())
    }

    async fn get<K>(&self, name: &str) -> K
    where
        K: kube::Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + std::fmt::Debug
            + DeserializeOwned,
    {
        self.api::<K>()
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("get {name}: {e}"))
    }

    /// Applies a manifest as a user would (`kubectl apply --server-side`).
    async fn kubectl_apply<K>(&self, manifest: Value)
    where
        K: kube::Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + std::fmt::Debug
            + Serialize
            + DeserializeOwned,
    {
        let name = manifest["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let params = PatchParams::apply("kubectl").force();
        let applied = self
            .api::<K>()
            .patch(&name, &params, &Patch::Apply(&manifest))
            .await;
        applied.unwrap_or_else(|e| panic!("apply {name}: {e}"));
    }

    async fn create_canary(&self, autoscaler: bool) -> Canary {
        let mut canary: Canary = fledge_api::yaml::from_str(&format!(
            "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {{ name: podinfo, namespace: {} }}\nspec:\n  \
             targetRef: {{ apiVersion: apps/v1, kind: Deployment, name: podinfo }}\n  service: {{ port: 9898 }}\n",
            self.ns()
        ))
        .expect("a valid Canary");
        if autoscaler {
            canary.spec.autoscaler_ref = Some(fledge_api::canary::AutoscalerReference {
                api_version: Some("autoscaling/v2beta2".into()),
                kind: Some("HorizontalPodAutoscaler".into()),
                name: "podinfo".into(),
                ..Default::default()
            });
        }
        let created = self
            .api::<Canary>()
            .create(&PostParams::default(), &canary)
            .await;
        created.expect("the Canary is created")
    }

    /// Reads the target, its configs and its primary, as a tick would from the caches.
    async fn observe(&self, kind: TargetKind) -> Observed {
        let ns = self.ns();
        let target = self
            .applier
            .get_workload(kind, ns, "podinfo")
            .await
            .expect("the target is read");
        let target = target.expect("the target exists");
        let spec = target
            .template()
            .and_then(|t| t.spec.clone())
            .unwrap_or_default();
        let references = referenced_configs(&spec);
        let sources = self
            .applier
            .get_config_sources(ns, &references)
            .await
            .expect("configs are read");
        let configs =
            TrackedConfigs::resolve(ns, &references, &sources).expect("the configs exist");
        let primary = self
            .applier
            .get_workload(kind, ns, &primary_name("podinfo"))
            .await;
        Observed {
            target,
            configs,
            sources,
            primary: primary.expect("the primary is read"),
        }
    }

    /// Initializes the primary from what is observed.
    async fn ensure_primary(&self, canary: &Canary, kind: TargetKind) -> Applied {
        let seen = self.observe(kind).await;
        let applied = self
            .applier
            .ensure_primary(
                canary,
                &seen.target,
                &seen.configs,
                &seen.sources,
                seen.primary.as_ref(),
            )
            .await;
        applied.expect("the primary is initialized")
    }

    /// Promotes; `primary_known` hands the observed primary over, otherwise the apply is
    /// sent whatever the primary holds.
    async fn promote(&self, canary: &Canary, primary_known: bool) -> Applied {
        let seen = self.observe(TargetKind::Deployment).await;
        let existing = seen.primary.as_ref().filter(|_| primary_known);
        let applied = self
            .applier
            .promote(canary, &seen.target, &seen.configs, &seen.sources, existing)
            .await;
        applied.expect("the primary is promoted")
    }

    async fn scale_target(&self, kind: TargetKind, replicas: u32) -> Applied {
        let seen = self.observe(kind).await;
        self.applier
            .scale_target(&seen.target, replicas)
            .await
            .expect("the target scales")
    }

    async fn replicas(&self, name: &str) -> Option<i32> {
        self.get::<Deployment>(name)
            .await
            .spec
            .and_then(|s| s.replicas)
    }
}

fn podinfo(image: &str, replicas: Option<i32>) -> Value {
    let mut manifest = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": "podinfo", "labels": { "app": "podinfo", "team": "checkout", "internal": "x" } },
        "spec": {
            "selector": { "matchLabels": { "app": "podinfo" } },
            "template": {
                "metadata": { "labels": { "app": "podinfo" } },
                "spec": {
                    "containers": [{
                        "name": "podinfod",
                        "image": image,
                        "env": [{ "name": "TOKEN", "valueFrom": { "secretKeyRef": { "name": "podinfo-token", "key": "token" } } }],
                        "volumeMounts": [{ "name": "config", "mountPath": "/etc/podinfo" }],
                    }],
                    "volumes": [{ "name": "config", "configMap": { "name": "podinfo-config" } }],
                },
            },
        },
    });
    if let Some(replicas) = replicas {
        manifest["spec"]["replicas"] = json!(replicas);
    }
    manifest
}

async fn create_configs(env: &Env, color: &str) {
    env.kubectl_apply::<ConfigMap>(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": { "name": "podinfo-config", "labels": { "team": "checkout" } },
        "data": { "color": color },
    }))
    .await;
    env.kubectl_apply::<Secret>(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": { "name": "podinfo-token" },
        "type": "Opaque",
        "stringData": { "token": "s3cr3t" },
    }))
    .await;
}

/// An environment with the configs, the podinfo Deployment and its Canary.
async fn podinfo_env(prefix: &str, replicas: i32, autoscaler: bool) -> (Env, Canary) {
    let env = Env::start(prefix).await;
    create_configs(&env, "blue").await;
    env.kubectl_apply::<Deployment>(podinfo("podinfo:6.0.0", Some(replicas)))
        .await;
    let canary = env.create_canary(autoscaler).await;
    (env, canary)
}

fn version(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    meta.resource_version.clone().unwrap_or_default()
}

fn label<'a>(labels: Option<&'a BTreeMap<String, String>>, key: &str) -> Option<&'a str> {
    labels?.get(key).map(String::as_str)
}

fn pod_spec(deployment: Deployment) -> PodSpec {
    deployment
        .spec
        .and_then(|s| s.template.spec)
        .unwrap_or_default()
}

fn promotion_id(deployment: &Deployment) -> Option<String> {
    let template = deployment.spec.as_ref()?.template.metadata.as_ref()?;
    template
        .annotations
        .as_ref()?
        .get(PROMOTION_ID_ANNOTATION)
        .cloned()
}

#[tokio::test]
async fn the_primary_is_made_from_the_target_and_owned_by_the_canary() {
    let (env, canary) = podinfo_env("primary", 2, false).await;
    assert!(env.observe(TargetKind::Deployment).await.primary.is_none());
    assert_eq!(
        env.ensure_primary(&canary, TargetKind::Deployment).await,
        Applied::Written
    );

    let primary = env.get::<Deployment>("podinfo-primary").await;
    let labels = primary.metadata.labels.as_ref();
    assert_eq!(label(labels, "app"), Some("podinfo-primary"));
    assert_eq!(label(labels, "team"), Some("checkout"));
    assert_eq!(
        label(labels, "internal"),
        None,
        "only labels with an included prefix travel"
    );
    let owners = primary
        .metadata
        .owner_references
        .clone()
        .unwrap_or_default();
    assert_eq!(owners.len(), 1);
    assert_eq!(Some(&owners[0].uid), canary.metadata.uid.as_ref());
    assert_eq!(
        (owners[0].kind.as_str(), owners[0].controller),
        ("Canary", Some(true))
    );
    let managers: Vec<_> = primary.metadata.managed_fields.iter().flatten().collect();
    assert!(
        managers
            .iter()
            .any(|m| m.manager.as_deref() == Some(FIELD_MANAGER)
                && m.operation.as_deref() == Some("Apply"))
    );
    let spec = primary.spec.unwrap_or_default();
    assert_eq!(spec.replicas, Some(2));
    assert_eq!(
        label(spec.selector.match_labels.as_ref(), "app"),
        Some("podinfo-primary")
    );
    let pod_labels = spec.template.metadata.and_then(|m| m.labels);
    assert_eq!(label(pod_labels.as_ref(), "app"), Some("podinfo-primary"));
}

#[tokio::test]
async fn applying_the_primary_twice_changes_nothing() {
    let (env, canary) = podinfo_env("idempotent", 2, false).await;
    env.ensure_primary(&canary, TargetKind::Deployment).await;
    let before = version(&env.get::<Deployment>("podinfo-primary").await.metadata);

    // The same render sent again, nothing skipped client-side: the server changes nothing.
    assert_eq!(env.promote(&canary, false).await, Applied::Written);
    assert_eq!(
        version(&env.get::<Deployment>("podinfo-primary").await.metadata),
        before
    );

    // With the primary known, nothing is even sent; an existing primary is not re-initialized.
    assert_eq!(env.promote(&canary, true).await, Applied::Unchanged);
    assert_eq!(
        env.ensure_primary(&canary, TargetKind::Deployment).await,
        Applied::Unchanged
    );
    assert_eq!(
        version(&env.get::<Deployment>("podinfo-primary").await.metadata),
        before
    );
}

#[tokio::test]
async fn promotion_copies_the_canary_template_and_the_target_scales_to_and_from_zero() {
    let (env, canary) = podinfo_env("promote", 2, false).await;
    env.ensure_primary(&canary, TargetKind::Deployment).await;
    let seen = env.observe(TargetKind::Deployment).await;
    let v1 = revision(&seen.target, &seen.configs).expect("a revision");

    // Initialized: the target goes to zero, which is no new revision.
    assert_eq!(
        env.scale_target(TargetKind::Deployment, 0).await,
        Applied::Written
    );
    assert_eq!(env.replicas("podinfo").await, Some(0));
    assert_eq!(
        env.scale_target(TargetKind::Deployment, 0).await,
        Applied::Unchanged
    );
    let seen = env.observe(TargetKind::Deployment).await;
    assert_eq!(revision(&seen.target, &seen.configs).ok(), Some(v1.clone()));

    // `kubectl set image`: a new revision; the canary scales up from zero.
    env.kubectl_apply::<Deployment>(podinfo("podinfo:6.0.1", None))
        .await;
    let seen = env.observe(TargetKind::Deployment).await;
    assert_ne!(revision(&seen.target, &seen.configs).ok(), Some(v1));
    assert_eq!(
        env.scale_target(TargetKind::Deployment, 2).await,
        Applied::Written
    );
    assert_eq!(env.replicas("podinfo").await, Some(2));

    // Promotion: the primary runs the new image and its pods roll.
    let old_primary = env.get::<Deployment>("podinfo-primary").await;
    assert_eq!(env.promote(&canary, true).await, Applied::Written);
    let primary = env.get::<Deployment>("podinfo-primary").await;
    assert_ne!(promotion_id(&primary), promotion_id(&old_primary));
    assert_eq!(primary.spec.as_ref().and_then(|s| s.replicas), Some(2));
    assert_eq!(
        pod_spec(primary).containers[0].image.as_deref(),
        Some("podinfo:6.0.1")
    );

    // Finalising: the canary goes back to zero; the primary keeps serving.
    assert_eq!(
        env.scale_target(TargetKind::Deployment, 0).await,
        Applied::Written
    );
    assert_eq!(env.replicas("podinfo-primary").await, Some(2));
}

#[tokio::test]
async fn tracked_configs_are_copied_to_primary_names_and_the_primary_reads_the_copies() {
    let (env, canary) = podinfo_env("configs", 1, false).await;
    let checksums = env
        .observe(TargetKind::Deployment)
        .await
        .configs
        .checksums();
    let keys: Vec<&str> = checksums.keys().map(String::as_str).collect();
    assert_eq!(keys, ["configmap/podinfo-config", "secret/podinfo-token"]);
    env.ensure_primary(&canary, TargetKind::Deployment).await;

    let copy = env.get::<ConfigMap>("podinfo-config-primary").await;
    assert_eq!(label(copy.data.as_ref(), "color"), Some("blue"));
    assert_eq!(
        label(copy.metadata.labels.as_ref(), "team"),
        Some("checkout")
    );
    assert_eq!(
        copy.metadata.owner_references.unwrap_or_default()[0].kind,
        "Canary"
    );
    let secret = env.get::<Secret>("podinfo-token-primary").await;
    let token = secret
        .data
        .unwrap_or_default()
        .get("token")
        .map(|b| b.0.clone());
    assert_eq!(token.as_deref(), Some(b"s3cr3t".as_slice()));

    let pod = pod_spec(env.get::<Deployment>("podinfo-primary").await);
    let volume = pod.volumes.unwrap_or_default()[0]
        .config_map
        .clone()
        .map(|c| c.name);
    assert_eq!(volume.as_deref(), Some("podinfo-config-primary"));
    let env_var = pod.containers[0].env.clone().unwrap_or_default()[0]
        .value_from
        .clone();
    let secret_ref = env_var.and_then(|v| v.secret_key_ref).map(|s| s.name);
    assert_eq!(secret_ref.as_deref(), Some("podinfo-token-primary"));

    // Syncing again writes nothing.
    let seen = env.observe(TargetKind::Deployment).await;
    let synced = env
        .applier
        .sync_primary_configs(&canary, &seen.configs, &seen.sources)
        .await;
    assert_eq!(synced.ok(), Some(0));
}

#[tokio::test]
async fn a_config_change_is_a_new_checksum_and_promotion_updates_the_copy() {
    let (env, canary) = podinfo_env("config-change", 1, false).await;
    env.ensure_primary(&canary, TargetKind::Deployment).await;
    let blue = env
        .observe(TargetKind::Deployment)
        .await
        .configs
        .checksums();
    let copy_version = version(
        &env.get::<ConfigMap>("podinfo-config-primary")
            .await
            .metadata,
    );

    create_configs(&env, "green").await;
    let green = env
        .observe(TargetKind::Deployment)
        .await
        .configs
        .checksums();
    assert_ne!(
        green["configmap/podinfo-config"],
        blue["configmap/podinfo-config"]
    );
    assert_eq!(green["secret/podinfo-token"], blue["secret/podinfo-token"]);
    let before = promotion_id(&env.get::<Deployment>("podinfo-primary").await);
    env.promote(&canary, true).await;
    let copy = env.get::<ConfigMap>("podinfo-config-primary").await;
    assert_ne!(version(&copy.metadata), copy_version);
    assert_eq!(label(copy.data.as_ref(), "color"), Some("green"));
    assert_ne!(
        promotion_id(&env.get::<Deployment>("podinfo-primary").await),
        before,
        "the pods roll"
    );

    // Opting the ConfigMap out stops tracking it: the primary reads the target's own ConfigMap.
    env.kubectl_apply::<ConfigMap>(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": { "name": "podinfo-config", "annotations": { "flagger.app/config-tracking": "disabled" } },
        "data": { "color": "green" },
    }))
    .await;
    let tracked = env
        .observe(TargetKind::Deployment)
        .await
        .configs
        .checksums();
    assert_eq!(
        tracked.keys().map(String::as_str).collect::<Vec<_>>(),
        ["secret/podinfo-token"]
    );
    env.promote(&canary, true).await;
    let pod = pod_spec(env.get::<Deployment>("podinfo-primary").await);
    let volume = pod.volumes.unwrap_or_default()[0]
        .config_map
        .clone()
        .map(|c| c.name);
    assert_eq!(volume.as_deref(), Some("podinfo-config"));
}

fn target_hpa(version: AutoscalingVersion) -> Value {
    json!({
        "apiVersion": version.api_version(),
        "kind": "HorizontalPodAutoscaler",
        "metadata": { "name": "podinfo", "labels": { "team": "checkout" } },
        "spec": {
            "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo" },
            "minReplicas": 2,
            "maxReplicas": 4,
            "metrics": [{ "type": "Resource", "resource": { "name": "cpu", "target": { "type": "Utilization", "averageUtilization": 99 } } }],
        },
    })
}

#[tokio::test]
async fn the_primary_autoscaler_targets_the_primary_in_the_served_version() {
    let (env, canary) = podinfo_env("hpa", 2, true).await;
    let served = AutoscalingVersion::detect(&env.client)
        .await
        .expect("discovery answers");
    // The local control plane is Kubernetes 1.20, which predates autoscaling/v2.
    assert_eq!(served, AutoscalingVersion::V2beta2);
    let hpas: Api<DynamicObject> =
        Api::namespaced_with(env.client.clone(), env.ns(), &served.resource());
    let params = PatchParams::apply("kubectl").force();
    let target = hpas
        .patch("podinfo", &params, &Patch::Apply(target_hpa(served)))
        .await;
    let target = target.expect("the target HPA is created");

    let reconcile = |existing: Option<DynamicObject>| {
        let (applier, canary, target) = (&env.applier, &canary, &target);
        async move {
            let outcome = applier
                .reconcile_primary_autoscaler(canary, served, target, existing.as_ref())
                .await;
            outcome.expect("the primary HPA is applied")
        }
    };
    assert_eq!(reconcile(None).await, Applied::Written);
    let primary = hpas
        .get("podinfo-primary")
        .await
        .expect("the primary HPA exists");
    assert_eq!(
        primary.data["spec"]["scaleTargetRef"]["name"],
        "podinfo-primary"
    );
    assert_eq!(
        (
            &primary.data["spec"]["minReplicas"],
            &primary.data["spec"]["maxReplicas"]
        ),
        (&json!(2), &json!(4))
    );
    assert_eq!(
        primary.data["spec"]["metrics"],
        target.data["spec"]["metrics"]
    );
    assert_eq!(
        primary
            .metadata
            .owner_references
            .clone()
            .unwrap_or_default()[0]
            .kind,
        "Canary"
    );

    // Applied again (sent, then skipped), nothing changes.
    reconcile(None).await;
    let again = hpas
        .get("podinfo-primary")
        .await
        .expect("the primary HPA exists");
    assert_eq!(
        again.metadata.resource_version,
        primary.metadata.resource_version
    );
    assert_eq!(reconcile(Some(again)).await, Applied::Unchanged);
}

#[tokio::test]
async fn with_an_autoscaler_promotion_leaves_the_primary_replicas_to_it() {
    let (env, canary) = podinfo_env("hpa-replicas", 2, true).await;
    env.ensure_primary(&canary, TargetKind::Deployment).await;
    assert_eq!(env.replicas("podinfo-primary").await, Some(2));
    let scaled = json!({ "spec": { "replicas": 3 } });
    let patched = env
        .api::<Deployment>()
        .patch(
            "podinfo-primary",
            &PatchParams::default(),
            &Patch::Merge(scaled),
        )
        .await;
    patched.expect("the autoscaler's scaling");
    env.kubectl_apply::<Deployment>(podinfo("podinfo:6.0.1", Some(2)))
        .await;
    assert_eq!(env.promote(&canary, true).await, Applied::Written);
    assert_eq!(env.replicas("podinfo-primary").await, Some(3));
}

#[tokio::test]
async fn a_daemon_set_gets_a_primary_and_scales_to_zero_by_node_selector() {
    let env = Env::start("daemonset").await;
    create_configs(&env, "blue").await;
    let mut manifest = podinfo("podinfo:6.0.0", None);
    manifest["kind"] = json!("DaemonSet");
    env.kubectl_apply::<DaemonSet>(manifest).await;
    let mut canary = env.create_canary(false).await;
    canary.spec.target_ref.kind = Some("DaemonSet".into());
    env.ensure_primary(&canary, TargetKind::DaemonSet).await;
    let primary = env.get::<DaemonSet>("podinfo-primary").await;
    let selector = primary.spec.and_then(|s| s.selector.match_labels);
    assert_eq!(label(selector.as_ref(), "app"), Some("podinfo-primary"));
    let seen = env.observe(TargetKind::DaemonSet).await;
    let v1 = revision(&seen.target, &seen.configs).expect("a revision");

    let (key, value) = SCALE_TO_ZERO_NODE_SELECTOR;
    let node_selector = |ds: DaemonSet| {
        ds.spec
            .and_then(|s| s.template.spec)
            .and_then(|p| p.node_selector)
    };
    assert_eq!(
        env.scale_target(TargetKind::DaemonSet, 0).await,
        Applied::Written
    );
    let target = env.get::<DaemonSet>("podinfo").await;
    assert_eq!(label(node_selector(target).as_ref(), key), Some(value));
    let seen = env.observe(TargetKind::DaemonSet).await;
    assert_eq!(
        revision(&seen.target, &seen.configs).ok(),
        Some(v1),
        "scaling is no new revision"
    );
    assert_eq!(
        env.scale_target(TargetKind::DaemonSet, 0).await,
        Applied::Unchanged
    );

    assert_eq!(
        env.scale_target(TargetKind::DaemonSet, 1).await,
        Applied::Written
    );
    let target = env.get::<DaemonSet>("podinfo").await;
    assert_eq!(label(node_selector(target).as_ref(), key), None);
}
