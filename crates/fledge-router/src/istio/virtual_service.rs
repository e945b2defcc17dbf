//! The Istio VirtualService of a canary: hosts, gateways, the weighted route and the A/B,
//! mirroring and session-affinity variants Flagger writes.

use fledge_api::Canary;
use fledge_api::canary::{CanaryService, HttpMatchRequest, StringMatch};
use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::routes::Routes;
use crate::session_affinity::{
    COOKIE_HEADER, SET_COOKIE_HEADER, active_cookies, cookie_regex, expired_cookie, session_cookies,
};

/// Whether the canary's port carries plain TCP (`service.appProtocol: tcp`).
pub(crate) fn is_tcp(service: &CanaryService) -> bool {
    service
        .app_protocol
        .as_deref()
        .is_some_and(|p| p.eq_ignore_ascii_case("tcp"))
}

/// The VirtualService spec for `routes`.
pub(crate) fn render_spec(canary: &Canary, routes: Routes) -> Result<Value> {
    let service = &canary.spec.service;
    let names = canary.spec.service_names();
    if service.delegation && (!service.hosts.is_empty() || !service.gateways.is_empty()) {
        return Err(Error::spec(
            "spec.service.delegation",
            "a delegate VirtualService cannot have hosts or gateways; remove spec.service.hosts and \
             spec.service.gateways, or set delegation to false",
        ));
    }
    let mut spec = Map::new();
    if !service.delegation {
        let mut hosts = service.hosts.clone();
        if !hosts.iter().any(|h| *h == names.apex || h == "*") {
            hosts.push(names.apex.clone());
        }
        let gateways = if service.gateways.is_empty() {
            vec!["mesh".to_owned()]
        } else {
            service.gateways.clone()
        };
        spec.insert("hosts".into(), json!(hosts));
        spec.insert("gateways".into(), json!(gateways));
    }
    let weighted = [
        destination(canary, &names.primary, routes.primary),
        destination(canary, &names.canary, routes.canary),
    ];
    if is_tcp(service) {
        let mut tcp = Map::new();
        let ports: Vec<Value> = service
            .match_
            .iter()
            .filter_map(|m| m.port)
            .map(|port| json!({ "port": port }))
            .collect();
        if !ports.is_empty() {
            tcp.insert("match".into(), Value::Array(ports));
        }
        tcp.insert("route".into(), Value::Array(weighted.to_vec()));
        spec.insert("tcp".into(), json!([tcp]));
        return Ok(Value::Object(spec));
    }
    let weighted_route = http_route(canary, &service.match_, weighted.to_vec())?;
    let mut http = match canary.analysis().and_then(|a| a.session_affinity.as_ref()) {
        Some(_) => session_affinity_routes(canary, routes, &weighted_route)?,
        None => vec![weighted_route],
    };
    if let (true, Some(Value::Object(first))) = (routes.mirrored, http.first_mut()) {
        first.insert("mirror".into(), json!({ "host": names.canary }));
        if let Some(weight) = canary
            .analysis()
            .and_then(|a| a.mirror_weight)
            .filter(|w| *w > 0)
        {
            first.insert("mirrorPercentage".into(), json!({ "value": weight }));
        }
    }
    let ab_match = canary
        .analysis()
        .map(|a| a.match_.as_slice())
        .unwrap_or_default();
    if !ab_match.is_empty() {
        http = vec![
            http_route(
                canary,
                &merge_matches(ab_match, &service.match_),
                weighted.to_vec(),
            )?,
            http_route(
                canary,
                &service.match_,
                vec![destination(canary, &names.primary, 100)],
            )?,
        ];
    }
    spec.insert("http".into(), Value::Array(http));
    Ok(Value::Object(spec))
}

/// One HTTP route with the service's match, rewrite, timeout, retries, CORS and headers.
fn http_route(canary: &Canary, matches: &[HttpMatchRequest], route: Vec<Value>) -> Result<Value> {
    let service = &canary.spec.service;
    let mut out = Map::new();
    if !matches.is_empty() {
        out.insert("match".into(), to_json(matches)?);
    }
    if let Some(rewrite) = &service.rewrite {
        // Istio has no rewrite type; that field is Gateway API's.
        let mut value = Map::new();
        if let Some(uri) = rewrite.uri.as_ref().filter(|u| !u.is_empty()) {
            value.insert("uri".into(), json!(uri));
        }
        if let Some(authority) = rewrite.authority.as_ref().filter(|a| !a.is_empty()) {
            value.insert("authority".into(), json!(authority));
        }
        out.insert("rewrite".into(), Value::Object(value));
    }
    if let Some(timeout) = &service.timeout {
        out.insert("timeout".into(), json!(timeout.as_str()));
    }
    if let Some(retries) = &service.retries {
        out.insert("retries".into(), to_json(retries)?);
    }
    if let Some(cors) = &service.cors_policy {
        out.insert("corsPolicy".into(), to_json(cors)?);
    }
    if let Some(headers) = &service.headers {
        out.insert("headers".into(), to_json(headers)?);
    }
    out.insert("route".into(), Value::Array(route));
    Ok(Value::Object(out))
}

/// A weighted destination; with port discovery behind a gateway (or a delegate) the port is
/// named, since the Service then exposes several.
fn destination(canary: &Canary, host: &str, weight: u32) -> Value {
    let service = &canary.spec.service;
    let behind_gateway =
        service.gateways.first().is_some_and(|g| g != "mesh") || service.delegation;
    if service.port_discovery && behind_gateway {
        json!({ "destination": { "host": host, "port": { "number": service.port } }, "weight": weight })
    } else {
        json!({ "destination": { "host": host }, "weight": weight })
    }
}

/// Flagger's mergeMatchConditions: every analysis condition combined with every service
/// condition, the analysis headers, query parameters and source labels taking precedence.
pub(crate) fn merge_matches(
    analysis: &[HttpMatchRequest],
    service: &[HttpMatchRequest],
) -> Vec<HttpMatchRequest> {
    if service.is_empty() {
        return analysis.to_vec();
    }
    let mut merged = Vec::with_capacity(analysis.len() * service.len());
    for a in analysis {
        for s in service {
            let mut m = s.clone();
            if !a.headers.is_empty() {
                m.headers.clone_from(&a.headers);
            }
            if !a.source_labels.is_empty() {
                m.source_labels.clone_from(&a.source_labels);
            }
            if !a.query_params.is_empty() {
                m.query_params.clone_from(&a.query_params);
            }
            merged.push(m);
        }
    }
    merged
}

fn cookie_match(pair: &str) -> HttpMatchRequest {
    HttpMatchRequest {
        headers: [(
            COOKIE_HEADER.to_owned(),
            StringMatch {
                regex: Some(cookie_regex(pair)),
                ..StringMatch::default()
            },
        )]
        .into(),
        ..HttpMatchRequest::default()
    }
}

/// Flagger's session-affinity rules: a sticky canary rule matching the canary cookie, a sticky
/// primary rule when a primary cookie is named, then the weighted rule whose destinations hand
/// out the cookies. At weight 0 the previous rollout's cookie is expired instead.
fn session_affinity_routes(
    canary: &Canary,
    routes: Routes,
    weighted: &Value,
) -> Result<Vec<Value>> {
    let names = canary.spec.service_names();
    let service_match = &canary.spec.service.match_;
    let (Some(affinity), Some(cookies)) = (
        canary.analysis().and_then(|a| a.session_affinity.as_ref()),
        session_cookies(canary),
    ) else {
        return Ok(vec![weighted.clone()]);
    };
    if routes.canary == 0 {
        let Some(previous) = cookies.previous.as_deref() else {
            return Ok(vec![weighted.clone()]);
        };
        let mut sticky = weighted.clone();
        sticky["match"] = to_json(&merge_matches(&[cookie_match(previous)], service_match))?;
        let headers = sticky
            .as_object_mut()
            .map(|o| o.entry("headers").or_insert_with(|| json!({})));
        if let Some(headers) = headers {
            let response = headers
                .as_object_mut()
                .map(|h| h.entry("response").or_insert_with(|| json!({})));
            if let Some(Value::Object(response)) = response {
                let add = response.entry("add").or_insert_with(|| json!({}));
                add[SET_COOKIE_HEADER] = json!(expired_cookie(previous));
            }
        }
        return Ok(vec![sticky, weighted.clone()]);
    }
    let active = active_cookies(canary, affinity, &cookies);
    let mut weighted = weighted.clone();
    if let Some(Value::Array(route)) = weighted.get_mut("route") {
        for dest in route.iter_mut() {
            let host = dest["destination"]["host"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let cookie = if host == names.canary {
                Some(&active.canary)
            } else {
                active.primary.as_ref()
            };
            if let Some(cookie) = cookie {
                dest["headers"] =
                    json!({ "response": { "add": { SET_COOKIE_HEADER: cookie.set_cookie } } });
            }
        }
    }
    let mut sticky_canary = weighted.clone();
    sticky_canary["match"] = to_json(&merge_matches(
        &[cookie_match(&active.canary.pair)],
        service_match,
    ))?;
    sticky_canary["route"] = json!([
        destination(canary, &names.primary, 0),
        destination(canary, &names.canary, 100)
    ]);
    let Some(primary) = &active.primary else {
        return Ok(vec![sticky_canary, weighted]);
    };
    let mut sticky_primary = weighted.clone();
    sticky_primary["match"] = to_json(&merge_matches(
        &[cookie_match(&primary.pair)],
        service_match,
    ))?;
    sticky_primary["route"] = json!([
        destination(canary, &names.primary, 100),
        destination(canary, &names.canary, 0)
    ]);
    Ok(vec![sticky_canary, sticky_primary, weighted])
}

fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<Value> {
    serde_json::to_value(value).map_err(|source| Error::Encode {
        kind: "VirtualService".to_owned(),
        name: String::new(),
        source,
    })
}
