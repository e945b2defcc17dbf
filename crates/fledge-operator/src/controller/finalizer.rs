//! `revertOnDeletion`: a Canary that asks for it carries Flagger's finalizer
//! (`finalizer.flagger.app`), so deleting it first restores the target, the apex Service and
//! the mesh routes (the engine's Terminating → Terminated) and only then lets it go. A Canary
//! without it never blocks its own deletion: the workloads keep serving.

use fledge_api::Canary;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::error::{Error, Result};

/// Flagger's finalizer name, so Canaries Flagger finalized are recognized and the other way round.
pub const FINALIZER: &str = "finalizer.flagger.app";

/// What the finalizer asks of a tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deletion {
    /// Not being deleted; the finalizer matches `revertOnDeletion`.
    None,
    /// Not being deleted; the finalizer must be added (`true`) or removed (`false`) first.
    SetFinalizer(bool),
    /// Being deleted with `revertOnDeletion` and the finalizer: revert, then remove it.
    Revert,
    /// Being deleted and nothing to revert; only remove the finalizer if it is still there.
    Release {
        /// Whether the finalizer is still on the Canary.
        has_finalizer: bool,
    },
}

/// Whether `canary` carries the finalizer.
pub fn has_finalizer(canary: &Canary) -> bool {
    canary
        .metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == FINALIZER)
}

/// What to do about deletion and the finalizer for `canary`.
pub fn deletion(canary: &Canary) -> Deletion {
    let has = has_finalizer(canary);
    let wants = canary.spec.revert_on_deletion;
    if canary.metadata.deletion_timestamp.is_some() {
        if wants && has {
            Deletion::Revert
        } else {
            Deletion::Release { has_finalizer: has }
        }
    } else if wants == has {
        Deletion::None
    } else {
        Deletion::SetFinalizer(wants)
    }
}

/// Adds or removes the finalizer with a JSON patch that first tests what it read (the
/// resourceVersion when adding, the item itself when removing), so a concurrent change to the
/// list by someone else is never overwritten: the patch fails and the next tick retries.
///
/// # Errors
/// [`Error::Kube`] when the patch is refused (including a conflict).
pub async fn set_finalizer(client: &kube::Client, canary: &Canary, present: bool) -> Result<()> {
    let namespace = canary.metadata.namespace.as_deref().unwrap_or_default();
    let name = canary.metadata.name.as_deref().unwrap_or_default();
    let Some(patch) = finalizer_patch(canary, present) else {
        return Ok(());
    };
    let patch: json_patch::Patch = serde_json::from_value(patch).map_err(|source| Error::Json {
        what: format!("the finalizer patch of Canary {namespace}/{name}"),
        source,
    })?;
    let api: Api<Canary> = Api::namespaced(client.clone(), namespace);
    api.patch(name, &PatchParams::default(), &Patch::<()>::Json(patch))
        .await
        .map_err(|e| {
            let verb = if present {
                "add the finalizer to"
            } else {
                "remove the finalizer from"
            };
            Error::kube(verb, "Canary", namespace, name, e)
        })?;
    tracing::debug!(present, "finalizer {FINALIZER} set");
    Ok(())
}

/// The JSON patch that makes the finalizer `present` (or absent); `None` when it already is.
fn finalizer_patch(canary: &Canary, present: bool) -> Option<serde_json::Value> {
    let finalizers = canary.metadata.finalizers.as_deref().unwrap_or_default();
    let position = finalizers.iter().position(|f| f == FINALIZER);
    match (present, position) {
        (true, Some(_)) | (false, None) => None,
        (true, None) => {
            let version = canary.metadata.resource_version.clone().unwrap_or_default();
            let add = if canary.metadata.finalizers.is_none() {
                json!({ "op": "add", "path": "/metadata/finalizers", "value": [FINALIZER] })
            } else {
                json!({ "op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER })
            };
            Some(json!([
                { "op": "test", "path": "/metadata/resourceVersion", "value": version },
                add,
            ]))
        }
        (false, Some(index)) => {
            let path = format!("/metadata/finalizers/{index}");
            Some(json!([
                { "op": "test", "path": path, "value": FINALIZER },
                { "op": "remove", "path": path },
            ]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary(revert: bool, finalizers: Option<Vec<&str>>, deleting: bool) -> Canary {
        let mut canary: Canary = fledge_api::yaml::from_str(
            "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: { name: podinfo, namespace: test, resourceVersion: '42' }\n\
             spec:\n  targetRef: { apiVersion: apps/v1, kind: Deployment, name: podinfo }\n  service: { port: 9898 }\n",
        )
        .expect("a Canary");
        canary.spec.revert_on_deletion = revert;
        canary.metadata.finalizers = finalizers.map(|f| f.into_iter().map(str::to_owned).collect());
        if deleting {
            canary.metadata.deletion_timestamp =
                Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
                ));
        }
        canary
    }

    #[test]
    fn the_finalizer_follows_revert_on_deletion() {
        assert_eq!(deletion(&canary(false, None, false)), Deletion::None);
        assert_eq!(
            deletion(&canary(true, None, false)),
            Deletion::SetFinalizer(true)
        );
        assert_eq!(
            deletion(&canary(true, Some(vec![FINALIZER]), false)),
            Deletion::None
        );
        assert_eq!(
            deletion(&canary(false, Some(vec!["other", FINALIZER]), false)),
            Deletion::SetFinalizer(false),
            "opting out removes it"
        );
    }

    #[test]
    fn deleting_reverts_only_with_revert_on_deletion_and_the_finalizer() {
        assert_eq!(
            deletion(&canary(true, Some(vec![FINALIZER]), true)),
            Deletion::Revert
        );
        assert_eq!(
            deletion(&canary(false, Some(vec![FINALIZER]), true)),
            Deletion::Release {
                has_finalizer: true
            }
        );
        assert_eq!(
            deletion(&canary(true, Some(vec!["other"]), true)),
            Deletion::Release {
                has_finalizer: false
            },
            "already finalized"
        );
    }

    #[test]
    fn patches_test_what_they_read_and_keep_other_finalizers() {
        let add = finalizer_patch(&canary(true, None, false), true).expect("a patch");
        assert_eq!(add[0]["path"], "/metadata/resourceVersion");
        assert_eq!(add[0]["value"], "42");
        assert_eq!(add[1]["path"], "/metadata/finalizers");
        let append =
            finalizer_patch(&canary(true, Some(vec!["other"]), false), true).expect("a patch");
        assert_eq!(append[1]["path"], "/metadata/finalizers/-");
        let remove = finalizer_patch(&canary(false, Some(vec!["other", FINALIZER]), false), false)
            .expect("a patch");
        assert_eq!(
            remove[0],
            json!({ "op": "test", "path": "/metadata/finalizers/1", "value": FINALIZER })
        );
        assert_eq!(remove[1]["op"], "remove");
        assert_eq!(
            finalizer_patch(&canary(false, Some(vec!["other"]), false), false),
            None
        );
    }
}
