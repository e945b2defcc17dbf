//! Counting the operator's own requests to the API server by verb and resource
//! (`fledge_kube_requests_total`): a tower layer on the kube client.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Method, Request};

use super::Telemetry;

/// The Kubernetes verb and resource of a request, read from its method and path the way the
/// API server's audit log names them: `get` names one object, `list` a collection, `watch`
/// has `watch=true`; the resource is the plural name, with the subresource after a slash
/// (`canaries/status`). Paths that name no resource (`/version`, discovery) are
/// `nonresource`.
pub fn classify(method: &Method, path: &str, query: Option<&str>) -> (&'static str, String) {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let rest: &[&str] = match segments.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => &[],
    };
    // The deprecated `/watch/` path prefix.
    let (old_style_watch, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        rest => (false, rest),
    };
    let (resource, named, subresource) = match rest {
        [] => (None, false, None),
        ["namespaces", namespace @ ..] if namespace.len() <= 1 => {
            (Some("namespaces"), namespace.len() == 1, None)
        }
        ["namespaces", _, sub @ ("status" | "finalize")] => (Some("namespaces"), true, Some(*sub)),
        ["namespaces", _, resource, rest @ ..] | [resource, rest @ ..] => {
            (Some(*resource), !rest.is_empty(), rest.get(1).copied())
        }
    };
    let Some(resource) = resource else {
        return (verb_of(method, true, false), "nonresource".to_owned());
    };
    let watch = old_style_watch
        || query.is_some_and(|q| {
            q.split('&')
                .any(|pair| pair == "watch=true" || pair == "watch=1")
        });
    let verb = if *method == Method::GET && watch {
        "watch"
    } else {
        verb_of(method, named, true)
    };
    let resource = match subresource {
        Some(sub) => format!("{resource}/{sub}"),
        None => resource.to_owned(),
    };
    (verb, resource)
}

fn verb_of(method: &Method, named: bool, is_resource: bool) -> &'static str {
    match *method {
        Method::GET if named || !is_resource => "get",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if named => "delete",
        Method::DELETE => "deletecollection",
        Method::HEAD => "head",
        _ => "other",
    }
}

/// A tower layer counting each request into [`Telemetry`].
#[derive(Clone, Debug)]
pub struct CountRequestsLayer {
    telemetry: Arc<Telemetry>,
}

impl CountRequestsLayer {
    /// Counts into `telemetry`.
    pub fn new(telemetry: Arc<Telemetry>) -> Self {
        Self { telemetry }
    }
}

impl<S> tower::Layer<S> for CountRequestsLayer {
    type Service = CountRequests<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CountRequests {
            inner,
            telemetry: self.telemetry.clone(),
        }
    }
}

/// The service of [`CountRequestsLayer`].
#[derive(Clone, Debug)]
pub struct CountRequests<S> {
    inner: S,
    telemetry: Arc<Telemetry>,
}

impl<S, B> tower::Service<Request<B>> for CountRequests<S>
where
    S: tower::Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let uri = request.uri();
        let (verb, resource) = classify(request.method(), uri.path(), uri.query());
        self.telemetry.count_kube_request(verb, &resource);
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verb_and_resource(method: &Method, uri: &str) -> (&'static str, String) {
        let uri: http::Uri = uri.parse().expect("a URI");
        classify(method, uri.path(), uri.query())
    }

    #[test]
    fn requests_are_named_like_the_audit_log() {
        let cases = [
            (
                Method::GET,
                "/apis/flagger.app/v1beta1/namespaces/test/canaries/podinfo",
                "get",
                "canaries",
            ),
            (
                Method::GET,
                "/apis/flagger.app/v1beta1/namespaces/test/canaries?limit=500",
                "list",
                "canaries",
            ),
            (
                Method::GET,
                "/apis/flagger.app/v1beta1/canaries",
                "list",
                "canaries",
            ),
            (
                Method::GET,
                "/apis/apps/v1/namespaces/test/deployments?watch=true&resourceVersion=12",
                "watch",
                "deployments",
            ),
            (
                Method::GET,
                "/api/v1/watch/namespaces/test/secrets",
                "watch",
                "secrets",
            ),
            (
                Method::PATCH,
                "/apis/flagger.app/v1beta1/namespaces/test/canaries/podinfo/status?fieldManager=fledge",
                "patch",
                "canaries/status",
            ),
            (
                Method::PATCH,
                "/apis/apps/v1/namespaces/test/deployments/podinfo/scale",
                "patch",
                "deployments/scale",
            ),
            (
                Method::POST,
                "/apis/events.k8s.io/v1/namespaces/test/events",
                "create",
                "events",
            ),
            (
                Method::PUT,
                "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/fledge-leader-election",
                "update",
                "leases",
            ),
            (
                Method::DELETE,
                "/api/v1/namespaces/test/services/podinfo-canary",
                "delete",
                "services",
            ),
            (
                Method::DELETE,
                "/api/v1/namespaces/test/pods",
                "deletecollection",
                "pods",
            ),
            (Method::GET, "/api/v1/namespaces/test", "get", "namespaces"),
            (Method::GET, "/api/v1/namespaces", "list", "namespaces"),
            (
                Method::PUT,
                "/api/v1/namespaces/test/finalize",
                "update",
                "namespaces/finalize",
            ),
            (Method::GET, "/api/v1/nodes/node-1", "get", "nodes"),
            (Method::GET, "/version", "get", "nonresource"),
            (
                Method::GET,
                "/apis/autoscaling/v2beta2",
                "get",
                "nonresource",
            ),
            (Method::GET, "/apis", "get", "nonresource"),
        ];
        for (method, uri, verb, resource) in cases {
            assert_eq!(
                verb_and_resource(&method, uri),
                (verb, resource.to_owned()),
                "{method} {uri}"
            );
        }
    }
}
