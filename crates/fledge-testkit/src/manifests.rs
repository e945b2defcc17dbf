//! Applying YAML manifests of any kind, the way `kubectl apply --server-side` does.

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{self, Scope};

use crate::error::{Error, Result};

/// The field manager of everything the testkit writes.
pub const FIELD_MANAGER: &str = "fledge-testkit";

/// Applies every document of a YAML stream with server-side apply and returns what the
/// server stored. Namespaced objects without a namespace go to `default_namespace`.
///
/// # Errors
/// [`Error::Manifest`] for a document without apiVersion/kind/name, [`Error::Kube`] when the
/// server refuses one (the error names the object).
pub async fn apply_yaml(
    client: &kube::Client,
    yaml: &str,
    origin: &str,
    default_namespace: &str,
) -> Result<Vec<DynamicObject>> {
    let documents = fledge_api::yaml::documents(yaml).map_err(|e| Error::Manifest {
        origin: origin.to_owned(),
        reason: e.to_string(),
    })?;
    let mut applied = Vec::new();
    for document in documents.into_iter().filter(|d| !d.is_null()) {
        applied.push(apply_value(client, document, origin, default_namespace).await?);
    }
    Ok(applied)
}

/// Applies one object given as JSON.
///
/// # Errors
/// As [`apply_yaml`].
pub async fn apply_value(
    client: &kube::Client,
    mut object: serde_json::Value,
    origin: &str,
    default_namespace: &str,
) -> Result<DynamicObject> {
    let field = |name: &str| {
        object
            .pointer(name)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    };
    let missing = |what: &str| Error::Manifest {
        origin: origin.to_owned(),
        reason: format!(
            "a document has no {what}; every object needs apiVersion, kind and metadata.name"
        ),
    };
    let api_version = field("/apiVersion").ok_or_else(|| missing("apiVersion"))?;
    let kind = field("/kind").ok_or_else(|| missing("kind"))?;
    let name = field("/metadata/name").ok_or_else(|| missing("metadata.name"))?;
    let (group, version) = api_version
        .rsplit_once('/')
        .unwrap_or(("", api_version.as_str()));
    let gvk = GroupVersionKind::gvk(group, version, &kind);
    let (resource, capabilities) = discovery::pinned_kind(client, &gvk).await.map_err(|e| {
        Error::kube(
            format!("discover {api_version} {kind} (is its CRD installed?)"),
            e,
        )
    })?;
    let api: Api<DynamicObject> = if capabilities.scope == Scope::Namespaced {
        let namespace =
            field("/metadata/namespace").unwrap_or_else(|| default_namespace.to_owned());
        if let Some(metadata) = object
            .get_mut("metadata")
            .and_then(serde_json::Value::as_object_mut)
        {
            metadata.insert(
                "namespace".to_owned(),
                serde_json::Value::String(namespace.clone()),
            );
        }
        Api::namespaced_with(client.clone(), &namespace, &resource)
    } else {
        Api::all_with(client.clone(), &resource)
    };
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&object),
    )
    .await
    .map_err(|e| Error::kube(format!("apply {kind} {name} from {origin}"), e))
}
