//! The horizontal pod autoscaler's part: keep the target within min/max and report status.
//!
//! A 1.20 API server serves `autoscaling/v2beta2` (newer ones `autoscaling/v2`); the
//! simulator uses whichever is served. A target scaled to zero is left alone, as the real
//! autoscaler does (Flagger scales canaries to zero while an HPA points at them).

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery;

const POLL: Duration = Duration::from_millis(500);

pub(super) async fn run(client: kube::Client, namespace: Option<String>) {
    let Some(resource) = served_hpa_resource(&client).await else {
        tracing::warn!(
            "no autoscaling/v2beta2 or v2 served: HorizontalPodAutoscalers are not simulated"
        );
        return;
    };
    let mut ticker = tokio::time::interval(POLL);
    loop {
        ticker.tick().await;
        let hpas: Api<DynamicObject> = match &namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        let Ok(list) = hpas.list(&kube::api::ListParams::default()).await else {
            continue;
        };
        for hpa in list {
            if let Err(e) = reconcile(&client, &resource, &hpa).await {
                tracing::debug!(error = %e, "hpa sim");
            }
        }
    }
}

async fn served_hpa_resource(client: &kube::Client) -> Option<ApiResource> {
    for version in ["v2beta2", "v2"] {
        let gvk = GroupVersionKind::gvk("autoscaling", version, "HorizontalPodAutoscaler");
        if let Ok((resource, _)) = discovery::pinned_kind(client, &gvk).await {
            return Some(resource);
        }
    }
    None
}

/// The replica count the autoscaler settles on: the current one, clamped to min..=max.
pub(super) fn desired_replicas(current: i32, min: i32, max: i32) -> i32 {
    if current == 0 {
        0
    } else {
        current.clamp(min, max.max(min))
    }
}

async fn reconcile(
    client: &kube::Client,
    resource: &ApiResource,
    hpa: &DynamicObject,
) -> Result<(), kube::Error> {
    let spec = &hpa.data["spec"];
    if spec["scaleTargetRef"]["kind"] != "Deployment" {
        return Ok(());
    }
    let Some(target) = spec["scaleTargetRef"]["name"].as_str() else {
        return Ok(());
    };
    let namespace = hpa.metadata.namespace.clone().unwrap_or_default();
    let name = hpa.metadata.name.clone().unwrap_or_default();
    let min = spec["minReplicas"].as_i64().unwrap_or(1) as i32;
    let max = spec["maxReplicas"].as_i64().unwrap_or(i64::from(min)) as i32;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
    let Some(deployment) = deployments.get_opt(target).await? else {
        return Ok(());
    };
    let current = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    let desired = desired_replicas(current, min, max);
    if desired != current {
        let patch = serde_json::json!({ "spec": { "replicas": desired } });
        deployments
            .patch(target, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    let observed = deployment
        .status
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(0);
    let status = &hpa.data["status"];
    if status["currentReplicas"] == observed && status["desiredReplicas"] == desired {
        return Ok(());
    }
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let able = if desired == 0 {
        ("ScalingDisabled", "False")
    } else {
        ("ReadyForNewScale", "True")
    };
    let patch = serde_json::json!({ "status": {
        "currentReplicas": observed,
        "desiredReplicas": desired,
        "conditions": [
            { "type": "AbleToScale", "status": able.1, "reason": able.0, "lastTransitionTime": now },
            { "type": "ScalingActive", "status": if desired == 0 { "False" } else { "True" }, "reason": "ValidMetricFound", "lastTransitionTime": now },
        ],
    }});
    let hpas: Api<DynamicObject> = Api::namespaced_with(client.clone(), &namespace, resource);
    hpas.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::desired_replicas;

    #[test]
    fn replicas_are_clamped_but_zero_stays_zero() {
        assert_eq!(desired_replicas(1, 2, 4), 2);
        assert_eq!(desired_replicas(9, 2, 4), 4);
        assert_eq!(desired_replicas(3, 2, 4), 3);
        assert_eq!(desired_replicas(0, 2, 4), 0);
    }
}
