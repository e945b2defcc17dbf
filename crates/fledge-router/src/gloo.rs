//! Gloo Edge: a RouteTable named after the apex Service, which the user's Gloo
//! VirtualService delegates to, splitting traffic between two Upstreams Fledge writes for the
//! primary and canary Services (`<ns>-<apex>-primaryupstream-<port>`,
//! `<ns>-<apex>-canaryupstream-<port>`), as Flagger's `gloo.go`.
//!
//! With `spec.upstreamRef` the generated Upstreams take their connection settings from the
//! referenced Upstream (TLS, circuit breakers, connection and load-balancer configuration,
//! HTTP/2, window sizes, proxy host name — the fields Flagger copies). That takes one read
//! of the referenced Upstream, done by [`GlooRouter::reconcile`] only: the other operations
//! touch the RouteTable alone, and the renderer stays a pure function of the Canary and the
//! referenced Upstream ([`Gloo::configured_by`]).
//!
//! Where Fledge differs from Flagger: each `analysis.match` entry is its own matcher (Gloo ORs
//! matchers, as the entries are meant), header and query conditions by prefix are anchored
//! regexes, `withoutHeaders` are inverted header matchers, and during A/B testing a second
//! route sends every other request to the primary (Flagger's RouteTable then had only the
//! matching route, so other requests found no route). Upstreams carry no pod selector:
//! Flagger copied the Service's own, which selects nothing the Service does not.

use async_trait::async_trait;
use fledge_api::Canary;
use fledge_api::canary::HttpMatchRequest;
use kube::Client;
use kube::api::{ApiResource, DynamicObject};
use serde_json::{Map, Value, json};

use crate::apply::Applier;
use crate::capabilities::{Capabilities, ValueMatch};
use crate::error::{Error, Result};
use crate::metadata::{CanaryIdentity, generated_metadata};
use crate::object::{TrafficObject, resource};
use crate::router::{MeshRouter, RenderedTraffic, Router, TrafficRenderer};
use crate::routes::Routes;

const CAPABILITIES: Capabilities = Capabilities {
    provider: "gloo",
    matching: true,
};

/// The fields of a referenced Upstream's spec that the generated Upstreams take over.
const CONFIG_FIELDS: [&str; 8] = [
    "sslConfig",
    "circuitBreakers",
    "connectionConfig",
    "loadBalancerConfig",
    "useHttp2",
    "initialStreamWindowSize",
    "initialConnectionWindowSize",
    "httpProxyHostname",
];

/// Renders `gateway.solo.io/v1` RouteTables and `gloo.solo.io/v1` Upstreams.
#[derive(Clone, Debug, Default)]
pub struct Gloo {
    upstream_config: Map<String, Value>,
}

impl Gloo {
    /// A renderer whose Upstreams carry only the Service they send to.
    pub fn new() -> Self {
        Self::default()
    }

    /// A renderer whose Upstreams take the connection settings of `upstream`, the Upstream
    /// named by the Canary's `upstreamRef`.
    pub fn configured_by(upstream: &DynamicObject) -> Self {
        let spec = &upstream.data["spec"];
        let upstream_config = CONFIG_FIELDS
            .iter()
            .filter_map(|field| {
                spec.get(*field)
                    .filter(|v| !v.is_null())
                    .map(|v| ((*field).to_owned(), v.clone()))
            })
            .collect();
        Self { upstream_config }
    }

    /// The RouteTable resource.
    pub fn route_table_resource() -> ApiResource {
        resource("gateway.solo.io", "v1", "RouteTable", "routetables")
    }

    /// The Upstream resource.
    pub fn upstream_resource() -> ApiResource {
        resource("gloo.solo.io", "v1", "Upstream", "upstreams")
    }

    /// The names of the primary and canary Upstreams of `canary`.
    pub fn upstream_names(canary: &Canary) -> Result<(String, String)> {
        let identity = CanaryIdentity::of(canary)?;
        let apex = canary.spec.service_names().apex;
        let port = canary.spec.service.port;
        let name = |role: &str| format!("{}-{apex}-{role}upstream-{port}", identity.namespace);
        Ok((name("primary"), name("canary")))
    }

    fn upstream(&self, namespace: &str, name: &str, service: &str, port: i32) -> TrafficObject {
        let mut spec = self.upstream_config.clone();
        spec.insert(
            "kube".into(),
            json!({ "serviceName": service, "serviceNamespace": namespace, "servicePort": port }),
        );
        TrafficObject::new(
            Self::upstream_resource(),
            namespace,
            name,
            json!({ "spec": spec }),
        )
    }
}

/// The Gloo matcher of one A/B condition: headers (inverted for `withoutHeaders`), query
/// parameters and the method.
fn matcher(condition: &HttpMatchRequest, at: &str) -> Result<Value> {
    CAPABILITIES.check_condition(
        condition,
        at,
        &["headers", "withoutHeaders", "queryParams", "method"],
    )?;
    let value_matcher = |name: &str, field: String, invert: bool, value| -> Result<Value> {
        let mut out = json!({ "name": name });
        match ValueMatch::of(value, &field)? {
            ValueMatch::Exact(exact) => out["value"] = json!(exact),
            ValueMatch::Regex(regex) => {
                out["value"] = json!(regex);
                out["regex"] = json!(true);
            }
        }
        if invert {
            out["invertMatch"] = json!(true);
        }
        Ok(out)
    };
    let mut headers = Vec::new();
    for (name, value) in &condition.headers {
        headers.push(value_matcher(
            name,
            format!("{at}.headers.{name}"),
            false,
            value,
        )?);
    }
    for (name, value) in &condition.without_headers {
        headers.push(value_matcher(
            name,
            format!("{at}.withoutHeaders.{name}"),
            true,
            value,
        )?);
    }
    let mut query = Vec::new();
    for (name, value) in &condition.query_params {
        query.push(value_matcher(
            name,
            format!("{at}.queryParams.{name}"),
            false,
            value,
        )?);
    }
    let mut out = Map::new();
    if !headers.is_empty() {
        out.insert("headers".into(), Value::Array(headers));
    }
    if !query.is_empty() {
        out.insert("queryParameters".into(), Value::Array(query));
    }
    if let Some(method) = &condition.method {
        let Some(exact) = method.exact.as_ref().filter(|m| !m.is_empty()) else {
            return Err(Error::spec(
                format!("{at}.method"),
                "Gloo matches methods by exact name only; use exact",
            ));
        };
        out.insert("methods".into(), json!([exact]));
    }
    Ok(Value::Object(out))
}

/// A route to the two Upstreams, inheriting the delegating VirtualService's path matcher.
fn route(matchers: Vec<Value>, namespace: &str, upstreams: [(&str, u32); 2]) -> Value {
    let destinations: Vec<Value> = upstreams
        .iter()
        .map(|(name, weight)| {
            json!({
                "destination": { "upstream": { "name": name, "namespace": namespace } },
                "weight": weight,
            })
        })
        .collect();
    let mut route = Map::new();
    if !matchers.is_empty() {
        route.insert("matchers".into(), Value::Array(matchers));
    }
    route.insert("inheritablePathMatchers".into(), json!(true));
    route.insert(
        "routeAction".into(),
        json!({ "multi": { "destinations": destinations } }),
    );
    Value::Object(route)
}

impl TrafficRenderer for Gloo {
    fn routing_resource(&self) -> ApiResource {
        Self::route_table_resource()
    }

    fn render(&self, canary: &Canary, routes: Routes) -> Result<RenderedTraffic> {
        CAPABILITIES.check(canary)?;
        let identity = CanaryIdentity::of(canary)?;
        let namespace = &identity.namespace;
        let names = canary.spec.service_names();
        let (primary, canary_upstream) = Self::upstream_names(canary)?;
        let ab = canary
            .analysis()
            .map(|a| a.match_.as_slice())
            .unwrap_or_default();
        let matchers = ab
            .iter()
            .enumerate()
            .map(|(index, condition)| matcher(condition, &format!("spec.analysis.match[{index}]")))
            .collect::<Result<Vec<_>>>()?;
        let weighted = [
            (primary.as_str(), routes.primary),
            (canary_upstream.as_str(), routes.canary),
        ];
        let mut table_routes = vec![route(matchers, namespace, weighted)];
        if !ab.is_empty() {
            table_routes.push(route(
                Vec::new(),
                namespace,
                [(primary.as_str(), 100), (canary_upstream.as_str(), 0)],
            ));
        }
        let (labels, annotations) = generated_metadata(canary.spec.service.apex.as_ref());
        let mut routing = TrafficObject::new(
            Self::route_table_resource(),
            namespace,
            &names.apex,
            json!({ "spec": { "routes": table_routes } }),
        );
        routing.object.metadata.labels = Some(labels).filter(|l| !l.is_empty());
        routing.object.metadata.annotations = Some(annotations);
        let port = canary.spec.service.port;
        Ok(RenderedTraffic {
            routing,
            supporting: vec![
                self.upstream(namespace, &primary, &names.primary, port),
                self.upstream(namespace, &canary_upstream, &names.canary, port),
            ],
        })
    }

    fn read_routes(&self, canary: &Canary, routing: &DynamicObject) -> Result<Routes> {
        let (primary, canary_upstream) = Self::upstream_names(canary)?;
        // As Flagger: the first route holds the split (the A/B route when there is one).
        let destinations =
            routing.data["spec"]["routes"][0]["routeAction"]["multi"]["destinations"]
                .as_array()
                .cloned()
                .unwrap_or_default();
        let weight_of = |name: &str| {
            destinations
                .iter()
                .find(|d| d["destination"]["upstream"]["name"] == name)
                .map(|d| d["weight"].as_u64().unwrap_or(0) as u32)
        };
        match (weight_of(&primary), weight_of(&canary_upstream)) {
            (None, None) => Err(Error::missing_routes(
                "RouteTable",
                routing,
                primary,
                canary_upstream,
            )),
            (p, c) => Ok(Routes::weighted(p.unwrap_or(0), c.unwrap_or(0))),
        }
    }

    fn mirrors(&self) -> bool {
        false
    }
}

/// The Gloo router: [`MeshRouter`] over [`Gloo`], reading the Canary's `upstreamRef` when it
/// reconciles.
#[derive(Clone)]
pub struct GlooRouter {
    client: Client,
    routes: MeshRouter<Gloo>,
}

impl std::fmt::Debug for GlooRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlooRouter").finish_non_exhaustive()
    }
}

impl GlooRouter {
    /// A Gloo router writing through `client`.
    pub fn new(client: Client) -> Self {
        Self {
            routes: MeshRouter::new(Gloo::new(), client.clone()),
            client,
        }
    }

    /// The renderer for `canary`: configured by its `upstreamRef` when it has one.
    ///
    /// # Errors
    /// [`Error::InvalidSpec`] when the referenced Upstream does not exist, [`Error::Kube`] when
    /// it cannot be read.
    pub async fn renderer_for(&self, canary: &Canary) -> Result<Gloo> {
        let Some(reference) = canary
            .spec
            .upstream_ref
            .as_ref()
            .filter(|r| !r.name.is_empty())
        else {
            return Ok(Gloo::new());
        };
        let identity = CanaryIdentity::of(canary)?;
        let namespace = reference
            .namespace
            .as_deref()
            .filter(|ns| !ns.is_empty())
            .unwrap_or(&identity.namespace);
        let applier = Applier::new(self.client.clone());
        match applier
            .get(&Gloo::upstream_resource(), namespace, &reference.name)
            .await?
        {
            Some(upstream) => Ok(Gloo::configured_by(&upstream)),
            None => Err(Error::spec(
                "spec.upstreamRef",
                format!(
                    "Upstream {namespace}/{} not found; create it or remove upstreamRef",
                    reference.name
                ),
            )),
        }
    }
}

#[async_trait]
impl Router for GlooRouter {
    async fn reconcile(&self, canary: &Canary) -> Result<()> {
        let renderer = self.renderer_for(canary).await?;
        MeshRouter::new(renderer, self.client.clone())
            .reconcile(canary)
            .await
    }

    async fn set_routes(&self, canary: &Canary, routes: Routes) -> Result<()> {
        self.routes.set_routes(canary, routes).await
    }

    async fn get_routes(&self, canary: &Canary) -> Result<Routes> {
        self.routes.get_routes(canary).await
    }

    async fn finalize(&self, canary: &Canary) -> Result<()> {
        self.routes.finalize(canary).await
    }

    fn routing_resource(&self) -> Option<ApiResource> {
        self.routes.routing_resource()
    }

    fn routing_name(&self, canary: &Canary) -> String {
        self.routes.routing_name(canary)
    }

    fn routes_in(&self, canary: &Canary, routing: &DynamicObject) -> Result<Routes> {
        self.routes.routes_in(canary, routing)
    }

    fn routing_in_sync(&self, canary: &Canary, routing: &DynamicObject) -> Result<bool> {
        self.routes.routing_in_sync(canary, routing)
    }
}
