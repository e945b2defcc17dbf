//! A real kube-apiserver with the Fledge and mesh CRDs, one namespace per test.

use fledge_api::Canary;
use fledge_testkit::{LocalCluster, TempNamespace};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};

/// A running control plane and a namespace for one test.
pub struct Env {
    /// Dropped last: the control plane.
    pub cluster: LocalCluster,
    /// The test's namespace.
    pub namespace: TempNamespace,
    /// An admin client.
    pub client: kube::Client,
}

impl Env {
    /// Starts a control plane with Fledge's CRDs and the real mesh CRDs installed.
    pub async fn start(prefix: &str) -> Self {
        let cluster = match LocalCluster::start().await {
            Ok(cluster) => cluster,
            Err(e) => panic!("the router tests need a local control plane: {e}"),
        };
        cluster
            .install_fledge_crds()
            .await
            .expect("Fledge CRDs install");
        let source = cluster
            .install_mesh_crds()
            .await
            .expect("mesh CRDs install");
        assert!(
            matches!(source, fledge_testkit::MeshCrdSource::Reference(_)),
            "the router tests check objects against the real mesh schemas in fledge-testkit/crds/upstream"
        );
        let namespace = cluster.temp_namespace(prefix).await.expect("a namespace");
        let client = cluster.client();
        Self {
            cluster,
            namespace,
            client,
        }
    }

    /// The test namespace's name.
    pub fn ns(&self) -> &str {
        self.namespace.name()
    }

    /// Creates the Canary `podinfo` with `spec` (YAML indented by 2) in the test namespace.
    pub async fn create_canary(&self, spec: &str) -> Canary {
        let mut canary = super::canary(spec);
        canary.metadata.namespace = Some(self.ns().to_owned());
        canary.metadata.uid = None;
        canary.status = None;
        let api: Api<Canary> = Api::namespaced(self.client.clone(), self.ns());
        api.create(&PostParams::default(), &canary)
            .await
            .expect("the Canary is accepted")
    }

    /// The object `name` of `resource`, which must exist.
    pub async fn get(&self, resource: &ApiResource, name: &str) -> DynamicObject {
        self.get_opt(resource, name)
            .await
            .unwrap_or_else(|| panic!("{} {name} exists in {}", resource.kind, self.ns()))
    }

    /// The object `name` of `resource`, if it exists.
    pub async fn get_opt(&self, resource: &ApiResource, name: &str) -> Option<DynamicObject> {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), self.ns(), resource);
        api.get_opt(name).await.expect("get works")
    }

    /// Applies `object` server-side as another field manager (a user or their CD tool).
    pub async fn apply_as(
        &self,
        manager: &str,
        resource: &ApiResource,
        object: serde_json::Value,
    ) -> DynamicObject {
        let name = object["metadata"]["name"]
            .as_str()
            .expect("a name")
            .to_owned();
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), self.ns(), resource);
        api.patch(
            &name,
            &PatchParams::apply(manager).force(),
            &Patch::Apply(&object),
        )
        .await
        .expect("the user's apply is accepted")
    }

    /// A JSON merge patch by another client (`kubectl edit`, `kubectl label`).
    pub async fn merge_patch(
        &self,
        resource: &ApiResource,
        name: &str,
        patch: serde_json::Value,
    ) -> DynamicObject {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), self.ns(), resource);
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("the user's edit is accepted")
    }
}

/// The resourceVersion of an object.
pub fn version_of(object: &DynamicObject) -> String {
    object.metadata.resource_version.clone().unwrap_or_default()
}

/// Whether the object names the Canary as its controller.
pub fn owned_by(object: &DynamicObject, canary: &Canary) -> bool {
    object.metadata.owner_references.iter().flatten().any(|o| {
        o.kind == "Canary"
            && o.controller == Some(true)
            && Some(&o.uid) == canary.metadata.uid.as_ref()
    })
}

/// Asserts that everything in `expected` is in `actual` with the same value: the server kept
/// every rendered field (nothing pruned by the schema), while it may have added defaults.
pub fn assert_kept(actual: &serde_json::Value, expected: &serde_json::Value) {
    fn walk(actual: &serde_json::Value, expected: &serde_json::Value, path: &str) {
        match (actual, expected) {
            (serde_json::Value::Object(a), serde_json::Value::Object(e)) => {
                for (key, value) in e {
                    let at = format!("{path}.{key}");
                    let found = a
                        .get(key)
                        .unwrap_or_else(|| panic!("{at} was dropped by the server"));
                    walk(found, value, &at);
                }
            }
            (serde_json::Value::Array(a), serde_json::Value::Array(e)) => {
                assert_eq!(
                    a.len(),
                    e.len(),
                    "{path} has {} items on the server, {} rendered",
                    a.len(),
                    e.len()
                );
                for (index, (x, y)) in a.iter().zip(e).enumerate() {
                    walk(x, y, &format!("{path}[{index}]"));
                }
            }
            (a, e) => assert_eq!(a, e, "{path} differs on the server"),
        }
    }
    walk(actual, expected, "");
}
