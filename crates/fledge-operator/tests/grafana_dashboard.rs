//! The Grafana dashboard in `deploy/grafana/fledge.json`, held to what Grafana needs to import
//! it and to what its panels must show once a rollout ran.
//!
//! - It imports as a shareable dashboard: `id` null, a `uid`, a `schemaVersion`, panels with
//!   unique ids on Grafana's 24-column grid.
//! - Every panel, query and template variable reads the `$datasource` variable, so the user
//!   picks their Prometheus on import.
//! - The namespace and canary pickers filter every per-canary query.
//! - Against a real Prometheus scraping the operator binary after a promotion and a rollback,
//!   every query (as Grafana interpolates it) parses and returns series, and the pickers list
//!   the rollout's namespace and canary. A failing query is named by its panel. The panels
//!   read what happened: one promotion, one rollback, status failed, the canary weight back
//!   at 0 after reaching maxWeight.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::istio::IstioStage;
use common::podinfo;
use fledge_api::CanaryPhase;
use fledge_testkit::LocalPrometheus;
use serde_json::{Value, json};

/// A short analysis: two weight steps, and the builtin checks that fill
/// `flagger_canary_metric_analysis`.
const ANALYSIS: &str = "  analysis:\n    interval: 10s\n    threshold: 2\n    maxWeight: 40\n    stepWeight: 20\n    metrics:\n    \
     - name: request-success-rate\n      thresholdRange: { min: 99 }\n      interval: 1m\n    \
     - name: request-duration\n      thresholdRange: { max: 500 }\n      interval: 30s\n";

/// The datasource every panel and query names: the dashboard's `datasource` variable.
fn datasource_variable() -> Value {
    json!({ "type": "prometheus", "uid": "${datasource}" })
}

fn dashboard() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/grafana/fledge.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} is not JSON: {e}"))
}

/// Every panel, the rows' nested (collapsed) panels included, rows themselves too.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut all = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        all.push(panel);
        all.extend(panel["panels"].as_array().into_iter().flatten());
    }
    all
}

/// One PromQL query of a panel.
#[derive(Debug)]
struct PanelQuery {
    panel: String,
    ref_id: String,
    expr: String,
}

impl std::fmt::Display for PanelQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "panel {:?} query {}: {}",
            self.panel, self.ref_id, self.expr
        )
    }
}

fn queries(dashboard: &Value) -> Vec<PanelQuery> {
    panels(dashboard)
        .into_iter()
        .flat_map(|panel| {
            let title = panel["title"].as_str().unwrap_or_default().to_owned();
            panel["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |target| PanelQuery {
                    panel: title.clone(),
                    ref_id: target["refId"].as_str().unwrap_or_default().to_owned(),
                    expr: target["expr"].as_str().unwrap_or_default().to_owned(),
                })
        })
        .collect()
}

/// The template variables of type `query`: (name, `label_values(selector, label)`).
fn variable_queries(dashboard: &Value) -> Vec<(String, String)> {
    dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|variable| variable["type"] == "query")
        .map(|variable| {
            let query = &variable["query"];
            let text = query.as_str().or_else(|| query["query"].as_str());
            (
                variable["name"].as_str().unwrap_or_default().to_owned(),
                text.unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// `expr` as Grafana sends it with one value picked per variable: `${name}`, `[[name]]` and
/// `$name` replaced, longer names first so `$__rate_interval` is not read as `$__rate`.
fn interpolate(expr: &str, values: &[(&str, &str)]) -> String {
    let mut sorted = values.to_vec();
    sorted.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
    let mut text = expr.to_owned();
    for (name, value) in sorted {
        for form in [
            format!("${{{name}}}"),
            format!("[[{name}]]"),
            format!("${name}"),
        ] {
            text = text.replace(&form, value);
        }
    }
    text
}

/// Grafana's own variables with the values it would send for a one-hour range on a
/// Prometheus scraped every 15 s, and the pickers set to the rollout's canary.
fn grafana_values<'a>(namespace: &'a str, canary: &'a str) -> [(&'a str, &'a str); 5] {
    [
        ("namespace", namespace),
        ("canary", canary),
        ("__rate_interval", "1m"),
        ("__interval", "15s"),
        ("__range", "1h"),
    ]
}

/// `label_values(selector, label)` as a PromQL query returning one series per value.
fn label_values_as_promql(query: &str) -> String {
    let inner = query
        .trim()
        .strip_prefix("label_values(")
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{query:?} is not label_values(selector, label)"));
    let (selector, label) = inner
        .rsplit_once(',')
        .unwrap_or_else(|| panic!("{query:?} names no label"));
    format!("count by ({}) ({})", label.trim(), selector.trim())
}

#[test]
fn the_dashboard_imports_as_a_shareable_grafana_dashboard() {
    let dashboard = dashboard();
    assert_eq!(
        dashboard["id"],
        Value::Null,
        "id must be null: Grafana assigns it on import"
    );
    let uid = dashboard["uid"].as_str().unwrap_or_default();
    assert!(
        !uid.is_empty()
            && uid.len() <= 40
            && uid
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "uid {uid:?}: Grafana needs 1 to 40 characters of [A-Za-z0-9_-], stable across imports"
    );
    assert!(dashboard["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(
        dashboard["schemaVersion"].as_u64().is_some(),
        "schemaVersion tells Grafana which migrations to run"
    );
    let all = panels(&dashboard);
    assert!(all.len() > 5, "{} panels", all.len());
    let mut ids: Vec<u64> = all.iter().filter_map(|p| p["id"].as_u64()).collect();
    assert_eq!(ids.len(), all.len(), "every panel has a numeric id");
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), all.len(), "panel ids are unique");
    for panel in &all {
        let title = panel["title"].as_str().unwrap_or_default();
        assert!(!title.is_empty(), "a panel without title: {panel}");
        assert!(panel["type"].is_string(), "panel {title:?} has no type");
        let grid = &panel["gridPos"];
        let (x, w, h) = (grid["x"].as_u64(), grid["w"].as_u64(), grid["h"].as_u64());
        assert!(
            grid["y"].is_u64() && h.is_some_and(|h| h > 0),
            "panel {title:?}: gridPos {grid}"
        );
        assert!(
            x.zip(w).is_some_and(|(x, w)| w > 0 && x + w <= 24),
            "panel {title:?} leaves Grafana's 24 columns: {grid}"
        );
        if panel["type"] == "row" {
            assert!(panel["targets"].is_null(), "row {title:?} has queries");
        } else {
            assert!(
                panel["targets"].as_array().is_some_and(|t| !t.is_empty()),
                "panel {title:?} has no query"
            );
        }
    }
}

#[test]
fn every_panel_query_and_variable_reads_the_datasource_variable() {
    let dashboard = dashboard();
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("templating.list");
    let datasource = variables
        .iter()
        .find(|v| v["name"] == "datasource")
        .expect("a datasource variable");
    assert_eq!(datasource["type"], "datasource");
    assert_eq!(
        datasource["query"], "prometheus",
        "it offers the Prometheus data sources"
    );
    for panel in panels(&dashboard)
        .into_iter()
        .filter(|p| p["type"] != "row")
    {
        let title = &panel["title"];
        assert_eq!(panel["datasource"], datasource_variable(), "panel {title}");
        for target in panel["targets"].as_array().into_iter().flatten() {
            assert_eq!(
                target["datasource"],
                datasource_variable(),
                "panel {title} query {}",
                target["refId"]
            );
            assert!(
                target["expr"].as_str().is_some_and(|e| !e.is_empty()),
                "panel {title} query {} has no expr",
                target["refId"]
            );
        }
    }
    for variable in variables.iter().filter(|v| v["type"] == "query") {
        assert_eq!(
            variable["datasource"],
            datasource_variable(),
            "variable {}",
            variable["name"]
        );
    }
}

#[test]
fn the_namespace_and_canary_pickers_filter_every_canary_query() {
    let dashboard = dashboard();
    let names: Vec<String> = variable_queries(&dashboard)
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(names, ["namespace", "canary"]);
    let (_, canary_query) = &variable_queries(&dashboard)[1];
    assert!(
        canary_query.contains("$namespace"),
        "the canary picker lists the picked namespaces' canaries: {canary_query}"
    );
    for query in queries(&dashboard) {
        if query.expr.contains("flagger_canary_") {
            assert!(query.expr.contains("$namespace"), "{query}");
        }
        // flagger_canary_total is counted per namespace only, as in Flagger.
        if query.expr.contains("flagger_canary_") && !query.expr.contains("flagger_canary_total") {
            assert!(query.expr.contains("$canary"), "{query}");
        }
        let sent = interpolate(&query.expr, &grafana_values("test", "podinfo"));
        assert!(
            !sent.contains('$') && !sent.contains("[["),
            "{query} uses a variable the dashboard does not define: {sent}"
        );
    }
}

#[tokio::test]
async fn every_dashboard_query_returns_series_after_a_promotion_and_a_rollback() {
    let dashboard = dashboard();
    let istio = IstioStage::set_up(ANALYSIS, |app| app).await;
    let (stage, ns) = (&istio.stage, istio.ns());
    // The demo's Prometheus scrapes the operator beside the traffic, keeping the metrics'
    // own labels as a PodMonitor with honorLabels does.
    let operator = SocketAddr::from(([127, 0, 0, 1], istio.operator.port));
    istio
        .prometheus
        .set_targets(&[istio.sim.metrics_addr(), operator])
        .expect("the scrape targets are written");
    istio
        .prometheus
        .wait_for_targets_up(2, Duration::from_secs(30))
        .await
        .expect("Prometheus scrapes the traffic simulator and the operator");

    stage.reaches(CanaryPhase::Initialized, 30).await;
    stage.kubectl_apply(podinfo("podinfo:6.0.1", None)).await;
    stage.reaches(CanaryPhase::Succeeded, 150).await;
    let mut bad = podinfo("podinfo:6.0.2", None);
    bad["spec"]["template"]["spec"]["containers"][0]["env"] =
        json!([{ "name": "FLEDGE_SIM_ERROR_RATE", "value": "0.3" }]);
    stage.kubectl_apply(bad).await;
    stage.reaches(CanaryPhase::Failed, 150).await;

    let values = grafana_values(&ns, "podinfo");
    let panel_queries: Vec<(String, String)> = queries(&dashboard)
        .iter()
        .map(|query| (query.to_string(), interpolate(&query.expr, &values)))
        .collect();
    assert!(panel_queries.len() > 8, "{panel_queries:#?}");
    // Prometheus scrapes every second: wait for the last ticks' series to be stored.
    let failures = until_every_query_has_series(&istio.prometheus, &panel_queries).await;
    assert!(
        failures.is_empty(),
        "dashboard queries without data after a promotion and a rollback:\n{}",
        failures.join("\n")
    );

    // The panels read what happened: one promotion, one rollback, the canary failed, all
    // traffic back on the primary after the canary had reached maxWeight.
    let sent = |panel: &str, ref_id: &str| {
        let query = queries(&dashboard)
            .into_iter()
            .find(|q| q.panel == panel && q.ref_id == ref_id)
            .unwrap_or_else(|| panic!("no query {ref_id} in panel {panel:?}"));
        interpolate(&query.expr, &values)
    };
    let last_canary_weight = format!(
        "max_over_time(({})[10m:1s])",
        sent("Traffic weight: primary vs canary", "B")
    );
    for (what, promql, expected) in [
        ("promotions", sent("Promotions", "A"), 1.0),
        ("rollbacks", sent("Rollbacks", "A"), 1.0),
        ("status (2 failed)", sent("Status", "A"), 2.0),
        (
            "primary weight",
            sent("Traffic weight: primary vs canary", "A"),
            100.0,
        ),
        (
            "canary weight",
            sent("Traffic weight: primary vs canary", "B"),
            0.0,
        ),
        ("highest canary weight", last_canary_weight, 40.0),
    ] {
        let value = istio.prometheus.query_value(&promql).await;
        assert_eq!(
            value.unwrap_or_else(|e| panic!("{what}: {e}")),
            Some(expected),
            "{what}: {promql}"
        );
    }

    for (name, query) in variable_queries(&dashboard) {
        let promql = interpolate(&label_values_as_promql(&query), &values);
        let listed = istio
            .prometheus
            .query(&promql)
            .await
            .unwrap_or_else(|e| panic!("variable {name}: {promql}: {e}"));
        let label = if name == "canary" {
            "name"
        } else {
            "namespace"
        };
        let wanted = if name == "canary" { "podinfo" } else { &ns };
        assert!(
            listed.iter().any(|series| series.labels[label] == wanted),
            "the {name} picker ({query}) does not offer {wanted}: {listed:?}"
        );
    }
    drop(istio.operator);
}

/// Runs every (what, PromQL) until each returned at least one series, or 30 s passed; what
/// still fails then, with Prometheus' error or "no series".
async fn until_every_query_has_series(
    prometheus: &LocalPrometheus,
    queries: &[(String, String)],
) -> Vec<String> {
    let started = Instant::now();
    loop {
        let mut failures = Vec::new();
        for (what, promql) in queries {
            match prometheus.query(promql).await {
                Ok(series) if !series.is_empty() => {}
                Ok(_) => failures.push(format!("{what}\n  sent {promql}\n  no series")),
                Err(error) => failures.push(format!("{what}\n  sent {promql}\n  {error}")),
            }
        }
        if failures.is_empty() || started.elapsed() > Duration::from_secs(30) {
            return failures;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
