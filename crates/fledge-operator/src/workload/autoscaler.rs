//! The primary's HorizontalPodAutoscaler: `<hpa>-primary`, a copy of the target's autoscaler
//! that scales `<target>-primary` (Flagger's `HPAReconciler`).
//!
//! Kubernetes before 1.23 serves only `autoscaling/v2beta2`, later ones `v2` (and 1.26+
//! only `v2`). Both have the same schema, so the autoscaler is read and written as JSON in
//! whichever version the server serves, and its spec is checked against the `v2` types.

use fledge_api::Canary;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscalerSpec;
use kube::api::{ApiResource, DynamicObject};
use serde_json::json;

use crate::error::{Error, Result};
use crate::workload::labels::{PRIMARY_SUFFIX, include_by_prefix};
use crate::workload::{WorkloadSettings, canary_namespace, owner_reference, primary_name};

/// The `autoscaling` API version the HorizontalPodAutoscalers are read and written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AutoscalingVersion {
    /// `autoscaling/v2` (Kubernetes 1.23+).
    V2,
    /// `autoscaling/v2beta2` (Kubernetes 1.12 to 1.25).
    V2beta2,
}

impl AutoscalingVersion {
    /// `autoscaling/v2` or `autoscaling/v2beta2`.
    pub fn api_version(self) -> &'static str {
        match self {
            Self::V2 => "autoscaling/v2",
            Self::V2beta2 => "autoscaling/v2beta2",
        }
    }

    /// The HorizontalPodAutoscaler resource in this version.
    pub fn resource(self) -> ApiResource {
        let version = match self {
            Self::V2 => "v2",
            Self::V2beta2 => "v2beta2",
        };
        ApiResource {
            group: "autoscaling".to_owned(),
            version: version.to_owned(),
            api_version: self.api_version().to_owned(),
            kind: "HorizontalPodAutoscaler".to_owned(),
            plural: "horizontalpodautoscalers".to_owned(),
        }
    }

    /// The best version among those the server serves (`v2` over `v2beta2`).
    ///
    /// # Errors
    /// [`Error::AutoscalingNotServed`] when it serves neither.
    pub fn choose(served: &[String]) -> Result<Self> {
        if served.iter().any(|v| v == "autoscaling/v2") {
            Ok(Self::V2)
        } else if served.iter().any(|v| v == "autoscaling/v2beta2") {
            Ok(Self::V2beta2)
        } else {
            Err(Error::AutoscalingNotServed {
                served: served.to_vec(),
            })
        }
    }

    /// Asks the API server which version it serves.
    ///
    /// # Errors
    /// [`Error::Kube`] when discovery fails, [`Error::AutoscalingNotServed`].
    pub async fn detect(client: &kube::Client) -> Result<Self> {
        let groups = client
            .list_api_groups()
            .await
            .map_err(|e| Error::kube("discover", "APIGroupList", "", "/apis", e))?;
        let served: Vec<String> = groups
            .groups
            .into_iter()
            .filter(|g| g.name == "autoscaling")
            .flat_map(|g| g.versions.into_iter().map(|v| v.group_version))
            .collect();
        Self::choose(&served)
    }
}

/// The spec of an autoscaler read in either version.
///
/// # Errors
/// [`Error::Autoscaler`] when it has no spec or its spec is not a HorizontalPodAutoscaler's.
pub fn autoscaler_spec(hpa: &DynamicObject) -> Result<HorizontalPodAutoscalerSpec> {
    let invalid = |reason: String| Error::Autoscaler {
        namespace: hpa.metadata.namespace.clone().unwrap_or_default(),
        name: hpa.metadata.name.clone().unwrap_or_default(),
        reason,
    };
    let spec = hpa
        .data
        .get("spec")
        .cloned()
        .ok_or_else(|| invalid("it has no spec".to_owned()))?;
    serde_json::from_value(spec)
        .map_err(|e| invalid(format!("spec is not a HorizontalPodAutoscaler spec: {e}")))
}

/// `spec.minReplicas` of the target's autoscaler (1 when unset), for the engine's
/// `World::autoscaler_min_replicas`.
///
/// # Errors
/// As [`autoscaler_spec`].
pub fn min_replicas(hpa: &DynamicObject) -> Result<u32> {
    Ok(autoscaler_spec(hpa)?
        .min_replicas
        .map_or(1, |r| u32::try_from(r).unwrap_or(1)))
}

/// The primary's autoscaler: `<hpa>-primary` in `version`, owned by the Canary, scaling
/// `<target>-primary` with the target autoscaler's metrics and behavior, within
/// `autoscalerRef.primaryScalerReplicas` when set.
///
/// # Errors
/// [`Error::Autoscaler`], [`Error::CanaryMetadata`].
pub fn render_primary_autoscaler(
    canary: &Canary,
    target_hpa: &DynamicObject,
    version: AutoscalingVersion,
    settings: &WorkloadSettings,
) -> Result<serde_json::Value> {
    let namespace = canary_namespace(canary)?;
    let spec = autoscaler_spec(target_hpa)?;
    let mut min = spec.min_replicas;
    let mut max = spec.max_replicas;
    if let Some(bounds) = canary
        .spec
        .autoscaler_ref
        .as_ref()
        .and_then(|a| a.primary_scaler_replicas.as_ref())
    {
        min = bounds.min_replicas.or(min);
        max = bounds.max_replicas.unwrap_or(max);
    }
    let hpa_name = target_hpa.metadata.name.clone().unwrap_or_default();
    let prefixes = &settings.include_label_prefixes;
    let mut primary = json!({
        "apiVersion": version.api_version(),
        "kind": "HorizontalPodAutoscaler",
        "metadata": {
            "name": format!("{hpa_name}{PRIMARY_SUFFIX}"),
            "namespace": namespace,
            "labels": include_by_prefix(target_hpa.metadata.labels.as_ref(), prefixes),
            "annotations": include_by_prefix(target_hpa.metadata.annotations.as_ref(), prefixes),
            "ownerReferences": [owner_reference(canary)?],
        },
        "spec": {
            "scaleTargetRef": {
                "apiVersion": spec.scale_target_ref.api_version,
                "kind": spec.scale_target_ref.kind,
                "name": primary_name(&canary.spec.target_ref.name),
            },
            "maxReplicas": max,
        },
    });
    let primary_spec = &mut primary["spec"];
    if let Some(min) = min {
        primary_spec["minReplicas"] = json!(min);
    }
    if let Some(metrics) = spec.metrics {
        primary_spec["metrics"] =
            serde_json::to_value(metrics).map_err(|e| Error::json("autoscaler metrics", e))?;
    }
    if let Some(behavior) = spec.behavior {
        primary_spec["behavior"] =
            serde_json::to_value(behavior).map_err(|e| Error::json("autoscaler behavior", e))?;
    }
    Ok(primary)
}

#[cfg(test)]
mod tests {
    use fledge_api::canary::ScalerReplicas;
    use pretty_assertions::assert_eq;

    use super::*;

    fn canary(bounds: Option<ScalerReplicas>) -> Canary {
        let mut canary: Canary = fledge_api::yaml::from_str(
            r"
apiVersion: flagger.app/v1beta1
kind: Canary
metadata: { name: podinfo, namespace: test, uid: uid-1 }
spec:
  targetRef: { apiVersion: apps/v1, kind: Deployment, name: podinfo }
  autoscalerRef: { apiVersion: autoscaling/v2, kind: HorizontalPodAutoscaler, name: podinfo-hpa }
  service: { port: 9898 }
",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        if let Some(reference) = &mut canary.spec.autoscaler_ref {
            reference.primary_scaler_replicas = bounds;
        }
        canary
    }

    fn target_hpa() -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "autoscaling/v2beta2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": { "name": "podinfo-hpa", "namespace": "test", "labels": { "team": "a", "app": "podinfo" } },
            "spec": {
                "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo" },
                "minReplicas": 2,
                "maxReplicas": 4,
                "metrics": [{ "type": "Resource", "resource": { "name": "cpu", "target": { "type": "Utilization", "averageUtilization": 99 } } }],
            },
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_primary_autoscaler_scales_the_primary_like_the_target_autoscaler() {
        let settings = WorkloadSettings {
            include_label_prefixes: vec!["team".into()],
            ..WorkloadSettings::default()
        };
        let primary = render_primary_autoscaler(
            &canary(None),
            &target_hpa(),
            AutoscalingVersion::V2beta2,
            &settings,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(primary["apiVersion"], "autoscaling/v2beta2");
        assert_eq!(primary["metadata"]["name"], "podinfo-hpa-primary");
        assert_eq!(primary["metadata"]["labels"], json!({ "team": "a" }));
        assert_eq!(primary["metadata"]["ownerReferences"][0]["kind"], "Canary");
        assert_eq!(
            primary["spec"]["scaleTargetRef"],
            json!({ "apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo-primary" })
        );
        assert_eq!(
            (
                primary["spec"]["minReplicas"].clone(),
                primary["spec"]["maxReplicas"].clone()
            ),
            (json!(2), json!(4))
        );
        assert_eq!(
            primary["spec"]["metrics"],
            target_hpa().data["spec"]["metrics"]
        );
    }

    #[test]
    fn primary_scaler_replicas_override_the_bounds() {
        let bounds = ScalerReplicas {
            min_replicas: Some(3),
            max_replicas: Some(9),
        };
        let primary = render_primary_autoscaler(
            &canary(Some(bounds)),
            &target_hpa(),
            AutoscalingVersion::V2,
            &WorkloadSettings::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(primary["apiVersion"], "autoscaling/v2");
        assert_eq!(
            (
                primary["spec"]["minReplicas"].clone(),
                primary["spec"]["maxReplicas"].clone()
            ),
            (json!(3), json!(9))
        );
    }

    #[test]
    fn v2_is_preferred_and_an_old_server_is_refused() {
        let served = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            AutoscalingVersion::choose(&served(&[
                "autoscaling/v1",
                "autoscaling/v2beta2",
                "autoscaling/v2"
            ]))
            .ok(),
            Some(AutoscalingVersion::V2)
        );
        assert_eq!(
            AutoscalingVersion::choose(&served(&["autoscaling/v1", "autoscaling/v2beta2"])).ok(),
            Some(AutoscalingVersion::V2beta2)
        );
        assert!(AutoscalingVersion::choose(&served(&["autoscaling/v1"])).is_err());
    }

    #[test]
    fn the_minimum_defaults_to_one() {
        let mut hpa = target_hpa();
        assert_eq!(min_replicas(&hpa).ok(), Some(2));
        hpa.data["spec"]
            .as_object_mut()
            .map(|s| s.remove("minReplicas"));
        assert_eq!(min_replicas(&hpa).ok(), Some(1));
    }
}
