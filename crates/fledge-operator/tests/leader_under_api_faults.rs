//! Leader election when the API server misbehaves, with the operator binary talking through
//! the testkit's fault proxy.
//!
//! - A leader whose Lease requests hang (the proxy holds them, everything else goes through)
//!   stops within the renew deadline counted from the last renewal it sent, and a standby
//!   takes the Lease no sooner than the lease duration after that renewal: never two
//!   leaders at once.
//! - A leader whose controller traffic is throttled by the client-side rate limit (one
//!   request per second, watches broken again and again) still renews on time: the Lease has
//!   a client of its own.
//!
//! The replicas act as the operator's ServiceAccount over all namespaces, their Lease in
//! `fledge-system` (where the shipped Role grants it), as the shipped Deployment runs.

mod common;

use std::time::{Duration, Instant};

use common::Stage;
use common::operator_process::Operator;
use fledge_testkit::fault_proxy::{Fault, FaultProxy, FaultRule, ProxiedRequest};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;

const LEASE: &str = "fledge-leader-election";
const LEASE_DURATION: Duration = Duration::from_secs(8);
const RENEW_DEADLINE: Duration = Duration::from_secs(4);

fn replica(
    kubeconfig: &std::path::Path,
    stage: &Stage,
    hostname: &str,
    extra: &[&str],
) -> Operator {
    let lease_namespace = format!("-leader-election-namespace={}", stage.operator_ns());
    let mut flags = vec![
        "-mesh-provider=kubernetes",
        "-enable-leader-election",
        lease_namespace.as_str(),
        "-leader-election-lease-duration=8s",
        "-leader-election-renew-deadline=4s",
        "-leader-election-retry-period=1s",
    ];
    flags.extend_from_slice(extra);
    let operator = Operator::spawn(kubeconfig, hostname, &flags);
    stage
        .cluster
        .adopt(operator.pid())
        .expect("the replica is recorded");
    operator
}

async fn lease_spec(leases: &Api<Lease>) -> Option<k8s_openapi::api::coordination::v1::LeaseSpec> {
    leases
        .get_opt(LEASE)
        .await
        .expect("the Lease is read")?
        .spec
}

/// Waits until the Lease is held by a replica named `hostname`.
async fn held_by(leases: &Api<Lease>, hostname: &str, limit: Duration) {
    let started = Instant::now();
    loop {
        let holder = lease_spec(leases).await.and_then(|s| s.holder_identity);
        if holder.is_some_and(|h| h.starts_with(&format!("{hostname}_"))) {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "{hostname} did not take the Lease in {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn lease_path(ns: &str) -> String {
    format!("^/apis/coordination.k8s.io/v1/namespaces/{ns}/leases")
}

/// The Lease writes the API server accepted, as they came through the proxy.
fn renewals<'a>(requests: &'a [ProxiedRequest], ns: &str) -> Vec<&'a ProxiedRequest> {
    let path = format!("/apis/coordination.k8s.io/v1/namespaces/{ns}/leases");
    requests
        .iter()
        .filter(|r| r.path.starts_with(&path) && r.method != "GET" && r.status < 300 && !r.faulted)
        .collect()
}

#[tokio::test]
async fn a_leader_whose_lease_requests_hang_stops_before_a_standby_takes_over() {
    let stage = Stage::set_up(
        "  provider: kubernetes\n  analysis: { interval: 10s, threshold: 2, iterations: 4 }\n",
    )
    .await;
    let ns = stage.operator_ns().to_owned();
    let leases: Api<Lease> = Api::namespaced(stage.cluster.client(), &ns);
    let proxy = FaultProxy::start(&stage.cluster)
        .await
        .expect("the fault proxy starts");
    let mut leader = replica(proxy.operator_kubeconfig_path(), &stage, "fledge-a", &[]);
    held_by(&leases, "fledge-a", Duration::from_secs(30)).await;
    leader
        .wait_for_line("Watch caches synced", Duration::from_secs(30))
        .await;
    let standby = replica(
        stage.cluster.operator_kubeconfig_path(),
        &stage,
        "fledge-b",
        &[],
    );
    standby
        .wait_for_line_starting(
            "Another instance has been elected as leader: ",
            Duration::from_secs(20),
        )
        .await;

    // From now on the leader's Lease requests hang; its other requests still go through
    // (its watches, broken, are opened again).
    proxy.add(FaultRule::new("*", &lease_path(&ns), Fault::Blackhole).expect("a rule"));
    let cut = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        proxy.break_watches() > 0,
        "the leader watches through the proxy"
    );

    leader.exit_status(Duration::from_secs(30)).await;
    let (exited, exited_wall) = (Instant::now(), Timestamp::now());
    let requests = proxy.requests();
    let last_renewal = *renewals(&requests, &ns).last().expect("the leader renewed");
    let stepped_down = exited - last_renewal.at;
    assert!(
        stepped_down < RENEW_DEADLINE + Duration::from_millis(1500),
        "the leader stopped {stepped_down:?} after its last renewal"
    );
    assert!(
        leader.messages().iter().any(|m| m == "Leadership lost"),
        "{:#?}",
        leader.messages()
    );
    let other_requests = requests
        .iter()
        .filter(|r| r.at > cut && r.at < exited && !r.faulted && !r.path.contains("/leases"))
        .count();
    assert!(
        other_requests > 0,
        "the leader's other requests went through: {requests:#?}"
    );
    let last_renewed = lease_spec(&leases)
        .await
        .and_then(|s| {
            s.holder_identity
                .filter(|h| h.starts_with("fledge-a_"))
                .and(s.renew_time)
        })
        .expect("the Lease still names the old leader when it has stopped")
        .0;

    // The standby takes over, no sooner than the lease duration after that renewal.
    held_by(&leases, "fledge-b", Duration::from_secs(30)).await;
    let acquired = lease_spec(&leases)
        .await
        .and_then(|s| s.acquire_time)
        .expect("acquireTime")
        .0;
    let waited = acquired.duration_since(last_renewed);
    assert!(
        waited >= k8s_openapi::jiff::SignedDuration::try_from(LEASE_DURATION).expect("a duration"),
        "the standby took over {waited:?} after the last renewal"
    );
    assert!(
        acquired > exited_wall,
        "the old leader had exited before the standby led"
    );
    standby
        .wait_for_line("Acting as elected leader", Duration::from_secs(10))
        .await;
}

#[tokio::test]
async fn renewals_do_not_wait_behind_the_controllers_rate_limited_traffic() {
    let stage = Stage::set_up(
        "  provider: kubernetes\n  analysis: { interval: 10s, threshold: 2, iterations: 4 }\n",
    )
    .await;
    let ns = stage.operator_ns().to_owned();
    let proxy = FaultProxy::start(&stage.cluster)
        .await
        .expect("the fault proxy starts");
    let leader = replica(
        proxy.operator_kubeconfig_path(),
        &stage,
        "fledge-a",
        &["-kubeconfig-qps=1", "-kubeconfig-burst=1"],
    );
    leader
        .wait_for_line("Acting as elected leader", Duration::from_secs(30))
        .await;
    let elected = Instant::now();

    // At one request per second, starting the controller alone queues a dozen requests;
    // broken watches add theirs again and again.
    while elected.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        proxy.break_watches();
        assert!(
            !leader.messages().iter().any(|m| m == "Leadership lost"),
            "{:#?}",
            leader.messages()
        );
    }
    let requests = proxy.requests();
    let renewed: Vec<Instant> = renewals(&requests, &ns).iter().map(|r| r.at).collect();
    let longest = renewed
        .windows(2)
        .map(|pair| pair[1] - pair[0])
        .max()
        .expect("renewals");
    assert!(
        renewed.len() >= 12 && longest < Duration::from_millis(2500),
        "{} renewals in 20 s, the longest gap {longest:?}",
        renewed.len()
    );
    let queued = requests
        .iter()
        .filter(|r| r.at > elected && !r.path.contains("/leases"))
        .count();
    assert!(queued > 10, "the controller was busy: {queued} requests");
}
