//! Traefik: `traefik_service_request_duration_seconds` of the canary service
//! (`{namespace}-{target}-canary-{port}@kubernetescrd`); success from the `+Inf` bucket.

use super::{BuiltinQueries, DurationUnit};

pub(super) const QUERIES: BuiltinQueries = BuiltinQueries {
    request_success_rate: r#"
    sum(
        rate(
            traefik_service_request_duration_seconds_bucket{
                service=~"{{ namespace }}-{{ target }}-canary-[0-9a-zA-Z-]+@kubernetescrd",
                code!~"5..",
                le="+Inf"
            }[{{ interval }}]
        )
    )
    /
    sum(
        rate(
            traefik_service_request_duration_seconds_bucket{
                service=~"{{ namespace }}-{{ target }}-canary-[0-9a-zA-Z-]+@kubernetescrd",
                le="+Inf"
            }[{{ interval }}]
        )
    ) * 100"#,
    request_duration: r#"
    histogram_quantile(
        0.99,
        sum(
            rate(
                traefik_service_request_duration_seconds_bucket{
                    service=~"{{ namespace }}-{{ target }}-canary-[0-9a-zA-Z-]+@kubernetescrd"
                }[{{ interval }}]
            )
        ) by (le)
    ) * 1000"#,
    duration_unit: DurationUnit::Milliseconds,
};
