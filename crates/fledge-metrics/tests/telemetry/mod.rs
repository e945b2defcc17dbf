//! The series a real mesh or ingress would expose for canary `podinfo` in namespace `test`,
//! with known numbers, plus look-alike series (primary workload, other reporters and
//! directions) that a correct query must leave out.

#![allow(dead_code)]

use fledge_metrics::testing::Series;

/// Upper bounds of the latency buckets in milliseconds, and the same in seconds.
pub const MS_BOUNDS: [&str; 4] = ["25", "100", "500", "1000"];
/// [`MS_BOUNDS`] in seconds.
pub const S_BOUNDS: [&str; 4] = ["0.025", "0.1", "0.5", "1"];
/// Share of requests per bucket: 90% ≤ 25ms, 8% ≤ 100ms, 1.5% ≤ 500ms, 0.5% ≤ 1s.
const SHARES: [f64; 4] = [0.900, 0.080, 0.015, 0.005];
/// The P99 of that histogram: rank 990 of 1000 lies in (100, 500] between cumulative counts
/// 980 and 995, so 100 + 400 × 10/15 = 366.67ms.
pub const P99_MS: f64 = 100.0 + 400.0 * 10.0 / 15.0;

/// A latency histogram with the known shape for `requests` requests per scrape.
pub fn latency(
    name: &str,
    labels: &[(&str, &str)],
    bounds: [&str; 4],
    requests: f64,
) -> Vec<Series> {
    let buckets: Vec<(&str, f64)> = bounds
        .iter()
        .zip(SHARES)
        .map(|(le, share)| (*le, share * requests))
        .collect();
    Series::histogram(name, labels, &buckets, 0.0)
}

/// A histogram with every request in the slowest bucket: if it leaked into a query the P99
/// would be near the top bound.
pub fn slow(name: &str, labels: &[(&str, &str)], bounds: [&str; 4], requests: f64) -> Vec<Series> {
    let buckets: Vec<(&str, f64)> = bounds
        .iter()
        .enumerate()
        .map(|(i, le)| (*le, if i == 3 { requests } else { 0.0 }))
        .collect();
    Series::histogram(name, labels, &buckets, 0.0)
}

fn counter(name: &str, labels: &[(&str, &str)], per_scrape: f64) -> Series {
    Series::counter(name, labels, per_scrape)
}

pub fn istio() -> Vec<Series> {
    let dest = [
        ("reporter", "destination"),
        ("destination_workload_namespace", "test"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&'static str, &'static str)> {
        dest.iter().chain(extra).copied().collect()
    };
    let mut series = vec![
        counter(
            "istio_requests_total",
            &with(&[
                ("destination_workload", "podinfo"),
                ("response_code", "200"),
            ]),
            970.0,
        ),
        counter(
            "istio_requests_total",
            &with(&[
                ("destination_workload", "podinfo"),
                ("response_code", "500"),
            ]),
            30.0,
        ),
        // Look-alikes: the client side's view, and the primary workload.
        counter(
            "istio_requests_total",
            &[
                ("reporter", "source"),
                ("destination_workload_namespace", "test"),
                ("destination_workload", "podinfo"),
                ("response_code", "503"),
            ],
            500.0,
        ),
        counter(
            "istio_requests_total",
            &with(&[
                ("destination_workload", "podinfo-primary"),
                ("response_code", "500"),
            ]),
            400.0,
        ),
        // A workload without traffic: its success rate is 0/0.
        counter(
            "istio_requests_total",
            &with(&[("destination_workload", "idle"), ("response_code", "200")]),
            0.0,
        ),
    ];
    series.extend(latency(
        "istio_request_duration_milliseconds",
        &with(&[("destination_workload", "podinfo")]),
        MS_BOUNDS,
        1000.0,
    ));
    series.extend(slow(
        "istio_request_duration_milliseconds",
        &with(&[("destination_workload", "podinfo-primary")]),
        MS_BOUNDS,
        1000.0,
    ));
    series
}

pub fn linkerd() -> Vec<Series> {
    let labels = |direction, classification, code| {
        vec![
            ("namespace", "test"),
            ("deployment", "podinfo"),
            ("direction", direction),
            ("classification", classification),
            ("status_code", code),
        ]
    };
    let mut series = vec![
        counter(
            "response_total",
            &labels("inbound", "success", "200"),
            990.0,
        ),
        counter("response_total", &labels("inbound", "failure", "500"), 10.0),
        counter(
            "response_total",
            &labels("outbound", "failure", "500"),
            500.0,
        ),
    ];
    let inbound = [
        ("namespace", "test"),
        ("deployment", "podinfo"),
        ("direction", "inbound"),
    ];
    let outbound = [
        ("namespace", "test"),
        ("deployment", "podinfo"),
        ("direction", "outbound"),
    ];
    series.extend(latency("response_latency_ms", &inbound, MS_BOUNDS, 1000.0));
    series.extend(slow("response_latency_ms", &outbound, MS_BOUNDS, 1000.0));
    series
}

pub fn appmesh() -> Vec<Series> {
    let canary_pod = [
        ("kubernetes_namespace", "test"),
        ("kubernetes_pod_name", "podinfo-7b9c8d6f5-x2x4z"),
    ];
    let primary_pod = [
        ("kubernetes_namespace", "test"),
        ("kubernetes_pod_name", "podinfo-primary-6d9f8b7c4-k8s2m"),
    ];
    let code = |pod: &[(&'static str, &'static str)], code| {
        let mut labels = pod.to_vec();
        labels.push(("envoy_response_code", code));
        labels
    };
    let mut series = vec![
        counter(
            "envoy_cluster_upstream_rq",
            &code(&canary_pod, "200"),
            950.0,
        ),
        counter("envoy_cluster_upstream_rq", &code(&canary_pod, "503"), 50.0),
        counter(
            "envoy_cluster_upstream_rq",
            &code(&primary_pod, "503"),
            500.0,
        ),
    ];
    series.extend(latency(
        "envoy_cluster_upstream_rq_time",
        &canary_pod,
        MS_BOUNDS,
        1000.0,
    ));
    series.extend(slow(
        "envoy_cluster_upstream_rq_time",
        &primary_pod,
        MS_BOUNDS,
        1000.0,
    ));
    series
}

/// Envoy cluster series of Contour, Gloo, Kuma and Knative: `label=canary` carries the
/// numbers, `label=other` is a look-alike failing half its requests.
fn envoy_cluster(label: &str, canary: &str, other: &str, ok: f64, errors: f64) -> Vec<Series> {
    let mut series = vec![
        counter(
            "envoy_cluster_upstream_rq",
            &[(label, canary), ("envoy_response_code", "200")],
            ok,
        ),
        counter(
            "envoy_cluster_upstream_rq",
            &[(label, canary), ("envoy_response_code", "500")],
            errors,
        ),
        counter(
            "envoy_cluster_upstream_rq",
            &[(label, other), ("envoy_response_code", "500")],
            500.0,
        ),
    ];
    series.extend(latency(
        "envoy_cluster_upstream_rq_time",
        &[(label, canary)],
        MS_BOUNDS,
        1000.0,
    ));
    series.extend(slow(
        "envoy_cluster_upstream_rq_time",
        &[(label, other)],
        MS_BOUNDS,
        1000.0,
    ));
    series
}

pub fn contour() -> Vec<Series> {
    envoy_cluster(
        "envoy_cluster_name",
        "test_podinfo-canary_9898",
        "test_podinfo-primary_9898",
        980.0,
        20.0,
    )
}

pub fn gloo() -> Vec<Series> {
    envoy_cluster(
        "envoy_cluster_name",
        "test-podinfo-canaryupstream-9898_gloo-system",
        "test-podinfo-primaryupstream-9898_gloo-system",
        960.0,
        40.0,
    )
}

pub fn kuma() -> Vec<Series> {
    envoy_cluster(
        "service",
        "podinfo-canary_test_svc_9898",
        "podinfo-primary_test_svc_9898",
        975.0,
        25.0,
    )
}

pub fn knative() -> Vec<Series> {
    envoy_cluster(
        "envoy_cluster_name",
        "test/podinfo-00002",
        "test/podinfo-00001",
        930.0,
        70.0,
    )
}

pub fn nginx() -> Vec<Series> {
    let canary = |status| {
        vec![
            ("namespace", "test"),
            ("ingress", "podinfo"),
            ("canary", "test-podinfo-canary-80"),
            ("status", status),
        ]
    };
    let duration = [
        ("namespace", "test"),
        ("ingress", "podinfo"),
        ("canary", "test-podinfo-canary-80"),
    ];
    let primary = [("namespace", "test"), ("ingress", "podinfo")];
    vec![
        counter("nginx_ingress_controller_requests", &canary("200"), 900.0),
        counter("nginx_ingress_controller_requests", &canary("404"), 50.0),
        counter("nginx_ingress_controller_requests", &canary("500"), 50.0),
        counter(
            "nginx_ingress_controller_requests",
            &[
                ("namespace", "test"),
                ("ingress", "podinfo"),
                ("status", "500"),
            ],
            700.0,
        ),
        // Mean 42.5ms for the canary, 900ms for the primary.
        counter(
            "nginx_ingress_controller_response_duration_seconds_sum",
            &duration,
            42.5,
        ),
        counter(
            "nginx_ingress_controller_response_duration_seconds_count",
            &duration,
            1000.0,
        ),
        counter(
            "nginx_ingress_controller_response_duration_seconds_sum",
            &primary,
            900.0,
        ),
        counter(
            "nginx_ingress_controller_response_duration_seconds_count",
            &primary,
            1000.0,
        ),
    ]
}

pub const SKIPPER_CANARY_ROUTE: &str =
    "kube_test__podinfo_canary__app_example_com____podinfo_canary";
const SKIPPER_PRIMARY_ROUTE: &str = "kube_test__podinfo__app_example_com____podinfo_primary";

pub fn skipper() -> Vec<Series> {
    let status = |route, code| vec![("route", route), ("code", code), ("le", "+Inf")];
    vec![
        counter(
            "skipper_response_duration_seconds_bucket",
            &status(SKIPPER_CANARY_ROUTE, "200"),
            985.0,
        ),
        counter(
            "skipper_response_duration_seconds_bucket",
            &status(SKIPPER_CANARY_ROUTE, "502"),
            15.0,
        ),
        counter(
            "skipper_response_duration_seconds_bucket",
            &status(SKIPPER_PRIMARY_ROUTE, "502"),
            500.0,
        ),
        // Mean 87.3ms for the canary route, 2s for the primary.
        counter(
            "skipper_serve_route_duration_seconds_sum",
            &[("route", SKIPPER_CANARY_ROUTE)],
            87.3,
        ),
        counter(
            "skipper_serve_route_duration_seconds_count",
            &[("route", SKIPPER_CANARY_ROUTE)],
            1000.0,
        ),
        counter(
            "skipper_serve_route_duration_seconds_sum",
            &[("route", SKIPPER_PRIMARY_ROUTE)],
            2000.0,
        ),
        counter(
            "skipper_serve_route_duration_seconds_count",
            &[("route", SKIPPER_PRIMARY_ROUTE)],
            1000.0,
        ),
    ]
}

pub fn traefik() -> Vec<Series> {
    let name = "traefik_service_request_duration_seconds";
    let canary = "test-podinfo-canary-80@kubernetescrd";
    let mut series = latency(
        name,
        &[("service", canary), ("code", "200")],
        S_BOUNDS,
        990.0,
    );
    series.extend(latency(
        name,
        &[("service", canary), ("code", "500")],
        S_BOUNDS,
        10.0,
    ));
    series.extend(slow(
        name,
        &[
            ("service", "test-podinfo-primary-80@kubernetescrd"),
            ("code", "500"),
        ],
        S_BOUNDS,
        1000.0,
    ));
    series
}

pub fn apisix() -> Vec<Series> {
    let canary = "test_podinfo-podinfo-canary_9898";
    let mut series = vec![
        counter(
            "apisix_http_status",
            &[("route", canary), ("code", "200")],
            940.0,
        ),
        counter(
            "apisix_http_status",
            &[("route", canary), ("code", "500")],
            60.0,
        ),
        counter(
            "apisix_http_status",
            &[
                ("route", "test_podinfo-podinfo-primary_9898"),
                ("code", "500"),
            ],
            500.0,
        ),
    ];
    series.extend(latency(
        "apisix_http_latency",
        &[("type", "request"), ("route", canary)],
        MS_BOUNDS,
        1000.0,
    ));
    // Upstream latency of the same route is not what the builtin measures.
    series.extend(slow(
        "apisix_http_latency",
        &[("type", "upstream"), ("route", canary)],
        MS_BOUNDS,
        1000.0,
    ));
    series
}

pub fn osm() -> Vec<Series> {
    let dest = |name| {
        vec![
            ("destination_namespace", "test"),
            ("destination_kind", "Deployment"),
            ("destination_name", name),
        ]
    };
    let code = |name, code| {
        let mut labels = dest(name);
        labels.push(("response_code", code));
        labels
    };
    let mut series = vec![
        counter("osm_request_total", &code("podinfo", "200"), 999.0),
        counter("osm_request_total", &code("podinfo", "500"), 1.0),
        counter("osm_request_total", &code("podinfo-primary", "500"), 500.0),
    ];
    series.extend(latency(
        "osm_request_duration_ms",
        &dest("podinfo"),
        MS_BOUNDS,
        1000.0,
    ));
    series.extend(slow(
        "osm_request_duration_ms",
        &dest("podinfo-primary"),
        MS_BOUNDS,
        1000.0,
    ));
    series
}

/// The application's own histogram (Kubernetes and Gateway API builtins), in seconds.
pub fn http() -> Vec<Series> {
    let pod = |name, status| {
        vec![
            ("kubernetes_namespace", "test"),
            ("kubernetes_pod_name", name),
            ("status", status),
        ]
    };
    let name = "http_request_duration_seconds";
    let mut series = latency(
        name,
        &pod("podinfo-7b9c8d6f5-x2x4z", "200"),
        S_BOUNDS,
        920.0,
    );
    series.extend(latency(
        name,
        &pod("podinfo-7b9c8d6f5-x2x4z", "500"),
        S_BOUNDS,
        80.0,
    ));
    series.extend(slow(
        name,
        &pod("podinfo-primary-6d9f8b7c4-k8s2m", "500"),
        S_BOUNDS,
        1000.0,
    ));
    series
}

/// Every router's series at once, as one Prometheus would hold them.
pub fn all() -> Vec<Series> {
    [
        istio(),
        linkerd(),
        appmesh(),
        contour(),
        gloo(),
        kuma(),
        knative(),
        nginx(),
        skipper(),
        traefik(),
        apisix(),
        osm(),
        http(),
    ]
    .into_iter()
    .flatten()
    .collect()
}
