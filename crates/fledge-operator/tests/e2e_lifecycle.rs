//! End-to-end stories of the operator binary on a real kube-apiserver, with the cluster
//! simulator making pods ready, driven as a user drives it (apply manifests, change the
//! image, delete the Canary, kill the operator):
//!
//! - webhooks: a failing pre-rollout hook rolls back, a rollback hook aborts, a closed
//!   confirm-promotion gate holds WaitingPromotion until it opens (7e);
//! - a ConfigMap change starts an analysis and the primary gets the `-primary` copy (7f);
//! - the operator killed mid-analysis and restarted continues from the status, no step
//!   repeated or skipped (7g);
//! - `revertOnDeletion` gives the target, its replicas and the Service back (7h);
//! - an invalid Canary gets a condition and an event, and nothing else changes (7i).

mod common;

use std::time::Duration;

use common::operator_process::Operator;
use common::receiver::Receiver;
use common::{Stage, podinfo, wait_until};
use fledge_api::CanaryPhase;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;

const OPERATOR: &[&str] = &["-mesh-provider=kubernetes"];

/// Blue/green on the kubernetes provider with `iterations` 10 s iterations and `extra`
/// analysis lines (already indented by four spaces).
fn blue_green(iterations: u32, threshold: u32, extra: &str) -> String {
    format!(
        "  provider: kubernetes\n  analysis:\n    interval: 10s\n    threshold: {threshold}\n    iterations: {iterations}\n{extra}"
    )
}

/// A blue/green stage with one webhook `name` of type `kind` at `path` of `receiver`, the
/// operator running and the canary initialized.
async fn initialized_with_hook(
    receiver: &Receiver,
    (name, kind, path): (&str, &str, &str),
    iterations: u32,
    threshold: u32,
) -> (Stage, Operator) {
    let hook = format!(
        "    webhooks:\n    - name: {name}\n      type: {kind}\n      url: {}{path}\n",
        receiver.url
    );
    let stage = Stage::set_up(&blue_green(iterations, threshold, &hook)).await;
    let operator = stage.start_operator(OPERATOR);
    stage.reaches(CanaryPhase::Initialized, 30).await;
    (stage, operator)
}

#[tokio::test]
async fn a_failing_pre_rollout_hook_rolls_the_new_version_back() {
    let receiver = Receiver::start(200).await;
    receiver.set_status("/pre", 500);
    let (stage, _operator) =
        initialized_with_hook(&receiver, ("smoke-test", "pre-rollout", "/pre"), 2, 1).await;
    let ns = stage.ns().to_owned();

    stage.kubectl_apply(podinfo("podinfo:6.0.1", None)).await;
    stage.reaches(CanaryPhase::Failed, 90).await;
    assert_eq!(
        stage.primary_image().await.as_deref(),
        Some("podinfo:6.0.0")
    );
    assert_eq!(
        stage.replicas("podinfo").await,
        Some(0),
        "the canary is scaled down"
    );
    assert!(!receiver.bodies("/pre").is_empty(), "the hook was called");
    let story = stage
        .tells(&[
            format!("New revision detected! Scaling up podinfo.{ns}"),
            format!("Rolling back podinfo.{ns} failed checks threshold reached 1"),
            format!("Canary failed! Scaling down podinfo.{ns}"),
        ])
        .await;
    assert!(
        story.iter().any(|m| m.starts_with(&format!(
            "Halt podinfo.{ns} advancement pre-rollout check smoke-test failed"
        ))),
        "{story:#?}"
    );
}

#[tokio::test]
async fn a_rollback_hook_aborts_the_analysis() {
    let receiver = Receiver::start(200).await;
    // The rollback hook answers "no" (non-2xx) until an operator of the service says so.
    receiver.set_status("/rollback", 404);
    let (stage, _operator) =
        initialized_with_hook(&receiver, ("abort", "rollback", "/rollback"), 30, 2).await;
    let ns = stage.ns().to_owned();

    stage.kubectl_apply(podinfo("podinfo:6.0.1", None)).await;
    stage.reaches(CanaryPhase::Progressing, 60).await;
    receiver.set_status("/rollback", 200);
    stage.reaches(CanaryPhase::Failed, 60).await;
    assert_eq!(
        stage.primary_image().await.as_deref(),
        Some("podinfo:6.0.0")
    );
    assert_eq!(stage.replicas("podinfo").await, Some(0));
    stage
        .tells(&[
            format!("Rolling back podinfo.{ns} manual webhook invoked"),
            format!("Canary failed! Scaling down podinfo.{ns}"),
        ])
        .await;
}

#[tokio::test]
async fn a_closed_confirm_promotion_gate_holds_waiting_promotion_until_it_opens() {
    let receiver = Receiver::start(200).await;
    receiver.set_status("/promote", 403);
    let (stage, _operator) = initialized_with_hook(
        &receiver,
        ("promotion-gate", "confirm-promotion", "/promote"),
        1,
        2,
    )
    .await;
    let ns = stage.ns().to_owned();

    stage.kubectl_apply(podinfo("podinfo:6.0.1", None)).await;
    stage.reaches(CanaryPhase::WaitingPromotion, 60).await;
    // Held: two more intervals pass and the primary still runs the old version.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let held = stage
        .canaries
        .get("podinfo")
        .await
        .expect("the Canary is read");
    assert_eq!(
        held.status.map(|s| s.phase),
        Some(CanaryPhase::WaitingPromotion)
    );
    assert_eq!(
        stage.primary_image().await.as_deref(),
        Some("podinfo:6.0.0")
    );
    stage
        .tells(&[format!(
            "Halt podinfo.{ns} advancement waiting for promotion approval promotion-gate"
        )])
        .await;

    receiver.set_status("/promote", 200);
    stage.reaches(CanaryPhase::Succeeded, 90).await;
    assert_eq!(
        stage.primary_image().await.as_deref(),
        Some("podinfo:6.0.1")
    );
    assert_eq!(stage.replicas("podinfo").await, Some(0));
}

#[tokio::test]
async fn a_config_map_change_is_analysed_and_promoted_as_a_primary_copy() {
    let stage = Stage::set_up(&blue_green(1, 2, "")).await;
    let ns = stage.ns().to_owned();
    let config_maps: Api<ConfigMap> = Api::namespaced(stage.cluster.client(), &ns);
    let apply = PatchParams::apply("kubectl").force();
    let config = |color: &str| {
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": { "name": "podinfo-config" },
            "data": { "PODINFO_UI_COLOR": color },
        })
    };
    config_maps
        .patch("podinfo-config", &apply, &Patch::Apply(config("blue")))
        .await
        .expect("the ConfigMap is applied");
    let mut deployment = podinfo("podinfo:6.0.0", Some(2));
    deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"] =
        json!([{ "configMapRef": { "name": "podinfo-config" } }]);
    stage.kubectl_apply(deployment).await;
    let _operator = stage.start_operator(OPERATOR);
    stage.reaches(CanaryPhase::Initialized, 30).await;

    let primary = stage
        .deployments
        .get("podinfo-primary")
        .await
        .expect("the primary exists");
    let env_from = primary
        .spec
        .and_then(|s| s.template.spec)
        .map(|s| s.containers[0].env_from.clone());
    assert_eq!(
        env_from
            .flatten()
            .and_then(|e| e[0].config_map_ref.clone())
            .map(|r| r.name),
        Some("podinfo-config-primary".to_owned()),
        "the primary reads the copy"
    );
    let copy = config_maps
        .get("podinfo-config-primary")
        .await
        .expect("the copy exists");
    assert_eq!(copy.data.unwrap_or_default()["PODINFO_UI_COLOR"], "blue");

    // Only the ConfigMap changes: a new revision all the same, analysed and promoted.
    config_maps
        .patch("podinfo-config", &apply, &Patch::Apply(config("green")))
        .await
        .expect("the ConfigMap is changed");
    stage.reaches(CanaryPhase::Progressing, 30).await;
    let succeeded = stage.reaches(CanaryPhase::Succeeded, 90).await;
    let copy = config_maps
        .get("podinfo-config-primary")
        .await
        .expect("the copy exists");
    assert_eq!(copy.data.unwrap_or_default()["PODINFO_UI_COLOR"], "green");
    let tracked = succeeded
        .status
        .and_then(|s| s.tracked_configs)
        .unwrap_or_default();
    assert!(
        tracked.contains_key("configmap/podinfo-config"),
        "status.trackedConfigs: {tracked:?}"
    );
    stage
        .tells(&[
            format!("New revision detected! Scaling up podinfo.{ns}"),
            format!("Promotion completed! Scaling down podinfo.{ns}"),
        ])
        .await;
}

#[tokio::test]
async fn an_operator_killed_mid_analysis_continues_from_the_status_when_restarted() {
    let stage = Stage::set_up(&blue_green(4, 2, "")).await;
    let ns = stage.ns().to_owned();
    let mut first = stage.start_operator(OPERATOR);
    stage.reaches(CanaryPhase::Initialized, 30).await;
    stage.kubectl_apply(podinfo("podinfo:6.0.1", None)).await;
    // The log line comes after the status write of the same tick, so once it is out, both
    // are. (Killing right after the status write would lose the line, not the iteration.)
    first
        .wait_for_line(
            &format!("Advance podinfo.{ns} canary iteration 2/4"),
            Duration::from_secs(60),
        )
        .await;
    first.kill();
    let killed_at = stage
        .canaries
        .get("podinfo")
        .await
        .expect("the Canary is read");
    let iterations_at_kill = killed_at.status.map(|s| s.iterations).unwrap_or_default();

    let second = stage.start_operator(OPERATOR);
    stage.reaches(CanaryPhase::Succeeded, 120).await;
    assert_eq!(
        stage.primary_image().await.as_deref(),
        Some("podinfo:6.0.1")
    );

    // Each iteration was advanced exactly once, by one process or the other.
    let mut told = first.messages();
    told.extend(second.messages());
    for iteration in 1..=4 {
        let line = format!("Advance podinfo.{ns} canary iteration {iteration}/4");
        let count = told.iter().filter(|m| **m == line).count();
        assert_eq!(count, 1, "{line:?} logged {count} times: {told:#?}");
    }
    let detected = format!("New revision detected! Scaling up podinfo.{ns}");
    assert_eq!(
        told.iter().filter(|m| **m == detected).count(),
        1,
        "the restarted operator does not start the analysis over"
    );
    assert!(iterations_at_kill >= 2);
    let second_told = second.messages();
    assert!(
        !second_told.contains(&format!("Advance podinfo.{ns} canary iteration 1/4")),
        "the restarted operator continues after iteration {iterations_at_kill}"
    );
}

#[tokio::test]
async fn revert_on_deletion_gives_the_target_and_its_service_back() {
    let stage = Stage::set_up(&blue_green(1, 2, "  revertOnDeletion: true\n")).await;
    let ns = stage.ns().to_owned();
    // The user's own Service, there before the Canary: adopted, then given back.
    let services: Api<Service> = Api::namespaced(stage.cluster.client(), &ns);
    let service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": { "name": "podinfo" },
        "spec": {
            "selector": { "app": "podinfo" },
            "ports": [{ "name": "http", "port": 9898, "protocol": "TCP", "targetPort": 9898 }],
        },
    });
    services
        .patch(
            "podinfo",
            &PatchParams::apply("kubectl").force(),
            &Patch::Apply(service),
        )
        .await
        .expect("the Service is applied");
    let _operator = stage.start_operator(OPERATOR);
    let initialized = stage.reaches(CanaryPhase::Initialized, 30).await;
    assert!(
        initialized
            .metadata
            .finalizers
            .unwrap_or_default()
            .contains(&"finalizer.flagger.app".to_owned()),
        "revertOnDeletion puts Flagger's finalizer on the Canary"
    );
    let selector = |s: Service| s.spec.and_then(|s| s.selector).unwrap_or_default();
    let adopted = selector(services.get("podinfo").await.expect("the Service is read"));
    assert_eq!(
        adopted["app"], "podinfo-primary",
        "adopted: traffic goes to the primary"
    );
    assert_eq!(stage.replicas("podinfo").await, Some(0));

    stage
        .canaries
        .delete("podinfo", &DeleteParams::default())
        .await
        .expect("the Canary is deleted");
    wait_until("the Canary to be gone", Duration::from_secs(60), || async {
        stage
            .canaries
            .get_opt("podinfo")
            .await
            .expect("the Canary is read")
            .is_none()
    })
    .await;
    assert_eq!(
        stage.replicas("podinfo").await,
        Some(2),
        "the target runs as many replicas as the primary did"
    );
    let given_back = selector(services.get("podinfo").await.expect("the Service is read"));
    assert_eq!(
        given_back["app"], "podinfo",
        "the Service selects the target again"
    );
    stage
        .tells(&[
            format!("Terminating canary podinfo.{ns}"),
            format!("Terminated canary podinfo.{ns}"),
        ])
        .await;
}

#[tokio::test]
async fn an_invalid_canary_is_reported_and_nothing_in_the_namespace_changes() {
    let stage = Stage::set_up(
        "  provider: kubernetes\n  analysis:\n    interval: 10s\n    threshold: 2\n    maxWeight: 50\n    stepWeights: [30, 10]\n",
    )
    .await;
    let ns = stage.ns().to_owned();
    let services: Api<Service> = Api::namespaced(stage.cluster.client(), &ns);
    let operator = stage.start_operator(OPERATOR);
    let reported = async {
        loop {
            let canary = stage
                .canaries
                .get("podinfo")
                .await
                .expect("the Canary is read");
            let condition = canary
                .status
                .unwrap_or_default()
                .conditions
                .into_iter()
                .find(|c| c.type_ == "Valid");
            if let Some(condition) = condition {
                return condition;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let condition = tokio::time::timeout(Duration::from_secs(30), reported)
        .await
        .expect("the invalid Canary gets a Valid condition");
    assert_eq!(condition.reason.as_deref(), Some("InvalidSpec"));
    let message = condition.message.unwrap_or_default();
    assert!(
        message.starts_with(&format!(
            "Invalid canary podinfo.{ns}: spec.analysis.stepWeights"
        )),
        "{message}"
    );
    // The event is recorded right after the condition.
    stage.tells(std::slice::from_ref(&message)).await;
    assert!(operator.messages().contains(&message), "logged too");

    // A few seconds on, nothing was created or scaled.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        stage
            .deployments
            .get_opt("podinfo-primary")
            .await
            .expect("read")
            .is_none(),
        "no primary"
    );
    for name in ["podinfo", "podinfo-primary", "podinfo-canary"] {
        assert!(
            services.get_opt(name).await.expect("read").is_none(),
            "no Service {name}"
        );
    }
    assert_eq!(
        stage.replicas("podinfo").await,
        Some(2),
        "the target keeps serving"
    );

    // Fixed: the condition goes and the canary is initialized.
    let fix = json!({ "spec": { "analysis": { "stepWeights": [10, 30], "maxWeight": null } } });
    stage
        .canaries
        .patch("podinfo", &PatchParams::default(), &Patch::Merge(fix))
        .await
        .expect("the Canary is fixed");
    let initialized = stage.reaches(CanaryPhase::Initialized, 30).await;
    let conditions = initialized.status.unwrap_or_default().conditions;
    assert!(
        conditions.iter().all(|c| c.type_ != "Valid"),
        "{conditions:#?}"
    );
}
