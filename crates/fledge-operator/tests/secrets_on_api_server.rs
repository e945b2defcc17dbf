//! The Secrets the operator reads, against a real kube-apiserver: only those a canary
//! references, each read once and again only after the metadata watch saw it change (a
//! change ticks the canaries whose target uses it), and forgotten when nothing references
//! it any more. Unrelated Secrets are never read and never held.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fledge_api::Canary;
use fledge_operator::config::OperatorConfig;
use fledge_operator::controller::referenced_secrets::{
    ReferencedSecrets, SecretReferences, watch_metadata,
};
use fledge_operator::telemetry::Telemetry;
use fledge_testkit::LocalCluster;
use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::ObjectRef;
use serde_json::json;
use tokio::sync::mpsc;

fn secret(name: &str, value: &str) -> Secret {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": { "name": name },
        "stringData": { "token": value },
    }))
    .expect("a Secret")
}

fn token(secret: Option<&Arc<Secret>>) -> Option<String> {
    let data = secret?.data.as_ref()?;
    let ByteString(bytes) = data.get("token")?;
    String::from_utf8(bytes.clone()).ok()
}

/// Waits until `ticks` yields `canary`, failing after 30 s.
async fn ticked(
    ticks: &mut mpsc::UnboundedReceiver<ObjectRef<Canary>>,
    canary: &ObjectRef<Canary>,
) {
    let started = Instant::now();
    loop {
        let left = Duration::from_secs(30).saturating_sub(started.elapsed());
        match tokio::time::timeout(left, ticks.recv()).await {
            Ok(Some(ticked)) if &ticked == canary => return,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => panic!("{canary} was not ticked within 30 s"),
        }
    }
}

/// The operator's own client (as its ServiceAccount), counting its requests into the
/// telemetry.
async fn operator_client(cluster: &LocalCluster) -> (kube::Client, Arc<Telemetry>) {
    cluster
        .install_operator_rbac()
        .await
        .expect("the operator's ServiceAccount and RBAC install");
    let telemetry = Arc::new(Telemetry::new("test", "kubernetes"));
    let kubeconfig = format!(
        "-kubeconfig={}",
        cluster.operator_kubeconfig_path().display()
    );
    let config = OperatorConfig::try_parse_args(["fledge-operator", kubeconfig.as_str()])
        .expect("valid flags");
    let client = fledge_operator::cluster::connect(&config, &telemetry)
        .await
        .expect("a client");
    (client, telemetry)
}

/// Runs the metadata watch into `cache`; the canaries it says to tick.
fn tick_on_changes(
    cache: &Arc<ReferencedSecrets>,
    client: &kube::Client,
    ns: &str,
) -> mpsc::UnboundedReceiver<ObjectRef<Canary>> {
    let (ticks, ticked_canaries) = mpsc::unbounded_channel();
    let events = watch_metadata(client, Some(ns));
    let cache = cache.clone();
    tokio::spawn(async move {
        let mut events = std::pin::pin!(events);
        while let Some(event) = events.next().await {
            if let Ok(event) = event {
                for canary in cache.observe(&event) {
                    let _ = ticks.send(canary);
                }
            }
        }
    });
    ticked_canaries
}

#[tokio::test]
async fn only_referenced_secrets_are_read_and_each_again_only_after_it_changed() {
    let cluster = LocalCluster::start().await.expect("a local control plane");
    let namespace = cluster
        .temp_namespace("secrets")
        .await
        .expect("a namespace");
    let ns = namespace.name().to_owned();
    let (client, telemetry) = operator_client(&cluster).await;
    let gets = || telemetry.kube_requests("get", "secrets");

    let secrets: Api<Secret> = Api::namespaced(cluster.client(), &ns);
    let create = |s: Secret| {
        let secrets = secrets.clone();
        async move { secrets.create(&PostParams::default(), &s).await }
    };
    for (name, value) in [("podinfo-token".to_owned(), "v1".to_owned())]
        .into_iter()
        .chain((0..20).map(|i| (format!("unrelated-{i}"), "x".repeat(10_000))))
    {
        create(secret(&name, &value)).await.expect("created");
    }

    let cache = Arc::new(ReferencedSecrets::new(client.clone(), Some(ns.clone())));
    let mut ticked_canaries = tick_on_changes(&cache, &client, &ns);

    // The target of `podinfo` uses `podinfo-token`; its `-primary` copy does not exist yet.
    let podinfo = ObjectRef::<Canary>::new("podinfo").within(&ns);
    let references = SecretReferences {
        tracked: vec!["podinfo-token".to_owned()],
        copies: vec!["podinfo-token-primary".to_owned()],
    };
    cache.refer(&podinfo, &ns, &references);
    let read = cache.get(&ns, "podinfo-token").await.expect("read");
    assert_eq!(token(read.as_ref()).as_deref(), Some("v1"));
    assert!(
        cache
            .get(&ns, "podinfo-token-primary")
            .await
            .expect("read")
            .is_none()
    );
    assert_eq!(gets(), 2, "each referenced Secret is read once");
    assert_eq!(cache.len(), 2);
    assert!(
        !cache.holds(&ns, "unrelated-0"),
        "unrelated Secrets are not held"
    );

    // Steady state: every tick reads from the cache.
    for _ in 0..10 {
        let again = cache.get(&ns, "podinfo-token").await.expect("read");
        assert_eq!(token(again.as_ref()).as_deref(), Some("v1"));
        assert!(
            cache
                .get(&ns, "podinfo-token-primary")
                .await
                .expect("read")
                .is_none()
        );
    }
    assert_eq!(gets(), 2, "no read while nothing changed");

    // An unrelated Secret changes: nothing is read.
    let params = PatchParams::default();
    let change = |value: &str| Patch::Merge(json!({ "stringData": { "token": value } }));
    secrets
        .patch("unrelated-3", &params, &change("y"))
        .await
        .expect("patched");

    // The referenced Secret changes: its canary ticks, and the tick reads it once.
    secrets
        .patch("podinfo-token", &params, &change("v2"))
        .await
        .expect("patched");
    ticked(&mut ticked_canaries, &podinfo).await;
    let changed = cache.get(&ns, "podinfo-token").await.expect("read");
    assert_eq!(token(changed.as_ref()).as_deref(), Some("v2"));
    assert_eq!(
        gets(),
        3,
        "one read after the change, none for the unrelated one"
    );
    let _ = cache.get(&ns, "podinfo-token").await.expect("read");
    assert_eq!(gets(), 3);

    // Deleted: the canary ticks and sees it gone.
    secrets
        .delete("podinfo-token", &DeleteParams::default())
        .await
        .expect("deleted");
    ticked(&mut ticked_canaries, &podinfo).await;
    assert!(
        cache
            .get(&ns, "podinfo-token")
            .await
            .expect("read")
            .is_none()
    );

    // The target no longer uses it: both entries go.
    cache.refer(&podinfo, &ns, &SecretReferences::default());
    assert!(cache.is_empty(), "{cache:?}");
}

#[tokio::test]
async fn credentials_stay_while_named_and_a_deleted_canarys_references_go() {
    // Nothing here asks the API server.
    let config = kube::Config::new("https://127.0.0.1:1".parse().expect("a URL"));
    let client = kube::Client::try_from(config).expect("a client");
    let cache = ReferencedSecrets::new(client, Some("test".to_owned()));
    let podinfo = ObjectRef::<Canary>::new("podinfo").within("test");
    let references = SecretReferences {
        tracked: vec!["podinfo-token".to_owned()],
        copies: vec!["podinfo-token-primary".to_owned()],
    };
    let ns = "test";
    // Credentials of a template stay while a template names them, and go with the canary's
    // references otherwise.
    cache.refer(&podinfo, ns, &references);
    cache.refer_as_credentials(ns, "prometheus-auth");
    cache.forget_canary(&podinfo);
    assert_eq!(cache.len(), 1, "the credentials are still named");
    cache.sweep_credentials(|_, _| false);
    assert!(cache.is_empty(), "{cache:?}");
}
