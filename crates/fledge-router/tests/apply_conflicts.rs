//! Server-side apply requests and conflict retries, against a mocked API server that checks
//! each request.

use fledge_router::{Applier, Error, Istio, TrafficObject};
use http::{Request, Response};
use kube::client::Body;
use serde_json::json;
use tower_test::mock::{self, Handle};

fn virtual_service() -> TrafficObject {
    TrafficObject::new(
        Istio::virtual_service_resource(),
        "test",
        "podinfo",
        json!({ "spec": { "hosts": ["podinfo"], "http": [] } }),
    )
}

fn status(code: u16, reason: &str) -> Response<Body> {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("{reason} for the test"), "reason": reason, "code": code,
    });
    Response::builder()
        .status(code)
        .body(Body::from(
            serde_json::to_vec(&body).expect("valid test data"),
        ))
        .expect("valid test data")
}

/// Answers the next request after checking it is Fledge's server-side apply of the object.
async fn answer_apply(
    handle: &mut Handle<Request<Body>, Response<Body>>,
    response: Response<Body>,
) {
    let (request, send) = handle.next_request().await.expect("an apply request");
    assert_eq!(request.method(), http::Method::PATCH);
    assert_eq!(
        request.uri().to_string(),
        "/apis/networking.istio.io/v1beta1/namespaces/test/virtualservices/podinfo?&force=true&fieldManager=fledge"
    );
    assert_eq!(
        request.headers()["content-type"],
        "application/apply-patch+yaml"
    );
    let body = request
        .into_body()
        .collect_bytes()
        .await
        .expect("valid test data");
    let applied: serde_json::Value = serde_json::from_slice(&body).expect("valid test data");
    assert_eq!(applied["kind"], "VirtualService");
    assert_eq!(applied["spec"]["hosts"], json!(["podinfo"]));
    send.send_response(response);
}

fn applied_object() -> Response<Body> {
    let body = json!({
        "apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
        "metadata": { "name": "podinfo", "namespace": "test", "resourceVersion": "7" },
        "spec": { "hosts": ["podinfo"], "http": [] },
    });
    Response::builder()
        .body(Body::from(
            serde_json::to_vec(&body).expect("valid test data"),
        ))
        .expect("valid test data")
}

#[tokio::test]
async fn a_conflicting_apply_is_retried_until_it_goes_through() {
    let (service, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
    let applier = Applier::new(kube::Client::new(service, "test"));
    let server = tokio::spawn(async move {
        answer_apply(&mut handle, status(409, "Conflict")).await;
        answer_apply(&mut handle, status(409, "Conflict")).await;
        answer_apply(&mut handle, applied_object()).await;
    });
    let desired = virtual_service();
    let written = applier
        .apply_object(&desired.resource, "test", &desired.object)
        .await
        .unwrap();
    assert_eq!(written.metadata.resource_version.as_deref(), Some("7"));
    server.await.unwrap();
}

#[tokio::test]
async fn conflicts_that_persist_and_other_refusals_are_returned() {
    let (service, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
    let applier = Applier::new(kube::Client::new(service, "test"));
    let server = tokio::spawn(async move {
        for _ in 0..4 {
            answer_apply(&mut handle, status(409, "Conflict")).await;
        }
        // An invalid object is not retried: one request, one error.
        answer_apply(&mut handle, status(422, "Invalid")).await;
    });
    let desired = virtual_service();
    let err = applier
        .apply_object(&desired.resource, "test", &desired.object)
        .await
        .unwrap_err();
    assert!(matches!(&err, Error::Kube { verb: "apply", .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("apply VirtualService test/podinfo failed: "),
        "the API server's reason follows: {err}"
    );
    let err = applier
        .apply_object(&desired.resource, "test", &desired.object)
        .await
        .unwrap_err();
    let Error::Kube { source, .. } = err else {
        panic!("a client error")
    };
    assert!(
        matches!(*source, kube::Error::Api(ref s) if s.code == 422),
        "{source}"
    );
    server.await.unwrap();
}
