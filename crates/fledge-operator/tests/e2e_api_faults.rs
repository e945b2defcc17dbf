//! The API server misbehaves during a rollout: the operator binary talks to it through the
//! testkit's fault proxy, which answers 429 (with Retry-After) to a share of the Canary's
//! status writes and 500 to a share of its VirtualService writes, and breaks every open
//! watch a few times. The cluster simulator, the traffic simulator and Prometheus talk to
//! the API server directly.
//!
//! The rollout still completes with exactly Flagger's weight steps, each once and in order;
//! the failed ticks are Warning events on the Canary, and each failed tick waits out its
//! backoff before the canary is tried again.

mod common;

use std::time::{Duration, Instant};

use common::operator_process::Operator;
use common::{Stage, podinfo};
use fledge_api::CanaryPhase;
use fledge_testkit::fault_proxy::{Fault, FaultProxy, FaultRule};
use fledge_testkit::{LocalPrometheus, SimApp, TrafficSim, TrafficSimConfig};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};

/// Short intervals, three steps: the story takes about a minute without faults.
const SPEC: &str = "  provider: istio\n  analysis:\n    interval: 5s\n    threshold: 3\n    maxWeight: 60\n    stepWeight: 20\n    metrics:\n    \
     - name: request-success-rate\n      thresholdRange: { min: 99 }\n      interval: 1m\n";

/// The shortest wait after a failed tick: 5 s less its 20 % jitter.
const SHORTEST_BACKOFF: Duration = Duration::from_secs(4);

#[tokio::test]
async fn a_rollout_through_throttling_failing_and_broken_api_calls_takes_every_step_once() {
    let (stage, _sim, _prometheus, proxy, operator) = start_through_the_proxy().await;
    let ns = stage.ns().to_owned();
    // From the new revision on: every third status write throttled, every second
    // VirtualService write failing, and every watch broken every 8 s.
    let status_path =
        format!("^/apis/flagger.app/v1beta1/namespaces/{ns}/canaries/podinfo/status$");
    let throttled = proxy.add(
        FaultRule::new(
            "PATCH",
            &status_path,
            Fault::TooManyRequests {
                retry_after_seconds: 2,
            },
        )
        .expect("a rule")
        .share(0.34),
    );
    let routes_path = format!(
        "^/apis/networking.istio.io/v1(alpha3|beta1)?/namespaces/{ns}/virtualservices/podinfo$"
    );
    let failing = proxy.add(
        FaultRule::new("PATCH", &routes_path, Fault::ServerError { status: 500 })
            .expect("a rule")
            .share(0.5),
    );
    let broken = roll_out_breaking_watches(&stage, &proxy, &operator).await;
    assert_eq!(
        stage.primary_image().await.as_deref(),
        Some("podinfo:6.0.1")
    );

    // Faults happened, of every kind.
    let counters = proxy.counters();
    assert!(proxy.answered(throttled) >= 1, "{counters:?}");
    assert!(proxy.answered(failing) >= 1, "{counters:?}");
    assert!(broken >= 3 && counters.watches_broken >= 3, "{counters:?}");

    // Every step once, in order (the log has a line per tick's event; Kubernetes Events
    // fold repeats of a message, so they cannot show a repeat).
    let told = operator.messages();
    let steps: Vec<&String> = told
        .iter()
        .filter(|m| m.starts_with(&format!("Advance podinfo.{ns} canary weight")))
        .collect();
    assert_eq!(
        steps,
        [20, 40, 60]
            .map(|w| format!("Advance podinfo.{ns} canary weight {w}"))
            .iter()
            .collect::<Vec<_>>(),
        "{told:#?}"
    );
    let detected = format!("New revision detected! Scaling up podinfo.{ns}");
    assert_eq!(
        told.iter().filter(|m| **m == detected).count(),
        1,
        "{told:#?}"
    );
    stage
        .tells(&[
            detected.clone(),
            format!("Advance podinfo.{ns} canary weight 60"),
            format!("Promotion completed! Scaling down podinfo.{ns}"),
        ])
        .await;

    // The failed ticks are on the Canary as Warning events, with the API server's words.
    let events: Api<Event> = Api::namespaced(stage.cluster.client(), &ns);
    let warnings: Vec<String> = events
        .list(&ListParams::default())
        .await
        .expect("events are listed")
        .items
        .into_iter()
        .filter(|e| e.type_.as_deref() == Some("Warning") && e.reason.as_deref() == Some("Synced"))
        .filter_map(|e| e.note)
        .collect();
    assert!(
        warnings.iter().any(|n| n.contains("TooManyRequests")),
        "{warnings:#?}"
    );
    assert!(
        warnings.iter().any(|n| n.contains("InternalError")),
        "{warnings:#?}"
    );

    assert_backoff_is_kept(&operator, &proxy);
}

/// The stage with Istio's schemas, traffic and Prometheus, the fault proxy, and the operator
/// binary talking through it, the canary initialized.
async fn start_through_the_proxy() -> (Stage, TrafficSim, LocalPrometheus, FaultProxy, Operator) {
    let stage = Stage::set_up(SPEC).await;
    let ns = stage.ns().to_owned();
    stage
        .cluster
        .install_mesh_crds()
        .await
        .expect("Istio's CRDs install");
    let sim = TrafficSim::start(
        stage.cluster.client(),
        vec![SimApp::new(&ns, "podinfo").with_rate(20.0)],
        TrafficSimConfig::default(),
    )
    .await
    .expect("the traffic simulator starts");
    let prometheus = LocalPrometheus::start(&[sim.metrics_addr()])
        .await
        .expect("a local Prometheus");
    let proxy = FaultProxy::start(&stage.cluster)
        .await
        .expect("the fault proxy starts");
    let [namespace, flagger_lease] = stage.operator_scope();
    let server = format!("-metrics-server={}", prometheus.url());
    let operator = Operator::spawn(
        proxy.operator_kubeconfig_path(),
        "fledge-operator",
        &[
            namespace.as_str(),
            flagger_lease.as_str(),
            "-mesh-provider=istio",
            server.as_str(),
        ],
    );
    stage
        .cluster
        .adopt(operator.pid())
        .expect("the operator is recorded");
    stage.reaches(CanaryPhase::Initialized, 60).await;

    (stage, sim, prometheus, proxy, operator)
}

/// Applies a new image and waits for the promotion, breaking every watch every 8 s; how
/// many watches were broken.
async fn roll_out_breaking_watches(
    stage: &Stage,
    proxy: &FaultProxy,
    operator: &Operator,
) -> usize {
    stage.kubectl_apply(podinfo("podinfo:6.0.1", None)).await;
    let started = Instant::now();
    let mut broken = 0;
    let mut last_break = Instant::now();
    loop {
        let canary = stage
            .canaries
            .get("podinfo")
            .await
            .expect("the Canary is read");
        let phase = canary.status.map(|s| s.phase);
        if phase == Some(CanaryPhase::Succeeded) {
            break;
        }
        assert_ne!(
            phase,
            Some(CanaryPhase::Failed),
            "{:#?}",
            operator.messages()
        );
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "not promoted in 5 minutes: {:#?}",
            operator.messages()
        );
        if last_break.elapsed() > Duration::from_secs(8) {
            broken += proxy.break_watches();
            last_break = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    broken
}

/// Every failed tick says when it is tried again, and nothing of that canary is written
/// before then: the next write comes at least the shortest backoff after a failed one.
fn assert_backoff_is_kept(operator: &Operator, proxy: &FaultProxy) {
    let told = operator.messages();
    let failed_ticks: Vec<u64> = operator
        .lines()
        .iter()
        .filter(|l| l["msg"].as_str().is_some_and(|m| m.contains("tick failed")))
        .filter_map(|l| l["retry_in_ms"].as_u64())
        .collect();
    assert!(!failed_ticks.is_empty(), "{told:#?}");
    eprintln!(
        "failed ticks retried after {failed_ticks:?} ms; the proxy answered {:?}",
        proxy.counters()
    );
    assert!(
        failed_ticks.iter().all(|ms| *ms >= 4000),
        "{failed_ticks:?}"
    );
    let writes: Vec<_> = proxy
        .requests()
        .into_iter()
        .filter(|r| {
            r.method == "PATCH"
                && (r.path.ends_with("/status") || r.path.contains("/virtualservices/"))
        })
        .filter(|r| r.path.contains("/podinfo"))
        .collect();
    for (at, failed) in writes.iter().enumerate().filter(|(_, r)| r.status >= 400) {
        if let Some(next) = writes.get(at + 1) {
            let waited = next.at - failed.at;
            assert!(
                waited >= SHORTEST_BACKOFF.saturating_sub(Duration::from_millis(100)),
                "a write {waited:?} after a failed one ({} {} {})",
                failed.method,
                failed.path,
                failed.status
            );
        }
    }
}
