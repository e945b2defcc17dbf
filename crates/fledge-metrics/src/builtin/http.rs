//! Kubernetes (blue/green by selector) and Gateway API: the application's own
//! `http_request_duration_seconds` histogram, selected by the canary pods' names. The P99
//! comes back in seconds.

use super::{BuiltinQueries, DurationUnit};

pub(super) const QUERIES: BuiltinQueries = BuiltinQueries {
    request_success_rate: r#"
    sum(
        rate(
            http_request_duration_seconds_count{
                kubernetes_namespace="{{ namespace }}",
                kubernetes_pod_name=~"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)",
                status!~"5.*"
            }[{{ interval }}]
        )
    )
    /
    sum(
        rate(
            http_request_duration_seconds_count{
                kubernetes_namespace="{{ namespace }}",
                kubernetes_pod_name=~"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)"
            }[{{ interval }}]
        )
    )
    * 100"#,
    request_duration: r#"
    histogram_quantile(
        0.99,
        sum(
            rate(
                http_request_duration_seconds_bucket{
                    kubernetes_namespace="{{ namespace }}",
                    kubernetes_pod_name=~"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)"
                }[{{ interval }}]
            )
        ) by (le)
    )"#,
    duration_unit: DurationUnit::Seconds,
};
