//! Rendering `<name>-primary` from the target (Flagger's `createPrimaryDeployment`,
//! `createPrimaryDaemonSet` and `Promote`, which become one pure function: initialization
//! renders from the target before any rollout, promotion renders from the canary's template
//! once it passed).

use fledge_api::Canary;
use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetSpec, Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use crate::error::{Error, Result};
use crate::workload::checksum::json_hash;
use crate::workload::config_tracking::TrackedConfigs;
use crate::workload::labels::{
    PRIMARY_SUFFIX, SelectorLabel, find_selector_label, include_by_prefix, primary_labels,
};
use crate::workload::scaling::SCALE_TO_ZERO_NODE_SELECTOR;
use crate::workload::{
    Workload, WorkloadSettings, canary_namespace, owner_reference, primary_name,
};

/// The pod annotation whose change rolls the primary's pods on promotion. Flagger writes a
/// random UUID; Fledge derives it from the promoted template and configs, so rendering the
/// same revision twice gives the same object (and applying it twice changes nothing), while
/// a new image or a new config checksum still rolls the pods.
pub const PROMOTION_ID_ANNOTATION: &str = "flagger-id";

/// The selector label of `target` among `settings.selector_labels`.
///
/// # Errors
/// [`Error::SelectorLabel`] when its selector has none of them.
pub fn selector_label(target: &Workload, settings: &WorkloadSettings) -> Result<SelectorLabel> {
    find_selector_label(target.match_labels(), &settings.selector_labels).ok_or_else(|| {
        Error::SelectorLabel {
            kind: target.kind().as_str(),
            namespace: target.namespace().to_owned(),
            name: target.name().to_owned(),
            labels: settings.selector_labels.clone(),
        }
    })
}

/// The replicas of a Deployment primary: the target's when it runs, otherwise what the
/// primary runs now (never zero: the primary serves all traffic); with an autoscaler, the
/// primary keeps what its autoscaler chose.
pub fn primary_replicas(
    target: &Workload,
    existing_primary: Option<&Workload>,
    has_autoscaler: bool,
) -> i32 {
    let replicas = |workload: &Workload| match workload {
        Workload::Deployment(d) => d.spec.as_ref().and_then(|s| s.replicas).filter(|r| *r > 0),
        Workload::DaemonSet(_) => None,
    };
    let current = existing_primary.and_then(replicas);
    if has_autoscaler && current.is_some() {
        return current.unwrap_or(1);
    }
    replicas(target).or(current).unwrap_or(1)
}

/// The primary of `target` for `canary`: named `<target>-primary`, selecting
/// `<label>: <value>-primary`, owned by the Canary, with labels and annotations copied by
/// the include-label-prefix rule and the target's pod template pointing at the `-primary`
/// copies of its tracked configs. `replicas` applies to Deployments (see [`primary_replicas`]).
///
/// # Errors
/// [`Error::SelectorLabel`], [`Error::DaemonSetStrategy`], [`Error::CanaryMetadata`].
pub fn render_primary(
    canary: &Canary,
    target: &Workload,
    configs: &TrackedConfigs,
    settings: &WorkloadSettings,
    replicas: i32,
) -> Result<Workload> {
    let selector = selector_label(target, settings)?;
    let namespace = canary_namespace(canary)?;
    let source = target.metadata();
    let mut annotations = include_by_prefix(
        source.annotations.as_ref(),
        &settings.include_label_prefixes,
    );
    annotations.retain(|key, _| key != PROMOTION_ID_ANNOTATION);
    let metadata = ObjectMeta {
        name: Some(primary_name(target.name())),
        namespace: Some(namespace.to_owned()),
        labels: Some(primary_labels(
            Some(&include_by_prefix(
                source.labels.as_ref(),
                &settings.include_label_prefixes,
            )),
            &selector,
        )),
        annotations: Some(annotations),
        owner_references: Some(vec![owner_reference(canary)?]),
        ..ObjectMeta::default()
    };
    let selector_spec = LabelSelector {
        match_labels: Some([(selector.key.clone(), selector.primary_value())].into()),
        match_expressions: None,
    };
    let template = target.template().cloned().unwrap_or_default();
    let promotion_id = json_hash(&(&template, configs.checksums()), "pod template")?;
    Ok(match target {
        Workload::Deployment(deployment) => {
            let spec = deployment.spec.clone().unwrap_or_default();
            let mut pod_spec = configs.rewrite(template.spec.clone().unwrap_or_default());
            point_affinity_at_primary(&mut pod_spec, target.name(), &settings.selector_labels);
            Workload::Deployment(Deployment {
                metadata,
                spec: Some(DeploymentSpec {
                    progress_deadline_seconds: spec.progress_deadline_seconds,
                    min_ready_seconds: spec.min_ready_seconds,
                    revision_history_limit: spec.revision_history_limit,
                    strategy: spec.strategy,
                    replicas: Some(replicas),
                    selector: selector_spec,
                    template: primary_template(&template, pod_spec, &selector, &promotion_id),
                    paused: None,
                }),
                status: None,
            })
        }
        Workload::DaemonSet(daemon_set) => {
            let spec = daemon_set.spec.clone().unwrap_or_default();
            if let Some(strategy) = spec
                .update_strategy
                .as_ref()
                .and_then(|s| s.type_.as_deref())
                && strategy != "RollingUpdate"
            {
                return Err(Error::DaemonSetStrategy {
                    namespace: target.namespace().to_owned(),
                    name: target.name().to_owned(),
                    strategy: strategy.to_owned(),
                });
            }
            let mut pod_spec = configs.rewrite(template.spec.clone().unwrap_or_default());
            without_scale_to_zero(&mut pod_spec);
            Workload::DaemonSet(DaemonSet {
                metadata,
                spec: Some(DaemonSetSpec {
                    min_ready_seconds: spec.min_ready_seconds,
                    revision_history_limit: spec.revision_history_limit,
                    update_strategy: spec.update_strategy,
                    selector: selector_spec,
                    template: primary_template(&template, pod_spec, &selector, &promotion_id),
                }),
                status: None,
            })
        }
    })
}

fn primary_template(
    template: &PodTemplateSpec,
    spec: PodSpec,
    selector: &SelectorLabel,
    promotion_id: &str,
) -> PodTemplateSpec {
    let source = template.metadata.clone().unwrap_or_default();
    let mut annotations = crate::workload::labels::without_bookkeeping(source.annotations.as_ref());
    annotations.insert(PROMOTION_ID_ANNOTATION.to_owned(), promotion_id.to_owned());
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(primary_labels(source.labels.as_ref(), selector)),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        }),
        spec: Some(spec),
    }
}

/// The scale-to-zero node selector of a DaemonSet target never reaches the primary.
pub(crate) fn without_scale_to_zero(spec: &mut PodSpec) {
    if let Some(node_selector) = &mut spec.node_selector {
        node_selector.remove(SCALE_TO_ZERO_NODE_SELECTOR.0);
        if node_selector.is_empty() {
            spec.node_selector = None;
        }
    }
}

/// Topology spread constraints and pod anti-affinity that select the target's pods by a
/// selector label with the target's name now select the primary's pods (Flagger's
/// `appendPrimarySuffixToValuesIfNeeded`).
fn point_affinity_at_primary(spec: &mut PodSpec, target_name: &str, selector_labels: &[String]) {
    let retarget = |selector: &mut LabelSelector| {
        for expression in selector.match_expressions.iter_mut().flatten() {
            if selector_labels.contains(&expression.key)
                && let Some(value) = expression
                    .values
                    .iter_mut()
                    .flatten()
                    .find(|v| *v == target_name)
            {
                value.push_str(PRIMARY_SUFFIX);
            }
        }
        for (key, value) in selector.match_labels.iter_mut().flatten() {
            if selector_labels.contains(key) && value == target_name {
                value.push_str(PRIMARY_SUFFIX);
            }
        }
    };
    for constraint in spec.topology_spread_constraints.iter_mut().flatten() {
        if let Some(selector) = &mut constraint.label_selector {
            retarget(selector);
        }
    }
    if let Some(anti) = spec
        .affinity
        .as_mut()
        .and_then(|a| a.pod_anti_affinity.as_mut())
    {
        for term in anti
            .preferred_during_scheduling_ignored_during_execution
            .iter_mut()
            .flatten()
        {
            if let Some(selector) = &mut term.pod_affinity_term.label_selector {
                retarget(selector);
            }
        }
        for term in anti
            .required_during_scheduling_ignored_during_execution
            .iter_mut()
            .flatten()
        {
            if let Some(selector) = &mut term.label_selector {
                retarget(selector);
            }
        }
    }
}

#[cfg(test)]
#[path = "primary_tests.rs"]
mod tests;
