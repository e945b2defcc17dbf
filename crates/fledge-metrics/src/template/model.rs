//! The values a query template can refer to, as Flagger's `MetricTemplateModel`.

use std::collections::BTreeMap;

use fledge_api::Canary;
use fledge_api::canary::CanaryMetric;
use serde::Serialize;

/// Window of a metric when `metrics[].interval` is not set, as written in Flagger.
pub const DEFAULT_METRIC_INTERVAL: &str = "1m";

/// What `{{ name }}`, `{{ namespace }}`, `{{ target }}`, `{{ service }}`, `{{ ingress }}`,
/// `{{ route }}`, `{{ interval }}` and `{{ variables.NAME }}` stand for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MetricTemplateModel {
    /// The canary's name.
    pub name: String,
    /// The canary's namespace.
    pub namespace: String,
    /// `spec.targetRef.name`.
    pub target: String,
    /// `spec.service.name`, else the target name.
    pub service: String,
    /// `spec.ingressRef.name`, else the target name.
    pub ingress: String,
    /// `spec.routeRef.name`, else the target name (Knative: the latest created revision).
    pub route: String,
    /// The metric's `interval` as written (`1m`, `30s`), else `1m`.
    pub interval: String,
    /// The metric's `templateVariables`.
    pub variables: BTreeMap<String, String>,
}

impl MetricTemplateModel {
    /// The model Flagger builds for one metric of a canary (`toMetricModel`).
    pub fn for_canary(canary: &Canary, metric: &CanaryMetric) -> Self {
        let spec = &canary.spec;
        let target = spec.target_ref.name.clone();
        let or_target = |name: Option<&String>| {
            name.filter(|name| !name.is_empty())
                .cloned()
                .unwrap_or_else(|| target.clone())
        };
        Self {
            name: canary.metadata.name.clone().unwrap_or_default(),
            namespace: canary.metadata.namespace.clone().unwrap_or_default(),
            service: or_target(spec.service.name.as_ref()),
            ingress: or_target(spec.ingress_ref.as_ref().map(|r| &r.name)),
            route: or_target(spec.route_ref.as_ref().map(|r| &r.name)),
            interval: metric.interval.as_ref().map_or_else(
                || DEFAULT_METRIC_INTERVAL.to_owned(),
                |interval| interval.as_str().to_owned(),
            ),
            variables: metric.template_variables.clone(),
            target,
        }
    }

    /// The same model with another `route` (Knative uses the latest created revision).
    pub fn with_route(mut self, route: impl Into<String>) -> Self {
        self.route = route.into();
        self
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (house rule).
mod tests {
    use super::*;

    fn canary(spec: &str) -> Canary {
        serde_yaml::from_str(&format!(
            "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {{name: podinfo, namespace: test}}\nspec: {spec}"
        ))
        .unwrap()
    }

    #[test]
    fn names_default_to_the_target_and_the_interval_to_one_minute() {
        let canary = canary(
            "{targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo-app}, service: {port: 80}}",
        );
        let metric: CanaryMetric = serde_yaml::from_str("{name: error-rate}").unwrap();
        let model = MetricTemplateModel::for_canary(&canary, &metric);
        assert_eq!(
            model,
            MetricTemplateModel {
                name: "podinfo".into(),
                namespace: "test".into(),
                target: "podinfo-app".into(),
                service: "podinfo-app".into(),
                ingress: "podinfo-app".into(),
                route: "podinfo-app".into(),
                interval: "1m".into(),
                variables: BTreeMap::new(),
            }
        );
    }

    #[test]
    fn service_ingress_route_interval_and_variables_come_from_the_canary() {
        let canary = canary(
            "{targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}, service: {name: frontend, port: 80}, \
             ingressRef: {apiVersion: networking.k8s.io/v1, kind: Ingress, name: web}, \
             routeRef: {apiVersion: apisix.apache.org/v2, kind: ApisixRoute, name: web-route}}",
        );
        let metric: CanaryMetric = serde_yaml::from_str(
            "{name: latency, interval: 30s, templateVariables: {direction: inbound}}",
        )
        .unwrap();
        let model = MetricTemplateModel::for_canary(&canary, &metric).with_route("podinfo-00002");
        assert_eq!(
            (
                model.service.as_str(),
                model.ingress.as_str(),
                model.route.as_str(),
                model.interval.as_str()
            ),
            ("frontend", "web", "podinfo-00002", "30s")
        );
        assert_eq!(model.variables["direction"], "inbound");
    }
}
