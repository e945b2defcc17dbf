//! The target's revision as the engine compares it with `status.lastAppliedSpec`: a hash
//! of its pod template plus the checksums of its tracked configs.

use fledge_engine::Revision;

use crate::error::Result;
use crate::workload::Workload;
use crate::workload::checksum::json_hash;
use crate::workload::config_tracking::TrackedConfigs;
use crate::workload::primary::without_scale_to_zero;

/// The hash of the target's pod template, blind to what Fledge itself changes on the target
/// (the scale-to-zero node selector of a DaemonSet), so scaling never looks like a new
/// revision. Flagger hashes Go's in-memory struct, which cannot be reproduced; a status
/// Flagger wrote is taken over by `cutover::adopt_flaggers_revision` instead.
///
/// # Errors
/// [`crate::Error::Json`] when the template cannot be serialized.
pub fn template_hash(target: &Workload) -> Result<String> {
    let mut template = target.template().cloned().unwrap_or_default();
    if let Some(spec) = &mut template.spec {
        without_scale_to_zero(spec);
        if spec
            .node_selector
            .as_ref()
            .is_some_and(std::collections::BTreeMap::is_empty)
        {
            spec.node_selector = None;
        }
    }
    json_hash(&template, "pod template")
}

/// The engine's view of the target's revision.
///
/// # Errors
/// As [`template_hash`].
pub fn revision(target: &Workload, configs: &TrackedConfigs) -> Result<Revision> {
    Ok(Revision {
        spec_hash: template_hash(target)?,
        configs: configs.checksums(),
    })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetSpec, Deployment, DeploymentSpec};
    use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};

    use super::*;
    use crate::workload::scaling::SCALE_TO_ZERO_NODE_SELECTOR;

    fn template(image: &str) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: None,
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "podinfo".into(),
                    image: Some(image.into()),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
        }
    }

    fn deployment(image: &str, replicas: i32) -> Workload {
        Workload::Deployment(Deployment {
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                template: template(image),
                ..DeploymentSpec::default()
            }),
            ..Deployment::default()
        })
    }

    #[test]
    fn a_new_image_is_a_new_revision_and_scaling_is_not() {
        let v1 = template_hash(&deployment("podinfo:6.0.0", 2)).ok();
        assert!(v1.is_some());
        assert_eq!(template_hash(&deployment("podinfo:6.0.0", 0)).ok(), v1);
        assert_ne!(template_hash(&deployment("podinfo:6.0.1", 2)).ok(), v1);
    }

    #[test]
    fn a_daemon_set_scaled_to_zero_keeps_its_revision() {
        let daemon_set = |node_selector: Option<&[(&str, &str)]>| {
            let mut template = template("podinfo:6.0.0");
            if let (Some(spec), Some(entries)) = (&mut template.spec, node_selector) {
                spec.node_selector = Some(
                    entries
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                );
            }
            Workload::DaemonSet(DaemonSet {
                spec: Some(DaemonSetSpec {
                    template,
                    ..DaemonSetSpec::default()
                }),
                ..DaemonSet::default()
            })
        };
        let running = template_hash(&daemon_set(None)).ok();
        let (key, value) = SCALE_TO_ZERO_NODE_SELECTOR;
        assert_eq!(
            template_hash(&daemon_set(Some(&[(key, value)]))).ok(),
            running
        );
        assert_eq!(template_hash(&daemon_set(Some(&[]))).ok(), running);
        assert_ne!(
            template_hash(&daemon_set(Some(&[("disk", "ssd")]))).ok(),
            running
        );
    }

    #[test]
    fn the_revision_carries_the_config_checksums() {
        let revision = revision(&deployment("podinfo:6.0.0", 1), &TrackedConfigs::default());
        assert!(revision.is_ok_and(|r| r.configs.is_empty() && r.spec_hash.len() == 16));
    }
}
