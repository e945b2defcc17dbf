//! The canary Ingress the NGINX router writes, followed by the testkit's TrafficSim as
//! ingress-nginx would follow it: the weight, then A/B testing by header, under the operator's
//! annotation prefix — and the `nginx_ingress_controller_*` series Flagger's builtin NGINX
//! queries read (`ingress="<ingressRef>"`, `canary!=""` for the canary upstream).

mod common;

use std::time::{Duration, Instant};

use common::cluster::Env;
use fledge_router::{RouterOptions, Routes, ingress_resource, router_for};
use fledge_testkit::{ClusterSim, ClusterSimConfig, SimApp, TrafficSim, TrafficSimConfig};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use serde_json::json;

const PREFIX: &str = "custom.ingress.kubernetes.io";
const NGINX: &str = "  provider: nginx\n  ingressRef: {apiVersion: networking.k8s.io/v1, kind: Ingress, name: podinfo}\n  service: {port: 9898}\n  analysis: {interval: 1m, threshold: 5, maxWeight: 50, stepWeight: 10}";

fn deployment(name: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}}}\nspec:\n  replicas: 1\n  \
         selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    \
         spec: {{containers: [{{name: podinfo, image: podinfo}}]}}\n---\n"
    )
}

async fn wait_available(env: &Env, names: &[&str]) {
    let api: Api<Deployment> = Api::namespaced(env.client.clone(), env.ns());
    let start = Instant::now();
    for name in names {
        while api
            .get(name)
            .await
            .expect("deployment")
            .status
            .and_then(|s| s.available_replicas)
            .unwrap_or(0)
            == 0
        {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{name} not available"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Re-reads the routes, then sends 2,000 requests and returns the canary's share in percent.
async fn canary_share(sim: &TrafficSim, ns: &str) -> f64 {
    sim.refresh().await;
    assert_eq!(
        sim.route_source(ns, "podinfo"),
        Some(format!("Ingress {ns}/podinfo-canary"))
    );
    let before = sim.counts(ns, "podinfo").expect("app");
    sim.send(ns, "podinfo", 2_000);
    let after = sim.counts(ns, "podinfo").expect("app");
    assert_eq!(
        after.primary + after.canary - before.primary - before.canary,
        2_000,
        "every request routed"
    );
    (after.canary - before.canary) as f64 / 20.0
}

#[tokio::test]
async fn the_traffic_sim_follows_the_weight_and_header_selectors_of_the_nginx_canary_ingress() {
    let env = Env::start("nginx-traffic").await;
    let ns = env.ns().to_owned();
    let _cluster_sim = ClusterSim::start(
        env.client.clone(),
        ClusterSimConfig {
            ready_delay: Duration::from_millis(100),
            namespace: Some(ns.clone()),
        },
    );
    env.cluster
        .apply_yaml(
            &(deployment("podinfo") + &deployment("podinfo-primary")),
            &ns,
        )
        .await
        .expect("deployments");
    wait_available(&env, &["podinfo", "podinfo-primary"]).await;
    env.apply_as(
        "kubectl",
        &ingress_resource(),
        json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": { "name": "podinfo", "annotations": { "kubernetes.io/ingress.class": "nginx" } },
            "spec": { "rules": [{ "host": "app.example.com", "http": { "paths": [
                { "path": "/", "pathType": "Prefix", "backend": { "service": { "name": "podinfo", "port": { "number": 9898 } } } },
            ] } }] },
        }),
    )
    .await;
    let canary = env.create_canary(NGINX).await;
    let options = RouterOptions {
        ingress_annotations_prefix: PREFIX.to_owned(),
        ..RouterOptions::default()
    };
    let router = router_for("nginx", env.client.clone(), &options).expect("a router");
    router.reconcile(&canary).await.expect("reconciles");
    router
        .set_routes(&canary, Routes::weighted(60, 40))
        .await
        .expect("routes");

    // A quarter of the requests carry the header the A/B phase selects by.
    let app = SimApp::new(&ns, "podinfo")
        .with_rate(0.0)
        .with_ingress_annotations_prefix(PREFIX)
        .with_header_share(0.25, "x-canary", "insider");
    let sim = TrafficSim::start(env.client.clone(), vec![app], TrafficSimConfig::default())
        .await
        .expect("traffic sim");
    let share = canary_share(&sim, &ns).await;
    assert!(
        (share - 40.0).abs() <= 3.0,
        "canary-weight 40: canary {share:.1} %"
    );

    // The series Flagger's NGINX queries read: the canary upstream under the user's Ingress.
    let counts = sim.counts(&ns, "podinfo").expect("app");
    let exposed = sim.render_metrics();
    for (upstream, count) in [
        (format!("{ns}-podinfo-canary-9898"), counts.canary),
        (String::new(), counts.primary),
    ] {
        let line = format!(
            "nginx_ingress_controller_requests{{namespace=\"{ns}\",ingress=\"podinfo\",canary=\"{upstream}\",status=\"200\"}} {count}"
        );
        assert!(exposed.contains(&line), "{line} in {exposed}");
    }

    // A/B testing: the header selects the canary, everything else stays on the primary.
    let mut ab = common::canary(&NGINX.replace(
        "maxWeight: 50, stepWeight: 10}",
        "iterations: 10, match: [{headers: {x-canary: {exact: insider}}}]}",
    ));
    ab.metadata = canary.metadata.clone();
    router
        .set_routes(&ab, Routes::weighted(0, 100))
        .await
        .expect("routes");
    let share = canary_share(&sim, &ns).await;
    assert!(
        (share - 25.0).abs() <= 3.0,
        "x-canary: insider: canary {share:.1} %"
    );

    router
        .set_routes(&ab, Routes::INITIAL)
        .await
        .expect("routes");
    let share = canary_share(&sim, &ns).await;
    assert!(share.abs() < f64::EPSILON, "at rest: canary {share:.1} %");
}
