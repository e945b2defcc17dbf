//! APISIX: `apisix_http_status` and `apisix_http_latency_bucket` (type `request`) of the canary
//! route (`{namespace}_{route}-{target}-canary_…`).

use super::{BuiltinQueries, DurationUnit};

pub(super) const QUERIES: BuiltinQueries = BuiltinQueries {
    request_success_rate: r#"
    sum(
        rate(
            apisix_http_status{
                route=~"{{ namespace }}_{{ route }}-{{ target }}-canary_.+",
                code!~"5.."
            }[{{ interval }}]
        )
    )
    /
    sum(
        rate(
            apisix_http_status{
                route=~"{{ namespace }}_{{ route }}-{{ target }}-canary_.+"
            }[{{ interval }}]
        )
    ) * 100"#,
    request_duration: r#"
    histogram_quantile(
        0.99,
        sum(
            rate(
                apisix_http_latency_bucket{
                    type=~"request",
                    route=~"{{ namespace }}_{{ route }}-{{ target }}-canary_.+"
                }[{{ interval }}]
            )
        ) by (le)
    )"#,
    duration_unit: DurationUnit::Milliseconds,
};
