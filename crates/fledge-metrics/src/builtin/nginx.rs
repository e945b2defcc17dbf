//! NGINX ingress: `nginx_ingress_controller_requests` of the canary ingress, and the *mean*
//! response time (Flagger's NGINX request-duration is sum/count, not a quantile).

use super::{BuiltinQueries, DurationUnit};

pub(super) const QUERIES: BuiltinQueries = BuiltinQueries {
    request_success_rate: r#"
    sum(
        rate(
            nginx_ingress_controller_requests{
                namespace="{{ namespace }}",
                ingress="{{ ingress }}",
                canary!="",
                status!~"5.*"
            }[{{ interval }}]
        )
    )
    /
    sum(
        rate(
            nginx_ingress_controller_requests{
                namespace="{{ namespace }}",
                ingress="{{ ingress }}",
                canary!=""
            }[{{ interval }}]
        )
    )
    * 100"#,
    request_duration: r#"
    sum(
        rate(
            nginx_ingress_controller_response_duration_seconds_sum{
                namespace="{{ namespace }}",
                ingress="{{ ingress }}",
                canary!=""
            }[{{ interval }}]
        )
    )
    /
    sum(
        rate(
            nginx_ingress_controller_response_duration_seconds_count{
                namespace="{{ namespace }}",
                ingress="{{ ingress }}",
                canary!=""
            }[{{ interval }}]
        )
    )
    * 1000"#,
    duration_unit: DurationUnit::Milliseconds,
};
