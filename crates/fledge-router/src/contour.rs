//! Contour: an HTTPProxy named after the apex Service whose routes send weighted traffic to
//! the primary and canary Services, with the A/B header and query conditions, the retry and
//! timeout policies of the canary's service and the operator's ingress class.
//!
//! The HTTPProxy has no virtual host: users include it from their root HTTPProxy, as with
//! Flagger. Where Fledge differs from Flagger's `contour.go`:
//! - each `analysis.match` entry is its own route (the entries are alternatives, as for Istio),
//!   where Flagger put every header of every entry in one route, which Contour ANDs;
//! - a header condition written with `prefix` or `regex` is a Contour `regex` condition (Flagger
//!   wrote `contains` for a prefix and nothing for a regex); query parameters are matched too;
//! - the path prefix is one condition of the route, not repeated beside every header (Contour
//!   refuses a route with more than one prefix condition);
//! - numeric `retries.retryOn` entries (`503`) become `retriableStatusCodes`, which is how
//!   Contour reads them.

use fledge_api::Canary;
use fledge_api::canary::{HttpMatchRequest, HttpRetry};
use kube::api::{ApiResource, DynamicObject};
use serde_json::{Map, Value, json};

use crate::capabilities::{Capabilities, ValueMatch};
use crate::error::{Error, Result};
use crate::metadata::{CanaryIdentity, generated_metadata};
use crate::object::{TrafficObject, resource};
use crate::router::{RenderedTraffic, TrafficRenderer};
use crate::routes::Routes;

const CAPABILITIES: Capabilities = Capabilities {
    provider: "contour",
    matching: true,
};

/// The header that pins a request to a Service when Linkerd meshes the Envoy pods.
const LINKERD_OVERRIDE_HEADER: &str = "l5d-dst-override";

/// The retry conditions Contour accepts in `retryPolicy.retryOn`.
const RETRY_ON: [&str; 16] = [
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "envoy-ratelimited",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

/// Renders `projectcontour.io/v1` HTTPProxies.
#[derive(Clone, Debug, Default)]
pub struct Contour {
    ingress_class: Option<String>,
}

impl Contour {
    /// A renderer writing `ingress_class` (`-ingress-class`) as the HTTPProxy's
    /// `spec.ingressClassName`, as Flagger does; none when `None`.
    pub fn new(ingress_class: Option<String>) -> Self {
        Self { ingress_class }
    }

    /// The HTTPProxy resource.
    pub fn http_proxy_resource() -> ApiResource {
        resource("projectcontour.io", "v1", "HTTPProxy", "httpproxies")
    }
}

/// The path prefix of every route: the first `service.match` URI prefix, else `/` (Flagger's
/// `makePrefix`).
fn path_prefix(canary: &Canary) -> String {
    canary
        .spec
        .service
        .match_
        .first()
        .and_then(|m| m.uri.as_ref())
        .and_then(|uri| uri.prefix.clone())
        .filter(|prefix| !prefix.is_empty())
        .unwrap_or_else(|| "/".to_owned())
}

/// A weighted Service with the Linkerd destination override Flagger sets.
fn service(canary: &Canary, namespace: &str, name: &str, weight: u32) -> Value {
    let port = canary.spec.service.port;
    json!({
        "name": name,
        "port": port,
        "weight": weight,
        "requestHeadersPolicy": {
            "set": [{
                "name": LINKERD_OVERRIDE_HEADER,
                "value": format!("{name}.{namespace}.svc.cluster.local:{port}"),
            }],
        },
    })
}

/// The header and query-parameter conditions of one A/B condition.
fn conditions(condition: &HttpMatchRequest, at: &str) -> Result<Vec<Value>> {
    CAPABILITIES.check_condition(condition, at, &["headers", "withoutHeaders", "queryParams"])?;
    let mut out = Vec::new();
    for (name, value) in &condition.headers {
        let field = format!("{at}.headers.{name}");
        let header = match ValueMatch::of(value, &field)? {
            ValueMatch::Exact(exact) => json!({ "name": name, "exact": exact }),
            ValueMatch::Regex(regex) => json!({ "name": name, "regex": regex }),
        };
        out.push(json!({ "header": header }));
    }
    for (name, value) in &condition.without_headers {
        let field = format!("{at}.withoutHeaders.{name}");
        match ValueMatch::of(value, &field)? {
            ValueMatch::Exact(exact) => {
                out.push(json!({ "header": { "name": name, "notexact": exact } }));
            }
            ValueMatch::Regex(_) => {
                return Err(Error::spec(
                    field,
                    "Contour excludes header values by exact value only; use exact",
                ));
            }
        }
    }
    for (name, value) in &condition.query_params {
        let field = format!("{at}.queryParams.{name}");
        // Contour reads every kind of query condition natively.
        let set = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
        let (kind, text) = if let Some(exact) = set(&value.exact) {
            ("exact", exact)
        } else if let Some(regex) = set(&value.regex) {
            ("regex", regex)
        } else if let Some(prefix) = set(&value.prefix) {
            ("prefix", prefix)
        } else {
            return Err(Error::spec(field, "set one of exact, prefix or regex"));
        };
        out.push(json!({ "queryParameter": { "name": name, kind: text } }));
    }
    Ok(out)
}

/// Contour's retry policy from Istio-style retries: attempts, per-try timeout, and the
/// conditions split into Envoy's names and status codes.
fn retry_policy(retries: &HttpRetry) -> Result<Value> {
    let mut policy = Map::new();
    if let Some(attempts) = retries.attempts {
        policy.insert("count".into(), json!(attempts));
    }
    if let Some(timeout) = &retries.per_try_timeout {
        policy.insert("perTryTimeout".into(), json!(timeout.as_str()));
    }
    let mut retry_on = Vec::new();
    let mut codes = Vec::new();
    for entry in retries
        .retry_on
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        if let Ok(code) = entry.parse::<u16>() {
            codes.push(code);
        } else if RETRY_ON.contains(&entry) {
            if !retry_on.contains(&entry) {
                retry_on.push(entry);
            }
        } else {
            return Err(Error::spec(
                "spec.service.retries.retryOn",
                format!(
                    "Contour cannot retry on {entry:?}; use status codes or {}",
                    RETRY_ON.join(", ")
                ),
            ));
        }
    }
    if !codes.is_empty() {
        if !retry_on.contains(&"retriable-status-codes") {
            retry_on.push("retriable-status-codes");
        }
        policy.insert("retriableStatusCodes".into(), json!(codes));
    }
    if !retry_on.is_empty() {
        policy.insert("retryOn".into(), json!(retry_on));
    }
    Ok(Value::Object(policy))
}

/// One route: its conditions, the service's timeout and retry policies, and the weighted
/// Services.
fn route(canary: &Canary, conditions: Vec<Value>, services: Vec<Value>) -> Result<Value> {
    let service = &canary.spec.service;
    let mut route = Map::new();
    route.insert("conditions".into(), Value::Array(conditions));
    if let Some(timeout) = &service.timeout {
        // Flagger's idle timeout beside the response timeout.
        route.insert(
            "timeoutPolicy".into(),
            json!({ "response": timeout.as_str(), "idle": "5m" }),
        );
    }
    if let Some(retries) = &service.retries {
        route.insert("retryPolicy".into(), retry_policy(retries)?);
    }
    route.insert("services".into(), Value::Array(services));
    Ok(Value::Object(route))
}

impl TrafficRenderer for Contour {
    fn routing_resource(&self) -> ApiResource {
        Self::http_proxy_resource()
    }

    fn render(&self, canary: &Canary, routes: Routes) -> Result<RenderedTraffic> {
        CAPABILITIES.check(canary)?;
        let identity = CanaryIdentity::of(canary)?;
        let names = canary.spec.service_names();
        let namespace = &identity.namespace;
        let services = |primary: u32, canary_weight: u32| {
            vec![
                service(canary, namespace, &names.primary, primary),
                service(canary, namespace, &names.canary, canary_weight),
            ]
        };
        let prefix = json!({ "prefix": path_prefix(canary) });
        let ab = canary
            .analysis()
            .map(|a| a.match_.as_slice())
            .unwrap_or_default();
        let mut proxy_routes = Vec::with_capacity(ab.len() + 1);
        for (index, condition) in ab.iter().enumerate() {
            let mut matched = vec![prefix.clone()];
            matched.extend(conditions(
                condition,
                &format!("spec.analysis.match[{index}]"),
            )?);
            proxy_routes.push(route(
                canary,
                matched,
                services(routes.primary, routes.canary),
            )?);
        }
        // Without A/B conditions this is the weighted route; with them, the route of every
        // other request, to the primary.
        let rest = if ab.is_empty() {
            services(routes.primary, routes.canary)
        } else {
            services(100, 0)
        };
        proxy_routes.push(route(canary, vec![prefix], rest)?);
        let mut spec = json!({ "routes": proxy_routes });
        if let Some(class) = self.ingress_class.as_ref().filter(|c| !c.is_empty()) {
            spec["ingressClassName"] = json!(class);
        }
        let (labels, annotations) = generated_metadata(canary.spec.service.apex.as_ref());
        let mut routing = TrafficObject::new(
            Self::http_proxy_resource(),
            namespace,
            &names.apex,
            json!({ "spec": spec }),
        );
        routing.object.metadata.labels = Some(labels).filter(|l| !l.is_empty());
        routing.object.metadata.annotations = Some(annotations);
        Ok(RenderedTraffic {
            routing,
            supporting: Vec::new(),
        })
    }

    fn read_routes(&self, canary: &Canary, routing: &DynamicObject) -> Result<Routes> {
        let names = canary.spec.service_names();
        // As Flagger: the first route holds the split (the A/B route when there is one).
        let services = routing.data["spec"]["routes"][0]["services"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let weight_of = |name: &str| {
            services
                .iter()
                .find(|s| s["name"] == name)
                .map(|s| s["weight"].as_u64().unwrap_or(0) as u32)
        };
        match (weight_of(&names.primary), weight_of(&names.canary)) {
            (None, None) => Err(Error::missing_routes(
                "HTTPProxy",
                routing,
                names.primary,
                names.canary,
            )),
            (primary, canary_weight) => Ok(Routes::weighted(
                primary.unwrap_or(0),
                canary_weight.unwrap_or(0),
            )),
        }
    }

    fn mirrors(&self) -> bool {
        false
    }
}
