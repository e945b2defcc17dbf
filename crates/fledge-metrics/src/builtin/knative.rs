//! Knative: Envoy's cluster `{namespace}/{route}`, where the route is the service's latest
//! created revision (the operator sets it with [`MetricTemplateModel::with_route`](crate::MetricTemplateModel::with_route)).

use super::{BuiltinQueries, DurationUnit};

pub(super) const QUERIES: BuiltinQueries = BuiltinQueries {
    request_success_rate: r#"
    sum(
        rate(
            envoy_cluster_upstream_rq{
                envoy_cluster_name=~"{{ namespace }}/{{ route }}",
                envoy_response_code!~"5.*"
            }[{{ interval }}]
        )
    )
    /
    sum(
        rate(
            envoy_cluster_upstream_rq{
                envoy_cluster_name=~"{{ namespace }}/{{ route }}",
            }[{{ interval }}]
        )
    )
    * 100"#,
    request_duration: r#"
    histogram_quantile(
        0.99,
        sum(
            rate(
                envoy_cluster_upstream_rq_time_bucket{
                    envoy_cluster_name=~"{{ namespace }}/{{ route }}",
                }[{{ interval }}]
            )
        ) by (le)
    )"#,
    duration_unit: DurationUnit::Milliseconds,
};
