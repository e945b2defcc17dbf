//! Translation of the canary's Istio-style service options into Gateway API matches and filters.

use std::collections::BTreeMap;

use fledge_api::canary::{CanaryService, HeaderOperations, HttpMatchRequest, StringMatch};
use serde_json::{Map, Value, json};

use crate::error::{Error, Result};

/// The Gateway API matches of Istio-style conditions; `field` is the JSON path they came from.
pub(crate) fn route_matches(conditions: &[HttpMatchRequest], field: &str) -> Result<Vec<Value>> {
    let mut matches = Vec::new();
    for (index, condition) in conditions.iter().enumerate() {
        let at = format!("{field}[{index}]");
        let mut out = Map::new();
        if let Some(uri) = &condition.uri {
            let (kind, value) = if let Some(regex) = non_empty(uri.regex.as_ref()) {
                ("RegularExpression", regex)
            } else if let Some(exact) = non_empty(uri.exact.as_ref()) {
                ("Exact", exact)
            } else if let Some(prefix) = non_empty(uri.prefix.as_ref()) {
                ("PathPrefix", prefix)
            } else {
                return Err(Error::spec(
                    format!("{at}.uri"),
                    "set one of exact, prefix or regex",
                ));
            };
            out.insert("path".into(), json!({ "type": kind, "value": value }));
        }
        if let Some(method) = &condition.method {
            let Some(exact) = non_empty(method.exact.as_ref()) else {
                return Err(Error::spec(
                    format!("{at}.method"),
                    "Gateway API matches methods by exact value only; use method.exact",
                ));
            };
            out.insert("method".into(), json!(exact));
        }
        let headers = value_matches(&condition.headers, &format!("{at}.headers"))?;
        if !headers.is_empty() {
            out.insert("headers".into(), Value::Array(headers));
        }
        let params = value_matches(&condition.query_params, &format!("{at}.queryParams"))?;
        if !params.is_empty() {
            out.insert("queryParams".into(), Value::Array(params));
        }
        if !out.is_empty() {
            matches.push(Value::Object(out));
        }
    }
    Ok(matches)
}

fn value_matches(conditions: &BTreeMap<String, StringMatch>, field: &str) -> Result<Vec<Value>> {
    conditions
        .iter()
        .map(|(name, condition)| {
            if let Some(exact) = non_empty(condition.exact.as_ref()) {
                Ok(json!({ "type": "Exact", "name": name, "value": exact }))
            } else if let Some(regex) = non_empty(condition.regex.as_ref()) {
                Ok(json!({ "type": "RegularExpression", "name": name, "value": regex }))
            } else {
                Err(Error::spec(
                    format!("{field}.{name}"),
                    "Gateway API matches by exact value or regex only; use exact or regex instead of prefix",
                ))
            }
        })
        .collect()
}

fn non_empty(value: Option<&String>) -> Option<&str> {
    value.map(String::as_str).filter(|v| !v.is_empty())
}

/// Flagger's merge of A/B conditions into the service's: every pair, the analysis headers and
/// query parameters replacing the service's.
pub(crate) fn merge_route_matches(analysis: &[Value], service: &[Value]) -> Vec<Value> {
    if analysis.is_empty() {
        return service.to_vec();
    }
    if service.is_empty() {
        return analysis.to_vec();
    }
    let mut merged = Vec::new();
    for a in analysis {
        for s in service {
            let mut m = s.clone();
            for key in ["headers", "queryParams"] {
                if a[key].as_array().is_some_and(|v| !v.is_empty()) {
                    m[key] = a[key].clone();
                }
            }
            merged.push(m);
        }
    }
    merged
}

/// The rule filters of the service: header modifiers, rewrite, mirrors and CORS.
pub(crate) fn rule_filters(service: &CanaryService) -> Result<Vec<Value>> {
    let mut filters = Vec::new();
    if let Some(headers) = &service.headers {
        if let Some(request) = &headers.request {
            filters.push(json!({ "type": "RequestHeaderModifier", "requestHeaderModifier": header_filter(request) }));
        }
        if let Some(response) = &headers.response {
            filters.push(json!({ "type": "ResponseHeaderModifier", "responseHeaderModifier": header_filter(response) }));
        }
    }
    if let Some(rewrite) = &service.rewrite {
        let mut url = Map::new();
        if let Some(authority) = non_empty(rewrite.authority.as_ref()) {
            url.insert("hostname".into(), json!(authority));
        }
        if let Some(uri) = non_empty(rewrite.uri.as_ref()) {
            let kind = rewrite
                .type_
                .as_deref()
                .filter(|t| !t.is_empty())
                .unwrap_or("ReplaceFullPath");
            let path = match kind {
                "ReplaceFullPath" => json!({ "type": kind, "replaceFullPath": uri }),
                "ReplacePrefixMatch" => json!({ "type": kind, "replacePrefixMatch": uri }),
                other => {
                    return Err(Error::spec(
                        "spec.service.rewrite.type",
                        format!("must be ReplaceFullPath or ReplacePrefixMatch, got {other:?}"),
                    ));
                }
            };
            url.insert("path".into(), path);
        }
        filters.push(json!({ "type": "URLRewrite", "urlRewrite": url }));
    }
    for mirror in &service.mirror {
        let mut request_mirror = json!({ "backendRef": mirror.backend_ref });
        if mirror.backend_ref.kind.is_none() {
            request_mirror["backendRef"]["kind"] = json!("Service");
        }
        if let Some(percent) = mirror.percent {
            request_mirror["percent"] = json!(percent);
        }
        if let Some(fraction) = &mirror.fraction {
            request_mirror["fraction"] = json!({
                "numerator": fraction.numerator,
                "denominator": fraction.denominator.unwrap_or(100),
            });
        }
        filters.push(json!({ "type": "RequestMirror", "requestMirror": request_mirror }));
    }
    if let Some(cors) = &service.cors_policy {
        if !cors.allow_origins.is_empty() {
            return Err(Error::spec(
                "spec.service.corsPolicy.allowOrigins",
                "Gateway API matches origins by exact value only; list them in corsPolicy.allowOrigin",
            ));
        }
        let mut out = Map::new();
        let mut list = |key: &str, values: &[String]| {
            if !values.is_empty() {
                out.insert(key.into(), json!(values));
            }
        };
        list("allowOrigins", &cors.allow_origin);
        list("allowMethods", &cors.allow_methods);
        list("allowHeaders", &cors.allow_headers);
        list("exposeHeaders", &cors.expose_headers);
        if cors.allow_credentials == Some(true) {
            out.insert("allowCredentials".into(), json!(true));
        }
        // Gateway API's default is 5 seconds; written out so re-applying is a no-op.
        let max_age = cors
            .max_age
            .as_ref()
            .map_or(5, |age| age.as_duration().as_secs());
        out.insert("maxAge".into(), json!(max_age));
        filters.push(json!({ "type": "CORS", "cors": out }));
    }
    Ok(filters)
}

fn header_filter(operations: &HeaderOperations) -> Value {
    let pairs = |map: &BTreeMap<String, String>| -> Vec<Value> {
        map.iter()
            .map(|(name, value)| json!({ "name": name, "value": value }))
            .collect()
    };
    let mut out = Map::new();
    if !operations.add.is_empty() {
        out.insert("add".into(), Value::Array(pairs(&operations.add)));
    }
    if !operations.set.is_empty() {
        out.insert("set".into(), Value::Array(pairs(&operations.set)));
    }
    if !operations.remove.is_empty() {
        out.insert("remove".into(), json!(operations.remove));
    }
    Value::Object(out)
}
