//! Linkerd: the proxy's inbound `response_total` (classified) and `response_latency_ms_bucket`.

use super::{BuiltinQueries, DurationUnit};

pub(super) const QUERIES: BuiltinQueries = BuiltinQueries {
    request_success_rate: r#"
    sum(
        rate(
            response_total{
                namespace="{{ namespace }}",
                deployment=~"{{ target }}",
                classification!="failure",
                direction="inbound"
            }[{{ interval }}]
        )
    )
    /
    sum(
        rate(
            response_total{
                namespace="{{ namespace }}",
                deployment=~"{{ target }}",
                direction="inbound"
            }[{{ interval }}]
        )
    )
    * 100"#,
    request_duration: r#"
    histogram_quantile(
        0.99,
        sum(
            rate(
                response_latency_ms_bucket{
                    namespace="{{ namespace }}",
                    deployment=~"{{ target }}",
                    direction="inbound"
                }[{{ interval }}]
            )
        ) by (le)
    )"#,
    duration_unit: DurationUnit::Milliseconds,
};
