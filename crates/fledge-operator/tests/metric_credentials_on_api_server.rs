//! A MetricTemplate's credentials stay with the addresses its owner or the operator chose:
//! a template with a `secretRef` and no address queries `-metrics-server`, even when the
//! Canary names a `metricsServer` of its own (which would otherwise receive the token).

mod common;

use std::sync::{Arc, Mutex};

use common::{Stage, capture_logs, podinfo};
use fledge_api::{CanaryPhase, MetricTemplate};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const ONE_HUNDRED: &str = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"100"]}]}}"#;

/// A Prometheus stand-in answering 100 to every query and keeping each request's head.
struct RecordingPrometheus {
    url: String,
    heads: Arc<Mutex<Vec<String>>>,
}

impl RecordingPrometheus {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let url = format!("http://{}", listener.local_addr().expect("an address"));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let recorded = heads.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let recorded = recorded.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head).to_lowercase();
                    recorded.lock().expect("not poisoned").push(head);
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{ONE_HUNDRED}",
                        ONE_HUNDRED.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                });
            }
        });
        Self { url, heads }
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().expect("not poisoned").clone()
    }
}

#[tokio::test]
async fn a_template_with_credentials_and_no_address_never_queries_the_canarys_server() {
    let _logs = capture_logs();
    let operators_server = RecordingPrometheus::start().await;
    let canarys_server = RecordingPrometheus::start().await;
    let stage = Stage::set_up(&format!(
        "  provider: kubernetes\n  metricsServer: {}\n  analysis:\n    interval: 10s\n    threshold: 1\n    iterations: 1\n    metrics:\n    \
         - name: availability\n      templateRef: {{ name: availability }}\n      thresholdRange: {{ min: 99 }}\n      interval: 1m\n",
        canarys_server.url
    ))
    .await;
    let ns = stage.ns().to_owned();
    let client = stage.cluster.client();
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": { "name": "prom-auth", "namespace": ns },
        "stringData": { "token": "t0k3n-of-the-template" },
    }))
    .expect("a Secret");
    Api::<Secret>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &secret)
        .await
        .expect("the Secret is created");
    let template: MetricTemplate = fledge_api::yaml::from_str(&format!(
        "apiVersion: flagger.app/v1beta1\nkind: MetricTemplate\nmetadata: {{ name: availability, namespace: {ns} }}\n\
         spec:\n  provider: {{ type: prometheus, secretRef: {{ name: prom-auth }} }}\n  query: vector(100)\n"
    ))
    .expect("a valid MetricTemplate");
    Api::<MetricTemplate>::namespaced(client, &ns)
        .create(&PostParams::default(), &template)
        .await
        .expect("the MetricTemplate is created");
    let metrics_server = format!("-metrics-server={}", operators_server.url);
    let (stop, _operator) = stage.run_operator(&["-mesh-provider=kubernetes", &metrics_server]);

    stage.reaches(CanaryPhase::Initialized, 30).await;
    stage.kubectl_apply(podinfo("podinfo:6.0.1", None)).await;
    // Whichever server is asked answers 100, so the analysis passes either way.
    stage.reaches(CanaryPhase::Succeeded, 90).await;

    assert_eq!(
        canarys_server.heads(),
        Vec::<String>::new(),
        "the Canary's metricsServer received the template's query"
    );
    let queried = operators_server.heads();
    assert!(!queried.is_empty(), "-metrics-server was not queried");
    assert!(
        queried
            .iter()
            .all(|head| head.contains("authorization: bearer t0k3n-of-the-template\r\n")),
        "{queried:#?}"
    );
    let _ = stop.send(());
}
