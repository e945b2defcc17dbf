//! Gateway API: an HTTPRoute named after the apex Service, attached to the canary's
//! `gatewayRefs`, with weighted backendRefs to the primary and canary Services.

mod filters;

use fledge_api::Canary;
use kube::api::{ApiResource, DynamicObject};
use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::metadata::{CanaryIdentity, generated_metadata};
use crate::object::{TrafficObject, resource};
use crate::provider::GatewayApiVersion;
use crate::router::{RenderedTraffic, TrafficRenderer};
use crate::routes::Routes;
use crate::session_affinity::{
    COOKIE_HEADER, SET_COOKIE_HEADER, active_cookies, cookie_regex, expired_cookie, session_cookies,
};

/// Renders `gateway.networking.k8s.io` HTTPRoutes in the chosen version.
#[derive(Clone, Copy, Debug)]
pub struct GatewayApi {
    version: GatewayApiVersion,
}

impl GatewayApi {
    /// A renderer for HTTPRoutes of `version`.
    pub const fn new(version: GatewayApiVersion) -> Self {
        Self { version }
    }

    /// The HTTPRoute resource of this version.
    pub fn http_route_resource(&self) -> ApiResource {
        resource(
            "gateway.networking.k8s.io",
            self.version.as_str(),
            "HTTPRoute",
            "httproutes",
        )
    }
}

/// A weighted Service backend. The group is left out: it means the core group either way, and
/// an explicit empty string is read as null by Kubernetes 1.20's server-side apply.
fn backend(name: &str, weight: u32, port: i32) -> Value {
    json!({ "kind": "Service", "name": name, "port": port, "weight": weight })
}

fn cookie_match(pair: &str) -> Value {
    json!({ "headers": [{ "type": "RegularExpression", "name": COOKIE_HEADER, "value": cookie_regex(pair) }] })
}

fn set_cookie_filter(value: &str) -> Value {
    json!({
        "type": "ResponseHeaderModifier",
        "responseHeaderModifier": { "add": [{ "name": SET_COOKIE_HEADER, "value": value }] },
    })
}

/// A rule with its matches, filters, backends and the service's timeouts.
fn rule(
    matches: &[Value],
    filters: &[Value],
    backends: Vec<Value>,
    timeouts: &Map<String, Value>,
) -> Value {
    let mut out = Map::new();
    out.insert("matches".into(), json!(matches));
    if !filters.is_empty() {
        out.insert("filters".into(), json!(filters));
    }
    out.insert("backendRefs".into(), Value::Array(backends));
    if !timeouts.is_empty() {
        out.insert("timeouts".into(), Value::Object(timeouts.clone()));
    }
    Value::Object(out)
}

/// The rules of the HTTPRoute for `routes`: the weighted rule, its session-affinity and A/B
/// variants as Flagger writes them.
fn rules(canary: &Canary, routes: Routes) -> Result<Vec<Value>> {
    let service = &canary.spec.service;
    let names = canary.spec.service_names();
    let analysis = canary.analysis();
    let service_matches = filters::route_matches(&service.match_, "spec.service.match")?;
    let matches = if service_matches.is_empty() {
        vec![json!({ "path": { "type": "PathPrefix", "value": "/" } })]
    } else {
        service_matches.clone()
    };
    let filters = filters::rule_filters(service)?;
    let mut timeouts = Map::new();
    if let Some(timeout) = &service.timeout {
        timeouts.insert("request".into(), json!(timeout.as_str()));
    }
    if let Some(timeout) = &service.backend_timeout {
        timeouts.insert("backendRequest".into(), json!(timeout.as_str()));
    }
    let mut weighted_filters = filters.clone();
    let iterations = analysis.and_then(|a| a.iterations).unwrap_or(0);
    if routes.mirrored && iterations > 0 {
        let mut mirror = json!({
            "backendRef": { "kind": "Service", "name": names.canary, "port": service.port },
        });
        if let Some(weight) = analysis
            .and_then(|a| a.mirror_weight)
            .filter(|w| (1..100).contains(w))
        {
            mirror["percent"] = json!(weight);
        }
        weighted_filters.push(json!({ "type": "RequestMirror", "requestMirror": mirror }));
    }
    let weighted = rule(
        &matches,
        &weighted_filters,
        vec![
            backend(&names.primary, routes.primary, service.port),
            backend(&names.canary, routes.canary, service.port),
        ],
        &timeouts,
    );
    let mut rules = session_affinity_rules(canary, routes, weighted, &service_matches);
    let ab = analysis.map(|a| a.match_.as_slice()).unwrap_or_default();
    if !ab.is_empty() {
        let ab_matches = filters::route_matches(ab, "spec.analysis.match")?;
        rules[0]["matches"] = json!(filters::merge_route_matches(&ab_matches, &matches));
        rules.push(rule(
            &matches,
            &filters,
            vec![backend(&names.primary, 100, service.port)],
            &timeouts,
        ));
    }
    Ok(rules)
}

/// Flagger's session-affinity rules around the weighted rule: a sticky canary rule matching
/// the canary cookie, a sticky primary rule when a primary cookie is named, and backend
/// filters handing out the cookies; at weight 0 the previous rollout's cookie is expired.
fn session_affinity_rules(
    canary: &Canary,
    routes: Routes,
    mut weighted: Value,
    service_matches: &[Value],
) -> Vec<Value> {
    let names = canary.spec.service_names();
    let port = canary.spec.service.port;
    let (Some(affinity), Some(cookies)) = (
        canary.analysis().and_then(|a| a.session_affinity.as_ref()),
        session_cookies(canary),
    ) else {
        return vec![weighted];
    };
    if routes.canary == 0 {
        let Some(previous) = cookies.previous.as_deref() else {
            return vec![weighted];
        };
        let mut sticky = weighted.clone();
        sticky["matches"] = json!(filters::merge_route_matches(
            &[cookie_match(previous)],
            service_matches
        ));
        let mut sticky_filters = weighted["filters"].as_array().cloned().unwrap_or_default();
        sticky_filters.push(set_cookie_filter(&expired_cookie(previous)));
        sticky["filters"] = json!(sticky_filters);
        return vec![sticky, weighted];
    }
    let active = active_cookies(canary, affinity, &cookies);
    if let Some(Value::Array(backends)) = weighted.get_mut("backendRefs") {
        for backend in backends.iter_mut() {
            let cookie = if backend["name"] == names.canary.as_str() {
                Some(&active.canary)
            } else {
                active.primary.as_ref()
            };
            if let Some(cookie) = cookie {
                backend["filters"] = json!([set_cookie_filter(&cookie.set_cookie)]);
            }
        }
    }
    let mut sticky_canary = weighted.clone();
    sticky_canary["matches"] = json!(filters::merge_route_matches(
        &[cookie_match(&active.canary.pair)],
        service_matches
    ));
    sticky_canary["backendRefs"] = json!([
        backend(&names.primary, 0, port),
        backend(&names.canary, 100, port)
    ]);
    let Some(primary) = &active.primary else {
        return vec![sticky_canary, weighted];
    };
    let mut sticky_primary = weighted.clone();
    sticky_primary["matches"] = json!(filters::merge_route_matches(
        &[cookie_match(&primary.pair)],
        service_matches
    ));
    sticky_primary["backendRefs"] = json!([
        backend(&names.primary, 100, port),
        backend(&names.canary, 0, port)
    ]);
    vec![sticky_canary, sticky_primary, weighted]
}

impl TrafficRenderer for GatewayApi {
    fn routing_resource(&self) -> ApiResource {
        self.http_route_resource()
    }

    fn render(&self, canary: &Canary, routes: Routes) -> Result<RenderedTraffic> {
        let identity = CanaryIdentity::of(canary)?;
        let service = &canary.spec.service;
        if service.gateway_refs.is_empty() {
            return Err(Error::spec(
                "spec.service.gatewayRefs",
                "must name at least one Gateway when the provider is Gateway API \
                 (gatewayRefs: [{name: my-gateway, namespace: gateway-ns}])",
            ));
        }
        let mut spec = Map::new();
        let parent_refs: Vec<Value> = service
            .gateway_refs
            .iter()
            .map(|parent| {
                // The schema defaults; written out so that re-applying is a no-op for the server.
                let mut parent = json!(parent);
                parent.as_object_mut().map(|p| {
                    p.entry("group")
                        .or_insert_with(|| json!("gateway.networking.k8s.io"))
                });
                parent
                    .as_object_mut()
                    .map(|p| p.entry("kind").or_insert_with(|| json!("Gateway")));
                parent
            })
            .collect();
        spec.insert("parentRefs".into(), Value::Array(parent_refs));
        if !service.hosts.is_empty() {
            spec.insert("hostnames".into(), json!(service.hosts));
        }
        spec.insert("rules".into(), Value::Array(rules(canary, routes)?));
        let (labels, annotations) = generated_metadata(service.apex.as_ref());
        let mut routing = TrafficObject::new(
            self.http_route_resource(),
            &identity.namespace,
            &canary.spec.service_names().apex,
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
        let rules = routing.data["spec"]["rules"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let sticky = canary
            .analysis()
            .and_then(|a| a.session_affinity.as_ref())
            .is_some();
        let mut routes = Routes::weighted(0, 0);
        let mut cookie_rule = None;
        let read = |routes: &mut Routes, backends: &[Value]| {
            for backend in backends {
                let weight = backend["weight"].as_u64().unwrap_or(1) as u32;
                if backend["name"] == names.primary.as_str() {
                    routes.primary = weight;
                } else if backend["name"] == names.canary.as_str() {
                    routes.canary = weight;
                }
            }
        };
        for rule in &rules {
            let backends = rule["backendRefs"].as_array().cloned().unwrap_or_default();
            if sticky
                && backends
                    .iter()
                    .any(|b| b["filters"].as_array().is_some_and(|f| !f.is_empty()))
            {
                cookie_rule = Some(backends.clone());
            }
            // A/B testing: the rule with a single backend is the fallback to the primary.
            if backends.len() == 2 {
                read(&mut routes, &backends);
            }
            let mirrors_canary = rule["filters"].as_array().into_iter().flatten().any(|f| {
                f["type"] == "RequestMirror"
                    && f["requestMirror"]["backendRef"]["name"] == names.canary.as_str()
            });
            routes.mirrored |= mirrors_canary;
        }
        if let Some(backends) = cookie_rule {
            read(&mut routes, &backends);
        }
        if routes.primary == 0 && routes.canary == 0 {
            return Err(Error::missing_routes(
                "HTTPRoute",
                routing,
                names.primary,
                names.canary,
            ));
        }
        Ok(routes)
    }

    fn check_ready(&self, _canary: &Canary, routing: &DynamicObject) -> Result<()> {
        let generation = routing.metadata.generation.unwrap_or(0);
        let parent_refs = routing.data["spec"]["parentRefs"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let parents = routing.data["status"]["parents"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for parent in parents
            .iter()
            .filter(|p| parent_refs.contains(&p["parentRef"]))
        {
            for condition in parent["conditions"].as_array().into_iter().flatten() {
                let observed = condition["observedGeneration"].as_i64().unwrap_or(0);
                if condition["type"] == "Accepted"
                    && (condition["status"] != "True" || observed < generation)
                {
                    return Err(Error::NotReady {
                        kind: "HTTPRoute".to_owned(),
                        namespace: routing.metadata.namespace.clone().unwrap_or_default(),
                        name: routing.metadata.name.clone().unwrap_or_default(),
                        reason: format!(
                            "parent {} is not ready (status: {}, observed generation: {observed}, current generation: {generation})",
                            parent["parentRef"]["name"].as_str().unwrap_or_default(),
                            condition["status"].as_str().unwrap_or_default(),
                        ),
                    });
                }
            }
        }
        Ok(())
    }
}
