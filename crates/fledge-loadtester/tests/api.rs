//! Flagger's loadtester API, route by route, against a loadtester on a free port.

mod common;

use std::time::Duration;

use common::{eventually, loadtester, payload, payload_in, post, post_json};
use fledge_loadtester::TargetServer;
use pretty_assertions::assert_eq;

#[tokio::test]
async fn health_approve_and_halt_answer_without_a_payload() {
    let loadtester = loadtester(|_| {}).await;
    let address = loadtester.local_addr();
    let get = |path: &'static str| async move {
        let response = reqwest::get(format!("http://{address}{path}"))
            .await
            .expect("answer");
        (
            response.status().as_u16(),
            response.text().await.expect("text"),
        )
    };
    assert_eq!(get("/healthz").await, (200, "OK".to_owned()));
    assert_eq!(get("/gate/approve").await, (200, "OK".to_owned()));
    assert_eq!(get("/gate/halt").await, (403, "Forbidden".to_owned()));
    let (status, metrics) = get("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("fledge_loadtester_tasks_total 0"),
        "{metrics}"
    );
    loadtester.stop().await;
}

#[tokio::test]
async fn a_gate_is_closed_until_opened_and_closes_again_per_canary() {
    let loadtester = loadtester(|_| {}).await;
    let address = loadtester.local_addr();
    let podinfo = payload(&[]);
    let other = payload_in("prod", &[]);
    assert_eq!(
        post_json(address, "/gate/check", &podinfo).await,
        (403, "Forbidden".to_owned())
    );
    assert_eq!(
        post_json(address, "/gate/open", &podinfo).await,
        (202, String::new())
    );
    assert_eq!(
        post_json(address, "/gate/check", &podinfo).await,
        (200, "Approved".to_owned())
    );
    assert_eq!(
        post_json(address, "/gate/check", &other).await.0,
        403,
        "another canary's gate"
    );
    assert_eq!(
        post_json(address, "/rollback/check", &podinfo).await.0,
        403,
        "rollbacks are separate"
    );
    assert_eq!(
        post_json(address, "/gate/close", &podinfo).await,
        (202, String::new())
    );
    assert_eq!(post_json(address, "/gate/check", &podinfo).await.0, 403);
    assert!(!loadtester.gates().is_open("podinfo.test"));
    loadtester.stop().await;
}

#[tokio::test]
async fn a_rollback_is_closed_until_opened_and_closes_again() {
    let loadtester = loadtester(|_| {}).await;
    let address = loadtester.local_addr();
    let podinfo = payload(&[]);
    assert_eq!(
        post_json(address, "/rollback/check", &podinfo).await,
        (403, "Forbidden".to_owned())
    );
    assert_eq!(post_json(address, "/rollback/open", &podinfo).await.0, 202);
    assert_eq!(
        post_json(address, "/rollback/check", &podinfo).await,
        (200, "Approved".to_owned())
    );
    assert!(loadtester.gates().is_open("rollback.podinfo.test"));
    assert_eq!(
        post_json(address, "/gate/check", &podinfo).await.0,
        403,
        "the gate stays closed"
    );
    assert_eq!(post_json(address, "/rollback/close", &podinfo).await.0, 202);
    assert_eq!(post_json(address, "/rollback/check", &podinfo).await.0, 403);
    loadtester.stop().await;
}

#[tokio::test]
async fn bad_payloads_get_400_with_the_reason_and_big_ones_413() {
    let loadtester = loadtester(|config| config.max_body_bytes = 1024).await;
    let address = loadtester.local_addr();
    let (status, reason) = post(address, "/gate/check", "{not json").await;
    assert_eq!(status, 400);
    assert!(
        reason.starts_with("decoding the request body failed: key must be a string"),
        "{reason}"
    );
    let (status, reason) = post(address, "/", r#"{"name":"a","metadata":{"cmd":1}}"#).await;
    assert_eq!(status, 400);
    assert!(
        reason.contains("metadata.cmd: invalid type: integer `1`, expected a string"),
        "{reason}"
    );
    let (status, reason) = post(address, "/", "x".repeat(2048)).await;
    assert_eq!(
        (status, reason.as_str()),
        (
            413,
            "the request body is larger than 1024 bytes (-max-body-bytes)"
        )
    );
    assert_eq!(
        post_json(address, "/", &payload(&[])).await,
        (400, "metadata not found in payload".to_owned())
    );
    assert_eq!(
        post_json(address, "/", &payload(&[("type", "cmd")])).await,
        (400, "cmd not found in metadata".to_owned())
    );
    assert_eq!(
        post_json(address, "/", &payload(&[("type", "jmeter"), ("cmd", "x")])).await,
        (400, "unknown task type jmeter".to_owned())
    );
    loadtester.stop().await;
}

#[tokio::test]
async fn the_namespace_regexp_refuses_canaries_of_other_namespaces() {
    let loadtester = loadtester(|config| {
        config.namespace_regexp = Some(regex::Regex::new("^test$").expect("regexp"));
    })
    .await;
    let address = loadtester.local_addr();
    for path in ["/gate/open", "/gate/check", "/rollback/open", "/"] {
        let (status, body) =
            post_json(address, path, &payload_in("prod", &[("cmd", "true")])).await;
        assert_eq!((status, body.as_str()), (403, "Forbidden"), "{path}");
    }
    assert!(!loadtester.gates().is_open("podinfo.prod"));
    assert_eq!(post_json(address, "/gate/open", &payload(&[])).await.0, 202);
    assert_eq!(
        post_json(address, "/gate/check", &payload(&[])).await.0,
        200
    );
    loadtester.stop().await;
}

#[tokio::test]
async fn a_bash_task_blocks_and_returns_its_output_when_asked() {
    let loadtester = loadtester(|_| {}).await;
    let address = loadtester.local_addr();
    let acceptance = [
        ("type", "bash"),
        ("cmd", "echo token: $((6 * 7)) && echo to-stderr >&2"),
        ("returnCmdOutput", "true"),
    ];
    assert_eq!(
        post_json(address, "/", &payload(&acceptance)).await,
        (200, "token: 42\nto-stderr\n".to_owned())
    );
    assert_eq!(
        post_json(address, "/", &payload(&acceptance[..2])).await,
        (200, String::new()),
        "no output without returnCmdOutput"
    );
    let failing = payload(&[("type", "bash"), ("cmd", "echo not found; exit 3")]);
    assert_eq!(
        post_json(address, "/", &failing).await,
        (
            500,
            "command echo not found; exit 3 failed: not found: exit status 3".to_owned()
        )
    );
    assert_eq!(loadtester.runner().total_executions(), 3);
    loadtester.stop().await;
}

#[tokio::test]
async fn a_blocking_task_is_stopped_at_the_timeout() {
    let loadtester = loadtester(|config| config.timeout = Duration::from_millis(500)).await;
    let started = std::time::Instant::now();
    let (status, body) = post_json(
        loadtester.local_addr(),
        "/",
        &payload(&[("type", "bash"), ("cmd", "echo started; sleep 30")]),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(status, 500);
    assert_eq!(
        body,
        "command echo started; sleep 30 failed: started: signal: killed (timed out after 500ms (-timeout))"
    );
    loadtester.stop().await;
}

#[tokio::test]
async fn a_cmd_task_runs_in_the_background_once_per_canary_and_command() {
    let loadtester = loadtester(|_| {}).await;
    let address = loadtester.local_addr();
    let marker = tempfile::tempdir().expect("temp dir");
    let file = marker.path().join("runs");
    let command = format!("echo run >> {}; sleep 1", file.display());
    let load_test = payload(&[("cmd", command.as_str())]);
    let started = std::time::Instant::now();
    assert_eq!(
        post_json(address, "/", &load_test).await,
        (202, String::new())
    );
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "answered before the command ends"
    );
    assert_eq!(
        post_json(address, "/", &load_test).await.0,
        202,
        "a repeat is accepted..."
    );
    assert_eq!(
        post_json(
            address,
            "/",
            &payload_in("prod", &[("cmd", command.as_str())])
        )
        .await
        .0,
        202
    );
    assert_eq!(
        loadtester.runner().running(),
        vec![
            ("podinfo.prod".to_owned(), command.clone()),
            ("podinfo.test".to_owned(), command.clone())
        ],
        "...but not run twice for the same canary"
    );
    assert!(
        eventually(Duration::from_secs(5), || loadtester
            .runner()
            .running()
            .is_empty())
        .await
    );
    let runs = std::fs::read_to_string(&file).expect("the command ran");
    assert_eq!(runs.lines().count(), 2, "{runs}");
    assert_eq!(loadtester.runner().total_executions(), 2);
    // Once finished, the same command runs again.
    assert_eq!(post_json(address, "/", &load_test).await.0, 202);
    assert!(
        eventually(Duration::from_secs(5), || loadtester
            .runner()
            .total_executions()
            == 3)
        .await
    );
    loadtester.stop().await;
}

#[tokio::test]
async fn a_hey_cmd_runs_in_the_built_in_generator() {
    let target = TargetServer::start(Duration::ZERO).await.expect("target");
    let loadtester = loadtester(|_| {}).await;
    let command = format!("hey -n 20 -c 2 {}", target.url());
    let load_test = payload(&[("cmd", command.as_str()), ("logCmdOutput", "true")]);
    assert_eq!(
        post_json(loadtester.local_addr(), "/", &load_test).await.0,
        202
    );
    assert!(
        eventually(Duration::from_secs(10), || target.requests() == 20).await,
        "{}",
        target.requests()
    );
    let seen = target.last_request().expect("a request");
    assert_eq!(seen.headers["user-agent"], "hey/0.0.1");

    let (status, reason) = post_json(
        loadtester.local_addr(),
        "/",
        &payload(&[("cmd", "hey -z 1m -k http://podinfo-canary.test:9898/")]),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        reason,
        "hey: flag provided but not defined: -k\nUsage: hey [options...] <url>"
    );

    // A bash task that is a plain hey runs built in too, and returns hey's summary.
    let (status, summary) = post_json(
        loadtester.local_addr(),
        "/",
        &payload(&[
            ("type", "bash"),
            ("cmd", &format!("hey -n 4 -c 1 {}", target.url())),
            ("returnCmdOutput", "true"),
        ]),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        summary.contains("Status code distribution:\n  [200]\t4 responses"),
        "{summary}"
    );
    loadtester.stop().await;
}

#[tokio::test]
async fn stopping_ends_background_tasks_and_frees_the_port() {
    let loadtester = loadtester(|_| {}).await;
    let address = loadtester.local_addr();
    assert_eq!(
        post_json(address, "/", &payload(&[("cmd", "sleep 30")]))
            .await
            .0,
        202
    );
    assert!(
        eventually(Duration::from_secs(2), || !loadtester
            .runner()
            .running()
            .is_empty())
        .await
    );
    let runner = loadtester.runner().clone();
    loadtester.stop().await;
    assert!(runner.running().is_empty());
    assert!(
        reqwest::get(format!("http://{address}/healthz"))
            .await
            .is_err()
    );
}
