//! Skipper: the canary route (`kube(ew)?_{namespace}__{ingress}_canary__…__{service}_canary`),
//! success from the `+Inf` bucket of `skipper_response_duration_seconds`, duration as the
//! mean of `skipper_serve_route_duration_seconds`.
//!
//! Flagger binds the route pattern to `$route` once; handlebars has no template variables,
//! so the same `printf` is written out where it is used. Skipper route ids only hold word
//! characters, so the model's names are encoded first (see [`encode_model`]).

use super::{BuiltinQueries, DurationUnit};
use crate::MetricTemplateModel;

pub(super) const QUERIES: BuiltinQueries = BuiltinQueries {
    request_success_rate: r#"
    sum(rate(skipper_response_duration_seconds_bucket{route=~"{{ printf "kube(ew)?_%s__%s_canary__.*__%s_canary(_[0-9]+)?" namespace ingress service }}",code!~"5..",le="+Inf"}[{{ interval }}])) /
    sum(rate(skipper_response_duration_seconds_bucket{route=~"{{ printf "kube(ew)?_%s__%s_canary__.*__%s_canary(_[0-9]+)?" namespace ingress service }}",le="+Inf"}[{{ interval }}])) * 100"#,
    request_duration: r#"
    sum(rate(skipper_serve_route_duration_seconds_sum{route=~"{{ printf "kube(ew)?_%s__%s_canary__.*__%s_canary(_[0-9]+)?" namespace ingress service }}"}[{{ interval }}])) /
    sum(rate(skipper_serve_route_duration_seconds_count{route=~"{{ printf "kube(ew)?_%s__%s_canary__.*__%s_canary(_[0-9]+)?" namespace ingress service }}"}[{{ interval }}])) * 1000"#,
    duration_unit: DurationUnit::Milliseconds,
};

/// Replaces every non-word character of name, namespace, target, service and ingress with `_`,
/// as Skipper does when it builds route ids (and as Flagger's `encodeModelForSkipper`).
pub(super) fn encode_model(model: &MetricTemplateModel) -> MetricTemplateModel {
    let encode = |text: &str| -> String {
        text.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    MetricTemplateModel {
        name: encode(&model.name),
        namespace: encode(&model.namespace),
        target: encode(&model.target),
        service: encode(&model.service),
        ingress: encode(&model.ingress),
        ..model.clone()
    }
}
