//! TrafficSim on the real API server and a real Prometheus: requests follow the routes in
//! the cluster, versions behave as their pod templates say, and Prometheus computes the
//! rates the providers' builtin queries read.

use std::time::{Duration, Instant};

use fledge_testkit::{
    ClusterSim, ClusterSimConfig, LocalCluster, LocalPrometheus, SimApp, TrafficSim,
    TrafficSimConfig,
};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, DeleteParams, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};

fn deployment(name: &str, env: &str) -> String {
    format!(
        r"
apiVersion: apps/v1
kind: Deployment
metadata: {{ name: {name} }}
spec:
  replicas: 1
  selector: {{ matchLabels: {{ app: {name} }} }}
  template:
    metadata: {{ labels: {{ app: {name} }} }}
    spec: {{ containers: [{{ name: podinfo, image: podinfo, env: [{env}] }}] }}
---
"
    )
}

const VIRTUAL_SERVICE: &str = r"
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: { name: podinfo }
spec:
  hosts: [podinfo]
  http:
  - match: [{ headers: { x-canary: { exact: insider } } }]
    route: [{ destination: { host: podinfo-canary } }]
  - route:
    - { destination: { host: podinfo-primary }, weight: WEIGHT_PRIMARY }
    - { destination: { host: podinfo-canary }, weight: WEIGHT_CANARY }
";

fn virtual_service(primary: u32, canary: u32) -> String {
    VIRTUAL_SERVICE
        .replace("WEIGHT_PRIMARY", &primary.to_string())
        .replace("WEIGHT_CANARY", &canary.to_string())
}

async fn wait_available(cluster: &LocalCluster, namespace: &str, names: &[&str]) {
    let api: Api<Deployment> = Api::namespaced(cluster.client(), namespace);
    let start = Instant::now();
    for name in names {
        loop {
            let d = api.get(name).await.expect("deployment");
            if d.status.and_then(|s| s.available_replicas).unwrap_or(0) > 0 {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{name} not available"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn wait_route_source(sim: &TrafficSim, ns: &str, expected: &str) {
    let start = Instant::now();
    loop {
        sim.refresh().await;
        if sim.route_source(ns, "podinfo").as_deref() == Some(expected) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "routes read from {:?}",
            sim.route_source(ns, "podinfo")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends 2,000 requests at once and returns the canary's share in percent.
fn canary_share_of_2000(sim: &TrafficSim, namespace: &str) -> f64 {
    let before = sim.counts(namespace, "podinfo").expect("app");
    sim.send(namespace, "podinfo", 2_000);
    let after = sim.counts(namespace, "podinfo").expect("app");
    let canary = after.canary - before.canary;
    assert_eq!(
        canary + after.primary - before.primary,
        2_000,
        "every request routed"
    );
    canary as f64 / 2_000.0 * 100.0
}

#[tokio::test]
async fn the_split_follows_the_weights_in_the_cluster() {
    let cluster = LocalCluster::start().await.expect("local control plane");
    cluster.install_mesh_crds().await.expect("mesh crds");
    let ns = cluster.temp_namespace("traffic").await.expect("namespace");
    let _cluster_sim = ClusterSim::start(
        cluster.client(),
        ClusterSimConfig {
            ready_delay: Duration::from_millis(100),
            namespace: Some(ns.name().to_owned()),
        },
    );
    // Before any workload exists, no pod answers: the client gets the mesh's 503, and no
    // destination reports the request (Flagger's queries read only the destination's reports).
    let app = SimApp::new(ns.name(), "podinfo").with_rate(0.0);
    let sim = TrafficSim::start(cluster.client(), vec![app], TrafficSimConfig::default())
        .await
        .expect("traffic sim");
    sim.send(ns.name(), "podinfo", 100);
    let counts = sim.counts(ns.name(), "podinfo").expect("app");
    assert_eq!((counts.canary, counts.errors), (100, 100), "{counts:?}");
    let exposed = reqwest::get(format!("http://{}/metrics", sim.metrics_addr()))
        .await
        .expect("/metrics answers")
        .text()
        .await
        .expect("/metrics body");
    assert!(
        !exposed.contains(&format!("namespace=\"{}\"", ns.name())),
        "nothing recorded for the app: {exposed}"
    );

    cluster
        .apply_yaml(
            &(deployment("podinfo", "") + &deployment("podinfo-primary", "")),
            ns.name(),
        )
        .await
        .expect("deployments");
    wait_available(&cluster, ns.name(), &["podinfo", "podinfo-primary"]).await;
    sim.refresh().await;
    assert_eq!(
        sim.route_source(ns.name(), "podinfo").as_deref(),
        Some("no routing resource")
    );

    cluster
        .apply_yaml(&virtual_service(80, 20), ns.name())
        .await
        .expect("virtual service");
    wait_route_source(
        &sim,
        ns.name(),
        &format!("VirtualService {}/podinfo", ns.name()),
    )
    .await;
    let share = canary_share_of_2000(&sim, ns.name());
    eprintln!("canary share with 80/20 weights: {share:.1} %");
    assert!((share - 20.0).abs() <= 3.0, "canary share {share:.1} %");

    // A/B traffic: 10 % of requests carry the insider header, which always reaches the
    // canary: expected canary share = 0.1 + 0.9 × 0.2 = 28 %.
    sim.update_app(ns.name(), "podinfo", |app| {
        *app = app.clone().with_header_share(0.1, "x-canary", "insider");
    });
    let share = canary_share_of_2000(&sim, ns.name());
    eprintln!("canary share with 80/20 weights and 10 % insiders: {share:.1} %");
    assert!((share - 28.0).abs() <= 3.0, "canary share {share:.1} %");

    // Promotion: the router sets 100/0 and the canary gets only the insiders.
    cluster
        .apply_yaml(&virtual_service(100, 0), ns.name())
        .await
        .expect("virtual service");
    let start = Instant::now();
    loop {
        sim.refresh().await;
        let share = canary_share_of_2000(&sim, ns.name());
        if (share - 10.0).abs() <= 3.0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "canary share stays {share:.1} %"
        );
    }
}

#[tokio::test]
async fn prometheus_computes_the_rates_the_builtin_queries_read() {
    let cluster = LocalCluster::start().await.expect("local control plane");
    cluster.install_mesh_crds().await.expect("mesh crds");
    let ns = cluster.temp_namespace("metrics").await.expect("namespace");
    let _cluster_sim = ClusterSim::start(
        cluster.client(),
        ClusterSimConfig {
            ready_delay: Duration::from_millis(100),
            namespace: Some(ns.name().to_owned()),
        },
    );
    // The canary is a bad version: 30 % of its requests fail, and it is slow.
    let bad = r#"{ name: FLEDGE_SIM_ERROR_RATE, value: "0.3" }, { name: FLEDGE_SIM_LATENCY_MS, value: "400" }"#;
    cluster
        .apply_yaml(
            &(deployment("podinfo", bad)
                + &deployment("podinfo-primary", "")
                + &virtual_service(50, 50)),
            ns.name(),
        )
        .await
        .expect("manifests");
    wait_available(&cluster, ns.name(), &["podinfo", "podinfo-primary"]).await;

    let app = SimApp::new(ns.name(), "podinfo").with_rate(100.0);
    let sim = TrafficSim::start(cluster.client(), vec![app], TrafficSimConfig::default())
        .await
        .expect("traffic sim");
    let prometheus = LocalPrometheus::start(&[sim.metrics_addr()])
        .await
        .expect("prometheus");
    prometheus
        .wait_for_targets_up(1, Duration::from_secs(30))
        .await
        .expect("target up");
    // A few seconds of samples, so that the rates below average over a few hundred requests.
    tokio::time::sleep(Duration::from_secs(6)).await;

    let ns = ns.name();
    // Flagger's builtin Istio request-success-rate query, {{ target }} = podinfo.
    let success_rate = |workload: &str| {
        format!(
            r#"sum(rate(istio_requests_total{{reporter="destination",destination_workload_namespace="{ns}",destination_workload=~"{workload}",response_code!~"5.*"}}[1m]))
             / sum(rate(istio_requests_total{{reporter="destination",destination_workload_namespace="{ns}",destination_workload=~"{workload}"}}[1m])) * 100"#
        )
    };
    let canary = value_of(&prometheus, &success_rate("podinfo")).await;
    let primary = value_of(&prometheus, &success_rate("podinfo-primary")).await;
    eprintln!("success rate: canary {canary:.1} %, primary {primary:.1} %");
    assert!((canary - 70.0).abs() < 10.0, "canary success rate {canary}");
    assert!(
        (primary - 100.0).abs() < f64::EPSILON,
        "primary success rate {primary}"
    );

    // A window shorter than the series' age (~6 s here): a longer one would be extrapolated
    // from a partial window and read low.
    let rate = value_of(
        &prometheus,
        &format!(r#"sum(rate(istio_requests_total{{destination_workload_namespace="{ns}",destination_workload="podinfo"}}[5s]))"#),
    )
    .await;
    eprintln!("canary request rate: {rate:.1}/s (expected 50)");
    assert!((rate - 50.0).abs() < 15.0, "canary request rate {rate}");

    // Flagger's request-duration query: p99 of a 400 ms ± 50 % version lands in the 500 ms bucket.
    let p99 = value_of(
        &prometheus,
        &format!(
            r#"histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket{{reporter="destination",destination_workload_namespace="{ns}",destination_workload=~"podinfo"}}[1m])) by (le))"#
        ),
    )
    .await;
    eprintln!("canary p99 latency: {p99:.0} ms");
    assert!((250.0..=1000.0).contains(&p99), "p99 {p99}");

    // Linkerd's builtin query reads the same traffic under its own names: evaluated in one
    // query with Istio's, at one instant, the two agree exactly.
    let linkerd = format!(
        r#"sum(rate(response_total{{namespace="{ns}",deployment=~"podinfo",classification!="failure",direction="inbound"}}[1m])) / sum(rate(response_total{{namespace="{ns}",deployment=~"podinfo",direction="inbound"}}[1m])) * 100"#
    );
    let difference = value_of(
        &prometheus,
        &format!("({linkerd}) - ({})", success_rate("podinfo")),
    )
    .await;
    assert!(difference.abs() < 1e-9, "linkerd minus istio: {difference}");
}

/// The value of `promql`, polled until Prometheus has one (the first scrapes of a new target
/// come a few seconds after it is discovered).
async fn value_of(prometheus: &LocalPrometheus, promql: &str) -> f64 {
    let started = Instant::now();
    loop {
        if let Some(value) = prometheus.query_value(promql).await.expect("query") {
            return value;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no value for {promql}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

const HTTP_ROUTE: &str = r"
apiVersion: gateway.networking.k8s.io/v1beta1
kind: HTTPRoute
metadata: { name: podinfo }
spec:
  rules:
  - backendRefs:
    - { name: podinfo-primary, port: 9898, weight: 90 }
    - { name: podinfo-canary, port: 9898, weight: 10 }
";

const TRAFFIC_SPLIT: &str = r"
apiVersion: split.smi-spec.io/v1alpha3
kind: TrafficSplit
metadata: { name: podinfo }
spec:
  service: podinfo
  backends:
  - { service: podinfo-primary, weight: 70 }
  - { service: podinfo-canary, weight: 30 }
";

const CANARY_INGRESS: &str = r"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: podinfo-canary
  annotations:
    nginx.ingress.kubernetes.io/canary: 'true'
    nginx.ingress.kubernetes.io/canary-weight: '40'
spec:
  rules:
  - host: app.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend: { service: { name: podinfo-canary, port: { number: 9898 } } }
";

const APEX_SERVICE: &str = r"
apiVersion: v1
kind: Service
metadata: { name: podinfo }
spec:
  selector: { app: podinfo }
  ports: [{ port: 9898, protocol: TCP }] # 1.20 server-side apply needs the protocol
";

/// Waits until the routes come from `source`, then measures the canary's share.
async fn share_once_routed_by(sim: &TrafficSim, namespace: &str, kind: &str, name: &str) -> f64 {
    wait_route_source(sim, namespace, &format!("{kind} {namespace}/{name}")).await;
    canary_share_of_2000(sim, namespace)
}

#[tokio::test]
async fn every_routing_resource_is_read_from_the_cluster() {
    let cluster = LocalCluster::start().await.expect("local control plane");
    cluster.install_mesh_crds().await.expect("mesh crds");
    let ns = cluster.temp_namespace("routers").await.expect("namespace");
    let ns = ns.name();
    let app = SimApp::new(ns, "podinfo").with_rate(0.0);
    let sim = TrafficSim::start(cluster.client(), vec![app], TrafficSimConfig::default())
        .await
        .expect("traffic sim");
    let delete = |kind: &'static str, name: &'static str| {
        let client = cluster.client();
        async move {
            let (group, version) = match kind {
                "HTTPRoute" => ("gateway.networking.k8s.io", "v1beta1"),
                "TrafficSplit" => ("split.smi-spec.io", "v1alpha3"),
                _ => ("networking.k8s.io", "v1"),
            };
            let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
            let api: Api<DynamicObject> = Api::namespaced_with(client, ns, &resource);
            api.delete(name, &DeleteParams::default())
                .await
                .expect("delete");
        }
    };

    // Gateway API (Flagger's gatewayapi router): weights on backendRefs.
    cluster.apply_yaml(HTTP_ROUTE, ns).await.expect("httproute");
    let share = share_once_routed_by(&sim, ns, "HTTPRoute", "podinfo").await;
    assert!(
        (share - 10.0).abs() <= 3.0,
        "HTTPRoute 90/10: canary {share:.1} %"
    );
    delete("HTTPRoute", "podinfo").await;

    // SMI (Linkerd, OSM): backends and weights.
    cluster
        .apply_yaml(TRAFFIC_SPLIT, ns)
        .await
        .expect("trafficsplit");
    let share = share_once_routed_by(&sim, ns, "TrafficSplit", "podinfo").await;
    assert!(
        (share - 30.0).abs() <= 3.0,
        "TrafficSplit 70/30: canary {share:.1} %"
    );
    delete("TrafficSplit", "podinfo").await;

    // NGINX: the canary Ingress's weight annotation.
    cluster
        .apply_yaml(CANARY_INGRESS, ns)
        .await
        .expect("ingress");
    let share = share_once_routed_by(&sim, ns, "Ingress", "podinfo-canary").await;
    assert!(
        (share - 40.0).abs() <= 3.0,
        "canary-weight 40: canary {share:.1} %"
    );
    delete("Ingress", "podinfo-canary").await;

    // Blue/green with the kubernetes provider: the apex Service's selector decides.
    cluster.apply_yaml(APEX_SERVICE, ns).await.expect("service");
    let share = share_once_routed_by(&sim, ns, "Service", "podinfo").await;
    assert!(
        (share - 100.0).abs() < f64::EPSILON,
        "selector app=podinfo: canary {share:.1} %"
    );
    cluster
        .apply_yaml(
            &APEX_SERVICE.replace("app: podinfo }", "app: podinfo-primary }"),
            ns,
        )
        .await
        .expect("switch to primary");
    let start = Instant::now();
    while canary_share_of_2000(&sim, ns) > 0.0 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "selector switch not seen"
        );
        sim.refresh().await;
    }
}
