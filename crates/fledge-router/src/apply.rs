//! Writing rendered objects: server-side apply with Fledge's field manager, owner references
//! to the Canary, adoption of objects users created first, and retries on conflicts.

use std::time::Duration;

use kube::Client;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::metadata::{CanaryIdentity, KUBECTL_LAST_APPLIED, ORIGINAL_CONFIGURATION};
use crate::object::TrafficObject;

/// The field manager of everything Fledge writes.
pub const FIELD_MANAGER: &str = "fledge";

/// How often a conflicting write is tried before the error is returned.
const ATTEMPTS: u32 = 4;

/// Reads and server-side-applies objects for one Canary.
#[derive(Clone)]
pub struct Applier {
    client: Client,
}

impl std::fmt::Debug for Applier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Applier").finish_non_exhaustive()
    }
}

impl Applier {
    /// An applier writing through `client`.
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// The object `name` of `resource` in `namespace`, if it exists.
    pub async fn get(
        &self,
        resource: &ApiResource,
        namespace: &str,
        name: &str,
    ) -> Result<Option<DynamicObject>> {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), namespace, resource);
        api.get_opt(name).await.map_err(|source| Error::Kube {
            verb: "get",
            kind: resource.kind.clone(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            source: Box::new(source),
        })
    }

    /// Applies `desired` for `canary`: an object Fledge creates gets the Canary as its
    /// controller owner; an object that existed before without that owner is adopted, and its
    /// spec is kept in the original-configuration annotation when `keep_original` is set (unless
    /// `kubectl apply` already left a copy), so that [`Applier::restore_original`] can bring it back.
    pub async fn apply(
        &self,
        canary: &CanaryIdentity,
        desired: &TrafficObject,
        keep_original: bool,
    ) -> Result<DynamicObject> {
        let existing = self
            .get(&desired.resource, &canary.namespace, desired.name())
            .await?;
        let object = adopt(canary, desired, existing.as_ref(), keep_original);
        self.apply_object(&desired.resource, &canary.namespace, &object)
            .await
    }

    /// Puts back the spec an adopted object had before Fledge took it over; does nothing for
    /// objects Fledge created (they go away with the Canary) or that no longer exist.
    pub async fn restore_original(
        &self,
        canary: &CanaryIdentity,
        resource: &ApiResource,
        name: &str,
    ) -> Result<bool> {
        let Some(current) = self.get(resource, &canary.namespace, name).await? else {
            return Ok(false);
        };
        let Some(spec) = original_spec(resource, &current)? else {
            tracing::warn!(kind = %resource.kind, %name, namespace = %canary.namespace,
                "original configuration not found, unable to revert");
            return Ok(false);
        };
        let restored = TrafficObject::new(
            resource.clone(),
            &canary.namespace,
            name,
            json!({ "spec": spec }),
        );
        self.apply_object(resource, &canary.namespace, &restored.object)
            .await?;
        Ok(true)
    }

    /// Deletes the object `name` of `resource` in `namespace`; `false` when it did not exist.
    pub async fn delete(
        &self,
        resource: &ApiResource,
        namespace: &str,
        name: &str,
    ) -> Result<bool> {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), namespace, resource);
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
            Err(source) => Err(Error::Kube {
                verb: "delete",
                kind: resource.kind.clone(),
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                source: Box::new(source),
            }),
        }
    }

    /// Server-side apply with force (Fledge owns what it writes), retried on conflicts.
    pub async fn apply_object(
        &self,
        resource: &ApiResource,
        namespace: &str,
        object: &DynamicObject,
    ) -> Result<DynamicObject> {
        let name = object.metadata.name.clone().unwrap_or_default();
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), namespace, resource);
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let mut attempt = 1;
        loop {
            match api.patch(&name, &params, &Patch::Apply(object)).await {
                Ok(applied) => return Ok(applied),
                Err(kube::Error::Api(status)) if status.code == 409 && attempt < ATTEMPTS => {
                    tracing::debug!(kind = %resource.kind, %name, %namespace, attempt, "conflict, retrying apply");
                    tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
                    attempt += 1;
                }
                Err(source) => {
                    return Err(Error::Kube {
                        verb: "apply",
                        kind: resource.kind.clone(),
                        namespace: namespace.to_owned(),
                        name,
                        source: Box::new(source),
                    });
                }
            }
        }
    }
}

/// The object to apply given what exists: owner reference for objects Fledge creates, the
/// saved original for objects it adopts.
pub fn adopt(
    canary: &CanaryIdentity,
    desired: &TrafficObject,
    existing: Option<&DynamicObject>,
    keep_original: bool,
) -> DynamicObject {
    let mut object = desired.object.clone();
    let created_by_fledge = existing.is_none_or(|e| canary.controls(&e.metadata));
    if created_by_fledge {
        if let Some(owner) = canary.owner_reference() {
            object.metadata.owner_references = Some(vec![owner]);
        }
        return object;
    }
    if !keep_original {
        return object;
    }
    let Some(existing) = existing else {
        return object;
    };
    let existing_annotations = existing.metadata.annotations.clone().unwrap_or_default();
    if existing_annotations.contains_key(KUBECTL_LAST_APPLIED) {
        return object;
    }
    let original = match existing_annotations.get(ORIGINAL_CONFIGURATION) {
        Some(saved) => Some(saved.clone()),
        None => existing.data.get("spec").map(serde_json::Value::to_string),
    };
    if let Some(original) = original {
        object
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(ORIGINAL_CONFIGURATION.to_owned(), original);
    }
    object
}

/// Whether `existing` already holds every field of `desired` with the same value, so that a
/// server-side apply of `desired` would change nothing Fledge asked for. Empty maps, lists and
/// nulls in `desired` are held by absence (the server drops them); fields only `existing` has
/// (status, server defaults, other managers' fields) are no difference; lists must match
/// element by element, so a removed container or route is a difference.
pub fn holds(existing: &Value, desired: &Value) -> bool {
    match (existing, desired) {
        (_, Value::Null) => true,
        (Value::Object(existing), Value::Object(desired)) => {
            desired.iter().all(|(key, value)| match existing.get(key) {
                Some(current) => holds(current, value),
                None => is_empty(value),
            })
        }
        (Value::Array(existing), Value::Array(desired)) => {
            existing.len() == desired.len()
                && existing.iter().zip(desired).all(|(e, d)| holds(e, d))
        }
        (existing, desired) => existing == desired,
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(map) => map.values().all(is_empty),
        Value::Array(list) => list.is_empty(),
        _ => false,
    }
}

/// [`holds`] for the parts of a rendered object Fledge applies: its `spec`, labels and
/// annotations.
pub(crate) fn object_holds(existing: &DynamicObject, desired: &DynamicObject) -> bool {
    let labels = |o: &DynamicObject| json!(o.metadata.labels);
    let annotations = |o: &DynamicObject| json!(o.metadata.annotations);
    holds(&existing.data["spec"], &desired.data["spec"])
        && holds(&labels(existing), &labels(desired))
        && holds(&annotations(existing), &annotations(desired))
}

/// The spec an adopted object had, from `kubectl apply`'s annotation or Fledge's own.
fn original_spec(
    resource: &ApiResource,
    current: &DynamicObject,
) -> Result<Option<serde_json::Value>> {
    let annotations = current.metadata.annotations.clone().unwrap_or_default();
    let name = current.metadata.name.clone().unwrap_or_default();
    let namespace = current.metadata.namespace.clone().unwrap_or_default();
    let decode = |annotation: &'static str, text: &str| {
        serde_json::from_str::<serde_json::Value>(text).map_err(|source| {
            Error::OriginalConfiguration {
                kind: resource.kind.clone(),
                namespace: namespace.clone(),
                name: name.clone(),
                annotation,
                source,
            }
        })
    };
    if let Some(text) = annotations.get(KUBECTL_LAST_APPLIED) {
        let applied = decode(KUBECTL_LAST_APPLIED, text)?;
        return Ok(applied.get("spec").cloned());
    }
    if let Some(text) = annotations.get(ORIGINAL_CONFIGURATION) {
        return decode(ORIGINAL_CONFIGURATION, text).map(Some);
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use kube::api::DynamicObject;
    use serde_json::json;

    use super::*;
    use crate::object::resource;

    fn identity() -> CanaryIdentity {
        CanaryIdentity {
            name: "podinfo".into(),
            namespace: "test".into(),
            uid: Some("uid-1".into()),
        }
    }

    fn desired() -> TrafficObject {
        TrafficObject::new(
            resource(
                "networking.istio.io",
                "v1beta1",
                "VirtualService",
                "virtualservices",
            ),
            "test",
            "podinfo",
            json!({ "spec": { "hosts": ["podinfo"], "http": [] } }),
        )
    }

    fn existing(annotations: &serde_json::Value, owned: bool) -> DynamicObject {
        let mut object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "networking.istio.io/v1beta1",
            "kind": "VirtualService",
            "metadata": { "name": "podinfo", "namespace": "test", "annotations": annotations },
            "spec": { "hosts": ["podinfo.example.com"] },
        }))
        .unwrap();
        if owned {
            object.metadata.owner_references = identity().owner_reference().map(|o| vec![o]);
        }
        object
    }

    fn annotation(object: &DynamicObject, key: &str) -> Option<String> {
        object
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key).cloned())
    }

    #[test]
    fn objects_fledge_creates_are_owned_by_the_canary() {
        let created = adopt(&identity(), &desired(), None, true);
        let owner = &created.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
            ("Canary", "podinfo", "uid-1")
        );
        assert_eq!(owner.controller, Some(true));
        let again = adopt(
            &identity(),
            &desired(),
            Some(&existing(&json!({}), true)),
            true,
        );
        assert!(again.metadata.owner_references.is_some());
        assert_eq!(annotation(&again, ORIGINAL_CONFIGURATION), None);
    }

    #[test]
    fn an_adopted_object_keeps_its_original_spec_and_no_owner() {
        let adopted = adopt(
            &identity(),
            &desired(),
            Some(&existing(&json!({}), false)),
            true,
        );
        assert!(adopted.metadata.owner_references.is_none());
        let saved = annotation(&adopted, ORIGINAL_CONFIGURATION).unwrap();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&saved).unwrap(),
            json!({ "hosts": ["podinfo.example.com"] })
        );

        // Later reconciles carry the first saved copy forward, not Fledge's own spec.
        let current = existing(
            &json!({ ORIGINAL_CONFIGURATION: "{\"hosts\":[\"first\"]}" }),
            false,
        );
        let again = adopt(&identity(), &desired(), Some(&current), true);
        assert_eq!(
            annotation(&again, ORIGINAL_CONFIGURATION).unwrap(),
            "{\"hosts\":[\"first\"]}"
        );
    }

    #[test]
    fn kubectl_applied_objects_are_restored_from_kubectls_own_annotation() {
        let last_applied = json!({ "apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService", "spec": { "hosts": ["from-kubectl"] } });
        let current = existing(
            &json!({ KUBECTL_LAST_APPLIED: last_applied.to_string() }),
            false,
        );
        let adopted = adopt(&identity(), &desired(), Some(&current), true);
        assert_eq!(
            annotation(&adopted, ORIGINAL_CONFIGURATION),
            None,
            "kubectl's copy is enough"
        );
        let spec = original_spec(&desired().resource, &current).unwrap();
        assert_eq!(spec, Some(json!({ "hosts": ["from-kubectl"] })));
    }

    #[test]
    fn a_corrupt_saved_spec_is_an_error_naming_the_annotation() {
        let current = existing(&json!({ ORIGINAL_CONFIGURATION: "{not json" }), false);
        let err = original_spec(&desired().resource, &current).unwrap_err();
        assert!(err.to_string().contains(ORIGINAL_CONFIGURATION), "{err}");
    }

    #[test]
    fn an_object_holds_what_the_server_defaulted_around_the_desired_fields() {
        let existing = json!({
            "metadata": { "name": "p", "resourceVersion": "7", "labels": { "app": "p" } },
            "spec": { "replicas": 2, "template": { "spec": { "containers": [{ "name": "c", "image": "i", "imagePullPolicy": "Always" }] } } },
        });
        let desired = json!({
            "metadata": { "name": "p", "labels": { "app": "p" }, "annotations": {} },
            "spec": { "replicas": 2, "template": { "spec": { "containers": [{ "name": "c", "image": "i" }] } } },
        });
        assert!(holds(&existing, &desired));
    }

    #[test]
    fn a_changed_value_or_list_is_a_difference() {
        let existing = json!({ "spec": { "replicas": 2, "containers": [{ "name": "c" }] } });
        assert!(!holds(&existing, &json!({ "spec": { "replicas": 3 } })));
        assert!(!holds(
            &existing,
            &json!({ "spec": { "containers": [{ "name": "c" }, { "name": "d" }] } })
        ));
        assert!(!holds(&existing, &json!({ "spec": { "paused": true } })));
        assert!(!holds(&existing, &json!({ "spec": { "containers": [] } })));
    }
}
