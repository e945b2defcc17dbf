//! [`TrafficSim`]: stands in for the mesh data plane.
//!
//! For each app it generates R simulated requests per second and sends each to the primary
//! or the canary the way the routes *currently in the cluster* say — Istio VirtualService,
//! Gateway API HTTPRoute, SMI TrafficSplit, NGINX canary Ingress or, for blue/green with the
//! `kubernetes` provider, the apex Service's selector — including header and cookie
//! matches (A/B testing) and mirroring. How each version answers comes from its pod template
//! (see [`behaviour`]). The results are served on `/metrics` under every mesh's metric names
//! (see [`exposition`]) for a real Prometheus to scrape.

pub mod behaviour;
pub mod exposition;
pub mod routes;
pub mod sampler;
mod server;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};
use tokio::task::JoinHandle;

use self::behaviour::{Behaviour, UNAVAILABLE_STATUS};
use self::exposition::{MetricsStore, SeriesKey};
use self::routes::{Names, Request, RouteTable, Version};
use self::sampler::Sampler;
use crate::error::Result;

/// A share of an app's requests that carries given headers (A/B testing traffic).
#[derive(Debug, Clone, PartialEq)]
pub struct RequestClass {
    /// Share of requests, 0–1.
    pub share: f64,
    /// Headers those requests carry (a cookie is the `cookie` header).
    pub headers: Vec<(String, String)>,
}

/// One simulated app: `<target>` (canary) and `<target>-primary` behind service `<service>`.
#[derive(Debug, Clone, PartialEq)]
pub struct SimApp {
    /// Namespace of the app.
    pub namespace: String,
    /// The target Deployment's name (`podinfo`).
    pub target: String,
    /// The apex Service (defaults to the target's name).
    pub service: String,
    /// The service port (defaults to 9898, podinfo's).
    pub port: u16,
    /// The Ingress NGINX routes through (defaults to the target's name).
    pub ingress: String,
    /// The prefix of the NGINX canary annotations the sim reads (the operator's
    /// `-ingress-annotations-prefix`; defaults to `nginx.ingress.kubernetes.io`).
    pub ingress_annotations_prefix: String,
    /// Requests generated per second.
    pub requests_per_second: f64,
    /// Shares of requests carrying headers; the rest carry none.
    pub request_classes: Vec<RequestClass>,
}

impl SimApp {
    /// An app at 10 requests per second, service and ingress named like the target.
    pub fn new(namespace: impl Into<String>, target: impl Into<String>) -> Self {
        let target = target.into();
        Self {
            namespace: namespace.into(),
            service: target.clone(),
            ingress: target.clone(),
            ingress_annotations_prefix: routes::NGINX_ANNOTATIONS_PREFIX.to_owned(),
            target,
            port: 9898,
            requests_per_second: 10.0,
            request_classes: Vec::new(),
        }
    }

    /// Sets the request rate.
    pub fn with_rate(mut self, requests_per_second: f64) -> Self {
        self.requests_per_second = requests_per_second.max(0.0);
        self
    }

    /// Reads the NGINX canary Ingress's annotations under `prefix` (as an operator started
    /// with `-ingress-annotations-prefix=<prefix>` writes them).
    pub fn with_ingress_annotations_prefix(mut self, prefix: &str) -> Self {
        prefix.clone_into(&mut self.ingress_annotations_prefix);
        self
    }

    /// Makes `share` of the requests carry header `name: value`.
    pub fn with_header_share(mut self, share: f64, name: &str, value: &str) -> Self {
        self.request_classes.push(RequestClass {
            share,
            headers: vec![(name.to_ascii_lowercase(), value.to_owned())],
        });
        self
    }
}

/// What happened to an app's requests so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppCounts {
    /// Requests answered by the primary.
    pub primary: u64,
    /// Requests answered by the canary.
    pub canary: u64,
    /// Copies mirrored (to either version).
    pub mirrored: u64,
    /// Answered requests with a 5xx status.
    pub errors: u64,
    /// Requests no route accepted.
    pub unrouted: u64,
}

/// Settings of a [`TrafficSim`].
#[derive(Debug, Clone)]
pub struct TrafficSimConfig {
    /// Seed of the simulator's randomness: the same seed gives the same run.
    pub seed: u64,
    /// How often requests are generated.
    pub tick: Duration,
    /// How often routes and pod templates are re-read from the cluster.
    pub refresh: Duration,
}

impl Default for TrafficSimConfig {
    fn default() -> Self {
        Self {
            seed: 0x5eed,
            tick: Duration::from_millis(100),
            refresh: Duration::from_millis(500),
        }
    }
}

struct AppState {
    app: SimApp,
    routes: RouteTable,
    primary: Option<Behaviour>,
    canary: Option<Behaviour>,
    carry: f64,
    counts: AppCounts,
}

pub(crate) struct State {
    apps: Vec<AppState>,
    pub(crate) metrics: MetricsStore,
    sampler: Sampler,
}

impl State {
    fn generate(&mut self, index: usize, n: u64) {
        let Some(app) = self.apps.get_mut(index) else {
            return;
        };
        for _ in 0..n {
            let class_pick = self.sampler.uniform();
            let mut acc = 0.0;
            let request = app
                .app
                .request_classes
                .iter()
                .find(|c| {
                    acc += c.share;
                    class_pick < acc
                })
                .map(|c| Request {
                    headers: c.headers.clone(),
                })
                .unwrap_or_default();
            let Some(decision) =
                app.routes
                    .decide(&request, self.sampler.uniform(), self.sampler.uniform())
            else {
                app.counts.unrouted += 1;
                continue;
            };
            let status = answer(&mut self.metrics, &mut self.sampler, app, decision.version);
            match decision.version {
                Version::Primary => app.counts.primary += 1,
                Version::Canary => app.counts.canary += 1,
            }
            if status >= 500 {
                app.counts.errors += 1;
            }
            if let Some(mirror) = decision.mirror {
                answer(&mut self.metrics, &mut self.sampler, app, mirror);
                app.counts.mirrored += 1;
            }
        }
    }
}

/// Lets `version` answer one request, records it as its destination would, and returns the
/// status.
fn answer(
    metrics: &mut MetricsStore,
    sampler: &mut Sampler,
    app: &AppState,
    version: Version,
) -> u16 {
    let behaviour = match version {
        Version::Primary => app.primary.as_ref(),
        Version::Canary => app.canary.as_ref(),
    };
    let (status, latency_ms) = match behaviour {
        Some(b) if b.available => {
            let status = if sampler.uniform() < b.error_rate {
                b.error_status
            } else {
                200
            };
            (status, b.latency_ms * (0.5 + sampler.uniform()))
        }
        // No replica to answer: the client gets the mesh's 503, and no destination reports
        // the request (the series Flagger's queries read are the destination's).
        _ => return UNAVAILABLE_STATUS,
    };
    let key = SeriesKey {
        namespace: app.app.namespace.clone(),
        service: app.app.service.clone(),
        target: app.app.target.clone(),
        port: app.app.port,
        ingress: app.app.ingress.clone(),
        version,
        status,
    };
    metrics.record(key, latency_ms);
    status
}

/// A running traffic simulator; dropping it stops it.
pub struct TrafficSim {
    state: Arc<Mutex<State>>,
    client: kube::Client,
    addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for TrafficSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrafficSim")
            .field("metrics_addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl TrafficSim {
    /// Reads the apps' routes once, then generates traffic and serves `/metrics` in the
    /// background of the current tokio runtime.
    ///
    /// # Errors
    /// [`crate::Error::Io`] when the metrics port cannot be bound.
    pub async fn start(
        client: kube::Client,
        apps: Vec<SimApp>,
        config: TrafficSimConfig,
    ) -> Result<Self> {
        let state = Arc::new(Mutex::new(State {
            apps: Vec::new(),
            metrics: MetricsStore::default(),
            sampler: Sampler::new(config.seed),
        }));
        let (addr, server) = server::serve(state.clone()).await?;
        let sim = Self {
            state,
            client,
            addr,
            tasks: vec![server],
        };
        for app in apps {
            sim.add_app(app);
        }
        sim.refresh().await;
        let mut sim = sim;
        sim.tasks
            .push(tokio::spawn(generate_loop(sim.state.clone(), config.tick)));
        sim.tasks.push(tokio::spawn(refresh_loop(
            sim.state.clone(),
            sim.client.clone(),
            config.refresh,
        )));
        Ok(sim)
    }

    /// The address Prometheus scrapes (`/metrics`).
    pub fn metrics_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Adds an app (its routes are read at the next refresh).
    pub fn add_app(&self, app: SimApp) {
        if let Ok(mut state) = self.state.lock() {
            let routes = RouteTable::single(Version::Canary, "not read yet");
            state.apps.push(AppState {
                app,
                routes,
                primary: None,
                canary: None,
                carry: 0.0,
                counts: AppCounts::default(),
            });
        }
    }

    /// Changes an app's settings (rate, request classes) while it runs.
    pub fn update_app(&self, namespace: &str, target: &str, change: impl FnOnce(&mut SimApp)) {
        if let Ok(mut state) = self.state.lock()
            && let Some(entry) = state
                .apps
                .iter_mut()
                .find(|a| a.app.namespace == namespace && a.app.target == target)
        {
            change(&mut entry.app);
        }
    }

    /// Re-reads every app's routes and pod templates from the cluster now.
    pub async fn refresh(&self) {
        refresh_all(&self.state, &self.client).await;
    }

    /// Sends `n` requests of the app at once (on top of the steady rate), routed by the
    /// routes last read.
    pub fn send(&self, namespace: &str, target: &str, n: u64) {
        if let Ok(mut state) = self.state.lock()
            && let Some(index) = state
                .apps
                .iter()
                .position(|a| a.app.namespace == namespace && a.app.target == target)
        {
            state.generate(index, n);
        }
    }

    /// What happened to the app's requests so far.
    pub fn counts(&self, namespace: &str, target: &str) -> Option<AppCounts> {
        let state = self.state.lock().ok()?;
        state
            .apps
            .iter()
            .find(|a| a.app.namespace == namespace && a.app.target == target)
            .map(|a| a.counts)
    }

    /// Where the app's current routes were read from (`VirtualService test/podinfo`).
    pub fn route_source(&self, namespace: &str, target: &str) -> Option<String> {
        let state = self.state.lock().ok()?;
        state
            .apps
            .iter()
            .find(|a| a.app.namespace == namespace && a.app.target == target)
            .map(|a| a.routes.source.clone())
    }

    /// The current `/metrics` text.
    pub fn render_metrics(&self) -> String {
        self.state
            .lock()
            .map(|s| s.metrics.render())
            .unwrap_or_default()
    }
}

impl Drop for TrafficSim {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn generate_loop(state: Arc<Mutex<State>>, tick: Duration) {
    let mut ticker = tokio::time::interval(tick);
    let mut last = Instant::now();
    loop {
        ticker.tick().await;
        let now = Instant::now();
        let elapsed = (now - last).as_secs_f64();
        last = now;
        let Ok(mut state) = state.lock() else { return };
        for index in 0..state.apps.len() {
            let app = &mut state.apps[index];
            app.carry += app.app.requests_per_second * elapsed;
            let n = app.carry.floor();
            app.carry -= n;
            state.generate(index, n as u64);
        }
    }
}

async fn refresh_loop(state: Arc<Mutex<State>>, client: kube::Client, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    loop {
        ticker.tick().await;
        refresh_all(&state, &client).await;
    }
}

async fn refresh_all(state: &Mutex<State>, client: &kube::Client) {
    let apps: Vec<SimApp> = state
        .lock()
        .map(|s| s.apps.iter().map(|a| a.app.clone()).collect())
        .unwrap_or_default();
    for app in apps {
        // One consistent snapshot: routes, then the versions, then the routes again, read
        // anew while the routes moved in between. An operator routes to a version only once
        // it is ready and scales one down only after routing away from it, but the two writes
        // come milliseconds apart: routes read before a move combined with versions read after
        // the scale-down that followed it would send requests to a version already gone (and
        // the other order to one the sim still believes unready), for a whole refresh.
        let mut routes = read_routes(client, &app).await;
        let mut attempts = 0;
        let (primary, canary) = loop {
            let primary =
                behaviour(client, &app.namespace, &format!("{}-primary", app.target)).await;
            let canary = behaviour(client, &app.namespace, &app.target).await;
            let again = read_routes(client, &app).await;
            // Route tables hold regexes, which have no equality; their Debug text is exact.
            let moved = format!("{again:?}") != format!("{routes:?}");
            routes = again;
            attempts += 1;
            if !moved || attempts >= 5 {
                break (primary, canary);
            }
        };
        let routes = routes.unwrap_or_else(|| {
            // Nothing routes yet: the user's own Service selects the target's pods, unless a
            // serving primary exists (a router the sim does not read).
            let fallback = if primary.as_ref().is_some_and(|p| p.available) {
                Version::Primary
            } else {
                Version::Canary
            };
            RouteTable::single(fallback, "no routing resource")
        });
        if let Ok(mut state) = state.lock()
            && let Some(entry) = state
                .apps
                .iter_mut()
                .find(|a| a.app.namespace == app.namespace && a.app.target == app.target)
        {
            entry.routes = routes;
            entry.primary = primary;
            entry.canary = canary;
        }
    }
}

async fn behaviour(client: &kube::Client, namespace: &str, name: &str) -> Option<Behaviour> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let deployment = api.get_opt(name).await.ok().flatten()?;
    match Behaviour::of_deployment(&deployment) {
        Ok(b) => Some(b),
        Err(e) => {
            tracing::warn!(error = %e, "traffic sim: ignoring invalid settings");
            Some(Behaviour {
                available: Behaviour::default().available,
                ..Behaviour::default()
            })
        }
    }
}

/// Reads the first routing resource that exists for the app, in the order of the module docs;
/// `None` when there is none.
async fn read_routes(client: &kube::Client, app: &SimApp) -> Option<RouteTable> {
    let names = Names {
        service: app.service.clone(),
    };
    let get = |group: &'static str, version: &'static str, kind: &'static str, name: String| {
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), &app.namespace, &resource);
        async move {
            api.get_opt(&name)
                .await
                .ok()
                .flatten()
                .and_then(|o| serde_json::to_value(o).ok())
        }
    };
    let parsed = |table: Result<RouteTable>| match table {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::warn!(error = %e, "traffic sim: ignoring unusable routes");
            None
        }
    };
    if let Some(vs) = get(
        "networking.istio.io",
        "v1beta1",
        "VirtualService",
        app.service.clone(),
    )
    .await
        && let Some(table) = parsed(routes::from_virtual_service(&vs, &names))
    {
        return Some(table);
    }
    if let Some(route) = get(
        "gateway.networking.k8s.io",
        "v1beta1",
        "HTTPRoute",
        app.service.clone(),
    )
    .await
        && let Some(table) = parsed(routes::from_http_route(&route, &names))
    {
        return Some(table);
    }
    for version in ["v1alpha3", "v1alpha2", "v1alpha1"] {
        if let Some(split) = get(
            "split.smi-spec.io",
            version,
            "TrafficSplit",
            app.service.clone(),
        )
        .await
        {
            return Some(routes::from_traffic_split(&split, &names));
        }
    }
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), &app.namespace);
    if let Ok(Some(ingress)) = ingresses.get_opt(&format!("{}-canary", app.ingress)).await
        && let Ok(value) = serde_json::to_value(&ingress)
        && let Some(table) = parsed(routes::from_canary_ingress(
            &value,
            &app.ingress_annotations_prefix,
        ))
        && !table.routes.is_empty()
    {
        return Some(table);
    }
    let services: Api<Service> = Api::namespaced(client.clone(), &app.namespace);
    if let Ok(Some(service)) = services.get_opt(&app.service).await
        && let Ok(value) = serde_json::to_value(&service)
        && let Some(table) = routes::from_service_selector(&value, &app.target)
    {
        return Some(table);
    }
    None
}
