//! Labels, annotations and owner references of the objects Fledge generates.

use std::collections::BTreeMap;

use fledge_api::Canary;
use fledge_api::canary::CustomMetadata;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::error::{Error, Result};

/// Annotation that keeps the spec of an object Fledge adopted, to restore it on finalize.
pub const ORIGINAL_CONFIGURATION: &str = "flagger.kubernetes.io/original-configuration";
/// Annotation `kubectl apply` leaves; when present it already holds the original.
pub const KUBECTL_LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Annotations that stop Flux from reverting what Fledge writes (as Flagger sets them).
const FLUX_OPT_OUT: [(&str, &str); 2] = [
    ("kustomize.toolkit.fluxcd.io/reconcile", "disabled"),
    ("helm.toolkit.fluxcd.io/driftDetection", "disabled"),
];

/// The identity of the Canary that generated objects belong to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CanaryIdentity {
    /// Name of the Canary.
    pub name: String,
    /// Namespace of the Canary, and of everything it generates.
    pub namespace: String,
    /// UID of the Canary, for owner references; `None` for a canary not read from a server.
    pub uid: Option<String>,
}

impl CanaryIdentity {
    /// Reads name, namespace and uid of a Canary.
    ///
    /// # Errors
    /// [`Error::CanaryMetadata`] when the name or namespace is missing.
    pub fn of(canary: &Canary) -> Result<Self> {
        let name = canary.metadata.name.clone().unwrap_or_default();
        if name.is_empty() {
            return Err(Error::CanaryMetadata {
                name,
                field: "name",
            });
        }
        let Some(namespace) = canary
            .metadata
            .namespace
            .clone()
            .filter(|ns| !ns.is_empty())
        else {
            return Err(Error::CanaryMetadata {
                name,
                field: "namespace",
            });
        };
        Ok(Self {
            name,
            namespace,
            uid: canary.metadata.uid.clone().filter(|uid| !uid.is_empty()),
        })
    }

    /// The controller owner reference pointing at the Canary, when its uid is known.
    pub fn owner_reference(&self) -> Option<OwnerReference> {
        Some(OwnerReference {
            api_version: format!("{}/{}", fledge_api::GROUP, fledge_api::VERSION),
            kind: "Canary".to_owned(),
            name: self.name.clone(),
            uid: self.uid.clone()?,
            controller: Some(true),
            block_owner_deletion: Some(true),
        })
    }

    /// Whether `meta` names this Canary as its controller (so Fledge created it).
    pub fn controls(&self, meta: &ObjectMeta) -> bool {
        meta.owner_references.iter().flatten().any(|owner| {
            owner.controller == Some(true) && owner.kind == "Canary" && owner.name == self.name
        })
    }
}

/// Labels and annotations for a generated object: the user's custom metadata plus the
/// annotations that keep Flux from fighting over the object.
pub fn generated_metadata(
    custom: Option<&CustomMetadata>,
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let labels = custom.map(|c| c.labels.clone()).unwrap_or_default();
    let mut annotations = custom.map(|c| c.annotations.clone()).unwrap_or_default();
    for (key, value) in FLUX_OPT_OUT {
        annotations.insert(key.to_owned(), value.to_owned());
    }
    (labels, annotations)
}
