//! How a request finds its version: the routes currently in the cluster, as a pure model.
//!
//! Each mesh's resource is read into one [`RouteTable`]: an ordered list of routes, the
//! first whose matches accept the request wins, and its weighted destinations pick the
//! version. Parsers exist for Istio VirtualService, Gateway API HTTPRoute, SMI
//! TrafficSplit, NGINX canary Ingress annotations and Service selectors (blue/green with the
//! `kubernetes` provider).

use serde_json::Value;

use crate::error::{Error, Result};

/// Which workload a request lands on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    /// `<target>-primary`, the stable version.
    Primary,
    /// `<target>`, the version under test.
    Canary,
}

/// A simulated request: the headers the routes can match on (cookies are the `cookie` header).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// Header names (lower case) and values.
    pub headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// How a header value is compared.
#[derive(Debug, Clone)]
pub enum StringMatch {
    /// Equal.
    Exact(String),
    /// Starts with.
    Prefix(String),
    /// Matches the regular expression as a whole (RE2 syntax and full-match, like Envoy).
    Regex(regex::Regex),
}

impl StringMatch {
    fn accepts(&self, value: &str) -> bool {
        match self {
            StringMatch::Exact(expected) => value == expected,
            StringMatch::Prefix(prefix) => value.starts_with(prefix.as_str()),
            StringMatch::Regex(re) => re.is_match(value),
        }
    }
}

/// All header conditions of one match block (every one must hold).
#[derive(Debug, Clone, Default)]
pub struct RequestMatch {
    /// Header name and how its value must compare.
    pub headers: Vec<(String, StringMatch)>,
}

impl RequestMatch {
    fn accepts(&self, request: &Request) -> bool {
        self.headers
            .iter()
            .all(|(name, matcher)| request.header(name).is_some_and(|v| matcher.accepts(v)))
    }
}

/// One route: when any match block accepts the request (or there are none), the request
/// goes to a destination drawn by weight, and a copy may be mirrored.
#[derive(Debug, Clone, Default)]
pub struct Route {
    /// Alternative match blocks; empty means "every request".
    pub matches: Vec<RequestMatch>,
    /// Versions and their relative weights.
    pub destinations: Vec<(Version, f64)>,
    /// A version that receives a copy of a share (0–100 %) of the requests.
    pub mirror: Option<(Version, f64)>,
}

impl Route {
    fn accepts(&self, request: &Request) -> bool {
        self.matches.is_empty() || self.matches.iter().any(|m| m.accepts(request))
    }
}

/// The routes of one app and where they came from.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    /// What the table was read from (`VirtualService test/podinfo`).
    pub source: String,
    /// Routes in order; the first that accepts a request decides.
    pub routes: Vec<Route>,
}

/// Where one request goes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    /// The version that answers.
    pub version: Version,
    /// A version that receives a copy, if mirrored.
    pub mirror: Option<Version>,
}

impl RouteTable {
    /// Everything to one version (no routing resource at all).
    pub fn single(version: Version, source: impl Into<String>) -> Self {
        Self {
            source: source.into(),
            routes: vec![Route {
                destinations: vec![(version, 1.0)],
                ..Route::default()
            }],
        }
    }

    /// Routes a request, given two uniform draws in `[0, 1)`: one for the weights, one for
    /// the mirror share. `None` when no route accepts it or its weights are all zero.
    pub fn decide(&self, request: &Request, pick: f64, mirror_pick: f64) -> Option<Decision> {
        let route = self.routes.iter().find(|r| r.accepts(request))?;
        let total: f64 = route.destinations.iter().map(|(_, w)| w.max(0.0)).sum();
        if total <= 0.0 {
            return None;
        }
        let mut point = pick * total;
        let mut version = route.destinations.last()?.0;
        for (candidate, weight) in &route.destinations {
            if point < weight.max(0.0) {
                version = *candidate;
                break;
            }
            point -= weight.max(0.0);
        }
        let mirror = route
            .mirror
            .filter(|(_, percent)| mirror_pick * 100.0 < *percent)
            .map(|(v, _)| v);
        Some(Decision { version, mirror })
    }
}

/// Maps a host or backend name to a version: `<service>-primary` and `<service>-canary`, also
/// as `name.namespace.svc.cluster.local`.
#[derive(Debug, Clone)]
pub struct Names {
    /// The apex service (`podinfo`).
    pub service: String,
}

impl Names {
    fn version_of(&self, host: &str) -> Option<Version> {
        let short = host.split('.').next().unwrap_or(host);
        if short == format!("{}-primary", self.service) {
            Some(Version::Primary)
        } else if short == format!("{}-canary", self.service) {
            Some(Version::Canary)
        } else {
            None
        }
    }
}

fn string_match(field: &str, spec: &Value) -> Result<Option<StringMatch>> {
    if let Some(v) = spec.get("exact").and_then(Value::as_str) {
        return Ok(Some(StringMatch::Exact(v.to_owned())));
    }
    if let Some(v) = spec.get("prefix").and_then(Value::as_str) {
        return Ok(Some(StringMatch::Prefix(v.to_owned())));
    }
    if let Some(v) = spec.get("regex").and_then(Value::as_str) {
        return regex(field, v).map(Some);
    }
    Ok(None)
}

fn regex(field: &str, pattern: &str) -> Result<StringMatch> {
    regex::Regex::new(&format!("^(?:{pattern})$"))
        .map(StringMatch::Regex)
        .map_err(|e| Error::Setting {
            field: field.to_owned(),
            reason: format!("not a valid regular expression: {e}"),
        })
}

/// Reads an Istio VirtualService's `spec.http` routes.
///
/// # Errors
/// [`Error::Setting`] for an invalid header regex.
pub fn from_virtual_service(object: &Value, names: &Names) -> Result<RouteTable> {
    let mut routes = Vec::new();
    for (i, http) in object["spec"]["http"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let mut matches = Vec::new();
        for m in http["match"].as_array().into_iter().flatten() {
            let mut headers = Vec::new();
            for (name, spec) in m["headers"].as_object().into_iter().flatten() {
                let field = format!("VirtualService spec.http[{i}].match.headers.{name}");
                if let Some(matcher) = string_match(&field, spec)? {
                    headers.push((name.to_ascii_lowercase(), matcher));
                }
            }
            matches.push(RequestMatch { headers });
        }
        let entries: Vec<&Value> = http["route"].as_array().into_iter().flatten().collect();
        let single = entries.len() == 1;
        let destinations = entries
            .iter()
            .filter_map(|r| {
                let version = names.version_of(r["destination"]["host"].as_str()?)?;
                let weight = r["weight"]
                    .as_f64()
                    .unwrap_or(if single { 100.0 } else { 0.0 });
                Some((version, weight))
            })
            .collect();
        let mirror = http["mirror"]["host"]
            .as_str()
            .and_then(|h| names.version_of(h))
            .map(|v| {
                let percent = http["mirrorPercentage"]["value"]
                    .as_f64()
                    .or_else(|| http["mirror_percent"].as_f64())
                    .unwrap_or(100.0);
                (v, percent)
            });
        routes.push(Route {
            matches,
            destinations,
            mirror,
        });
    }
    Ok(RouteTable {
        source: describe("VirtualService", object),
        routes,
    })
}

/// Reads a Gateway API HTTPRoute's `spec.rules`.
///
/// # Errors
/// [`Error::Setting`] for an invalid header regex.
pub fn from_http_route(object: &Value, names: &Names) -> Result<RouteTable> {
    let mut routes = Vec::new();
    for (i, rule) in object["spec"]["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let mut matches = Vec::new();
        for m in rule["matches"].as_array().into_iter().flatten() {
            let mut headers = Vec::new();
            for h in m["headers"].as_array().into_iter().flatten() {
                let (Some(name), Some(value)) = (h["name"].as_str(), h["value"].as_str()) else {
                    continue;
                };
                let comparison = if h["type"] == "RegularExpression" {
                    regex(
                        &format!("HTTPRoute spec.rules[{i}].matches.headers[{name}]"),
                        value,
                    )?
                } else {
                    StringMatch::Exact(value.to_owned())
                };
                headers.push((name.to_ascii_lowercase(), comparison));
            }
            matches.push(RequestMatch { headers });
        }
        let destinations = rule["backendRefs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|b| {
                Some((
                    names.version_of(b["name"].as_str()?)?,
                    b["weight"].as_f64().unwrap_or(1.0),
                ))
            })
            .collect();
        let mirror = rule["filters"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|f| f["type"] == "RequestMirror")
            .and_then(|f| names.version_of(f["requestMirror"]["backendRef"]["name"].as_str()?))
            .map(|v| (v, 100.0));
        routes.push(Route {
            matches,
            destinations,
            mirror,
        });
    }
    Ok(RouteTable {
        source: describe("HTTPRoute", object),
        routes,
    })
}

/// Reads an SMI TrafficSplit's backends (weights as numbers or quantities like `500m`).
pub fn from_traffic_split(object: &Value, names: &Names) -> RouteTable {
    let destinations = object["spec"]["backends"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| {
            Some((
                names.version_of(b["service"].as_str()?)?,
                quantity(&b["weight"])?,
            ))
        })
        .collect();
    RouteTable {
        source: describe("TrafficSplit", object),
        routes: vec![Route {
            destinations,
            ..Route::default()
        }],
    }
}

/// The default prefix of the NGINX canary annotations.
pub const NGINX_ANNOTATIONS_PREFIX: &str = "nginx.ingress.kubernetes.io";

/// Reads NGINX's canary Ingress (`<ingress>-canary` with `<prefix>/canary*` annotations):
/// header and cookie routes first, then the weight, as ingress-nginx orders them.
///
/// # Errors
/// [`Error::Setting`] for an invalid header pattern.
pub fn from_canary_ingress(object: &Value, prefix: &str) -> Result<RouteTable> {
    let annotations = &object["metadata"]["annotations"];
    let get = |key: &str| {
        annotations
            .get(format!("{prefix}/{key}"))
            .and_then(Value::as_str)
    };
    let mut routes = Vec::new();
    if get("canary") == Some("true") {
        let to_canary = vec![(Version::Canary, 1.0)];
        if let Some(header) = get("canary-by-header") {
            let matcher = match (
                get("canary-by-header-value"),
                get("canary-by-header-pattern"),
            ) {
                (Some(value), _) => StringMatch::Exact(value.to_owned()),
                (None, Some(pattern)) => {
                    regex("Ingress annotation canary-by-header-pattern", pattern)?
                }
                (None, None) => StringMatch::Exact("always".to_owned()),
            };
            routes.push(Route {
                matches: vec![RequestMatch {
                    headers: vec![(header.to_ascii_lowercase(), matcher)],
                }],
                destinations: to_canary.clone(),
                mirror: None,
            });
        }
        if let Some(cookie) = get("canary-by-cookie") {
            let pattern = format!("(.*;\\s*)?{}=always(;.*)?", regex::escape(cookie));
            let matcher = regex("Ingress annotation canary-by-cookie", &pattern)?;
            routes.push(Route {
                matches: vec![RequestMatch {
                    headers: vec![("cookie".to_owned(), matcher)],
                }],
                destinations: to_canary,
                mirror: None,
            });
        }
        let weight = get("canary-weight")
            .and_then(|w| w.parse::<f64>().ok())
            .unwrap_or(0.0);
        routes.push(Route {
            destinations: vec![
                (Version::Canary, weight),
                (Version::Primary, (100.0 - weight).max(0.0)),
            ],
            ..Route::default()
        });
    }
    Ok(RouteTable {
        source: describe("Ingress", object),
        routes,
    })
}

/// Reads the apex Service's selector (blue/green with the `kubernetes` provider): a selector
/// value `<target>-primary` means the primary, `<target>` the canary.
pub fn from_service_selector(object: &Value, target: &str) -> Option<RouteTable> {
    let selector = object["spec"]["selector"].as_object()?;
    let primary = format!("{target}-primary");
    let version = selector.values().filter_map(Value::as_str).find_map(|v| {
        if v == primary {
            Some(Version::Primary)
        } else if v == target {
            Some(Version::Canary)
        } else {
            None
        }
    })?;
    Some(RouteTable::single(version, describe("Service", object)))
}

fn quantity(value: &Value) -> Option<f64> {
    if let Some(n) = value.as_f64() {
        return Some(n);
    }
    let text = value.as_str()?;
    match text.strip_suffix('m') {
        Some(milli) => milli.parse::<f64>().ok().map(|n| n / 1000.0),
        None => text.parse().ok(),
    }
}

fn describe(kind: &str, object: &Value) -> String {
    let meta = &object["metadata"];
    format!(
        "{kind} {}/{}",
        meta["namespace"].as_str().unwrap_or("-"),
        meta["name"].as_str().unwrap_or("-")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names() -> Names {
        Names {
            service: "podinfo".into(),
        }
    }

    fn share_of_canary(table: &RouteTable, request: &Request) -> f64 {
        let n = 1000;
        let canary = (0..n)
            .filter(|i| {
                table
                    .decide(request, f64::from(*i) / f64::from(n), 0.5)
                    .is_some_and(|d| d.version == Version::Canary)
            })
            .count();
        canary as f64 / f64::from(n)
    }

    #[test]
    fn virtual_service_weights_header_routes_and_mirroring() {
        let vs = json!({"metadata": {"name": "podinfo", "namespace": "test"}, "spec": {"http": [
            {"match": [{"headers": {"x-canary": {"exact": "insider"}}}, {"headers": {"cookie": {"regex": "^(.*?;)?(canary=always)(;.*)?$"}}}],
             "route": [{"destination": {"host": "podinfo-canary"}}]},
            {"route": [{"destination": {"host": "podinfo-primary.test.svc.cluster.local"}, "weight": 80},
                       {"destination": {"host": "podinfo-canary"}, "weight": 20}],
             "mirror": {"host": "podinfo-canary"}, "mirrorPercentage": {"value": 50.0}}]}});
        let table = from_virtual_service(&vs, &names()).expect("valid");
        assert_eq!(table.source, "VirtualService test/podinfo");
        let plain = Request::default();
        assert!((share_of_canary(&table, &plain) - 0.2).abs() < 0.01);
        let insider = Request {
            headers: vec![("x-canary".into(), "insider".into())],
        };
        assert!((share_of_canary(&table, &insider) - 1.0).abs() < f64::EPSILON);
        let cookie = Request {
            headers: vec![("cookie".into(), "a=b;canary=always".into())],
        };
        assert!((share_of_canary(&table, &cookie) - 1.0).abs() < f64::EPSILON);
        // Envoy matches the whole value: a space after the semicolon defeats Flagger's pattern.
        let spaced = Request {
            headers: vec![("cookie".into(), "a=b; canary=always".into())],
        };
        assert!((share_of_canary(&table, &spaced) - 0.2).abs() < 0.01);
        assert_eq!(
            table.decide(&plain, 0.0, 0.49).and_then(|d| d.mirror),
            Some(Version::Canary)
        );
        assert_eq!(table.decide(&plain, 0.0, 0.51).and_then(|d| d.mirror), None);
    }

    #[test]
    fn http_route_and_traffic_split_weights() {
        let route = json!({"spec": {"rules": [
            {"matches": [{"headers": [{"name": "X-Canary", "value": "insider"}]}], "backendRefs": [{"name": "podinfo-canary"}]},
            {"backendRefs": [{"name": "podinfo-primary", "weight": 90}, {"name": "podinfo-canary", "weight": 10}]}]}});
        let table = from_http_route(&route, &names()).expect("valid");
        assert!((share_of_canary(&table, &Request::default()) - 0.1).abs() < 0.01);
        let insider = Request {
            headers: vec![("x-canary".into(), "insider".into())],
        };
        assert!((share_of_canary(&table, &insider) - 1.0).abs() < f64::EPSILON);

        let split = json!({"spec": {"backends": [{"service": "podinfo-primary", "weight": "700m"}, {"service": "podinfo-canary", "weight": "300m"}]}});
        assert!(
            (share_of_canary(&from_traffic_split(&split, &names()), &Request::default()) - 0.3)
                .abs()
                < 0.01
        );
    }

    #[test]
    fn nginx_canary_ingress_and_service_selectors() {
        let ingress = json!({"metadata": {"name": "podinfo-canary", "annotations": {
            "nginx.ingress.kubernetes.io/canary": "true",
            "nginx.ingress.kubernetes.io/canary-weight": "40",
            "nginx.ingress.kubernetes.io/canary-by-cookie": "canary"}}});
        let table = from_canary_ingress(&ingress, NGINX_ANNOTATIONS_PREFIX).expect("valid");
        assert!((share_of_canary(&table, &Request::default()) - 0.4).abs() < 0.01);
        for jar in ["canary=always", "a=b; canary=always; c=d"] {
            let cookie = Request {
                headers: vec![("cookie".into(), jar.into())],
            };
            assert!(
                (share_of_canary(&table, &cookie) - 1.0).abs() < f64::EPSILON,
                "{jar}"
            );
        }

        let green = json!({"spec": {"selector": {"app": "podinfo"}}});
        let blue = json!({"spec": {"selector": {"app": "podinfo-primary"}}});
        assert!(
            (share_of_canary(
                &from_service_selector(&green, "podinfo").expect("table"),
                &Request::default()
            ) - 1.0)
                .abs()
                < f64::EPSILON
        );
        assert!(
            share_of_canary(
                &from_service_selector(&blue, "podinfo").expect("table"),
                &Request::default()
            )
            .abs()
                < f64::EPSILON
        );
    }

    #[test]
    fn an_invalid_regex_names_the_field() {
        let vs = json!({"spec": {"http": [{"match": [{"headers": {"x": {"regex": "(unclosed"}}}], "route": []}]}});
        let error = from_virtual_service(&vs, &names()).expect_err("bad regex");
        assert!(
            error.to_string().contains("spec.http[0].match.headers.x"),
            "{error}"
        );
    }
}
