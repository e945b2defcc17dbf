//! The rules of MetricTemplates and AlertProviders beyond their schemas.

use super::{Findings, JsonPath, Problem};
use crate::{AlertProvider, MetricProviderType, MetricTemplate};

/// A MetricTemplate needs a query, and an address for providers that have no default one.
pub(super) fn metric_template(template: &MetricTemplate) -> Findings {
    let spec = JsonPath::root().field("spec");
    let mut problems = Vec::new();
    if template.spec.query.trim().is_empty() {
        problems.push(Problem::new(
            spec.field("query"),
            "is empty; write the query the provider runs",
        ));
    }
    let provider = &template.spec.provider;
    let needs_address = matches!(
        provider.type_,
        MetricProviderType::Prometheus | MetricProviderType::Graphite
    );
    if needs_address
        && provider
            .address
            .as_deref()
            .is_none_or(|a| a.trim().is_empty())
    {
        problems.push(Problem::new(
            spec.field("provider").field("address"),
            "required field is missing; add the provider's URL (e.g. http://prometheus.istio-system:9090)",
        ));
    }
    if provider.type_ == MetricProviderType::Cloudwatch && provider.region.is_none() {
        problems.push(Problem::new(
            spec.field("provider").field("region"),
            "CloudWatch needs a region (e.g. us-east-1)",
        ));
    }
    (problems, Vec::new())
}

/// An AlertProvider needs an address, given inline or through its Secret.
pub(super) fn alert_provider(provider: &AlertProvider) -> Findings {
    let spec = JsonPath::root().field("spec");
    let mut problems = Vec::new();
    let address = provider
        .spec
        .address
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty());
    let secret = provider
        .spec
        .secret_ref
        .as_ref()
        .filter(|s| !s.name.is_empty());
    match (address, secret) {
        (None, None) => problems.push(Problem::new(
            spec.field("address"),
            "required field is missing; add the webhook address, or a secretRef to a Secret with an `address` key",
        )),
        (Some(a), _) if !(a.starts_with("http://") || a.starts_with("https://")) => {
            problems.push(Problem::new(spec.field("address"), format!("`{a}` is not an http(s) URL")));
        }
        _ => {}
    }
    (problems, Vec::new())
}
