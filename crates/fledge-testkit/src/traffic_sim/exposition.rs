//! What the simulated data plane reports: counters and latency histograms per version and
//! status, rendered in the Prometheus text format under the names each mesh uses — so the
//! builtin queries of every provider (Istio, Linkerd, Contour/Gloo's Envoy, NGINX, Traefik,
//! the app's own `http_requests_total`) find the series they expect.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::routes::Version;

/// Histogram bucket bounds in milliseconds (`+Inf` is implied).
const BUCKETS_MS: [f64; 13] = [1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0];

/// Identifies one series: an app's version answering with one status.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeriesKey {
    /// The app's namespace.
    pub namespace: String,
    /// The apex service (`podinfo`).
    pub service: String,
    /// The target workload (`podinfo`; the primary is `podinfo-primary`).
    pub target: String,
    /// The service port (Envoy and Traefik put it in their cluster names).
    pub port: u16,
    /// The Ingress name NGINX reports.
    pub ingress: String,
    /// Which version answered.
    pub version: Version,
    /// The HTTP status.
    pub status: u16,
}

impl SeriesKey {
    /// The workload's name: `<target>-primary` or `<target>`.
    pub fn workload(&self) -> String {
        match self.version {
            Version::Primary => format!("{}-primary", self.target),
            Version::Canary => self.target.clone(),
        }
    }

    fn role(&self) -> &'static str {
        match self.version {
            Version::Primary => "primary",
            Version::Canary => "canary",
        }
    }
}

/// Count, latency sum and per-bucket counts of one series.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Requests seen.
    pub count: u64,
    /// Sum of their latencies in milliseconds.
    pub sum_ms: f64,
    /// Requests per bucket (not cumulative), one more than the bounds for `+Inf`.
    buckets: Vec<u64>,
}

impl Stats {
    fn observe(&mut self, latency_ms: f64) {
        if self.buckets.is_empty() {
            self.buckets = vec![0; BUCKETS_MS.len() + 1];
        }
        self.count += 1;
        self.sum_ms += latency_ms;
        let index = BUCKETS_MS.iter().position(|bound| latency_ms <= *bound).unwrap_or(BUCKETS_MS.len());
        self.buckets[index] += 1;
    }

    /// Cumulative counts per bound, `(le in ms, count)`, ending with `+Inf`.
    fn cumulative(&self) -> Vec<(Option<f64>, u64)> {
        let mut total = 0;
        let mut out = Vec::with_capacity(BUCKETS_MS.len() + 1);
        for (i, bound) in BUCKETS_MS.iter().map(|b| Some(*b)).chain([None]).enumerate() {
            total += self.buckets.get(i).copied().unwrap_or(0);
            out.push((bound, total));
        }
        out
    }
}

/// Every series the simulator has recorded.
#[derive(Debug, Clone, Default)]
pub struct MetricsStore {
    series: BTreeMap<SeriesKey, Stats>,
}

impl MetricsStore {
    /// Records one request.
    pub fn record(&mut self, key: SeriesKey, latency_ms: f64) {
        self.series.entry(key).or_default().observe(latency_ms);
    }

    /// The recorded series.
    pub fn series(&self) -> impl Iterator<Item = (&SeriesKey, &Stats)> {
        self.series.iter()
    }

    /// The whole exposition, every mesh's metric names.
    pub fn render(&self) -> String {
        let mut families: BTreeMap<&'static str, (&'static str, String)> = BTreeMap::new();
        let mut line = |family: &'static str, kind: &'static str, name: &str, labels: &[(&str, String)], value: String| {
            let body = &mut families.entry(family).or_insert((kind, String::new())).1;
            let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
            let _ = writeln!(body, "{name}{{{}}} {value}", labels.join(","));
        };
        for (key, stats) in &self.series {
            let ns = key.namespace.clone();
            let workload = key.workload();
            let code = key.status.to_string();
            let failed = key.status >= 500;
            let count = stats.count.to_string();

            // Istio (reporter=destination, as the builtin queries select).
            let istio = vec![
                ("reporter", "destination".to_owned()),
                ("source_workload", "fledge-traffic-sim".to_owned()),
                ("destination_workload_namespace", ns.clone()),
                ("destination_workload", workload.clone()),
                ("destination_service", format!("{}.{ns}.svc.cluster.local", key.service)),
                ("destination_service_name", key.service.clone()),
                ("destination_service_namespace", ns.clone()),
            ];
            let mut istio_total = istio.clone();
            istio_total.push(("response_code", code.clone()));
            line("istio_requests_total", "counter", "istio_requests_total", &istio_total, count.clone());
            histogram(&mut line, "istio_request_duration_milliseconds", &istio_total, stats, 1.0);

            // Linkerd proxy, inbound side.
            let linkerd = vec![("direction", "inbound".to_owned()), ("namespace", ns.clone()), ("deployment", workload.clone())];
            let mut linkerd_total = linkerd.clone();
            linkerd_total.push(("classification", if failed { "failure" } else { "success" }.to_owned()));
            linkerd_total.push(("status_code", code.clone()));
            line("response_total", "counter", "response_total", &linkerd_total, count.clone());
            histogram(&mut line, "response_latency_ms", &linkerd_total, stats, 1.0);

            // Envoy clusters as Contour and Gloo name them.
            for cluster in [
                format!("{ns}_{}-{}_{}", key.service, key.role(), key.port),
                format!("{ns}-{}-{}upstream-{}_{ns}", key.target, key.role(), key.port),
            ] {
                let envoy = vec![("envoy_cluster_name", cluster), ("envoy_response_code", code.clone())];
                line("envoy_cluster_upstream_rq", "counter", "envoy_cluster_upstream_rq", &envoy, count.clone());
                histogram(&mut line, "envoy_cluster_upstream_rq_time", &envoy, stats, 1.0);
            }

            // NGINX ingress: the canary label names the canary upstream, empty for the primary.
            let canary_upstream = match key.version {
                Version::Canary => format!("{ns}-{}-canary-{}", key.service, key.port),
                Version::Primary => String::new(),
            };
            let nginx = vec![("namespace", ns.clone()), ("ingress", key.ingress.clone()), ("canary", canary_upstream), ("status", code.clone())];
            line("nginx_ingress_controller_requests", "counter", "nginx_ingress_controller_requests", &nginx, count.clone());
            line("nginx_ingress_controller_response_duration_seconds", "histogram", "nginx_ingress_controller_response_duration_seconds_sum", &nginx, seconds(stats.sum_ms));
            line("nginx_ingress_controller_response_duration_seconds", "histogram", "nginx_ingress_controller_response_duration_seconds_count", &nginx, count.clone());

            // Traefik services (seconds).
            let traefik = vec![
                ("service", format!("{ns}-{}-{}-{}@kubernetescrd", key.target, key.role(), key.port)),
                ("code", code.clone()),
                ("method", "GET".to_owned()),
                ("protocol", "http".to_owned()),
            ];
            line("traefik_service_requests_total", "counter", "traefik_service_requests_total", &traefik, count.clone());
            histogram(&mut line, "traefik_service_request_duration_seconds", &traefik, stats, 0.001);

            // The app's own metrics (the `kubernetes` and Gateway API providers' builtins).
            let app = vec![
                ("kubernetes_namespace", ns.clone()),
                ("kubernetes_pod_name", format!("{workload}-5d8f7c9b4-sim00")),
                ("status", code.clone()),
            ];
            line("http_requests_total", "counter", "http_requests_total", &app, count.clone());
            histogram(&mut line, "http_request_duration_seconds", &app, stats, 0.001);
        }
        let mut out = String::new();
        for (family, (kind, body)) in families {
            let _ = writeln!(out, "# TYPE {family} {kind}");
            out.push_str(&body);
        }
        out
    }
}

/// Writes `<name>_bucket`, `_sum` and `_count`; `scale` turns milliseconds into the unit.
fn histogram(line: &mut impl FnMut(&'static str, &'static str, &str, &[(&str, String)], String), family: &'static str, labels: &[(&str, String)], stats: &Stats, scale: f64) {
    for (bound, count) in stats.cumulative() {
        let mut with_le = labels.to_vec();
        with_le.push(("le", bound.map_or_else(|| "+Inf".to_owned(), |b| format_number(b * scale))));
        line(family, "histogram", &format!("{family}_bucket"), &with_le, count.to_string());
    }
    line(family, "histogram", &format!("{family}_sum"), labels, format_number(stats.sum_ms * scale));
    line(family, "histogram", &format!("{family}_count"), labels, stats.count.to_string());
}

fn seconds(ms: f64) -> String {
    format_number(ms / 1000.0)
}

fn format_number(n: f64) -> String {
    let text = format!("{n}");
    if text.contains('.') || text.contains('e') { text } else { format!("{text}.0") }
}

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(version: Version, status: u16) -> SeriesKey {
        SeriesKey { namespace: "test".into(), service: "podinfo".into(), target: "podinfo".into(), port: 9898, ingress: "podinfo".into(), version, status }
    }

    #[test]
    fn every_provider_family_is_rendered_with_its_labels() {
        let mut store = MetricsStore::default();
        store.record(key(Version::Canary, 200), 12.0);
        store.record(key(Version::Canary, 500), 700.0);
        store.record(key(Version::Primary, 200), 3.0);
        let text = store.render();
        for expected in [
            "# TYPE istio_requests_total counter",
            r#"istio_requests_total{reporter="destination",source_workload="fledge-traffic-sim",destination_workload_namespace="test",destination_workload="podinfo",destination_service="podinfo.test.svc.cluster.local",destination_service_name="podinfo",destination_service_namespace="test",response_code="500"} 1"#,
            r#"destination_workload="podinfo-primary""#,
            r#"response_total{direction="inbound",namespace="test",deployment="podinfo",classification="failure",status_code="500"} 1"#,
            r#"envoy_cluster_upstream_rq{envoy_cluster_name="test_podinfo-canary_9898",envoy_response_code="200"} 1"#,
            r#"envoy_cluster_name="test-podinfo-canaryupstream-9898_test""#,
            r#"nginx_ingress_controller_requests{namespace="test",ingress="podinfo",canary="test-podinfo-canary-9898",status="200"} 1"#,
            r#"nginx_ingress_controller_requests{namespace="test",ingress="podinfo",canary="",status="200"} 1"#,
            r#"traefik_service_requests_total{service="test-podinfo-canary-9898@kubernetescrd",code="200",method="GET",protocol="http"} 1"#,
            r#"http_requests_total{kubernetes_namespace="test",kubernetes_pod_name="podinfo-5d8f7c9b4-sim00",status="200"} 1"#,
        ] {
            assert!(text.contains(expected), "missing {expected}\n{text}");
        }
    }

    #[test]
    fn histograms_are_cumulative_and_scaled() {
        let mut store = MetricsStore::default();
        for latency in [3.0, 12.0, 700.0, 40_000.0] {
            store.record(key(Version::Canary, 200), latency);
        }
        let text = store.render();
        let bucket = |le: &str| {
            let prefix = format!(r#"istio_request_duration_milliseconds_bucket{{reporter="destination",source_workload="fledge-traffic-sim",destination_workload_namespace="test",destination_workload="podinfo",destination_service="podinfo.test.svc.cluster.local",destination_service_name="podinfo",destination_service_namespace="test",response_code="200",le="{le}"}} "#);
            text.lines().find_map(|l| l.strip_prefix(prefix.as_str())).map(str::to_owned)
        };
        assert_eq!(bucket("5.0").as_deref(), Some("1"));
        assert_eq!(bucket("25.0").as_deref(), Some("2"));
        assert_eq!(bucket("1000.0").as_deref(), Some("3"));
        assert_eq!(bucket("+Inf").as_deref(), Some("4"));
        assert!(text.contains(r#"traefik_service_request_duration_seconds_bucket{service="test-podinfo-canary-9898@kubernetescrd",code="200",method="GET",protocol="http",le="0.025"} 2"#), "{text}");
    }
}
