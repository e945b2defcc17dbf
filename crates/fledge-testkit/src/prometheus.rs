//! [`LocalPrometheus`]: a real Prometheus that scrapes given targets every second.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::binaries::Tool;
use crate::error::{Error, Result};
use crate::process::{ManagedProcess, free_port, is_port_conflict};
use crate::stale;

const READY_TIMEOUT: Duration = Duration::from_secs(30);
const PORT_ATTEMPTS: usize = 3;

/// One series of an instant query's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series' labels.
    pub labels: BTreeMap<String, String>,
    /// Its value at the query time.
    pub value: f64,
}

/// A Prometheus server in a temporary directory, scraping its targets every second.
///
/// Targets are read from a file-based service discovery file, so
/// [`LocalPrometheus::set_targets`] changes them while it runs. Dropped, it is killed.
pub struct LocalPrometheus {
    process: ManagedProcess,
    url: String,
    targets_file: PathBuf,
    http: reqwest::Client,
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for LocalPrometheus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalPrometheus")
            .field("url", &self.url)
            .field("pid", &self.process.pid())
            .finish_non_exhaustive()
    }
}

impl LocalPrometheus {
    /// Starts Prometheus scraping `targets` (`host:port`, path `/metrics`) every second.
    ///
    /// # Errors
    /// [`Error::BinaryMissing`] when prometheus is not installed; [`Error::ExitedEarly`] /
    /// [`Error::NotReady`] (with its log tail) when it does not come up.
    pub async fn start(targets: &[SocketAddr]) -> Result<Self> {
        let binary = Tool::Prometheus.locate()?;
        stale::sweep();
        let dir = tempfile::Builder::new()
            .prefix(stale::PROMETHEUS_DIR_PREFIX)
            .tempdir()
            .map_err(|e| Error::io("create temp dir", std::env::temp_dir(), e))?;
        stale::mark_owner(dir.path())?;
        let targets_file = dir.path().join("targets.json");
        write_targets(&targets_file, targets)?;
        let config = dir.path().join("prometheus.yml");
        let config_text = format!(
            "global: {{ scrape_interval: 1s, evaluation_interval: 1s, scrape_timeout: 1s }}\n\
             scrape_configs:\n\
             - job_name: fledge-testkit\n  \
               file_sd_configs: [{{ files: [{:?}], refresh_interval: 1s }}]\n",
            targets_file.display().to_string()
        );
        std::fs::write(&config, config_text).map_err(|e| Error::io("write", &config, e))?;
        let http = reqwest::Client::new();
        let mut attempt = 0;
        let (process, url) = loop {
            attempt += 1;
            match start_once(&binary, dir.path(), &config, &http).await {
                Err(e) if attempt < PORT_ATTEMPTS && is_port_conflict(&e) => {}
                other => break other?,
            }
        };
        stale::record_pids(dir.path(), &[process.pid()])?;
        Ok(Self {
            process,
            url,
            targets_file,
            http,
            dir,
        })
    }

    /// The base URL (`http://127.0.0.1:PORT`), what a MetricTemplate's `provider.address` takes.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The temporary directory with config, data and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Replaces the scrape targets (picked up within about a second).
    ///
    /// # Errors
    /// [`Error::Io`] when the targets file cannot be written.
    pub fn set_targets(&self, targets: &[SocketAddr]) -> Result<()> {
        write_targets(&self.targets_file, targets)
    }

    /// Runs an instant query and returns its series (a scalar result is one series without labels).
    ///
    /// # Errors
    /// [`Error::Prometheus`] when the request fails or Prometheus reports an error.
    pub async fn query(&self, promql: &str) -> Result<Vec<Sample>> {
        let failed = |reason: String| Error::Prometheus {
            action: format!("query {promql}"),
            reason,
        };
        let url = reqwest::Url::parse_with_params(
            &format!("{}/api/v1/query", self.url),
            &[("query", promql)],
        )
        .map_err(|e| failed(e.to_string()))?;
        let response = self
            .http
            .get(url)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| failed(e.to_string()))?;
        let body: serde_json::Value = response.json().await.map_err(|e| failed(e.to_string()))?;
        if body["status"] != "success" {
            return Err(failed(format!("{}: {}", body["errorType"], body["error"])));
        }
        let data = &body["data"];
        let value_of =
            |pair: &serde_json::Value| pair[1].as_str().and_then(|v| v.parse::<f64>().ok());
        match data["resultType"].as_str() {
            Some("vector") => Ok(data["result"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|series| {
                    let labels = series["metric"]
                        .as_object()
                        .map(|m| {
                            m.iter()
                                .map(|(k, v)| {
                                    (k.clone(), v.as_str().unwrap_or_default().to_owned())
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    Some(Sample {
                        labels,
                        value: value_of(&series["value"])?,
                    })
                })
                .collect()),
            Some("scalar") => Ok(value_of(&data["result"])
                .map(|value| Sample {
                    labels: BTreeMap::new(),
                    value,
                })
                .into_iter()
                .collect()),
            other => Err(failed(format!("unexpected result type {other:?}"))),
        }
    }

    /// Runs a query expected to give one number; `None` when the result is empty.
    ///
    /// # Errors
    /// As [`LocalPrometheus::query`].
    pub async fn query_value(&self, promql: &str) -> Result<Option<f64>> {
        Ok(self.query(promql).await?.first().map(|s| s.value))
    }

    /// Waits until `count` targets are being scraped successfully.
    ///
    /// # Errors
    /// [`Error::NotReady`] after `timeout`.
    pub async fn wait_for_targets_up(&self, count: usize, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        loop {
            let up = self.query("up == 1").await.map_or(0, |s| s.len());
            if up >= count {
                return Ok(());
            }
            if start.elapsed() > timeout {
                return Err(Error::NotReady {
                    what: format!("{count} prometheus scrape targets"),
                    waited_ms: timeout.as_millis(),
                    detail: format!("; {up} are up"),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

async fn start_once(
    binary: &Path,
    dir: &Path,
    config: &Path,
    http: &reqwest::Client,
) -> Result<(ManagedProcess, String)> {
    let port = free_port()?;
    let url = format!("http://127.0.0.1:{port}");
    let args = vec![
        format!("--config.file={}", config.display()),
        format!(
            "--storage.tsdb.path={}",
            dir.join(format!("data-{port}")).display()
        ),
        format!("--web.listen-address=127.0.0.1:{port}"),
        "--storage.tsdb.retention.time=2h".to_owned(),
        "--log.level=warn".to_owned(),
    ];
    let mut process =
        ManagedProcess::spawn("prometheus", binary, &args, &dir.join("prometheus.log"))?;
    let ready = format!("{url}/-/ready");
    process
        .wait_ready(READY_TIMEOUT, || {
            let request = http.get(&ready).timeout(Duration::from_secs(2)).send();
            async move {
                Ok(request
                    .await
                    .map_err(|e| e.to_string())?
                    .status()
                    .is_success())
            }
        })
        .await?;
    Ok((process, url))
}

fn write_targets(path: &Path, targets: &[SocketAddr]) -> Result<()> {
    let list: Vec<String> = targets.iter().map(ToString::to_string).collect();
    let text = serde_json::json!([{ "targets": list, "labels": { "source": "fledge-testkit" } }])
        .to_string();
    // Written whole then renamed, so Prometheus never reads half a file.
    let partial = path.with_extension("partial");
    std::fs::write(&partial, text).map_err(|e| Error::io("write", &partial, e))?;
    std::fs::rename(&partial, path).map_err(|e| Error::io("write", path, e))
}
