//! The APISIX router against a real kube-apiserver with the upstream ApisixRoute CRD
//! (apisix-ingress-controller 2.2.0): the user's route is cloned into
//! `<route>-<apex>-canary`, accepted by the real schema, weighted through a rollout and never
//! written itself.

mod common;

use common::cluster::{Env, assert_kept, owned_by, version_of};
use fledge_router::{
    Apisix, ClonedRenderer, Error, RouterOptions, Routes, apisix_route_resource, router_for,
};
use serde_json::json;

const APISIX: &str = "  provider: apisix\n  routeRef: {apiVersion: apisix.apache.org/v2, kind: ApisixRoute, name: podinfo}\n  service: {port: 80}\n  revertOnDeletion: true\n  analysis: {interval: 1m, threshold: 5, maxWeight: 50, stepWeight: 10}";

fn user_route() -> serde_json::Value {
    json!({
        "apiVersion": "apisix.apache.org/v2", "kind": "ApisixRoute",
        "metadata": { "name": "podinfo", "labels": { "app": "podinfo" } },
        "spec": { "ingressClassName": "apisix", "http": [
            {
                "name": "method",
                "match": { "hosts": ["foobar.com"], "methods": ["GET"], "paths": ["/*"] },
                "plugins": [{ "name": "prometheus", "enable": true, "config": { "prefer_name": true } }],
                "backends": [{ "serviceName": "podinfo", "servicePort": 80 }],
            },
            {
                "name": "static",
                "match": { "paths": ["/static/*"] },
                "backends": [{ "serviceName": "static-assets", "servicePort": "http" }],
            },
        ] },
    })
}

#[tokio::test]
async fn apisix_clones_the_users_route_and_weights_it_through_a_rollout() {
    let env = Env::start("apisix").await;
    let resource = apisix_route_resource();
    env.apply_as("kubectl", &resource, user_route()).await;
    let users = version_of(&env.get(&resource, "podinfo").await);
    let canary = env.create_canary(APISIX).await;
    let router =
        router_for("apisix", env.client.clone(), &RouterOptions::default()).expect("a router");
    router.reconcile(&canary).await.expect("reconciles");

    let clone = env.get(&resource, "podinfo-podinfo-canary").await;
    let source = env.get(&resource, "podinfo").await;
    let rendered = Apisix
        .render(&canary, Routes::INITIAL, &source)
        .expect("renders");
    assert_kept(&clone.data["spec"], &rendered.object.data["spec"]);
    assert!(owned_by(&clone, &canary));
    assert_eq!(clone.data["spec"]["http"][0]["priority"], 10000);
    assert_eq!(
        router.get_routes(&canary).await.expect("reads"),
        Routes::INITIAL
    );

    for weight in [10, 30, 50, 100, 0] {
        let split = Routes::weighted(100 - weight, weight);
        router.set_routes(&canary, split).await.expect("routes");
        let clone = env.get(&resource, "podinfo-podinfo-canary").await;
        let backends = &clone.data["spec"]["http"][0]["backends"];
        assert_eq!(backends[0]["serviceName"], "podinfo-primary");
        assert_eq!(backends[0]["weight"], 100 - weight);
        assert_eq!(backends[1]["serviceName"], "podinfo-canary");
        assert_eq!(backends[1]["weight"], weight);
        assert_eq!(router.get_routes(&canary).await.expect("reads"), split);
    }

    router
        .set_routes(&canary, Routes::weighted(50, 50))
        .await
        .expect("routes");
    let before = version_of(&env.get(&resource, "podinfo-podinfo-canary").await);
    router.reconcile(&canary).await.expect("reconciles");
    assert_eq!(
        version_of(&env.get(&resource, "podinfo-podinfo-canary").await),
        before,
        "reconciling keeps the split and changes nothing"
    );
    let clone = env.get(&resource, "podinfo-podinfo-canary").await;
    let source = env.get(&resource, "podinfo").await;
    assert!(router.routing_in_sync(&canary, &clone).expect("checks"));
    assert!(
        router
            .routing_in_sync_with_source(&canary, &clone, Some(&source))
            .expect("checks")
    );

    // Finalizing leaves the clone to the garbage collector and the user's route as it was.
    router.finalize(&canary).await.expect("finalizes");
    assert!(
        env.get_opt(&resource, "podinfo-podinfo-canary")
            .await
            .is_some()
    );
    assert_eq!(version_of(&env.get(&resource, "podinfo").await), users);
}

#[tokio::test]
async fn a_missing_route_is_an_error_naming_route_ref() {
    let env = Env::start("apisix-missing").await;
    let canary = env.create_canary(APISIX).await;
    let router =
        router_for("apisix", env.client.clone(), &RouterOptions::default()).expect("a router");
    let err = router.reconcile(&canary).await.unwrap_err();
    assert!(matches!(err, Error::SourceNotFound { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with(&format!(
            "spec.routeRef: ApisixRoute {}/podinfo not found",
            env.ns()
        )),
        "{err}"
    );
    assert!(matches!(
        router.get_routes(&canary).await,
        Err(Error::NotFound { .. })
    ));
}
