//! The CustomResourceDefinitions of Fledge, generated from the Rust types.
//!
//! They carry Flagger's names, categories and printer columns, so `kubectl get canaries`
//! looks the same, and they are structural schemas that install on a Kubernetes 1.20 API
//! server (no CEL, no `default: null`).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use kube::CustomResourceExt;

use crate::{AlertProvider, Canary, MetricTemplate};

/// The three CRDs: canaries, metrictemplates and alertproviders (all `flagger.app/v1beta1`).
pub fn all() -> Vec<CustomResourceDefinition> {
    let mut crds = vec![Canary::crd(), MetricTemplate::crd(), AlertProvider::crd()];
    for crd in &mut crds {
        for version in &mut crd.spec.versions {
            if let Some(schema) = version
                .schema
                .as_mut()
                .and_then(|s| s.open_api_v3_schema.as_mut())
            {
                strip_defaults(schema);
            }
        }
    }
    crds
}

/// Defaults are applied by [`crate::defaults`] when a spec is read, never stored by the API
/// server: what the user wrote stays what the user wrote.
fn strip_defaults(schema: &mut JSONSchemaProps) {
    schema.default = None;
    // An int-or-string that is also nullable breaks Kubernetes 1.20's OpenAPI publishing of
    // the whole CRD (kubectl explain, typed server-side apply); Flagger's has no nullable.
    if schema.x_kubernetes_int_or_string == Some(true) {
        schema.nullable = None;
    }
    for child in schema.properties.iter_mut().flat_map(|p| p.values_mut()) {
        strip_defaults(child);
    }
    match &mut schema.items {
        Some(JSONSchemaPropsOrArray::Schema(items)) => strip_defaults(items),
        Some(JSONSchemaPropsOrArray::Schemas(items)) => items.iter_mut().for_each(strip_defaults),
        None => {}
    }
    if let Some(JSONSchemaPropsOrBool::Schema(extra)) = &mut schema.additional_properties {
        strip_defaults(extra);
    }
    for branch in [&mut schema.any_of, &mut schema.one_of, &mut schema.all_of]
        .into_iter()
        .flatten()
    {
        branch.iter_mut().for_each(strip_defaults);
    }
}

/// The file name a CRD is written to under `deploy/crds/` (`canaries.flagger.app.yaml`).
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or("unnamed"))
}

/// The CRDs as one multi-document YAML stream, in a stable order.
pub fn to_yaml() -> Result<String, crate::yaml::YamlError> {
    let mut out = String::new();
    for crd in all() {
        out.push_str("---\n");
        out.push_str(&crate::yaml::to_string(&crd)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema_of(crd: &CustomResourceDefinition) -> &JSONSchemaProps {
        crd.spec.versions[0]
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .expect("every version has a schema")
    }

    /// The rules of a structural schema that a 1.20 API server enforces: every node has a type
    /// (unless it is int-or-string or preserves unknown fields), and nothing sets `default: null`.
    fn assert_structural(path: &str, schema: &JSONSchemaProps) {
        let free = schema.x_kubernetes_preserve_unknown_fields == Some(true)
            || schema.x_kubernetes_int_or_string == Some(true);
        assert!(schema.type_.is_some() || free, "{path}: no type");
        assert!(
            schema.default.is_none(),
            "{path}: defaults are not allowed here"
        );
        for (name, child) in schema.properties.iter().flatten() {
            assert_structural(&format!("{path}.{name}"), child);
        }
        if let Some(JSONSchemaPropsOrArray::Schema(items)) = &schema.items {
            assert_structural(&format!("{path}[]"), items);
        }
        if let Some(JSONSchemaPropsOrBool::Schema(extra)) = &schema.additional_properties {
            assert_structural(&format!("{path}{{}}"), extra);
        }
        for branch in schema.any_of.iter().chain(schema.one_of.iter()).flatten() {
            assert!(
                branch.type_.is_none() || schema.type_.is_some(),
                "{path}: untyped anyOf/oneOf"
            );
        }
    }

    #[test]
    fn crds_are_structural() {
        for crd in all() {
            assert_structural(crd.metadata.name.as_deref().unwrap_or("?"), schema_of(&crd));
        }
    }

    #[test]
    fn names_and_columns_match_flagger() {
        let crds = all();
        let names: Vec<_> = crds
            .iter()
            .map(|c| c.metadata.name.clone().unwrap_or_default())
            .collect();
        assert_eq!(
            names,
            [
                "canaries.flagger.app",
                "metrictemplates.flagger.app",
                "alertproviders.flagger.app"
            ]
        );
        let canary = &crds[0];
        assert_eq!(
            canary.spec.names.categories.as_deref(),
            Some(&["all".to_owned()][..])
        );
        let version = &canary.spec.versions[0];
        assert!(
            version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some()
        );
        let columns: Vec<_> = version
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(
            columns,
            [
                "Status",
                "Weight",
                "Suspended",
                "FailedChecks",
                "Interval",
                "Mirror",
                "StepWeight",
                "StepWeights",
                "MaxWeight",
                "LastTransitionTime"
            ]
        );
    }
}
