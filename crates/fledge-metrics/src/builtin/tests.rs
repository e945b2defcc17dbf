use super::*;
use pretty_assertions::assert_eq;

fn podinfo() -> MetricTemplateModel {
    MetricTemplateModel {
        name: "podinfo".into(),
        namespace: "test".into(),
        target: "podinfo".into(),
        service: "podinfo".into(),
        ingress: "podinfo".into(),
        route: "podinfo".into(),
        interval: "1m".into(),
        variables: std::collections::BTreeMap::new(),
    }
}

fn flat(query: &str) -> String {
    query.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn every_builtin_query_renders_for_every_provider() {
    for provider in RoutingProvider::ALL {
        for metric in BuiltinMetric::ALL {
            let query = provider.builtin(metric).render(&podinfo()).unwrap();
            assert!(!query.contains("{{"), "{provider} {metric}: {query}");
            assert!(query.contains("[1m]"), "{provider} {metric}: {query}");
        }
    }
}

#[test]
fn istio_success_rate_is_flaggers_query() {
    let query = RoutingProvider::Istio
        .builtin(BuiltinMetric::RequestSuccessRate)
        .render(&podinfo())
        .unwrap();
    assert_eq!(
        flat(&query),
        r#"sum( rate( istio_requests_total{ reporter="destination", destination_workload_namespace="test", destination_workload=~"podinfo", response_code!~"5.*" }[1m] ) ) / sum( rate( istio_requests_total{ reporter="destination", destination_workload_namespace="test", destination_workload=~"podinfo" }[1m] ) ) * 100"#
    );
}

#[test]
fn skipper_names_are_encoded_to_word_characters() {
    let model = MetricTemplateModel {
        namespace: "my-ns".into(),
        ingress: "app.example".into(),
        service: "podinfo-svc".into(),
        ..podinfo()
    };
    let query = RoutingProvider::Skipper
        .builtin(BuiltinMetric::RequestDuration)
        .render(&model)
        .unwrap();
    assert!(
        query.contains(
            r#"route=~"kube(ew)?_my_ns__app_example_canary__.*__podinfo_svc_canary(_[0-9]+)?""#
        ),
        "{query}"
    );
}

#[test]
fn provider_names_follow_flaggers_observer_factory() {
    let cases = [
        ("istio", RoutingProvider::Istio),
        ("appmesh:v1beta2", RoutingProvider::AppMesh),
        ("gloo:v1", RoutingProvider::Gloo),
        ("gatewayapi:v1beta1", RoutingProvider::GatewayApi),
        ("kubernetes", RoutingProvider::Kubernetes),
        ("linkerd", RoutingProvider::Linkerd),
        ("linkerd:service", RoutingProvider::Istio),
        ("appmesh:service", RoutingProvider::AppMesh),
        ("smi:v1alpha3", RoutingProvider::Istio),
        ("traefik:traefik.containo.us", RoutingProvider::Traefik),
        ("traefik:traefik.io", RoutingProvider::Traefik),
        ("", RoutingProvider::Istio),
    ];
    for (name, expected) in cases {
        assert_eq!(RoutingProvider::from_name(name), expected, "{name:?}");
    }
    for provider in RoutingProvider::ALL {
        assert_eq!(RoutingProvider::from_name(provider.name()), provider);
    }
}

fn canary(yaml: &str) -> Canary {
    serde_yaml::from_str(yaml).unwrap()
}

#[test]
fn the_canary_provider_wins_unless_linkerd_is_the_default() {
    let nginx = canary(
        "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {name: podinfo, namespace: test}\n\
         spec: {provider: nginx, targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}, service: {port: 80}}",
    );
    assert_eq!(
        RoutingProvider::for_canary("istio", &nginx),
        RoutingProvider::Nginx
    );
    assert_eq!(
        RoutingProvider::for_canary("linkerd", &nginx),
        RoutingProvider::Linkerd
    );
    let service_target = canary(
        "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {name: podinfo, namespace: test}\n\
         spec: {provider: gatewayapi:v1, targetRef: {apiVersion: v1, kind: Service, name: podinfo}, service: {port: 80}}",
    );
    assert_eq!(
        metrics_provider_name("istio", &service_target),
        "gatewayapi:v1:service"
    );
    assert_eq!(
        RoutingProvider::for_canary("istio", &service_target),
        RoutingProvider::GatewayApi
    );
}

#[test]
fn builtin_names_round_trip() {
    for metric in BuiltinMetric::ALL {
        assert_eq!(BuiltinMetric::from_name(metric.name()), Some(metric));
    }
    assert_eq!(BuiltinMetric::from_name("error-rate"), None);
}
