//! Targets of `kind: Service` (Flagger's ServiceController): the target is a Service the
//! user keeps pointing at the version under test, e.g. by its selector. There are no pods of
//! Fledge's own to run: `<name>-canary` follows the target on every tick, `<name>-primary` is
//! made from it once and then only by a promotion, readiness is always given and scaling
//! does nothing. The mesh router splits the apex between the two copies.
//!
//! Everything here is pure: it takes Services read from the watch cache and returns the
//! objects to apply.

use fledge_api::Canary;
use fledge_engine::{Revision, WorkloadState};
use k8s_openapi::api::core::v1::{Service, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::workload::checksum::json_hash;
use crate::workload::labels::{PRIMARY_SUFFIX, include_by_prefix, without_bookkeeping};
use crate::workload::{WorkloadSettings, canary_namespace, owner_reference};

/// The suffix of the copy that runs the canary's side (`podinfo-canary`).
pub const CANARY_SUFFIX: &str = "-canary";

/// Which copy of the target Service to render.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceCopy {
    /// `<name>-primary`: made from the target at initialization and at each promotion; its
    /// labels and annotations pass `-include-label-prefix`.
    Primary,
    /// `<name>-canary`: follows the target; every label and annotation is copied, as Flagger does.
    Canary,
}

impl ServiceCopy {
    /// The copy's name for the target `target_name`.
    pub fn name(self, target_name: &str) -> String {
        match self {
            Self::Primary => format!("{target_name}{PRIMARY_SUFFIX}"),
            Self::Canary => format!("{target_name}{CANARY_SUFFIX}"),
        }
    }
}

/// The `copy` of the `target` Service of `canary`, as JSON for server-side apply. What the
/// server assigns per Service (cluster IPs, node ports) is left out, so the copy gets its
/// own; the spec is otherwise the target's.
///
/// # Errors
/// [`Error::CanaryMetadata`] when the Canary has no namespace, name or uid; [`Error::Json`]
/// when the Service cannot be serialized.
pub fn render_copy(
    canary: &Canary,
    target: &Service,
    copy: ServiceCopy,
    settings: &WorkloadSettings,
) -> Result<Value> {
    let namespace = canary_namespace(canary)?;
    let target_name = target.metadata.name.as_deref().unwrap_or_default();
    let name = copy.name(target_name);
    let (labels, annotations) = match copy {
        ServiceCopy::Canary => (
            without_bookkeeping(target.metadata.labels.as_ref()),
            without_bookkeeping(target.metadata.annotations.as_ref()),
        ),
        ServiceCopy::Primary => (
            include_by_prefix(
                target.metadata.labels.as_ref(),
                &settings.include_label_prefixes,
            ),
            include_by_prefix(
                target.metadata.annotations.as_ref(),
                &settings.include_label_prefixes,
            ),
        ),
    };
    let service = Service {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.to_owned()),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: Some(vec![owner_reference(canary)?]),
            ..ObjectMeta::default()
        },
        spec: target.spec.clone().map(portable_spec),
        status: None,
    };
    let mut json = serde_json::to_value(&service).map_err(|e| Error::json(name, e))?;
    if let Some(object) = json.as_object_mut() {
        object.insert("apiVersion".to_owned(), Value::from("v1"));
        object.insert("kind".to_owned(), Value::from("Service"));
    }
    Ok(json)
}

/// The spec without what the server assigns to one Service only.
fn portable_spec(mut spec: ServiceSpec) -> ServiceSpec {
    spec.cluster_ip = None;
    spec.cluster_ips = None;
    spec.health_check_node_port = None;
    for port in spec.ports.iter_mut().flatten() {
        port.node_port = None;
    }
    spec
}

/// The target Service's revision: a hash of its spec as the copies carry it (so a new IP
/// the server assigns is not a new revision). Services have no tracked configs.
///
/// # Errors
/// [`Error::Json`] when the spec cannot be serialized.
pub fn revision(target: &Service) -> Result<Revision> {
    let spec = target.spec.clone().map(portable_spec).unwrap_or_default();
    Ok(Revision::new(json_hash(&spec, "service spec")?))
}

/// What the engine sees of a Service target and its primary: always ready (Flagger's
/// `IsPrimaryReady` / `IsCanaryReady` answer true for Services), with one notional replica
/// so that nothing reads as scaled to zero.
pub fn ready_state() -> WorkloadState {
    WorkloadState::ready(1)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::ServicePort;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    use super::*;

    fn canary() -> Canary {
        let mut canary: Canary = fledge_api::yaml::from_str(
            "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: { name: podinfo, namespace: test, uid: u-1 }\nspec:\n  targetRef: { apiVersion: v1, kind: Service, name: podinfo }\n  service: { port: 9898 }\n  analysis: { interval: 10s, threshold: 2, iterations: 2 }\n",
        )
        .expect("a Canary");
        canary.metadata.uid = Some("u-1".to_owned());
        canary
    }

    fn target(version: &str) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some("podinfo".to_owned()),
                namespace: Some("test".to_owned()),
                labels: Some(BTreeMap::from([
                    ("app".to_owned(), "podinfo".to_owned()),
                    ("team".to_owned(), "a".to_owned()),
                ])),
                annotations: Some(BTreeMap::from([(
                    "kubectl.kubernetes.io/last-applied-configuration".to_owned(),
                    "{}".to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                type_: Some("NodePort".to_owned()),
                cluster_ip: Some("10.0.0.7".to_owned()),
                cluster_ips: Some(vec!["10.0.0.7".to_owned()]),
                selector: Some(BTreeMap::from([
                    ("app".to_owned(), "podinfo".to_owned()),
                    ("version".to_owned(), version.to_owned()),
                ])),
                ports: Some(vec![ServicePort {
                    name: Some("http".to_owned()),
                    port: 9898,
                    node_port: Some(30080),
                    target_port: Some(IntOrString::String("http".to_owned())),
                    ..ServicePort::default()
                }]),
                ..ServiceSpec::default()
            }),
            status: None,
        }
    }

    #[test]
    fn the_copies_carry_the_targets_spec_but_not_its_addresses() {
        let settings = WorkloadSettings::default();
        let copy =
            render_copy(&canary(), &target("v1"), ServiceCopy::Canary, &settings).expect("renders");
        assert_eq!(copy["metadata"]["name"], "podinfo-canary");
        assert_eq!(copy["spec"]["selector"]["version"], "v1");
        assert_eq!(copy["spec"]["ports"][0]["targetPort"], "http");
        assert_eq!(copy["spec"]["type"], "NodePort");
        assert!(copy["spec"].get("clusterIP").is_none());
        assert!(copy["spec"].get("clusterIPs").is_none());
        assert!(copy["spec"]["ports"][0].get("nodePort").is_none());
        assert_eq!(copy["metadata"]["ownerReferences"][0]["kind"], "Canary");
        assert_eq!(copy["metadata"]["ownerReferences"][0]["controller"], true);
        assert_eq!(copy["metadata"]["labels"]["team"], "a");
        assert!(
            copy["metadata"]["annotations"]
                .get("kubectl.kubernetes.io/last-applied-configuration")
                .is_none(),
            "kubectl's bookkeeping is never copied"
        );
    }

    #[test]
    fn the_primary_copy_takes_labels_by_prefix_only() {
        let settings = WorkloadSettings {
            include_label_prefixes: vec!["team".to_owned()],
            ..WorkloadSettings::default()
        };
        let copy = render_copy(&canary(), &target("v1"), ServiceCopy::Primary, &settings)
            .expect("renders");
        assert_eq!(copy["metadata"]["name"], "podinfo-primary");
        assert_eq!(
            copy["metadata"]["labels"],
            serde_json::json!({ "team": "a" })
        );
    }

    #[test]
    fn a_new_selector_is_a_new_revision_a_new_address_is_not() {
        let v1 = revision(&target("v1")).expect("hash");
        let mut moved = target("v1");
        if let Some(spec) = &mut moved.spec {
            spec.cluster_ip = Some("10.0.0.9".to_owned());
        }
        assert_eq!(revision(&moved).expect("hash"), v1);
        assert_ne!(revision(&target("v2")).expect("hash"), v1);
    }
}
