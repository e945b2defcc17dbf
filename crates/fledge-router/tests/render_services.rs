//! The three ClusterIP Services, as Flagger writes them (compare with Flagger's
//! `pkg/router/kubernetes_default.go` and the "how it works" docs).

use fledge_api::Canary;
use fledge_router::{ServiceTarget, discover_ports, render_services};
use k8s_openapi::api::core::v1::{Container, ContainerPort};

fn canary(service: &str) -> Canary {
    let text = format!(
        "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {{name: podinfo, namespace: test, uid: 7a1c-uid}}\n\
         spec:\n  targetRef: {{apiVersion: apps/v1, kind: Deployment, name: podinfo}}\n  service: {service}\n"
    );
    fledge_api::yaml::from_str(&text).expect("a valid canary")
}

#[test]
fn podinfo_gets_an_apex_a_primary_and_a_canary_service() {
    let canary = canary(
        "{port: 9898, targetPort: http, portName: http-podinfo, appProtocol: http, \
          apex: {labels: {team: web}, annotations: {note: apex}}, canary: {labels: {role: canary}}}",
    );
    let services = render_services(&canary, &ServiceTarget::new("app", "podinfo")).unwrap();
    // The apex and the primary Service select the primary pods; only <svc>-canary reaches the canary.
    let selector = |s: &k8s_openapi::api::core::v1::Service| {
        s.spec.as_ref().unwrap().selector.clone().unwrap()
    };
    assert_eq!(selector(&services.apex)["app"], "podinfo-primary");
    assert_eq!(selector(&services.primary)["app"], "podinfo-primary");
    assert_eq!(selector(&services.canary)["app"], "podinfo");
    insta::assert_yaml_snapshot!(
        "services_podinfo",
        [&services.apex, &services.primary, &services.canary]
    );
}

#[test]
fn headless_services_with_discovered_ports_skip_sidecars_and_the_service_port() {
    let canary = canary("{port: 9898, headless: true, portDiscovery: true}");
    let port = |name: Option<&str>, number| ContainerPort {
        name: name.map(str::to_owned),
        container_port: number,
        ..ContainerPort::default()
    };
    let containers = [
        Container {
            name: "podinfo".into(),
            ports: Some(vec![
                port(Some("http"), 9898),
                port(Some("http-metrics"), 9797),
                port(None, 9999),
            ]),
            ..Container::default()
        },
        Container {
            name: "istio-proxy".into(),
            ports: Some(vec![port(Some("http-envoy-prom"), 15090)]),
            ..Container::default()
        },
    ];
    let mut target = ServiceTarget::new("app.kubernetes.io/name", "podinfo");
    target.extra_ports = discover_ports(&canary.spec.service, &containers);
    assert_eq!(
        target
            .extra_ports
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect::<Vec<_>>(),
        [("http-metrics", 9797), ("tcp-podinfo-2", 9999)]
    );
    let services = render_services(&canary, &target).unwrap();
    insta::assert_yaml_snapshot!("services_headless_port_discovery", &services.canary);
}

#[test]
fn a_port_out_of_range_is_refused_with_the_field_to_fix() {
    let err =
        render_services(&canary("{port: 0}"), &ServiceTarget::new("app", "podinfo")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "spec.service.port: must be a port number between 1 and 65535, got 0"
    );
}
