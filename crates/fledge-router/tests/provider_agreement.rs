//! `fledge validate` (fledge-api's rules) and the routers agree on which `spec.provider`
//! names Fledge routes: a Canary the validation passes always finds its router, and one it
//! refuses never does.

use fledge_api::validation::{PROVIDERS, UNROUTED_PROVIDERS, provider_problem};
use fledge_router::Provider;

/// Names beyond Flagger's list: the prefix forms Flagger reads, and names nobody routes.
const MORE_NAMES: [&str; 14] = [
    "smi:v1alpha1:linkerd",
    "smi:v1alpha3:istio",
    "smi:v1alpha2",
    "smi:v2:linkerd",
    "gatewayapi:v1beta1",
    "gatewayapi:v1",
    "gatewayapi:v2",
    "gloo:v1",
    "traefik:traefik.io",
    "traefik:v2",
    "nginx-ingress",
    "haproxy",
    "Istio",
    "",
];

#[test]
fn validation_passes_exactly_the_providers_a_router_handles() {
    let names = PROVIDERS
        .iter()
        .chain(UNROUTED_PROVIDERS.iter())
        .chain(MORE_NAMES.iter())
        .filter(|name| !name.is_empty());
    for name in names {
        let routed = Provider::parse(name);
        let problem = provider_problem(name);
        assert_eq!(
            routed.is_ok(),
            problem.is_none(),
            "`{name}`: the router says {routed:?}, the validation {problem:?}"
        );
    }
}

#[test]
fn a_flagger_provider_without_a_router_is_named_as_such() {
    for name in UNROUTED_PROVIDERS {
        let problem = provider_problem(name).expect("refused");
        assert!(
            problem.contains("Fledge does not route yet"),
            "{name}: {problem}"
        );
    }
    let bare = provider_problem("gatewayapi").expect("refused");
    assert!(
        bare.contains("gatewayapi:v1 or gatewayapi:v1beta1"),
        "{bare}"
    );
}
