//! SMI TrafficSplits for Linkerd, OSM and other SMI meshes, compared with Flagger's
//! `pkg/router/smi.go`, `smi_v1alpha2.go` and `smi_v1alpha3.go`.

mod common;

use common::{canary, rendered, round_trip};
use fledge_router::{Routes, Smi, SmiVersion, TrafficRenderer};

const PODINFO: &str = "  service: {port: 9898}\n  analysis: {stepWeight: 5, maxWeight: 50}";

#[test]
fn linkerd_splits_the_apex_service_between_canary_and_primary() {
    let c = canary(PODINFO);
    let linkerd = Smi::new(SmiVersion::V1alpha1, "linkerd");
    insta::assert_yaml_snapshot!(
        "smi_linkerd_v1alpha1_95_5",
        rendered(&linkerd, &c, Routes::weighted(95, 5))
    );
    for version in [
        SmiVersion::V1alpha1,
        SmiVersion::V1alpha2,
        SmiVersion::V1alpha3,
    ] {
        let smi = Smi::new(version, "linkerd");
        for canary_weight in (0..=100).step_by(5) {
            let routes = Routes::weighted(100 - canary_weight, canary_weight);
            assert_eq!(round_trip(&smi, &c, routes), routes);
        }
    }
}

#[test]
fn smi_on_istio_carries_the_gateways_in_an_annotation() {
    let c =
        canary("  service: {port: 9898, hosts: [podinfo.example.com], gateways: [public-gateway]}");
    let smi = Smi::new(SmiVersion::V1alpha3, "istio");
    insta::assert_yaml_snapshot!("smi_istio_v1alpha3", rendered(&smi, &c, Routes::INITIAL));
}

#[test]
fn quantity_weights_written_by_v1alpha1_clients_read_back() {
    let c = canary(PODINFO);
    let smi = Smi::new(SmiVersion::V1alpha1, "linkerd");
    let mut split = smi.render(&c, Routes::INITIAL).unwrap().routing.object;
    split.data["spec"]["backends"] = serde_json::json!([
        {"service": "podinfo-canary", "weight": "30"},
        {"service": "podinfo-primary", "weight": "70"},
    ]);
    assert_eq!(
        smi.read_routes(&c, &split).unwrap(),
        Routes::weighted(70, 30)
    );
}
