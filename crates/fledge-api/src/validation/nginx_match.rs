//! What NGINX ingress can route on in A/B testing. Flagger writes `analysis.match` as the
//! annotations of the canary Ingress: one header (`canary-by-header` with
//! `canary-by-header-value` for an exact value or `canary-by-header-pattern` for a regex) and
//! one cookie (`canary-by-cookie`, from a `cookie` header condition). Anything else in a match
//! cannot be written, so it is refused here, where both `fledge validate` and the NGINX router
//! read it, instead of being dropped.

use super::{JsonPath, Problem};
use crate::canary::{HttpMatchRequest, StringMatch};

/// The header condition Flagger reads as a cookie name.
const COOKIE: &str = "cookie";

/// The problems of `matches` (the Canary's `analysis.match`, at `path`) for the `nginx`
/// provider; empty when every condition can be written as NGINX canary annotations.
pub fn nginx_match_problems(matches: &[HttpMatchRequest], path: &JsonPath) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut header: Option<(&str, &StringMatch)> = None;
    let mut cookie: Option<&StringMatch> = None;
    for (index, condition) in matches.iter().enumerate() {
        let at = path.index(index);
        for field in unsupported_fields(condition) {
            problems.push(Problem::new(
                at.field(field).as_str(),
                format!(
                    "the nginx provider routes A/B traffic by one header or one cookie only and cannot match on `{field}`; \
                     remove it, or use a provider that can (istio, gatewayapi)"
                ),
            ));
        }
        for (name, value) in &condition.headers {
            let header_path = at.field("headers").field(name);
            if name.eq_ignore_ascii_case(COOKIE) {
                if value.exact.is_none() {
                    problems.push(Problem::new(
                        header_path.as_str(),
                        "the nginx provider matches a cookie by its name (canary-by-cookie; requests whose cookie \
                         holds `always` go to the canary): use `exact: <cookie name>`",
                    ));
                } else if cookie.is_some_and(|seen| seen != value) {
                    problems.push(Problem::new(
                        header_path.as_str(),
                        "the nginx provider routes by one cookie only (canary-by-cookie); keep one cookie condition",
                    ));
                } else {
                    cookie = Some(value);
                }
                continue;
            }
            if value.prefix.is_some() {
                problems.push(Problem::new(
                    header_path.as_str(),
                    "the nginx provider matches a header by exact value or regex, not by prefix; \
                     use `regex: \"^<prefix>.*\"`",
                ));
            } else if header.is_some_and(|seen| seen != (name.as_str(), value)) {
                problems.push(Problem::new(
                    header_path.as_str(),
                    "the nginx provider routes by one header only (canary-by-header); keep one header condition",
                ));
            } else {
                header = Some((name, value));
            }
        }
    }
    problems
}

/// The fields of `condition` other than `headers` (and its `name`), which NGINX cannot match.
fn unsupported_fields(condition: &HttpMatchRequest) -> Vec<&'static str> {
    let HttpMatchRequest {
        name: _,
        headers: _,
        uri,
        scheme,
        method,
        authority,
        without_headers,
        query_params,
        port,
        source_labels,
        source_namespace,
        gateways,
        ignore_uri_case,
    } = condition;
    let set = [
        ("uri", uri.is_some()),
        ("scheme", scheme.is_some()),
        ("method", method.is_some()),
        ("authority", authority.is_some()),
        ("withoutHeaders", !without_headers.is_empty()),
        ("queryParams", !query_params.is_empty()),
        ("port", port.is_some()),
        ("sourceLabels", !source_labels.is_empty()),
        ("sourceNamespace", source_namespace.is_some()),
        ("gateways", !gateways.is_empty()),
        ("ignoreUriCase", *ignore_uri_case),
    ];
    set.into_iter()
        .filter_map(|(field, present)| present.then_some(field))
        .collect()
}
