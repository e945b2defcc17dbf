//! The Istio router against a real kube-apiserver with Istio's own CRD schemas.

mod common;

use common::cluster::{Env, assert_kept, owned_by, version_of};
use fledge_router::{
    Istio, MeshRouter, Router, Routes, ServiceRouter, ServiceTarget, TrafficRenderer,
};
use serde_json::json;

const SPEC: &str = r"  provider: istio
  service:
    port: 9898
    gateways: [public-gateway.istio-system.svc.cluster.local]
    hosts: [app.example.com]
    trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
    retries: {attempts: 3, perTryTimeout: 1s, retryOn: gateway-error}
    timeout: 30s
  analysis: {interval: 1m, threshold: 5, maxWeight: 50, stepWeight: 10}";

#[tokio::test]
async fn istio_canary_is_reconciled_routed_read_back_and_idempotent() {
    let env = Env::start("istio").await;
    let canary = env.create_canary(SPEC).await;
    ServiceRouter::new(env.client.clone())
        .reconcile(&canary, &ServiceTarget::new("app", "podinfo"))
        .await
        .unwrap();
    let router = MeshRouter::new(Istio, env.client.clone());
    router.reconcile(&canary).await.unwrap();

    // The objects exist, owned by the Canary, exactly as rendered (nothing pruned by the schema).
    let vs = env.get(&Istio::virtual_service_resource(), "podinfo").await;
    let rendered = Istio.render(&canary, Routes::INITIAL).unwrap();
    assert_kept(&vs.data["spec"], &rendered.routing.object.data["spec"]);
    assert!(owned_by(&vs, &canary));
    for name in ["podinfo-primary", "podinfo-canary"] {
        let dr = env.get(&Istio::destination_rule_resource(), name).await;
        assert_eq!(
            dr.data["spec"]["trafficPolicy"]["tls"]["mode"],
            "ISTIO_MUTUAL"
        );
        assert!(owned_by(&dr, &canary));
    }
    assert_eq!(router.get_routes(&canary).await.unwrap(), Routes::INITIAL);

    router
        .set_routes(&canary, Routes::weighted(80, 20))
        .await
        .unwrap();
    assert_eq!(
        router.get_routes(&canary).await.unwrap(),
        Routes::weighted(80, 20)
    );

    // Reconciling again never moves traffic, and changes nothing at all.
    let before = version_of(&env.get(&Istio::virtual_service_resource(), "podinfo").await);
    let dr_before = version_of(
        &env.get(&Istio::destination_rule_resource(), "podinfo-canary")
            .await,
    );
    router.reconcile(&canary).await.unwrap();
    router
        .set_routes(&canary, Routes::weighted(80, 20))
        .await
        .unwrap();
    assert_eq!(
        router.get_routes(&canary).await.unwrap(),
        Routes::weighted(80, 20)
    );
    assert_eq!(
        version_of(&env.get(&Istio::virtual_service_resource(), "podinfo").await),
        before
    );
    assert_eq!(
        version_of(
            &env.get(&Istio::destination_rule_resource(), "podinfo-canary")
                .await
        ),
        dr_before
    );

    // Bad weights are refused before anything is written.
    assert!(
        router
            .set_routes(&canary, Routes::weighted(80, 30))
            .await
            .is_err()
    );
    assert_eq!(
        router.get_routes(&canary).await.unwrap(),
        Routes::weighted(80, 20)
    );
}

#[tokio::test]
async fn istio_ab_testing_mirroring_and_session_affinity_are_accepted_by_the_schema() {
    let env = Env::start("istio-ab").await;
    let resource = Istio::virtual_service_resource();

    let ab = env
        .create_canary(
            "  service: {port: 9898}\n  analysis:\n    iterations: 5\n    match: [{headers: {x-canary: {exact: insider}}}, {sourceLabels: {app: frontend}}]",
        )
        .await;
    let router = MeshRouter::new(Istio, env.client.clone());
    router.reconcile(&ab).await.unwrap();
    router
        .set_routes(&ab, Routes::weighted(0, 100))
        .await
        .unwrap();
    assert_eq!(
        router.get_routes(&ab).await.unwrap(),
        Routes::weighted(0, 100)
    );
    let vs = env.get(&resource, "podinfo").await;
    assert_eq!(
        vs.data["spec"]["http"][0]["match"][0]["headers"]["x-canary"]["exact"],
        "insider"
    );
    assert_eq!(vs.data["spec"]["http"][1]["route"][0]["weight"], 100);

    // Mirroring: the same canary switched to blue/green with mirroring.
    let mut mirrored = ab.clone();
    let analysis = mirrored.spec.analysis.as_mut().unwrap();
    analysis.match_.clear();
    analysis.mirror = true;
    analysis.mirror_weight = Some(50);
    let mirroring = Routes::weighted(100, 0).with_mirror(true);
    router.set_routes(&mirrored, mirroring).await.unwrap();
    assert_eq!(router.get_routes(&mirrored).await.unwrap(), mirroring);
    let vs = env.get(&resource, "podinfo").await;
    assert_eq!(
        vs.data["spec"]["http"][0]["mirror"]["host"],
        "podinfo-canary"
    );
    assert_eq!(vs.data["spec"]["http"][0]["mirrorPercentage"]["value"], 50);

    // Session affinity: sticky cookie rules and Set-Cookie response headers.
    let mut sticky = ab.clone();
    let analysis = sticky.spec.analysis.as_mut().unwrap();
    analysis.match_.clear();
    analysis.iterations = None;
    analysis.step_weight = Some(10);
    analysis.session_affinity = Some(fledge_api::canary::SessionAffinity {
        cookie_name: Some("flagger-cookie".into()),
        max_age: Some(3600),
        ..Default::default()
    });
    router
        .set_routes(&sticky, Routes::weighted(80, 20))
        .await
        .unwrap();
    assert_eq!(
        router.get_routes(&sticky).await.unwrap(),
        Routes::weighted(80, 20)
    );
    let vs = env.get(&resource, "podinfo").await;
    let set_cookie =
        vs.data["spec"]["http"][1]["route"][1]["headers"]["response"]["add"]["Set-Cookie"]
            .as_str()
            .unwrap()
            .to_owned();
    assert!(
        set_cookie.starts_with("flagger-cookie=") && set_cookie.ends_with("; Max-Age=3600"),
        "{set_cookie}"
    );
}

#[tokio::test]
async fn istio_adopts_a_users_virtual_service_keeps_their_edits_and_restores_it_on_finalize() {
    let env = Env::start("istio-adopt").await;
    let resource = Istio::virtual_service_resource();
    let original = json!({
        "hosts": ["podinfo"],
        "http": [{ "route": [{ "destination": { "host": "podinfo" } }] }],
    });
    env.apply_as(
        "kubectl",
        &resource,
        json!({
            "apiVersion": "networking.istio.io/v1beta1",
            "kind": "VirtualService",
            "metadata": { "name": "podinfo" },
            "spec": original,
        }),
    )
    .await;
    let canary = env
        .create_canary(
            "  service: {port: 9898}\n  revertOnDeletion: true\n  analysis: {stepWeight: 10}",
        )
        .await;
    let router = MeshRouter::new(Istio, env.client.clone());
    router.reconcile(&canary).await.unwrap();

    let vs = env.get(&resource, "podinfo").await;
    assert!(
        !owned_by(&vs, &canary),
        "an adopted object must not be garbage-collected with the Canary"
    );
    let saved = &vs.metadata.annotations.as_ref().unwrap()[fledge_router::ORIGINAL_CONFIGURATION];
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(saved).unwrap(),
        original
    );
    assert_eq!(
        vs.data["spec"]["http"][0]["route"][0]["destination"]["host"],
        "podinfo-primary"
    );

    // The user labels the VirtualService and sets a field Fledge does not own.
    env.merge_patch(
        &resource,
        "podinfo",
        json!({ "metadata": { "labels": { "team": "web" } }, "spec": { "exportTo": ["."] } }),
    )
    .await;
    router
        .set_routes(&canary, Routes::weighted(90, 10))
        .await
        .unwrap();
    router.reconcile(&canary).await.unwrap();
    let vs = env.get(&resource, "podinfo").await;
    assert_eq!(vs.metadata.labels.as_ref().unwrap()["team"], "web");
    assert_eq!(vs.data["spec"]["exportTo"], json!(["."]));
    assert_eq!(
        router.get_routes(&canary).await.unwrap(),
        Routes::weighted(90, 10)
    );

    router.finalize(&canary).await.unwrap();
    let vs = env.get(&resource, "podinfo").await;
    assert_eq!(vs.data["spec"]["hosts"], original["hosts"]);
    assert_eq!(vs.data["spec"]["http"], original["http"]);
    assert!(
        vs.data["spec"].get("gateways").is_none(),
        "{:?}",
        vs.data["spec"]
    );
    assert!(
        !vs.metadata
            .annotations
            .unwrap_or_default()
            .contains_key(fledge_router::ORIGINAL_CONFIGURATION)
    );
}
