//! Webhooks in a running controller: a closed confirm-rollout gate holds a new version in
//! Waiting until it opens, and every event reaches `-event-webhook` with Flagger's payload.

mod common;

use std::time::Duration;

use common::receiver::Receiver;
use common::{Stage, capture_logs, podinfo};
use fledge_api::CanaryPhase;

#[tokio::test]
async fn a_closed_gate_holds_the_canary_until_it_opens_and_events_reach_the_event_webhook() {
    let _logs = capture_logs();
    let receiver = Receiver::start(403).await;
    let stage = Stage::set_up(&format!(
        "  provider: kubernetes\n  analysis:\n    interval: 10s\n    threshold: 2\n    iterations: 1\n    webhooks:\n    \
         - name: gate\n      type: confirm-rollout\n      url: {}/gate\n      metadata: {{ team: checkout }}\n",
        receiver.url
    ))
    .await;
    let ns = stage.ns().to_owned();
    let event_webhook = format!("-event-webhook={}/events", receiver.url);
    let (stop, operator) = stage.run_operator(&["-mesh-provider=kubernetes", &event_webhook]);

    stage.reaches(CanaryPhase::Initialized, 30).await;
    stage.kubectl_apply(podinfo("podinfo:6.0.1", None)).await;
    stage.reaches(CanaryPhase::Waiting, 60).await;
    let halt = format!("Halt podinfo.{ns} advancement waiting for approval gate");
    stage.tells(std::slice::from_ref(&halt)).await;
    let gate_calls = receiver.bodies("/gate");
    assert!(!gate_calls.is_empty());
    assert_eq!(gate_calls[0]["name"], "podinfo");
    assert_eq!(gate_calls[0]["namespace"], ns.as_str());
    assert_eq!(gate_calls[0]["metadata"]["team"], "checkout");
    assert_eq!(
        stage.primary_image().await.as_deref(),
        Some("podinfo:6.0.0")
    );

    receiver.set_default_status(200);
    stage.reaches(CanaryPhase::Succeeded, 120).await;
    assert_eq!(
        stage.primary_image().await.as_deref(),
        Some("podinfo:6.0.1")
    );
    assert_eq!(stage.replicas("podinfo").await, Some(0));

    let events = receiver.bodies("/events");
    let sent: Vec<&str> = events
        .iter()
        .filter_map(|e| e["metadata"]["eventMessage"].as_str())
        .collect();
    let detected = format!("New revision detected! Scaling up podinfo.{ns}");
    assert!(sent.contains(&detected.as_str()), "{sent:#?}");
    assert!(sent.contains(&halt.as_str()), "{sent:#?}");
    assert!(
        events
            .iter()
            .all(|e| e["name"] == "podinfo" && e["metadata"]["eventType"].is_string())
    );

    let _ = stop.send(());
    let finished = tokio::time::timeout(Duration::from_secs(10), operator).await;
    assert!(
        matches!(finished, Ok(Ok(Ok(())))),
        "the controller stops cleanly: {finished:?}"
    );
}
