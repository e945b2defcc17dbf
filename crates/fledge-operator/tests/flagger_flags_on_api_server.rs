//! Flagger's flags with an effect, on a real kube-apiserver with the `fledge-operator`
//! binary: `-no-cross-namespace-refs`, `-cluster-name`, `-slack-token`, `-slack-proxy-url`
//! and `-master`; and a Canary whose settings Flagger
//! resolves on its own runs, with one Warning event.

mod common;

use std::time::Duration;

use common::Stage;
use fledge_api::CanaryPhase;
use kube::api::{Api, Patch, PatchParams};

/// Flagger's `-no-cross-namespace-refs` and `-cluster-name` as Flagger's chart passes them: a
/// Canary using a MetricTemplate of another namespace is refused with Flagger's message (a
/// Warning event, `Valid=False`) and nothing is started; once it uses its own namespace's,
/// it is initialized, and the global Slack alert names the cluster first, goes through
/// `-slack-proxy-url` and carries the `-slack-token` as a bearer token.
#[tokio::test]
async fn cross_namespace_references_are_refused_and_alerts_name_the_cluster_through_the_proxy() {
    let receiver = common::receiver::Receiver::start(200).await;
    let stage = Stage::set_up(
        "  provider: kubernetes\n  analysis:\n    interval: 10s\n    threshold: 2\n    iterations: 4\n    \
         metrics:\n    - name: errors\n      interval: 1m\n      thresholdRange: { max: 1 }\n      \
         templateRef: { name: errors, namespace: monitoring }\n",
    )
    .await;
    // Slack is reached through -slack-proxy-url (the receiver, as an HTTP proxy), with the
    // bot token of -slack-token.
    let proxy = format!("-slack-proxy-url={}", receiver.url);
    let _operator = stage.start_operator(&[
        "-mesh-provider=kubernetes",
        "-no-cross-namespace-refs=true",
        "-cluster-name=prod-eu-1",
        "-slack-url=http://slack.invalid/api/chat.postMessage",
        "-slack-token=xoxb-fledge-test",
        proxy.as_str(),
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
    let slack = "http://slack.invalid/api/chat.postMessage";
    common::wait_until("the Slack alert", Duration::from_secs(30), || async {
        !receiver.bodies(slack).is_empty()
    })
    .await;
    let head = receiver.heads(slack)[0].to_ascii_lowercase();
    assert!(
        head.contains("authorization: bearer xoxb-fledge-test"),
        "the bot token is sent: {head}"
    );
    let alert = &receiver.bodies(slack)[0];
    let fields = &alert["attachments"][0]["fields"];
    assert_eq!(fields[0]["title"], "Cluster", "{alert:#}");
    assert_eq!(fields[0]["value"], "prod-eu-1", "{alert:#}");
}

/// `iterations` beside `stepWeight`: Flagger runs blue/green and ignores the weight; so does
/// Fledge, saying so once in a Warning event however many ticks run.
#[tokio::test]
async fn a_canary_flagger_resolves_runs_with_one_warning_event() {
    let stage = Stage::set_up(
        "  provider: kubernetes\n  analysis: { interval: 10s, threshold: 2, iterations: 2, stepWeight: 10 }\n",
    )
    .await;
    let _operator = stage.start_operator(&["-mesh-provider=kubernetes"]);
    stage.reaches(CanaryPhase::Initialized, 60).await;
    let expected = format!(
        "Canary podinfo.{} runs as Flagger resolves it: spec.analysis.iterations: with iterations (2) \
         Flagger runs blue/green and ignores stepWeight/stepWeights, and so does Fledge; \
         remove the weights, or iterations for a canary release",
        stage.ns()
    );
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(stage.cluster.client(), stage.ns());
    let warnings = || async {
        events
            .list(&kube::api::ListParams::default())
            .await
            .expect("events are listed")
            .items
            .into_iter()
            .filter(|e| e.note.as_deref() == Some(expected.as_str()))
            .collect::<Vec<_>>()
    };
    common::wait_until("the Warning event", Duration::from_secs(30), || async {
        !warnings().await.is_empty()
    })
    .await;
    // A new revision makes the canary tick again: still one warning, one event.
    stage
        .kubectl_apply(common::podinfo("podinfo:6.0.1", None))
        .await;
    stage.reaches(CanaryPhase::Progressing, 60).await;
    tokio::time::sleep(Duration::from_secs(12)).await;
    let recorded = warnings().await;
    assert_eq!(recorded.len(), 1, "{recorded:#?}");
    assert_eq!(recorded[0].type_.as_deref(), Some("Warning"));
    assert!(
        recorded[0].series.is_none(),
        "recorded once, not repeated: {:?}",
        recorded[0].series
    );
}

/// `-master` overrides the kubeconfig's API server address, as client-go's
/// `BuildConfigFromFlags` does: a kubeconfig pointing nowhere still connects.
#[tokio::test]
async fn master_overrides_the_kubeconfigs_server() {
    let cluster = fledge_testkit::LocalCluster::start()
        .await
        .expect("a local control plane");
    cluster
        .install_fledge_crds()
        .await
        .expect("Fledge's CRDs install");
    cluster
        .install_operator_rbac()
        .await
        .expect("the operator's ServiceAccount and RBAC install");
    let mut kubeconfig = kube::config::Kubeconfig::read_from(cluster.operator_kubeconfig_path())
        .expect("the operator's kubeconfig");
    for named in &mut kubeconfig.clusters {
        if let Some(cluster) = named.cluster.as_mut() {
            cluster.server = Some("https://127.0.0.1:1".to_owned());
        }
    }
    let path = cluster.dir().join("kubeconfig-nowhere");
    std::fs::write(
        &path,
        fledge_api::yaml::to_string(&kubeconfig).expect("the kubeconfig serializes"),
    )
    .expect("the kubeconfig is written");
    let master = format!("-master={}", cluster.server_url());
    let flagger_lease = format!(
        "-flagger-lease-namespace={}",
        cluster.operator_identity().namespace
    );
    let operator = common::operator_process::Operator::spawn(
        &path,
        "fledge-operator",
        &[
            "-namespace=default",
            master.as_str(),
            flagger_lease.as_str(),
        ],
    );
    cluster
        .adopt(operator.pid())
        .expect("the operator is recorded");
    operator
        .wait_for_line_starting("Connected to Kubernetes API", Duration::from_secs(30))
        .await;
    common::assert_operator_never_forbidden(&cluster);
}
