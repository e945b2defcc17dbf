//! Traefik TraefikServices, compared with Flagger's `pkg/router/traefik.go` and
//! `traefik_test.go`.

mod common;

use common::{canary, rendered, round_trip};
use fledge_router::{Routes, Traefik, TraefikGroup, TrafficRenderer};
use serde_json::json;

/// Seed 003's canary (the Traefik tutorial): port 80 in front of 9898.
const PODINFO: &str = r"  provider: traefik
  service:
    port: 80
    targetPort: 9898
    apex: {labels: {test: label}, annotations: {test: annotation}}
  analysis: {interval: 10s, threshold: 10, maxWeight: 50, stepWeight: 5}";

const TRAEFIK: Traefik = Traefik::new(TraefikGroup::TraefikIo);

fn services(routes: Routes) -> serde_json::Value {
    let c = canary(PODINFO);
    rendered(&TRAEFIK, &c, routes)[0].data["spec"]["weighted"]["services"].clone()
}

#[test]
fn at_rest_the_weighted_service_lists_the_primary_alone() {
    let c = canary(PODINFO);
    let objects = rendered(&TRAEFIK, &c, Routes::INITIAL);
    insta::assert_yaml_snapshot!("traefik_initial", objects);
    // Flagger's TestTraefikRouter_Reconcile: one service at 100, the apex metadata.
    let service = &objects[0];
    assert_eq!(
        service.types.as_ref().unwrap().api_version,
        "traefik.io/v1alpha1"
    );
    assert_eq!(service.metadata.labels.as_ref().unwrap()["test"], "label");
    assert_eq!(
        service.metadata.annotations.as_ref().unwrap()["test"],
        "annotation"
    );
    assert_eq!(
        services(Routes::INITIAL),
        json!([{ "name": "podinfo-primary", "namespace": "test", "port": 80, "weight": 100 }])
    );
}

#[test]
fn the_canary_is_listed_while_it_receives_traffic() {
    // Flagger's TestTraefikRouter_SetRoutes table.
    let c = canary(PODINFO);
    for (primary, canary_weight, listed) in [
        (100, 0, 1),
        (80, 20, 2),
        (60, 40, 2),
        (40, 60, 2),
        (20, 80, 2),
        (0, 100, 2),
        (100, 0, 1),
    ] {
        let routes = Routes::weighted(primary, canary_weight);
        let services = services(routes);
        let services = services.as_array().unwrap();
        assert_eq!(services.len(), listed, "{routes}");
        // Written even at 0: Traefik reads a missing weight as 1.
        assert_eq!(services[0]["weight"], primary, "{routes}");
        if canary_weight > 0 {
            assert_eq!(services[1]["name"], "podinfo-canary");
            assert_eq!(services[1]["weight"], canary_weight);
        }
        assert_eq!(round_trip(&TRAEFIK, &c, routes), routes);
    }
}

#[test]
fn the_older_group_holds_the_same_service() {
    let c = canary(PODINFO);
    let old = Traefik::new(TraefikGroup::ContainoUs);
    let legacy = &rendered(&old, &c, Routes::weighted(90, 10))[0];
    let current = &rendered(&TRAEFIK, &c, Routes::weighted(90, 10))[0];
    assert_eq!(
        legacy.types.as_ref().unwrap().api_version,
        "traefik.containo.us/v1alpha1"
    );
    assert_eq!(legacy.data, current.data);
    assert_eq!(old.traefik_service_resource().plural, "traefikservices");
}

#[test]
fn a_service_the_user_weighted_by_default_reads_as_weight_one() {
    let c = canary(PODINFO);
    let mut object = TRAEFIK.render(&c, Routes::INITIAL).unwrap().routing.object;
    object.data["spec"]["weighted"]["services"] = json!([
        { "name": "podinfo-primary", "port": 80 },
        { "name": "podinfo-canary", "port": 80, "weight": 1 },
    ]);
    assert_eq!(
        TRAEFIK.read_routes(&c, &object).unwrap(),
        Routes::weighted(1, 1)
    );
    object.data["spec"]["weighted"]["services"] = json!([{ "name": "other", "port": 80 }]);
    let err = TRAEFIK.read_routes(&c, &object).unwrap_err();
    assert_eq!(
        err.to_string(),
        "TraefikService test/podinfo does not contain routes for podinfo-primary and podinfo-canary"
    );
}

#[test]
fn ab_testing_and_mirroring_are_refused_naming_traefik() {
    let refused = |analysis: &str| {
        TRAEFIK
            .render(
                &canary(&format!("  service: {{port: 80}}\n  analysis: {analysis}")),
                Routes::INITIAL,
            )
            .unwrap_err()
            .to_string()
    };
    assert!(
        refused("{iterations: 5, match: [{headers: {x-canary: {exact: insider}}}]}").starts_with(
            "spec.analysis.match: the traefik provider cannot route by header, cookie or query (A/B testing)"
        )
    );
    assert_eq!(
        refused("{iterations: 5, mirror: true}"),
        "spec.analysis.mirror: the traefik provider cannot mirror traffic; remove `mirror` or use istio or gatewayapi"
    );
}
