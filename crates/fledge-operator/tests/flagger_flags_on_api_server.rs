//! Flagger's flags with an effect, on a real kube-apiserver with the `fledge-operator`
//! binary: `-no-cross-namespace-refs` and `-cluster-name`.

mod common;

use std::time::Duration;

use common::Stage;
use fledge_api::CanaryPhase;
use kube::api::{Api, Patch, PatchParams};

/// Flagger's `-no-cross-namespace-refs` and `-cluster-name` as Flagger's chart passes them: a
/// Canary using a MetricTemplate of another namespace is refused with Flagger's message (a
/// Warning event, `Valid=False`) and nothing is started; once it uses its own namespace's,
/// it is initialized, and the global Slack alert names the cluster first.
#[tokio::test]
async fn cross_namespace_references_are_refused_and_alerts_name_the_cluster() {
    let receiver = common::receiver::Receiver::start(200).await;
    let stage = Stage::set_up(
        "  provider: kubernetes\n  analysis:\n    interval: 10s\n    threshold: 2\n    iterations: 4\n    \
         metrics:\n    - name: errors\n      interval: 1m\n      thresholdRange: { max: 1 }\n      \
         templateRef: { name: errors, namespace: monitoring }\n",
    )
    .await;
    let slack = format!("-slack-url={}/slack", receiver.url);
    let _operator = stage.start_operator(&[
        "-mesh-provider=kubernetes",
        "-no-cross-namespace-refs=true",
        "-cluster-name=prod-eu-1",
        slack.as_str(),
    ]);
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(stage.cluster.client(), stage.ns());
    let expected = format!(
        "Invalid canary podinfo.{}: spec.analysis.metrics[0].templateRef.namespace: \
         can't access metric template errors.monitoring, cross-namespace references are blocked",
        stage.ns()
    );
    common::wait_until("the Warning event", Duration::from_secs(60), || async {
        events
            .list(&kube::api::ListParams::default())
            .await
            .expect("events are listed")
            .items
            .iter()
            .any(|e| e.type_.as_deref() == Some("Warning") && e.note.as_deref() == Some(&expected))
    })
    .await;
    assert!(
        stage
            .deployments
            .get_opt("podinfo-primary")
            .await
            .expect("read")
            .is_none(),
        "nothing is started for a refused Canary"
    );

    // The template moves to the Canary's namespace (an empty namespace is the Canary's own).
    let fixed = serde_json::json!({"spec": {"analysis": {"metrics": [{
        "name": "errors", "interval": "1m", "thresholdRange": {"max": 1},
        "templateRef": {"name": "errors"}
    }]}}});
    stage
        .canaries
        .patch("podinfo", &PatchParams::default(), &Patch::Merge(&fixed))
        .await
        .expect("the Canary is fixed");
    stage.reaches(CanaryPhase::Initialized, 60).await;
    common::wait_until("the Slack alert", Duration::from_secs(30), || async {
        !receiver.bodies("/slack").is_empty()
    })
    .await;
    let alert = &receiver.bodies("/slack")[0];
    let fields = &alert["attachments"][0]["fields"];
    assert_eq!(fields[0]["title"], "Cluster", "{alert:#}");
    assert_eq!(fields[0]["value"], "prod-eu-1", "{alert:#}");
}
