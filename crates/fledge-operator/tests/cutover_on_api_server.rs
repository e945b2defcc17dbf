//! The cut-over from Flagger on a real kube-apiserver: while a Flagger holds its leader Lease
//! (`flagger-leader-election`, written here by the test as Flagger's client-go writes it)
//! and renews it, the `fledge-operator` binary does not act: it says why at warn, `/readyz`
//! answers 503 with the reason, and the Canary is left untouched. Once Flagger stops
//! renewing and the Lease runs out, Fledge starts and initializes the Canary. When a Flagger
//! takes its Lease again, Fledge stops at once (exit status 1).
//!
//! Fledge runs as its ServiceAccount and Flagger's Lease is in `fledge-system`, where the
//! shipped Role lets Fledge read it (the stage passes `-flagger-lease-namespace`).

mod common;

use std::time::{Duration, Instant};

use common::Stage;
use fledge_api::CanaryPhase;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};

const FLAGGER_LEASE: &str = "flagger-leader-election";

/// Writes Flagger's Lease held by `holder`, renewed now, for `seconds` (as client-go does).
async fn flagger_renews(leases: &Api<Lease>, holder: &str, seconds: i32) {
    let now = MicroTime(Timestamp::now());
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some(FLAGGER_LEASE.to_owned()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(holder.to_owned()),
            lease_duration_seconds: Some(seconds),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            lease_transitions: Some(0),
            ..LeaseSpec::default()
        }),
    };
    leases
        .patch(
            FLAGGER_LEASE,
            &PatchParams::apply("flagger").force(),
            &Patch::Apply(&lease),
        )
        .await
        .expect("Flagger's Lease is written");
}

#[tokio::test]
async fn fledge_waits_while_flagger_holds_its_lease_and_starts_once_it_runs_out() {
    let stage = Stage::set_up(
        "  provider: kubernetes\n  analysis: { interval: 10s, threshold: 2, iterations: 4 }\n",
    )
    .await;
    let leases: Api<Lease> = Api::namespaced(stage.cluster.client(), stage.operator_ns());
    // Flagger runs in Fledge's namespace: its Lease lives there.
    flagger_renews(&leases, "flagger-5d8f_0f1e", 8).await;

    let operator = stage.start_operator(&["-mesh-provider=kubernetes"]);
    let waiting = operator
        .wait_for_line_starting("Not acting: Flagger holds", Duration::from_secs(30))
        .await;
    assert_eq!(waiting["level"], "warn", "{waiting}");
    let (status, body) = operator.get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.starts_with("waiting for Flagger to stop: Flagger holds its leader-election Lease")
            && body.contains(&format!("{}/{FLAGGER_LEASE}", stage.operator_ns()))
            && body.contains("flagger-5d8f_0f1e"),
        "{body}"
    );

    // Flagger keeps renewing for 12 s: Fledge keeps waiting and never touches the Canary.
    let renewing = Instant::now();
    while renewing.elapsed() < Duration::from_secs(12) {
        tokio::time::sleep(Duration::from_secs(2)).await;
        flagger_renews(&leases, "flagger-5d8f_0f1e", 8).await;
        let canary = stage.canaries.get("podinfo").await.expect("the Canary");
        assert!(
            canary.status.is_none(),
            "Fledge acted while Flagger held its Lease: {:?}",
            canary.status
        );
        assert_eq!(operator.get("/readyz").await.0, 503);
    }
    assert!(
        operator.position("Watch caches synced").is_none(),
        "the controller did not start"
    );

    // Flagger is scaled to zero without releasing (SIGKILL): its Lease runs out in 8 s.
    let stopped = Instant::now();
    stage.reaches(CanaryPhase::Initialized, 60).await;
    assert!(
        stopped.elapsed() >= Duration::from_secs(5),
        "Fledge started {:?} after Flagger's last renewal, before its Lease ran out",
        stopped.elapsed()
    );
    let (status, body) = operator.get("/readyz").await;
    assert_eq!((status, body.trim()), (200, "synced"));

    // Someone scales Flagger up again: Fledge stops rather than drive canaries with it.
    flagger_renews(&leases, "flagger-5d8f_9a9b", 60).await;
    let mut operator = operator;
    let status = operator.exit_status(Duration::from_secs(30)).await;
    assert_eq!(status.code(), Some(1), "{status}");
    let stopped = operator
        .wait_for_line("fledge-operator stopped", Duration::from_secs(5))
        .await;
    assert!(
        stopped["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("Flagger is running again: Flagger holds")),
        "{stopped}"
    );
}

#[tokio::test]
async fn a_released_flagger_lease_lets_fledge_start_at_once() {
    let stage = Stage::set_up(
        "  provider: kubernetes\n  analysis: { interval: 10s, threshold: 2, iterations: 4 }\n",
    )
    .await;
    let leases: Api<Lease> = Api::namespaced(stage.cluster.client(), stage.operator_ns());
    // What Flagger leaves on SIGTERM (ReleaseOnCancel): no holder, a 1 s lease.
    flagger_renews(&leases, "", 1).await;
    let operator = stage.start_operator(&["-mesh-provider=kubernetes"]);
    stage.reaches(CanaryPhase::Initialized, 60).await;
    assert!(
        !operator
            .messages()
            .iter()
            .any(|m| m.starts_with("Not acting")),
        "a released Lease is nobody's: {:?}",
        operator.messages()
    );
}

/// Under RBAC that does not let Fledge read Flagger's Lease, Fledge cannot tell whether a
/// Flagger runs: it says so at warn, naming the rule to add, and starts rather than wait
/// forever for want of one rule. The operator runs as a user of its own here, not the
/// ServiceAccount: the refusal is the point, and the ServiceAccount's requests must show
/// none.
#[tokio::test]
async fn a_forbidden_lease_read_is_said_with_the_rule_to_add_and_fledge_starts() {
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
    use kube::api::PostParams;
    use kube::config::Kubeconfig;

    let stage = Stage::set_up(
        "  provider: kubernetes\n  analysis: { interval: 10s, threshold: 2, iterations: 4 }\n",
    )
    .await;
    let user = format!("fledge-{}", stage.ns());
    // Everything the controller needs, and nothing in coordination.k8s.io.
    let role: ClusterRole = serde_json::from_value(serde_json::json!({
        "metadata": { "name": user },
        "rules": [{
            "apiGroups": ["", "apps", "autoscaling", "flagger.app", "events.k8s.io"],
            "resources": ["*"],
            "verbs": ["*"]
        }]
    }))
    .expect("a ClusterRole");
    let binding: ClusterRoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": { "name": user },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": user },
        "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user }]
    }))
    .expect("a ClusterRoleBinding");
    let client = stage.cluster.client();
    Api::<ClusterRole>::all(client.clone())
        .create(&PostParams::default(), &role)
        .await
        .expect("the ClusterRole is created");
    Api::<ClusterRoleBinding>::all(client)
        .create(&PostParams::default(), &binding)
        .await
        .expect("the ClusterRoleBinding is created");
    // The admin's kubeconfig, acting as that user.
    let mut kubeconfig =
        Kubeconfig::read_from(stage.cluster.kubeconfig_path()).expect("the admin kubeconfig");
    for named in &mut kubeconfig.auth_infos {
        if let Some(auth) = named.auth_info.as_mut() {
            auth.impersonate = Some(user.clone());
            auth.impersonate_groups = Some(vec!["system:authenticated".to_owned()]);
        }
    }
    let path = stage.cluster.dir().join(format!("kubeconfig-{user}"));
    std::fs::write(
        &path,
        fledge_api::yaml::to_string(&kubeconfig).expect("the kubeconfig serializes"),
    )
    .expect("the kubeconfig is written");

    let namespace = format!("-namespace={}", stage.ns());
    let operator = common::operator_process::Operator::spawn(
        &path,
        "fledge-operator",
        &[namespace.as_str(), "-mesh-provider=kubernetes"],
    );
    stage
        .cluster
        .adopt(operator.pid())
        .expect("the operator is recorded");
    let said = operator
        .wait_for_line_starting("Cannot check that Flagger stopped", Duration::from_secs(30))
        .await;
    assert_eq!(said["level"], "warn", "{said}");
    let message = said["msg"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!(
            "grant get on leases/{FLAGGER_LEASE} in {}",
            stage.ns()
        )),
        "{message}"
    );
    stage.reaches(CanaryPhase::Initialized, 60).await;
}
