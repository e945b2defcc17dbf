//! The NGINX and Skipper routers against a real kube-apiserver: the user's Ingress is cloned
//! into `<ingress>-canary`, the split moves through a rollout, the user's Ingress is never
//! written, and a missing Ingress is an error naming `spec.ingressRef`.

mod common;

use common::cluster::{Env, assert_kept, owned_by, version_of};
use fledge_router::{
    ClonedRenderer, Error, Nginx, RouterOptions, Routes, Skipper, ingress_resource, router_for,
};
use serde_json::{Value, json};

const NGINX: &str = "  provider: nginx\n  ingressRef: {apiVersion: networking.k8s.io/v1, kind: Ingress, name: podinfo}\n  service: {port: 9898}\n  analysis: {interval: 1m, threshold: 5, maxWeight: 50, stepWeight: 10}";

fn user_ingress(host: &str) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": { "name": "podinfo", "labels": { "app": "podinfo" },
            "annotations": { "kubernetes.io/ingress.class": "nginx" } },
        "spec": { "rules": [{ "host": host, "http": { "paths": [
            { "path": "/", "pathType": "Prefix", "backend": { "service": { "name": "podinfo", "port": { "number": 9898 } } } },
        ] } }] },
    })
}

fn annotation(object: &kube::api::DynamicObject, key: &str) -> Option<String> {
    object.metadata.annotations.as_ref()?.get(key).cloned()
}

#[tokio::test]
async fn nginx_clones_the_users_ingress_and_moves_the_weight_through_a_rollout() {
    let env = Env::start("nginx").await;
    let ingress = ingress_resource();
    env.apply_as("kubectl", &ingress, user_ingress("app.example.com"))
        .await;
    let users = version_of(&env.get(&ingress, "podinfo").await);
    let canary = env.create_canary(NGINX).await;
    let options = RouterOptions {
        ingress_annotations_prefix: "custom.ingress.kubernetes.io".to_owned(),
        ..RouterOptions::default()
    };
    let router = router_for("nginx", env.client.clone(), &options).expect("a router");
    assert!(matches!(
        router.set_routes(&canary, Routes::weighted(90, 10)).await,
        Err(Error::NotFound { .. })
    ));
    router.reconcile(&canary).await.expect("reconciles");

    let clone = env.get(&ingress, "podinfo-canary").await;
    let source = env.get(&ingress, "podinfo").await;
    let rendered = Nginx::new("custom.ingress.kubernetes.io")
        .render(&canary, Routes::INITIAL, &source)
        .expect("renders");
    assert_kept(&clone.data["spec"], &rendered.object.data["spec"]);
    assert!(owned_by(&clone, &canary));
    assert_eq!(
        annotation(&clone, "custom.ingress.kubernetes.io/canary").as_deref(),
        Some("true")
    );
    assert_eq!(
        router.get_routes(&canary).await.expect("reads"),
        Routes::INITIAL
    );

    for weight in [10, 20, 30, 40, 50, 0] {
        let split = Routes::weighted(100 - weight, weight);
        router.set_routes(&canary, split).await.expect("routes");
        let clone = env.get(&ingress, "podinfo-canary").await;
        assert_eq!(
            annotation(&clone, "custom.ingress.kubernetes.io/canary-weight"),
            Some(weight.to_string())
        );
        assert_eq!(router.get_routes(&canary).await.expect("reads"), split);
    }

    // Reconciling keeps the split and, done twice, changes nothing.
    router
        .set_routes(&canary, Routes::weighted(70, 30))
        .await
        .expect("routes");
    router.reconcile(&canary).await.expect("reconciles");
    let before = version_of(&env.get(&ingress, "podinfo-canary").await);
    router.reconcile(&canary).await.expect("reconciles");
    assert_eq!(
        version_of(&env.get(&ingress, "podinfo-canary").await),
        before
    );
    assert_eq!(
        router.get_routes(&canary).await.expect("reads"),
        Routes::weighted(70, 30)
    );
    assert_eq!(
        version_of(&env.get(&ingress, "podinfo").await),
        users,
        "the user's Ingress is never written"
    );

    // The user moves their Ingress to another host: the clone is out of sync, then follows.
    env.apply_as("kubectl", &ingress, user_ingress("www.example.com"))
        .await;
    let source = env.get(&ingress, "podinfo").await;
    let clone = env.get(&ingress, "podinfo-canary").await;
    assert!(
        !router
            .routing_in_sync_with_source(&canary, &clone, Some(&source))
            .expect("checks")
    );
    router.reconcile(&canary).await.expect("reconciles");
    let clone = env.get(&ingress, "podinfo-canary").await;
    assert_eq!(clone.data["spec"]["rules"][0]["host"], "www.example.com");
    assert!(
        router
            .routing_in_sync_with_source(&canary, &clone, Some(&source))
            .expect("checks")
    );
    assert_eq!(
        router.get_routes(&canary).await.expect("reads"),
        Routes::weighted(70, 30)
    );

    // Finalizing leaves the clone to the garbage collector, as Flagger does.
    router.finalize(&canary).await.expect("finalizes");
    assert!(env.get_opt(&ingress, "podinfo-canary").await.is_some());
}

#[tokio::test]
async fn nginx_ab_testing_selects_the_canary_by_header_then_goes_back_to_rest() {
    let env = Env::start("nginx-ab").await;
    let ingress = ingress_resource();
    env.apply_as("kubectl", &ingress, user_ingress("app.example.com"))
        .await;
    let canary = env
        .create_canary(&NGINX.replace(
            "maxWeight: 50, stepWeight: 10}",
            "iterations: 10, match: [{headers: {x-canary: {regex: \"^(insider|beta)$\"}}}, {headers: {cookie: {exact: canary}}}]}",
        ))
        .await;
    let router =
        router_for("nginx", env.client.clone(), &RouterOptions::default()).expect("a router");
    router.reconcile(&canary).await.expect("reconciles");
    router
        .set_routes(&canary, Routes::weighted(0, 100))
        .await
        .expect("routes");
    let clone = env.get(&ingress, "podinfo-canary").await;
    let prefix = "nginx.ingress.kubernetes.io";
    for (suffix, value) in [
        ("canary", "true"),
        ("canary-by-header", "x-canary"),
        ("canary-by-header-pattern", "^(insider|beta)$"),
        ("canary-by-cookie", "canary"),
    ] {
        assert_eq!(
            annotation(&clone, &format!("{prefix}/{suffix}")).as_deref(),
            Some(value),
            "{suffix}"
        );
    }
    assert_eq!(
        router.get_routes(&canary).await.expect("reads"),
        Routes::weighted(0, 100)
    );

    router
        .set_routes(&canary, Routes::INITIAL)
        .await
        .expect("routes");
    let clone = env.get(&ingress, "podinfo-canary").await;
    assert_eq!(
        annotation(&clone, &format!("{prefix}/canary-by-header")),
        None
    );
    assert_eq!(
        annotation(&clone, &format!("{prefix}/canary-by-cookie")),
        None
    );
    assert_eq!(
        router.get_routes(&canary).await.expect("reads"),
        Routes::INITIAL
    );
}

#[tokio::test]
async fn a_missing_ingress_is_an_error_naming_ingress_ref() {
    let env = Env::start("nginx-missing").await;
    let canary = env.create_canary(NGINX).await;
    for provider in ["nginx", "skipper"] {
        let router =
            router_for(provider, env.client.clone(), &RouterOptions::default()).expect("a router");
        let err = router.reconcile(&canary).await.unwrap_err();
        assert!(matches!(err, Error::SourceNotFound { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "spec.ingressRef: Ingress {}/podinfo not found; create it, or point spec.ingressRef.name at the Ingress that routes to the apex Service",
                env.ns()
            )
        );
    }
    assert!(
        env.get_opt(&ingress_resource(), "podinfo-canary")
            .await
            .is_none()
    );
}

#[tokio::test]
async fn skipper_weights_the_primary_and_canary_paths_and_removes_the_clone_on_finalize() {
    let env = Env::start("skipper").await;
    let ingress = ingress_resource();
    env.apply_as("kubectl", &ingress, user_ingress("app.example.com"))
        .await;
    let users = version_of(&env.get(&ingress, "podinfo").await);
    let canary = env
        .create_canary(
            &NGINX
                .replace("provider: nginx", "provider: skipper")
                .replace("analysis:", "revertOnDeletion: true\n  analysis:"),
        )
        .await;
    let router =
        router_for("skipper", env.client.clone(), &RouterOptions::default()).expect("a router");
    router.reconcile(&canary).await.expect("reconciles");
    let clone = env.get(&ingress, "podinfo-canary").await;
    let source = env.get(&ingress, "podinfo").await;
    let rendered = Skipper
        .render(&canary, Routes::INITIAL, &source)
        .expect("renders");
    assert_kept(&clone.data["spec"], &rendered.object.data["spec"]);
    assert!(owned_by(&clone, &canary));
    assert_eq!(
        router.get_routes(&canary).await.expect("reads"),
        Routes::INITIAL
    );
    assert_eq!(
        annotation(&clone, "zalando.org/skipper-predicate").as_deref(),
        Some("False()")
    );

    for (primary, canary_weight) in [(90, 10), (50, 50), (0, 100), (100, 0)] {
        let split = Routes::weighted(primary, canary_weight);
        router.set_routes(&canary, split).await.expect("routes");
        let clone = env.get(&ingress, "podinfo-canary").await;
        let weights: Value = serde_json::from_str(
            &annotation(&clone, "zalando.org/backend-weights").expect("weights"),
        )
        .expect("JSON");
        assert_eq!(
            weights,
            json!({ "podinfo-primary": primary, "podinfo-canary": canary_weight })
        );
        assert_eq!(router.get_routes(&canary).await.expect("reads"), split);
    }

    router.finalize(&canary).await.expect("finalizes");
    assert!(
        env.get_opt(&ingress, "podinfo-canary").await.is_none(),
        "Skipper's clone goes at once, as Flagger deletes it"
    );
    router
        .finalize(&canary)
        .await
        .expect("finalizing twice is harmless");
    assert_eq!(version_of(&env.get(&ingress, "podinfo").await), users);
}
