//! [`LocalPrometheus`]: a real Prometheus that scrapes given targets every second, served
//! over plain HTTP or, for tests of a provider's credentials, behind basic auth and TLS.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::binaries::Tool;
use crate::error::{Error, Result};
use crate::process::{ManagedProcess, free_port, is_port_conflict};
use crate::stale;

const READY_TIMEOUT: Duration = Duration::from_secs(30);
const PORT_ATTEMPTS: usize = 3;
/// The log line (at `--log.level=info`) Prometheus writes once it answers queries.
const READY_LOG_LINE: &str = "Server is ready to receive web requests.";

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
/// [`LocalPrometheus::set_targets`] changes them while it runs. Dropped, it is killed; a test
/// process killed outright leaves it to the next start's [sweep](crate::stale).
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

/// Options of a [`LocalPrometheus`]: its scrape targets and how it serves its API.
#[derive(Clone, Debug, Default)]
pub struct LocalPrometheusBuilder {
    targets: Vec<SocketAddr>,
    basic_auth: Option<(String, String)>,
    tls: Option<(PathBuf, PathBuf)>,
}

impl LocalPrometheusBuilder {
    /// Scrapes `target` (`host:port`, path `/metrics`) every second.
    pub fn scrape(mut self, target: SocketAddr) -> Self {
        self.targets.push(target);
        self
    }

    /// Requires HTTP basic auth: `user` with a bcrypt hash of the password
    /// (`htpasswd -nbBC 6 user password`).
    ///
    /// The launcher holds only the hash, so [`LocalPrometheus::query`] and its helpers are
    /// refused by such an instance; it is for testing a client's credentials.
    pub fn basic_auth(mut self, user: &str, bcrypt_hash: &str) -> Self {
        self.basic_auth = Some((user.to_owned(), bcrypt_hash.to_owned()));
        self
    }

    /// Serves HTTPS with this certificate and key (PEM files); [`LocalPrometheus::url`] is
    /// then `https://`.
    pub fn tls(mut self, cert: &Path, key: &Path) -> Self {
        self.tls = Some((cert.to_owned(), key.to_owned()));
        self
    }

    /// Starts Prometheus and waits until it answers queries.
    ///
    /// # Errors
    /// [`Error::BinaryMissing`] when prometheus is not installed; [`Error::ExitedEarly`] /
    /// [`Error::NotReady`] (with its log tail) when it does not come up.
    pub async fn start(self) -> Result<LocalPrometheus> {
        let binary = Tool::Prometheus.locate()?;
        stale::sweep();
        let dir = tempfile::Builder::new()
            .prefix(stale::PROMETHEUS_DIR_PREFIX)
            .tempdir()
            .map_err(|e| Error::io("create temp dir", std::env::temp_dir(), e))?;
        stale::mark_owner(dir.path())?;
        let targets_file = dir.path().join("targets.json");
        write_targets(&targets_file, &self.targets)?;
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, scrape_config(&targets_file))
            .map_err(|e| Error::io("write", &config, e))?;
        let web_config = if self.basic_auth.is_some() || self.tls.is_some() {
            let path = dir.path().join("web.yml");
            std::fs::write(&path, self.web_config()).map_err(|e| Error::io("write", &path, e))?;
            Some(path)
        } else {
            None
        };
        let server = Server {
            binary,
            config,
            web_config,
            scheme: if self.tls.is_some() { "https" } else { "http" },
        };
        // The instance serves with its own certificate: the launcher's client trusts it.
        let http = reqwest::Client::builder()
            .danger_accept_invalid_certs(self.tls.is_some())
            .build()
            .map_err(|e| Error::Prometheus {
                action: "build an HTTP client".to_owned(),
                reason: e.to_string(),
            })?;
        let mut attempt = 0;
        let (process, url) = loop {
            attempt += 1;
            match server.start_once(dir.path(), &http).await {
                Err(e) if attempt < PORT_ATTEMPTS && is_port_conflict(&e) => {}
                other => break other?,
            }
        };
        stale::record_pids(dir.path(), &[process.pid()])?;
        Ok(LocalPrometheus {
            process,
            url,
            targets_file,
            http,
            dir,
        })
    }

    /// Prometheus' `--web.config.file`: TLS and basic auth.
    fn web_config(&self) -> String {
        let mut config = String::new();
        if let Some((cert, key)) = &self.tls {
            let _ = write!(
                config,
                "tls_server_config:\n  cert_file: {:?}\n  key_file: {:?}\n",
                cert.display().to_string(),
                key.display().to_string()
            );
        }
        if let Some((user, hash)) = &self.basic_auth {
            let _ = write!(config, "basic_auth_users:\n  {user:?}: {hash:?}\n");
        }
        config
    }
}

impl LocalPrometheus {
    /// Options for an instance with basic auth, TLS or targets added one by one.
    pub fn builder() -> LocalPrometheusBuilder {
        LocalPrometheusBuilder::default()
    }

    /// Starts a plain HTTP Prometheus scraping `targets` (`host:port`, path `/metrics`)
    /// every second.
    ///
    /// # Errors
    /// See [`LocalPrometheusBuilder::start`].
    pub async fn start(targets: &[SocketAddr]) -> Result<Self> {
        LocalPrometheusBuilder {
            targets: targets.to_vec(),
            ..LocalPrometheusBuilder::default()
        }
        .start()
        .await
    }

    /// The base URL (`http://127.0.0.1:PORT`, or `https://`), what a MetricTemplate's
    /// `provider.address` takes.
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

    /// What Prometheus has logged so far (for a failing test's message).
    pub fn log(&self) -> String {
        let path = self.process.log_path();
        std::fs::read_to_string(path)
            .unwrap_or_else(|e| format!("(cannot read {}: {e})", path.display()))
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
    /// [`Error::Prometheus`] when the request fails or Prometheus reports an error; always
    /// on an instance with [basic auth](LocalPrometheusBuilder::basic_auth).
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

/// How to run the server; the port is chosen anew on each attempt.
struct Server {
    binary: PathBuf,
    config: PathBuf,
    web_config: Option<PathBuf>,
    scheme: &'static str,
}

impl Server {
    async fn start_once(
        &self,
        dir: &Path,
        http: &reqwest::Client,
    ) -> Result<(ManagedProcess, String)> {
        let port = free_port()?;
        let url = format!("{}://127.0.0.1:{port}", self.scheme);
        let mut args = vec![
            format!("--config.file={}", self.config.display()),
            format!(
                "--storage.tsdb.path={}",
                dir.join(format!("data-{port}")).display()
            ),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--storage.tsdb.retention.time=2h".to_owned(),
            // Info, for the ready line behind basic auth (see below).
            "--log.level=info".to_owned(),
        ];
        if let Some(web_config) = &self.web_config {
            args.push(format!("--web.config.file={}", web_config.display()));
        }
        let log = dir.join("prometheus.log");
        let mut process = ManagedProcess::spawn("prometheus", &self.binary, &args, &log)?;
        let ready = format!("{url}/-/ready");
        process
            .wait_ready(READY_TIMEOUT, || {
                let request = http.get(&ready).timeout(Duration::from_secs(2)).send();
                let log = log.clone();
                async move {
                    let status = request.await.map_err(|e| e.to_string())?.status();
                    // Basic auth guards `/-/ready` too, and the launcher has no password:
                    // then the log says when it is ready.
                    Ok(status.is_success()
                        || (status == reqwest::StatusCode::UNAUTHORIZED
                            && std::fs::read_to_string(&log)
                                .is_ok_and(|text| text.contains(READY_LOG_LINE))))
                }
            })
            .await?;
        Ok((process, url))
    }
}

/// Scrape every second the targets listed in `targets_file`, their own labels winning over
/// the target's (`job`, `instance`), as the series under test carry the labels that matter.
fn scrape_config(targets_file: &Path) -> String {
    format!(
        "global: {{ scrape_interval: 1s, evaluation_interval: 1s, scrape_timeout: 1s }}\n\
         scrape_configs:\n\
         - job_name: fledge-testkit\n  \
           honor_labels: true\n  \
           file_sd_configs: [{{ files: [{:?}], refresh_interval: 1s }}]\n",
        targets_file.display().to_string()
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_web_config_quotes_the_tls_files_and_the_bcrypt_hash() {
        let options = LocalPrometheus::builder()
            .tls(Path::new("/tmp/cert.pem"), Path::new("/tmp/key.pem"))
            .basic_auth("fledge", "$2y$06$Iul4dJde.5lEsZ7kmP5R4u");
        assert_eq!(
            options.web_config(),
            "tls_server_config:\n  cert_file: \"/tmp/cert.pem\"\n  key_file: \"/tmp/key.pem\"\n\
             basic_auth_users:\n  \"fledge\": \"$2y$06$Iul4dJde.5lEsZ7kmP5R4u\"\n"
        );
    }
}
