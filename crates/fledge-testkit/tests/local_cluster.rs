//! CRDs on the local control plane: Fledge's generated ones and the mesh schemas routers write.

use fledge_testkit::{LocalCluster, MeshCrdSource};
use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};

#[tokio::test]
async fn fledge_and_mesh_crds_install_and_custom_resources_round_trip() {
    let cluster = LocalCluster::start().await.expect("local control plane");
    let names = cluster.install_fledge_crds().await.expect("fledge crds");
    assert_eq!(
        names,
        [
            "canaries.flagger.app",
            "metrictemplates.flagger.app",
            "alertproviders.flagger.app"
        ]
    );
    let source = cluster.install_mesh_crds().await.expect("mesh crds");
    let ns = cluster.temp_namespace("crds").await.expect("namespace");

    // A Canary straight from the seeds' tutorial is stored and read back: the 1.20 server
    // accepts the generated schema (this is the write that crashed with the old reflect2).
    let canary = r"
apiVersion: flagger.app/v1beta1
kind: Canary
metadata: { name: podinfo }
spec:
  targetRef: { apiVersion: apps/v1, kind: Deployment, name: podinfo }
  service: { port: 9898 }
  analysis: { interval: 1m, threshold: 5, maxWeight: 50, stepWeight: 10 }
";
    let applied = cluster
        .apply_yaml(canary, ns.name())
        .await
        .expect("apply canary");
    assert_eq!(applied[0].data["spec"]["analysis"]["stepWeight"], 10);

    let virtual_service = r"
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: { name: podinfo }
spec:
  hosts: [podinfo]
  http:
  - route:
    - { destination: { host: podinfo-primary }, weight: 80 }
    - { destination: { host: podinfo-canary }, weight: 20 }
";
    cluster
        .apply_yaml(virtual_service, ns.name())
        .await
        .expect("apply virtual service");
    let route = r"
apiVersion: gateway.networking.k8s.io/v1beta1
kind: HTTPRoute
metadata: { name: podinfo }
spec:
  rules:
  - backendRefs:
    - { name: podinfo-primary, port: 9898, weight: 90 }
    - { name: podinfo-canary, port: 9898, weight: 10 }
";
    cluster
        .apply_yaml(route, ns.name())
        .await
        .expect("apply httproute");
    let split = r"
apiVersion: split.smi-spec.io/v1alpha3
kind: TrafficSplit
metadata: { name: podinfo }
spec:
  service: podinfo
  backends:
  - { service: podinfo-primary, weight: 100 }
  - { service: podinfo-canary, weight: 0 }
";
    cluster
        .apply_yaml(split, ns.name())
        .await
        .expect("apply trafficsplit");
    // All three SMI versions are served, as routers write each of them.
    for version in ["v1alpha1", "v1alpha2"] {
        let older = split
            .replace("v1alpha3", version)
            .replace("name: podinfo }", &format!("name: podinfo-{version} }}"));
        cluster
            .apply_yaml(&older, ns.name())
            .await
            .unwrap_or_else(|e| panic!("apply {version} trafficsplit: {e}"));
    }

    let gvk = GroupVersionKind::gvk("networking.istio.io", "v1beta1", "VirtualService");
    let vs: Api<DynamicObject> =
        Api::namespaced_with(cluster.client(), ns.name(), &ApiResource::from_gvk(&gvk));
    let stored = vs.get("podinfo").await.expect("read virtual service");
    assert_eq!(stored.data["spec"]["http"][0]["route"][1]["weight"], 20);

    if let MeshCrdSource::Reference(dir) = source {
        // The upstream schema is enforced: a weight given as a string is refused.
        eprintln!("mesh CRDs from {}", dir.display());
        let bad = virtual_service.replace("weight: 20", "weight: \"twenty\"");
        let refused = cluster
            .apply_yaml(&bad, ns.name())
            .await
            .expect_err("invalid weight");
        assert!(
            refused.to_string().contains("VirtualService podinfo"),
            "{refused}"
        );
    }
}

#[tokio::test]
async fn the_fallback_mesh_crds_serve_every_version_routers_write() {
    let cluster = LocalCluster::start().await.expect("local control plane");
    let names = fledge_testkit::crds::install_fallback_mesh_crds(&cluster.client())
        .await
        .expect("fallback crds");
    assert_eq!(
        names,
        [
            "virtualservices.networking.istio.io",
            "destinationrules.networking.istio.io",
            "trafficsplits.split.smi-spec.io",
            "httproutes.gateway.networking.k8s.io",
            "httpproxies.projectcontour.io",
            "traefikservices.traefik.io",
            "ingressroutes.traefik.io",
            "traefikservices.traefik.containo.us",
            "ingressroutes.traefik.containo.us",
            "routetables.gateway.solo.io",
            "upstreams.gloo.solo.io",
            "apisixroutes.apisix.apache.org"
        ]
    );
    let ns = cluster.temp_namespace("fallback").await.expect("namespace");
    let versions = [
        (
            "networking.istio.io",
            "VirtualService",
            ["v1beta1", "v1alpha3", "v1"].as_slice(),
        ),
        (
            "networking.istio.io",
            "DestinationRule",
            ["v1beta1", "v1alpha3", "v1"].as_slice(),
        ),
        (
            "split.smi-spec.io",
            "TrafficSplit",
            ["v1alpha1", "v1alpha2", "v1alpha3"].as_slice(),
        ),
        (
            "gateway.networking.k8s.io",
            "HTTPRoute",
            ["v1", "v1beta1"].as_slice(),
        ),
        ("projectcontour.io", "HTTPProxy", ["v1"].as_slice()),
        ("traefik.io", "TraefikService", ["v1alpha1"].as_slice()),
        ("traefik.io", "IngressRoute", ["v1alpha1"].as_slice()),
        (
            "traefik.containo.us",
            "TraefikService",
            ["v1alpha1"].as_slice(),
        ),
        (
            "traefik.containo.us",
            "IngressRoute",
            ["v1alpha1"].as_slice(),
        ),
        ("gateway.solo.io", "RouteTable", ["v1"].as_slice()),
        ("gloo.solo.io", "Upstream", ["v1"].as_slice()),
        ("apisix.apache.org", "ApisixRoute", ["v2"].as_slice()),
    ];
    for (group, kind, served) in versions {
        for version in served {
            let manifest = format!(
                "apiVersion: {group}/{version}\nkind: {kind}\nmetadata: {{ name: r-{version} }}\nspec: {{ any: [thing] }}\n"
            );
            let stored = cluster
                .apply_yaml(&manifest, ns.name())
                .await
                .unwrap_or_else(|e| panic!("{kind} {version}: {e}"));
            assert_eq!(stored[0].data["spec"]["any"][0], "thing");
        }
    }
}
