//! One operator, two canaries: `slowinfo`'s rollout hook hangs for minutes, `podinfo` is
//! healthy. The healthy one is promoted on its schedule while the other is held, each of
//! its ticks cut at the tick's time budget instead of waiting out the hook's 5 minutes.

mod common;

use std::time::{Duration, Instant};

use common::{Stage, podinfo};
use fledge_api::{Canary, CanaryPhase};
use kube::api::{Patch, PatchParams, PostParams};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

/// Blue/green on the kubernetes provider: two 10 s iterations.
const HEALTHY: &str =
    "  provider: kubernetes\n  analysis:\n    interval: 10s\n    threshold: 5\n    iterations: 2\n";

/// A hook server that reads each request and never answers.
async fn hanging_hook() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let url = format!("http://{}/hang", listener.local_addr().expect("an address"));
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    url
}

/// The `podinfo` Deployment as `name`.
fn workload(name: &str, image: &str) -> serde_json::Value {
    let text = podinfo(image, Some(1)).to_string().replace("podinfo", name);
    let mut manifest: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    manifest["spec"]["template"]["spec"]["containers"][0]["image"] = image.into();
    manifest
}

async fn phase_of(stage: &Stage, name: &str) -> Option<CanaryPhase> {
    let canary = stage.canaries.get(name).await.expect("the Canary is read");
    canary.status.map(|s| s.phase)
}

#[tokio::test]
async fn a_hanging_hook_holds_its_own_canary_only() {
    let hook = hanging_hook().await;
    let stage = Stage::set_up(HEALTHY).await;
    let ns = stage.ns().to_owned();
    let apply = PatchParams::apply("kubectl").force();
    let slow_deployment = |image| workload("slowinfo", image);
    stage
        .deployments
        .patch(
            "slowinfo",
            &apply,
            &Patch::Apply(slow_deployment("podinfo:6.0.0")),
        )
        .await
        .expect("slowinfo is applied");
    let slow: Canary = fledge_api::yaml::from_str(&format!(
        "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {{ name: slowinfo, namespace: {ns} }}\nspec:\n  \
         targetRef: {{ apiVersion: apps/v1, kind: Deployment, name: slowinfo }}\n  \
         progressDeadlineSeconds: 60\n  service: {{ port: 9898 }}\n  provider: kubernetes\n  \
         analysis:\n    interval: 10s\n    threshold: 100\n    iterations: 2\n    webhooks:\n    \
         - {{ name: load-test, type: rollout, url: '{hook}', timeout: 5m }}\n"
    ))
    .expect("a valid Canary");
    stage
        .canaries
        .create(&PostParams::default(), &slow)
        .await
        .expect("slowinfo's Canary is created");
    let _operator = stage.start_operator(&["-mesh-provider=kubernetes"]);
    stage.reaches(CanaryPhase::Initialized, 30).await;
    common::wait_until("slowinfo initialized", Duration::from_secs(30), || async {
        phase_of(&stage, "slowinfo").await == Some(CanaryPhase::Initialized)
    })
    .await;

    stage
        .deployments
        .patch(
            "slowinfo",
            &apply,
            &Patch::Apply(slow_deployment("podinfo:6.0.1")),
        )
        .await
        .expect("slowinfo's new version is applied");
    stage.kubectl_apply(podinfo("podinfo:6.0.1", Some(1))).await;
    let released = Instant::now();

    // Healthy: six ticks 10 s apart (detected, analysis started, two iterations, promotion,
    // finalising): ~60 s on schedule; waiting out the other canary's 5 m hook would take 5 m.
    stage.reaches(CanaryPhase::Succeeded, 150).await;
    let promoted_after = released.elapsed();
    eprintln!("podinfo promoted {promoted_after:?} after its new version");
    assert!(
        promoted_after < Duration::from_secs(100),
        "podinfo was promoted after {promoted_after:?}"
    );
    assert_eq!(
        stage.primary_image().await.as_deref(),
        Some("podinfo:6.0.1")
    );

    // Held: each tick of slowinfo ends at its 10 s budget and says so.
    let halted = format!(
        "Halt slowinfo.{ns} advancement external check load-test failed tick time budget of 10s exceeded"
    );
    common::wait_until(
        "slowinfo's halt at the tick budget (not at the hook's 5m timeout)",
        Duration::from_secs(120).saturating_sub(released.elapsed()),
        || async { stage.story().await.contains(&halted) },
    )
    .await;
    eprintln!("slowinfo halted at its budget by {:?}", released.elapsed());
    assert_eq!(
        phase_of(&stage, "slowinfo").await,
        Some(CanaryPhase::Progressing)
    );
    let slow_primary = stage
        .deployments
        .get("slowinfo-primary")
        .await
        .expect("slowinfo's primary exists");
    assert_eq!(
        common::image(&slow_primary).as_deref(),
        Some("podinfo:6.0.0")
    );
}
