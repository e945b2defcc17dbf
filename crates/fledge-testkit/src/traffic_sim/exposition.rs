//! What the simulated data plane reports: counters and latency histograms per version and
//! status, rendered in the Prometheus text format under the names each mesh uses — so the
//! builtin queries of every provider (Istio, Linkerd, Contour/Gloo's Envoy, NGINX, Traefik,
//! the app's own `http_requests_total`) find the series they expect.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::routes::Version;

/// Histogram bucket bounds in milliseconds (`+Inf` is implied).
const BUCKETS_MS: [f64; 13] = [
    1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
];

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
        let index = BUCKETS_MS
            .iter()
            .position(|bound| latency_ms <= *bound)
            .unwrap_or(BUCKETS_MS.len());
        self.buckets[index] += 1;
    }

    /// Cumulative counts per bound, `(le in ms, count)`, ending with `+Inf`.
    fn cumulative(&self) -> Vec<(Option<f64>, u64)> {
        let mut total = 0;
        let mut out = Vec::with_capacity(BUCKETS_MS.len() + 1);
        for (i, bound) in BUCKETS_MS
            .iter()
            .map(|b| Some(*b))
            .chain([None])
            .enumerate()
        {
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
        let mut families = Families::default();
        for (key, stats) in &self.series {
            istio(&mut families, key, stats);
            linkerd(&mut families, key, stats);
            envoy(&mut families, key, stats);
            nginx(&mut families, key, stats);
            traefik(&mut families, key, stats);
            app(&mut families, key, stats);
        }
        families.into_text()
    }
}

/// Labels of one sample.
type Labels = Vec<(&'static str, String)>;

/// Samples grouped by metric family, each family written once with its `# TYPE`.
#[derive(Default)]
struct Families(BTreeMap<&'static str, (&'static str, String)>);

impl Families {
    fn sample(
        &mut self,
        family: &'static str,
        kind: &'static str,
        name: &str,
        labels: &[(&'static str, String)],
        value: &str,
    ) {
        let body = &mut self.0.entry(family).or_insert((kind, String::new())).1;
        let labels: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect();
        let _ = writeln!(body, "{name}{{{}}} {value}", labels.join(","));
    }

    fn counter(&mut self, family: &'static str, labels: &[(&'static str, String)], stats: &Stats) {
        self.sample(family, "counter", family, labels, &stats.count.to_string());
    }

    /// Writes `<family>_bucket`, `_sum` and `_count`; `scale` turns milliseconds into the unit.
    fn histogram(
        &mut self,
        family: &'static str,
        labels: &[(&'static str, String)],
        stats: &Stats,
        scale: f64,
    ) {
        for (bound, count) in stats.cumulative() {
            let mut with_le = labels.to_vec();
            with_le.push((
                "le",
                bound.map_or_else(|| "+Inf".to_owned(), |b| format_number(b * scale)),
            ));
            self.sample(
                family,
                "histogram",
                &format!("{family}_bucket"),
                &with_le,
                &count.to_string(),
            );
        }
        self.sample(
            family,
            "histogram",
            &format!("{family}_sum"),
            labels,
            &format_number(stats.sum_ms * scale),
        );
        self.sample(
            family,
            "histogram",
            &format!("{family}_count"),
            labels,
            &stats.count.to_string(),
        );
    }

    fn into_text(self) -> String {
        let mut out = String::new();
        for (family, (kind, body)) in self.0 {
            let _ = writeln!(out, "# TYPE {family} {kind}");
            out.push_str(&body);
        }
        out
    }
}

/// Istio, as reported by the destination's sidecar (the builtin queries select reporter=destination).
fn istio(families: &mut Families, key: &SeriesKey, stats: &Stats) {
    let ns = &key.namespace;
    let labels: Labels = vec![
        ("reporter", "destination".to_owned()),
        ("source_workload", "fledge-traffic-sim".to_owned()),
        ("destination_workload_namespace", ns.clone()),
        ("destination_workload", key.workload()),
        (
            "destination_service",
            format!("{}.{ns}.svc.cluster.local", key.service),
        ),
        ("destination_service_name", key.service.clone()),
        ("destination_service_namespace", ns.clone()),
        ("response_code", key.status.to_string()),
    ];
    families.counter("istio_requests_total", &labels, stats);
    families.histogram("istio_request_duration_milliseconds", &labels, stats, 1.0);
}

/// Linkerd's proxy, inbound side.
fn linkerd(families: &mut Families, key: &SeriesKey, stats: &Stats) {
    let labels: Labels = vec![
        ("direction", "inbound".to_owned()),
        ("namespace", key.namespace.clone()),
        ("deployment", key.workload()),
        (
            "classification",
            if key.status >= 500 {
                "failure"
            } else {
                "success"
            }
            .to_owned(),
        ),
        ("status_code", key.status.to_string()),
    ];
    families.counter("response_total", &labels, stats);
    families.histogram("response_latency_ms", &labels, stats, 1.0);
}

/// Envoy clusters as Contour and Gloo name them.
fn envoy(families: &mut Families, key: &SeriesKey, stats: &Stats) {
    let ns = &key.namespace;
    for cluster in [
        format!("{ns}_{}-{}_{}", key.service, key.role(), key.port),
        format!(
            "{ns}-{}-{}upstream-{}_{ns}",
            key.target,
            key.role(),
            key.port
        ),
    ] {
        let labels: Labels = vec![
            ("envoy_cluster_name", cluster),
            ("envoy_response_code", key.status.to_string()),
        ];
        families.counter("envoy_cluster_upstream_rq", &labels, stats);
        families.histogram("envoy_cluster_upstream_rq_time", &labels, stats, 1.0);
    }
}

/// NGINX ingress: the canary label names the canary upstream, empty for the primary.
fn nginx(families: &mut Families, key: &SeriesKey, stats: &Stats) {
    let canary_upstream = match key.version {
        Version::Canary => format!("{}-{}-canary-{}", key.namespace, key.service, key.port),
        Version::Primary => String::new(),
    };
    let labels: Labels = vec![
        ("namespace", key.namespace.clone()),
        ("ingress", key.ingress.clone()),
        ("canary", canary_upstream),
        ("status", key.status.to_string()),
    ];
    families.counter("nginx_ingress_controller_requests", &labels, stats);
    let family = "nginx_ingress_controller_response_duration_seconds";
    families.sample(
        family,
        "histogram",
        &format!("{family}_sum"),
        &labels,
        &format_number(stats.sum_ms / 1000.0),
    );
    families.sample(
        family,
        "histogram",
        &format!("{family}_count"),
        &labels,
        &stats.count.to_string(),
    );
}

/// Traefik services (seconds).
fn traefik(families: &mut Families, key: &SeriesKey, stats: &Stats) {
    let labels: Labels = vec![
        (
            "service",
            format!(
                "{}-{}-{}-{}@kubernetescrd",
                key.namespace,
                key.target,
                key.role(),
                key.port
            ),
        ),
        ("code", key.status.to_string()),
        ("method", "GET".to_owned()),
        ("protocol", "http".to_owned()),
    ];
    families.counter("traefik_service_requests_total", &labels, stats);
    families.histogram(
        "traefik_service_request_duration_seconds",
        &labels,
        stats,
        0.001,
    );
}

/// The app's own metrics (what the `kubernetes` and Gateway API providers' builtins read).
fn app(families: &mut Families, key: &SeriesKey, stats: &Stats) {
    let labels: Labels = vec![
        ("kubernetes_namespace", key.namespace.clone()),
        (
            "kubernetes_pod_name",
            format!("{}-5d8f7c9b4-sim00", key.workload()),
        ),
        ("status", key.status.to_string()),
    ];
    families.counter("http_requests_total", &labels, stats);
    families.histogram("http_request_duration_seconds", &labels, stats, 0.001);
}

fn format_number(n: f64) -> String {
    let text = format!("{n}");
    if text.contains('.') || text.contains('e') {
        text
    } else {
        format!("{text}.0")
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(version: Version, status: u16) -> SeriesKey {
        SeriesKey {
            namespace: "test".into(),
            service: "podinfo".into(),
            target: "podinfo".into(),
            port: 9898,
            ingress: "podinfo".into(),
            version,
            status,
        }
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
            let prefix = format!(
                r#"istio_request_duration_milliseconds_bucket{{reporter="destination",source_workload="fledge-traffic-sim",destination_workload_namespace="test",destination_workload="podinfo",destination_service="podinfo.test.svc.cluster.local",destination_service_name="podinfo",destination_service_namespace="test",response_code="200",le="{le}"}} "#
            );
            text.lines()
                .find_map(|l| l.strip_prefix(prefix.as_str()))
                .map(str::to_owned)
        };
        assert_eq!(bucket("5.0").as_deref(), Some("1"));
        assert_eq!(bucket("25.0").as_deref(), Some("2"));
        assert_eq!(bucket("1000.0").as_deref(), Some("3"));
        assert_eq!(bucket("+Inf").as_deref(), Some("4"));
        assert!(text.contains(r#"traefik_service_request_duration_seconds_bucket{service="test-podinfo-canary-9898@kubernetescrd",code="200",method="GET",protocol="http",le="0.025"} 2"#), "{text}");
    }
}
