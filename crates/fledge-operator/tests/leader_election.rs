//! Two replicas of the `fledge-operator` binary with `-enable-leader-election` against a real
//! kube-apiserver: one takes the Lease and initializes the canary while the other stands by;
//! the leader is killed (SIGKILL) in the middle of a blue/green rollout, the standby takes
//! the Lease once it runs out and finishes the rollout. Only one replica ever acts: every
//! Event of the first leader comes before every Event of the second, and the standby logged
//! nothing about the canary before it was elected. And the elector itself on the API server:
//! create, follow, release, take over an expired Lease, notice the loss; and a leader binary
//! that finds another holder on its Lease exits with status 1 at once.
//!
//! Every replica and elector acts as the operator's ServiceAccount, as the shipped Deployment
//! runs: over all namespaces (no `-namespace`, which would put the Lease in the watched
//! namespace) with its Lease in `-leader-election-namespace=fledge-system`, the one namespace
//! where the shipped Role grants the Lease.

mod common;

use std::time::{Duration, Instant};

use common::operator_process::Operator;
use common::{Stage, podinfo};
use fledge_api::CanaryPhase;
use fledge_operator::leader::{Attempt, ElectionSettings, LeaderElector};
use fledge_testkit::LocalCluster;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};

const LEASE: &str = "fledge-leader-election";

fn replica(stage: &Stage, hostname: &str) -> Operator {
    let lease_namespace = format!("-leader-election-namespace={}", stage.operator_ns());
    Operator::spawn(
        stage.cluster.operator_kubeconfig_path(),
        hostname,
        &[
            "-mesh-provider=kubernetes",
            "-enable-leader-election",
            lease_namespace.as_str(),
            "-leader-election-lease-duration=6s",
            "-leader-election-renew-deadline=4s",
            "-leader-election-retry-period=1s",
        ],
    )
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    let lease = leases.get_opt(LEASE).await.expect("the Lease is read")?;
    lease.spec?.holder_identity.filter(|h| !h.is_empty())
}

/// The hostname of the replica holding the Lease, once one does.
async fn leader_hostname(leases: &Api<Lease>, limit: Duration) -> String {
    let started = Instant::now();
    loop {
        if let Some(holder) = holder(leases).await {
            let (hostname, _) = holder.split_once('_').expect("<hostname>_<random>");
            return hostname.to_owned();
        }
        assert!(started.elapsed() < limit, "nobody took the Lease");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The Synced Events as (reporting instance, message), oldest first.
async fn reported(events: &Api<Event>) -> Vec<(String, String)> {
    let mut items = events
        .list(&ListParams::default())
        .await
        .expect("events are listed")
        .items;
    items.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
    items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("Synced"))
        .map(|e| {
            (
                e.reporting_instance.unwrap_or_default(),
                e.note.unwrap_or_default(),
            )
        })
        .collect()
}

/// The standby logged nothing about the canary before it was elected, and the Events of the
/// first leader all come before those of the second, which promoted.
async fn assert_only_one_acted_at_a_time(standby: &Operator, first: &str, stage: &Stage, ns: &str) {
    let lines = standby.lines();
    let elected = standby
        .position("Acting as elected leader")
        .expect("the standby was elected");
    let early: Vec<_> = lines[..elected]
        .iter()
        .filter(|line| {
            line.get("name").is_some()
                || line["msg"]
                    .as_str()
                    .is_some_and(|msg| msg.contains("podinfo"))
        })
        .collect();
    assert!(
        early.is_empty(),
        "the standby acted before it led: {early:#?}"
    );
    // The promotion's Event is recorded right after the Succeeded status.
    stage
        .tells(&[format!("Promotion completed! Scaling down podinfo.{ns}")])
        .await;
    let story = reported(&stage.events).await;
    let handed_over = story
        .iter()
        .position(|(instance, _)| *instance == standby.hostname)
        .unwrap_or_else(|| panic!("the standby recorded no Event: {story:#?}"));
    assert!(
        handed_over > 0,
        "the first leader recorded Events: {story:#?}"
    );
    assert!(
        story[..handed_over]
            .iter()
            .all(|(instance, _)| *instance == first)
            && story[handed_over..]
                .iter()
                .all(|(instance, _)| *instance == standby.hostname),
        "{story:#?}"
    );
    assert!(
        story[handed_over..]
            .iter()
            .any(|(_, message)| *message
                == format!("Promotion completed! Scaling down podinfo.{ns}")),
        "{story:#?}"
    );
}

#[tokio::test]
async fn a_standby_replica_takes_over_a_rollout_when_the_leader_dies() {
    let stage = Stage::set_up(
        "  provider: kubernetes\n  analysis: { interval: 10s, threshold: 2, iterations: 4 }\n",
    )
    .await;
    let ns = stage.ns().to_owned();
    let leases: Api<Lease> = Api::namespaced(stage.cluster.client(), stage.operator_ns());
    let mut replicas = vec![replica(&stage, "fledge-a"), replica(&stage, "fledge-b")];

    // One replica takes the Lease and initializes the canary; the other stands by.
    let first = leader_hostname(&leases, Duration::from_secs(30)).await;
    stage.reaches(CanaryPhase::Initialized, 60).await;
    let leader_at = replicas
        .iter()
        .position(|r| r.hostname == first)
        .expect("the holder is one of the replicas");
    let mut leader = replicas.swap_remove(leader_at);
    let standby = replicas.pop().expect("two replicas");
    leader
        .wait_for_line("Acting as elected leader", Duration::from_secs(5))
        .await;
    let follows = standby
        .wait_for_line_starting(
            "Another instance has been elected as leader: ",
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(
        follows["leader"].as_str().map(|l| l.split('_').next()),
        Some(Some(first.as_str()))
    );
    assert_eq!(standby.get("/readyz").await, (200, "standby\n".to_owned()));
    assert_eq!(
        leader.metrics("flagger_canary_status{").await,
        [format!(
            "flagger_canary_status{{name=\"podinfo\",namespace=\"{ns}\"}} 1"
        )]
    );
    assert!(
        standby.metrics("flagger_canary_status{").await.is_empty(),
        "the standby does not tick"
    );

    // A new image: the leader starts the analysis and dies in the middle of it.
    stage.kubectl_apply(podinfo("podinfo:6.0.1", None)).await;
    stage.reaches(CanaryPhase::Progressing, 30).await;
    leader.kill();
    let killed = Instant::now();

    // The standby takes the Lease once it runs out (6 s after the last renewal it saw) and
    // finishes the rollout.
    standby
        .wait_for_line("Acting as elected leader", Duration::from_secs(30))
        .await;
    let takeover = killed.elapsed();
    assert!(
        takeover < Duration::from_secs(15),
        "took over after {takeover:?}"
    );
    let holder_now = holder(&leases).await.expect("the Lease is held");
    assert!(
        holder_now.starts_with(&format!("{}_", standby.hostname)),
        "{holder_now}"
    );
    let succeeded = stage.reaches(CanaryPhase::Succeeded, 150).await;
    assert_eq!(
        stage.primary_image().await.as_deref(),
        Some("podinfo:6.0.1")
    );
    let status = succeeded.status.unwrap_or_default();
    assert_eq!(status.last_applied_spec, status.last_promoted_spec);

    assert_only_one_acted_at_a_time(&standby, &first, &stage, &ns).await;

    // SIGTERM: the new leader releases the Lease on its way out.
    standby.terminate();
    let mut standby = standby;
    let exit = standby.exit_status(Duration::from_secs(20)).await;
    assert!(exit.success(), "{exit}");
    assert_eq!(holder(&leases).await, None, "the Lease is released");
}

fn settings(namespace: &str, identity: &str) -> ElectionSettings {
    ElectionSettings {
        namespace: namespace.to_owned(),
        lease_name: LEASE.to_owned(),
        identity: identity.to_owned(),
        lease_duration: Duration::from_secs(2),
        renew_deadline: Duration::from_millis(1500),
        retry_period: Duration::from_millis(500),
    }
}

#[tokio::test]
async fn electors_share_one_lease_on_a_real_api_server() {
    let cluster = LocalCluster::start().await.expect("a local control plane");
    cluster
        .install_operator_rbac()
        .await
        .expect("the operator's ServiceAccount and RBAC install");
    let ns = cluster.operator_identity().namespace.clone();
    let leases: Api<Lease> = Api::namespaced(cluster.client(), &ns);
    let mut a = LeaderElector::new(cluster.operator_client(), settings(&ns, "a"));
    let mut b = LeaderElector::new(cluster.operator_client(), settings(&ns, "b"));

    // The first creates the Lease; the second follows while it is renewed.
    assert_eq!(
        a.try_acquire_or_renew().await.expect("a asks"),
        Attempt::Leading
    );
    assert_eq!(
        b.try_acquire_or_renew().await.expect("b asks"),
        Attempt::Following("a".to_owned())
    );
    assert_eq!(
        a.try_acquire_or_renew().await.expect("a renews"),
        Attempt::Leading
    );
    assert_eq!(holder(&leases).await.as_deref(), Some("a"));

    // Released: the other takes over at once, one transition later.
    assert!(a.release().await.expect("a releases"));
    assert_eq!(holder(&leases).await, None);
    assert_eq!(
        b.try_acquire_or_renew().await.expect("b asks"),
        Attempt::Leading
    );
    let lease = leases.get(LEASE).await.expect("the Lease");
    let spec = lease.spec.expect("a spec");
    assert_eq!(spec.lease_duration_seconds, Some(2));
    assert_eq!(
        spec.lease_transitions,
        Some(0),
        "a released it: no holder changed hands"
    );
    assert!(
        !a.release().await.expect("a asks"),
        "only the holder releases"
    );

    // b stops renewing: a waits the lease's duration from when it saw b's last renewal,
    // then takes over; b, whose last renewal is older than its renew deadline, stops leading
    // at once without asking, and asking finds a holding the Lease.
    let started = Instant::now();
    a.acquire().await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(5),
        "took over after {waited:?}"
    );
    let lease = leases.get(LEASE).await.expect("the Lease");
    assert_eq!(lease.spec.and_then(|s| s.lease_transitions), Some(1));
    let lost = tokio::time::timeout(Duration::from_millis(100), b.keep_leading()).await;
    assert_eq!(lost.as_deref(), Ok("the Lease was not renewed for 1.5s"));
    assert_eq!(
        b.try_acquire_or_renew().await.expect("b asks"),
        Attempt::Following("a".to_owned())
    );
    common::assert_operator_never_forbidden(&cluster);
}

#[tokio::test]
async fn a_leader_that_finds_another_holder_exits_at_once() {
    let cluster = LocalCluster::start().await.expect("a local control plane");
    cluster
        .install_fledge_crds()
        .await
        .expect("Fledge's CRDs install");
    cluster
        .install_operator_rbac()
        .await
        .expect("the operator's ServiceAccount and RBAC install");
    let ns = cluster.operator_identity().namespace.clone();
    let leases: Api<Lease> = Api::namespaced(cluster.client(), &ns);
    let lease_namespace = format!("-leader-election-namespace={ns}");
    let mut operator = Operator::spawn(
        cluster.operator_kubeconfig_path(),
        "fledge-lone",
        &[
            "-mesh-provider=kubernetes",
            "-enable-leader-election",
            lease_namespace.as_str(),
            "-leader-election-lease-duration=6s",
            "-leader-election-renew-deadline=4s",
            "-leader-election-retry-period=1s",
        ],
    );
    operator
        .wait_for_line("Acting as elected leader", Duration::from_secs(30))
        .await;
    assert_eq!(
        leader_hostname(&leases, Duration::from_secs(5)).await,
        "fledge-lone",
        "the Lease is in -leader-election-namespace"
    );

    // Someone else writes the Lease (a split brain the leader must not survive).
    // The leader renews every second, so a write between our read and replace is a conflict:
    // read again and retry, as any client of optimistic concurrency does.
    let mut attempts = 0;
    loop {
        let mut lease = leases.get(LEASE).await.expect("the Lease");
        let spec = lease.spec.get_or_insert_with(Default::default);
        spec.holder_identity = Some("intruder".to_owned());
        spec.renew_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
            k8s_openapi::jiff::Timestamp::now(),
        ));
        match leases
            .replace(LEASE, &kube::api::PostParams::default(), &lease)
            .await
        {
            Ok(_) => break,
            Err(kube::Error::Api(status)) if status.code == 409 && attempts < 10 => attempts += 1,
            Err(error) => panic!("the Lease is taken: {error}"),
        }
    }

    let lost = operator
        .wait_for_line("Leadership lost", Duration::from_secs(10))
        .await;
    assert_eq!(lost["level"], "error");
    assert_eq!(lost["reason"], "intruder holds the Lease");
    let exit = operator.exit_status(Duration::from_secs(10)).await;
    assert_eq!(exit.code(), Some(1), "{exit}");
    assert_eq!(
        holder(&leases).await.as_deref(),
        Some("intruder"),
        "a replica that lost the Lease does not release it"
    );
    common::assert_operator_never_forbidden(&cluster);
}
