//! What the shipped RBAC's rules are for, shown on a real kube-apiserver where no request of
//! the operator can show it: the API server's own checks on the operator's behalf.
//!
//! `canaries/finalizers: update` is never requested: the `OwnerReferencesPermissionEnforcement`
//! admission plugin (on in the testkit, as on OpenShift) asks the authorizer for it when the
//! operator creates an object whose ownerReference to its Canary has `blockOwnerDeletion`.
//! Without the rule the primary cannot be created and the Canary never initializes; with the
//! shipped rule back, it does. (`cargo xtask rbac` lists this rule as proven here.)
//!
//! And the rules of paths the other stories do not take, each used under the shipped rights:
//! the routing objects of the SMI (Linkerd) and Gateway API providers, the target's
//! HorizontalPodAutoscaler, and a MetricTemplate and an AlertProvider in a namespace the
//! operator does not watch (read with `get`).

mod common;

use std::time::Duration;

use common::Stage;
use fledge_api::CanaryPhase;
use fledge_testkit::OperatorRequest;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::{Api, PostParams};

/// Waits until the operator has made a request for each of `verbs` on `group`/`resource`
/// (a `create` is a server-side apply answered 201), failing with what it did make.
async fn wait_for_requests(stage: &Stage, group: &str, resource: &str, verbs: &[&str]) {
    let started = std::time::Instant::now();
    loop {
        let requests: Vec<OperatorRequest> = stage
            .cluster
            .operator_requests()
            .expect("the audit log")
            .into_iter()
            .filter(|r| r.api_group == group && r.resource == resource)
            .collect();
        let made = |verb: &str| {
            requests.iter().any(|r| {
                r.code < 300
                    && (r.verb == verb || (verb == "create" && r.verb == "patch" && r.code == 201))
            })
        };
        if verbs.iter().all(|verb| made(verb)) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "expected {verbs:?} on {group}/{resource}, saw {:#?}",
            requests.iter().map(ToString::to_string).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The canary on `provider` initializes under the shipped RBAC, and its routing object
/// (`group`/`resource`) was read, created, updated, listed and watched.
async fn initializes_on(provider: &str, service: &str, group: &str, resource: &str) {
    initializes_with(provider, service, "", "", &[(group, resource)], &[]).await;
}

/// The canary on `provider` (with `refs`, spec lines such as `ingressRef`, and the user's
/// objects `user_objects` created first) initializes under the shipped RBAC: each
/// `watched` resource (group, resource) was read, created, updated, listed and watched, each
/// `applied` one read, created and updated. Returns the stage, the operator stopped.
async fn initializes_with(
    provider: &str,
    service: &str,
    refs: &str,
    user_objects: &str,
    watched: &[(&str, &str)],
    applied: &[(&str, &str)],
) -> Stage {
    let stage = Stage::prepare(Duration::from_millis(200)).await;
    stage
        .cluster
        .install_mesh_crds()
        .await
        .expect("the mesh CRDs install");
    if !user_objects.is_empty() {
        stage
            .cluster
            .apply_yaml(user_objects, stage.ns())
            .await
            .expect("the user's objects are created");
    }
    stage
        .create_canary(&format!(
            "targetRef: {{ apiVersion: apps/v1, kind: Deployment, name: podinfo }}\n  \
             progressDeadlineSeconds: 60\n  provider: {provider}\n  service: {service}\n  {refs}\
             analysis: {{ interval: 10s, threshold: 2, iterations: 2 }}\n"
        ))
        .await;
    let mesh_provider = format!("-mesh-provider={provider}");
    let mut operator = stage.start_operator(&[mesh_provider.as_str()]);
    stage.reaches(CanaryPhase::Initialized, 60).await;
    for (group, resource) in watched {
        wait_for_requests(&stage, group, resource, &["get", "create", "patch", "list"]).await;
    }
    for (group, resource) in applied {
        wait_for_requests(&stage, group, resource, &["get", "create", "patch"]).await;
    }
    // A watch is audited when it ends: the binary stops (SIGTERM), its connections close,
    // and its watch of the routing objects shows.
    operator.terminate();
    let status = operator.exit_status(Duration::from_secs(30)).await;
    assert!(status.success(), "{status}");
    for (group, resource) in watched {
        wait_for_requests(&stage, group, resource, &["watch"]).await;
    }
    stage
}

#[tokio::test]
async fn a_linkerd_canarys_trafficsplit_is_read_created_and_watched_under_the_shipped_rbac() {
    initializes_on(
        "linkerd",
        "{ port: 9898 }",
        "split.smi-spec.io",
        "trafficsplits",
    )
    .await;
}

#[tokio::test]
async fn a_gateway_api_canarys_httproute_is_read_created_and_watched_under_the_shipped_rbac() {
    initializes_on(
        "gatewayapi:v1",
        "{ port: 9898, gatewayRefs: [{ name: gateway, namespace: istio-ingress }] }",
        "gateway.networking.k8s.io",
        "httproutes",
    )
    .await;
}

#[tokio::test]
async fn a_contour_canarys_httpproxy_is_read_created_and_watched_under_the_shipped_rbac() {
    initializes_on(
        "contour",
        "{ port: 9898 }",
        "projectcontour.io",
        "httpproxies",
    )
    .await;
}

#[tokio::test]
async fn a_traefik_canarys_traefikservice_is_read_created_and_watched_in_both_groups() {
    initializes_on("traefik", "{ port: 9898 }", "traefik.io", "traefikservices").await;
    initializes_on(
        "traefik:traefik.containo.us",
        "{ port: 9898 }",
        "traefik.containo.us",
        "traefikservices",
    )
    .await;
}

/// Gloo: the RouteTable is watched; the primary and canary Upstreams are applied, and the
/// Upstream named by `spec.upstreamRef` is read with `get`.
#[tokio::test]
async fn a_gloo_canarys_routetable_and_upstreams_are_written_under_the_shipped_rbac() {
    initializes_with(
        "gloo",
        "{ port: 9898 }",
        "upstreamRef: { name: podinfo-settings }\n  ",
        "apiVersion: gloo.solo.io/v1\nkind: Upstream\nmetadata: { name: podinfo-settings }\n\
         spec: { connectionConfig: { maxRequestsPerConnection: 10 } }\n",
        &[("gateway.solo.io", "routetables")],
        &[("gloo.solo.io", "upstreams")],
    )
    .await;
}

/// The user's Ingress the NGINX and Skipper canaries clone.
const USER_INGRESS: &str = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: { name: podinfo }\n\
    spec:\n  rules:\n  - host: app.example.com\n    http:\n      paths:\n      \
    - { path: /, pathType: Prefix, backend: { service: { name: podinfo, port: { number: 9898 } } } }\n";

#[tokio::test]
async fn an_nginx_canarys_cloned_ingress_is_read_created_and_watched_under_the_shipped_rbac() {
    initializes_with(
        "nginx",
        "{ port: 9898 }",
        "ingressRef: { apiVersion: networking.k8s.io/v1, kind: Ingress, name: podinfo }\n  ",
        USER_INGRESS,
        &[("networking.k8s.io", "ingresses")],
        &[],
    )
    .await;
}

/// Skipper's canary Ingress is deleted when a Canary with `revertOnDeletion` goes, as Flagger
/// deletes it: the `delete` verb on Ingresses.
#[tokio::test]
async fn a_skipper_canarys_cloned_ingress_is_deleted_on_revert_under_the_shipped_rbac() {
    let stage = initializes_with(
        "skipper",
        "{ port: 9898 }",
        "revertOnDeletion: true\n  \
         ingressRef: { apiVersion: networking.k8s.io/v1, kind: Ingress, name: podinfo }\n  ",
        USER_INGRESS,
        &[("networking.k8s.io", "ingresses")],
        &[],
    )
    .await;
    let (stop, operator) = stage.run_operator(&["-mesh-provider=skipper"]);
    stage
        .canaries
        .delete("podinfo", &kube::api::DeleteParams::default())
        .await
        .expect("the Canary is deleted");
    wait_for_requests(&stage, "networking.k8s.io", "ingresses", &["delete"]).await;
    stop.send(()).expect("the operator runs");
    operator
        .await
        .expect("the operator task")
        .expect("the operator stops cleanly");
}

#[tokio::test]
async fn an_apisix_canarys_cloned_route_is_read_created_and_watched_under_the_shipped_rbac() {
    initializes_with(
        "apisix",
        "{ port: 9898 }",
        "routeRef: { apiVersion: apisix.apache.org/v2, kind: ApisixRoute, name: podinfo }\n  ",
        "apiVersion: apisix.apache.org/v2\nkind: ApisixRoute\nmetadata: { name: podinfo }\n\
         spec:\n  http:\n  - name: method\n    match: { hosts: [app.example.com], paths: [/*] }\n    \
         backends: [{ serviceName: podinfo, servicePort: 9898 }]\n",
        &[("apisix.apache.org", "apisixroutes")],
        &[],
    )
    .await;
}

/// The target's HPA is read (before its watch cache holds its list), watched, and copied for
/// the primary: the `autoscaling` rule, used by the controller under the shipped RBAC.
#[tokio::test]
async fn a_canarys_autoscaler_is_read_watched_and_copied_under_the_shipped_rbac() {
    let stage = Stage::prepare(Duration::from_millis(200)).await;
    stage
        .cluster
        .apply_yaml(
            "apiVersion: autoscaling/v2beta2\nkind: HorizontalPodAutoscaler\nmetadata: { name: podinfo }\n\
             spec:\n  scaleTargetRef: { apiVersion: apps/v1, kind: Deployment, name: podinfo }\n  \
             minReplicas: 2\n  maxReplicas: 4\n  \
             metrics: [{ type: Resource, resource: { name: cpu, target: { type: Utilization, averageUtilization: 99 } } }]\n",
            stage.ns(),
        )
        .await
        .expect("the target's HPA is created");
    stage
        .create_canary(
            "targetRef: { apiVersion: apps/v1, kind: Deployment, name: podinfo }\n  \
             autoscalerRef: { apiVersion: autoscaling/v2beta2, kind: HorizontalPodAutoscaler, name: podinfo }\n  \
             progressDeadlineSeconds: 60\n  provider: kubernetes\n  service: { port: 9898 }\n  \
             analysis: { interval: 10s, threshold: 2, iterations: 2 }\n",
        )
        .await;
    let mut operator = stage.start_operator(&["-mesh-provider=kubernetes"]);
    stage.reaches(CanaryPhase::Initialized, 60).await;
    let group = "autoscaling";
    let resource = "horizontalpodautoscalers";
    wait_for_requests(&stage, group, resource, &["get", "create", "list"]).await;
    operator.terminate();
    let status = operator.exit_status(Duration::from_secs(30)).await;
    assert!(status.success(), "{status}");
    wait_for_requests(&stage, group, resource, &["watch"]).await;
}

/// With `-namespace`, a MetricTemplate and an AlertProvider in another namespace are not in
/// the watch caches: the operator reads them with `get` when a new revision is announced (the
/// alert) and analysed (the metric), and the shipped ClusterRole allows it.
#[tokio::test]
async fn a_template_and_an_alert_provider_outside_the_watched_namespace_are_read_with_get() {
    let stage = Stage::prepare(Duration::from_millis(200)).await;
    let monitoring = stage
        .cluster
        .temp_namespace("monitoring")
        .await
        .expect("a namespace");
    let other = monitoring.name().to_owned();
    // Nothing listens on port 1: the query and the alert fail after the reads this is about.
    stage
        .cluster
        .apply_yaml(
            "apiVersion: flagger.app/v1beta1\nkind: MetricTemplate\nmetadata: { name: errors }\n\
             spec: { provider: { type: prometheus, address: 'http://127.0.0.1:1' }, query: 'vector(0)' }\n\
             ---\napiVersion: flagger.app/v1beta1\nkind: AlertProvider\nmetadata: { name: on-call }\n\
             spec: { type: slack, channel: general, address: 'http://127.0.0.1:1/hook' }\n",
            &other,
        )
        .await
        .expect("the template and the provider are created");
    stage
        .create_canary(&format!(
            "targetRef: {{ apiVersion: apps/v1, kind: Deployment, name: podinfo }}\n  \
             progressDeadlineSeconds: 60\n  provider: kubernetes\n  service: {{ port: 9898 }}\n  \
             analysis:\n    interval: 10s\n    threshold: 2\n    iterations: 2\n    \
             metrics: [{{ name: errors, templateRef: {{ name: errors, namespace: {other} }}, thresholdRange: {{ max: 1 }}, interval: 1m }}]\n    \
             alerts: [{{ name: on-call, severity: info, providerRef: {{ name: on-call, namespace: {other} }} }}]\n"
        ))
        .await;
    let (stop, operator) = stage.run_operator(&["-mesh-provider=kubernetes"]);
    stage.reaches(CanaryPhase::Initialized, 60).await;
    stage
        .kubectl_apply(common::podinfo("podinfo:6.0.1", Some(2)))
        .await;
    wait_for_requests(&stage, "flagger.app", "alertproviders", &["get"]).await;
    wait_for_requests(&stage, "flagger.app", "metrictemplates", &["get"]).await;
    let reads: Vec<String> = stage
        .cluster
        .operator_requests()
        .expect("the audit log")
        .iter()
        .filter(|r| r.verb == "get" && r.namespace == other)
        .map(|r| format!("{} {} {}", r.resource, r.name, r.code))
        .collect();
    assert!(
        reads.contains(&"metrictemplates errors 200".to_owned())
            && reads.contains(&"alertproviders on-call 200".to_owned()),
        "{reads:#?}"
    );
    stop.send(()).expect("the operator runs");
    operator
        .await
        .expect("the operator task")
        .expect("the operator stops cleanly");
}

#[tokio::test]
async fn the_primary_needs_update_on_canary_finalizers_where_owner_references_are_enforced() {
    let stage = Stage::prepare(Duration::from_millis(200)).await;
    stage.cluster.narrow_operator_rights(
        "the ClusterRole lacks canaries/finalizers on purpose: the refusal is what is shown",
    );
    let cluster_roles: Api<ClusterRole> = Api::all(stage.cluster.client());
    let mut role = cluster_roles
        .get("fledge")
        .await
        .expect("the shipped ClusterRole");
    let rules = role.rules.get_or_insert_with(Vec::new);
    let before = rules.len();
    rules.retain(|rule| {
        !rule
            .resources
            .iter()
            .flatten()
            .any(|r| r == "canaries/finalizers")
    });
    assert_eq!(
        rules.len(),
        before - 1,
        "the shipped rule is there to remove"
    );
    cluster_roles
        .replace("fledge", &PostParams::default(), &role)
        .await
        .expect("the ClusterRole is narrowed");

    stage
        .create_canary(
            "targetRef: { apiVersion: apps/v1, kind: Deployment, name: podinfo }\n  \
             progressDeadlineSeconds: 60\n  service: { port: 9898 }\n  provider: kubernetes\n  \
             analysis: { interval: 10s, threshold: 2, iterations: 2 }\n",
        )
        .await;
    let (stop, operator) = stage.run_operator(&["-mesh-provider=kubernetes"]);

    // The admission plugin refuses the primary: its ownerReference blocks the Canary's deletion.
    let refused = async {
        loop {
            let requests = stage.cluster.operator_requests().expect("the audit log");
            if let Some(refused) = requests.into_iter().find(OperatorRequest::is_forbidden) {
                return refused;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let refused = tokio::time::timeout(Duration::from_secs(30), refused)
        .await
        .expect("a request was refused within 30 s");
    assert_eq!(
        (refused.verb.as_str(), refused.code),
        ("patch", 403),
        "{refused}"
    );
    let deployments: Api<Deployment> = Api::namespaced(stage.cluster.client(), stage.ns());
    assert!(
        deployments
            .get_opt("podinfo-primary")
            .await
            .expect("the primary is looked up")
            .is_none(),
        "the primary was created without the rule"
    );
    let canary = stage.canaries.get("podinfo").await.expect("the Canary");
    assert_ne!(
        canary.status.map(|s| s.phase),
        Some(CanaryPhase::Initialized)
    );

    // The shipped rule back: the next attempt creates the primary and the Canary initializes.
    stage
        .cluster
        .install_operator_rbac()
        .await
        .expect("the shipped RBAC is applied again");
    stage.reaches(CanaryPhase::Initialized, 90).await;
    let primary = deployments
        .get("podinfo-primary")
        .await
        .expect("the primary");
    let owner = &primary.metadata.owner_references.expect("an owner")[0];
    assert_eq!(
        (owner.kind.as_str(), owner.block_owner_deletion),
        ("Canary", Some(true))
    );
    stop.send(()).expect("the operator runs");
    operator
        .await
        .expect("the operator task")
        .expect("the operator stops cleanly");
}
