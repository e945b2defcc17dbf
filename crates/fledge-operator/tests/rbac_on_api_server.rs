//! What the shipped RBAC's rules are for, shown on a real kube-apiserver where no request of
//! the operator can show it: the API server's own checks on the operator's behalf.
//!
//! `canaries/finalizers: update` is never requested: the `OwnerReferencesPermissionEnforcement`
//! admission plugin (on in the testkit, as on OpenShift) asks the authorizer for it when the
//! operator creates an object whose ownerReference to its Canary has `blockOwnerDeletion`.
//! Without the rule the primary cannot be created and the Canary never initializes; with the
//! shipped rule back, it does. (`cargo xtask rbac` lists this rule as proven here.)

mod common;

use std::time::Duration;

use common::Stage;
use fledge_api::CanaryPhase;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::{Api, PostParams};

#[tokio::test]
async fn the_primary_needs_update_on_canary_finalizers_where_owner_references_are_enforced() {
    let stage = Stage::prepare(Duration::from_millis(200)).await;
    stage.cluster.narrow_operator_rights(
        "the ClusterRole lacks canaries/finalizers on purpose: the refusal is what is shown",
    );
    let roles: Api<ClusterRole> = Api::all(stage.cluster.client());
    let mut role = roles.get("fledge").await.expect("the shipped ClusterRole");
    let rules = role.rules.get_or_insert_with(Vec::new);
    let before = rules.len();
    rules.retain(|rule| {
        !rule
            .resources
            .iter()
            .flatten()
            .any(|r| r == "canaries/finalizers")
    });
    assert_eq!(rules.len(), before - 1, "the shipped rule is there to remove");
    roles
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
            if let Some(refused) = requests.into_iter().find(|r| r.is_forbidden()) {
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
