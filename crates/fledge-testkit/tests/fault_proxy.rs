//! The fault proxy in front of a real kube-apiserver: a client through it works as through
//! the API server itself; rules answer chosen requests with 429 (and Retry-After), 500/503
//! or no answer at all; open watches break on demand; and every answer is counted.

use std::time::{Duration, Instant};

use fledge_testkit::LocalCluster;
use fledge_testkit::fault_proxy::{Fault, FaultCounters, FaultProxy, FaultRule};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ListParams, PostParams, WatchParams};

const NAMESPACES: &str = "^/api/v1/namespaces$";

#[tokio::test]
async fn the_proxy_forwards_answers_faults_breaks_watches_and_counts() {
    let cluster = LocalCluster::start()
        .await
        .expect("the control plane starts");
    let proxy = FaultProxy::start(&cluster).await.expect("the proxy starts");
    let namespaces: Api<Namespace> = Api::all(proxy.client());
    let config_maps = forwards_with_the_clients_token(&proxy, &namespaces).await;
    answers_a_share_with_server_errors(&proxy, &namespaces).await;
    throttles_with_retry_after(&proxy, &namespaces).await;
    holds_blackholed_requests(&proxy, &namespaces).await;
    breaks_open_watches(&proxy, &config_maps).await;
    assert_eq!(
        proxy.counters(),
        FaultCounters {
            forwarded: 8,
            too_many_requests: 2,
            server_errors: 2,
            blackholed: 1,
            watches_broken: 1,
        }
    );
}

async fn forwards_with_the_clients_token(
    proxy: &FaultProxy,
    namespaces: &Api<Namespace>,
) -> Api<ConfigMap> {
    // Forwarded with the client's token: the admin writes and reads.
    let mut namespace = Namespace::default();
    namespace.metadata.name = Some("through-the-proxy".to_owned());
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .expect("a write through the proxy");
    let listed = namespaces
        .list(&ListParams::default())
        .await
        .expect("a list through the proxy");
    assert!(
        listed
            .items
            .iter()
            .any(|n| n.metadata.name.as_deref() == Some("through-the-proxy"))
    );
    let config_maps: Api<ConfigMap> = Api::namespaced(proxy.client(), "through-the-proxy");
    let mut map = ConfigMap::default();
    map.metadata.name = Some("through-the-proxy".to_owned());
    config_maps
        .create(&PostParams::default(), &map)
        .await
        .expect("a write through the proxy");
    assert_eq!(proxy.counters().forwarded, 3);

    config_maps
}

async fn answers_a_share_with_server_errors(proxy: &FaultProxy, namespaces: &Api<Namespace>) {
    // 500 to every second list: the client sees the API server's Status, code 500.
    let half = proxy.add(
        FaultRule::new("GET", NAMESPACES, Fault::ServerError { status: 500 })
            .expect("a rule")
            .share(0.5),
    );
    let mut codes = Vec::new();
    for _ in 0..4 {
        codes.push(match namespaces.list(&ListParams::default()).await {
            Ok(_) => 200,
            Err(kube::Error::Api(status)) => status.code,
            Err(other) => panic!("unexpected error {other}"),
        });
    }
    assert_eq!(codes, [200, 500, 200, 500]);
    assert_eq!(proxy.answered(half), 2);
    proxy.remove(half);
}

async fn throttles_with_retry_after(proxy: &FaultProxy, namespaces: &Api<Namespace>) {
    // 429 with Retry-After: 1 to the next two lists; kube's client waits as asked and retries.
    let throttle = proxy.add(
        FaultRule::new(
            "GET",
            NAMESPACES,
            Fault::TooManyRequests {
                retry_after_seconds: 1,
            },
        )
        .expect("a rule")
        .times(2),
    );
    let started = Instant::now();
    namespaces
        .list(&ListParams::default())
        .await
        .expect("the third try is forwarded");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(proxy.answered(throttle), 2);
    let throttled: Vec<_> = proxy
        .requests()
        .into_iter()
        .filter(|r| r.status == 429)
        .collect();
    assert_eq!(throttled.len(), 2);
    assert!(throttled[1].at - throttled[0].at >= Duration::from_secs(1));
}

async fn holds_blackholed_requests(proxy: &FaultProxy, namespaces: &Api<Namespace>) {
    // A blackhole holds requests until the rule goes; then they are answered 503 (which
    // kube's client retries, now forwarded).
    let hole = proxy.add(FaultRule::new("*", NAMESPACES, Fault::Blackhole).expect("a rule"));
    let held = tokio::spawn({
        let namespaces = namespaces.clone();
        async move { namespaces.list(&ListParams::default()).await }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!held.is_finished(), "a blackholed request is not answered");
    proxy.remove(hole);
    let released = tokio::time::timeout(Duration::from_secs(30), held).await;
    assert!(matches!(released, Ok(Ok(Ok(_)))), "released: {released:?}");
    let last_faulted = proxy.requests().into_iter().rfind(|r| r.faulted);
    assert_eq!(
        last_faulted.map(|r| r.status),
        Some(0),
        "blackholed, never answered by a rule"
    );
}

async fn breaks_open_watches(proxy: &FaultProxy, config_maps: &Api<ConfigMap>) {
    // An open watch breaks mid-stream: the client's stream ends with an error.
    let mut watch = config_maps
        .watch(&WatchParams::default(), "0")
        .await
        .expect("a watch through the proxy")
        .boxed();
    let first = tokio::time::timeout(Duration::from_secs(30), watch.next()).await;
    assert!(
        matches!(first, Ok(Some(Ok(_)))),
        "the watch streams events: {first:?}"
    );
    assert_eq!(proxy.break_watches(), 1, "one watch was open");
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match watch.next().await {
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the broken watch ends");
}
