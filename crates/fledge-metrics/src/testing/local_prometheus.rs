//! The `prometheus` binary, started on a free port with a generated config and a temporary
//! data directory, stopped when dropped.

use std::fmt::Write as _;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// Environment variable naming the `prometheus` binary; otherwise it is looked up in `PATH`.
pub const PROMETHEUS_ENV: &str = "FLEDGE_PROMETHEUS";

/// The log line Prometheus writes once it answers queries.
const READY_LINE: &str = "Server is ready to receive web requests.";
const START_TIMEOUT: Duration = Duration::from_secs(30);

// The shell holds Prometheus and kills it as soon as its stdin reaches end of file: when
// `LocalPrometheus` is dropped, or when the test process dies without running destructors.
const WATCHDOG: &str = r#"log="$1"; shift; "$0" "$@" >"$log" 2>&1 </dev/null & pid=$!; read _; kill "$pid" 2>/dev/null; wait "$pid""#;

/// Options of a [`LocalPrometheus`].
#[derive(Clone, Debug, Default)]
pub struct LocalPrometheusBuilder {
    targets: Vec<SocketAddr>,
    basic_auth: Option<(String, String)>,
    tls: Option<(PathBuf, PathBuf)>,
}

impl LocalPrometheusBuilder {
    /// Scrape `target` (`host:port`, path `/metrics`) every second.
    pub fn scrape(mut self, target: SocketAddr) -> Self {
        self.targets.push(target);
        self
    }

    /// Require HTTP basic auth: `user` with a bcrypt hash of the password.
    pub fn basic_auth(mut self, user: &str, bcrypt_hash: &str) -> Self {
        self.basic_auth = Some((user.to_owned(), bcrypt_hash.to_owned()));
        self
    }

    /// Serve HTTPS with this certificate and key (PEM files).
    pub fn tls(mut self, cert: &Path, key: &Path) -> Self {
        self.tls = Some((cert.to_owned(), key.to_owned()));
        self
    }

    /// Starts Prometheus and waits until it is ready.
    ///
    /// # Errors
    /// When the binary is missing (the message says `apt-get install prometheus`), or it
    /// does not become ready within 30 seconds (the message holds its log).
    pub fn start(self) -> io::Result<LocalPrometheus> {
        let binary = find_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("fledge-prometheus-")
            .tempdir()?;
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, self.scrape_config())?;
        let port = free_port()?;
        let mut args = vec![
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--storage.tsdb.retention.time=1h".to_owned(),
            "--log.level=info".to_owned(),
        ];
        if self.basic_auth.is_some() || self.tls.is_some() {
            let web = dir.path().join("web.yml");
            std::fs::write(&web, self.web_config())?;
            args.push(format!("--web.config.file={}", web.display()));
        }
        let log = dir.path().join("prometheus.log");
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg(&binary)
            .arg(&log)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let stdin = child.stdin.take();
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let prometheus = LocalPrometheus {
            child,
            stdin,
            address: format!("{scheme}://127.0.0.1:{port}"),
            log,
            dir,
        };
        prometheus.wait_ready()?;
        Ok(prometheus)
    }

    fn scrape_config(&self) -> String {
        let mut config = String::from(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nscrape_configs:\n",
        );
        if !self.targets.is_empty() {
            config.push_str("  - job_name: fledge-test\n    honor_labels: true\n    static_configs:\n      - targets:\n");
            for target in &self.targets {
                let _ = writeln!(config, "          - '{target}'");
            }
        }
        config
    }

    fn web_config(&self) -> String {
        let mut config = String::new();
        if let Some((cert, key)) = &self.tls {
            let _ = write!(
                config,
                "tls_server_config:\n  cert_file: '{}'\n  key_file: '{}'\n",
                cert.display(),
                key.display()
            );
        }
        if let Some((user, hash)) = &self.basic_auth {
            let _ = write!(config, "basic_auth_users:\n  '{user}': '{hash}'\n");
        }
        config
    }
}

/// A running Prometheus; dropping it stops the process and removes its data.
pub struct LocalPrometheus {
    child: Child,
    stdin: Option<ChildStdin>,
    address: String,
    log: PathBuf,
    // Held so the data directory lives as long as the process.
    dir: tempfile::TempDir,
}

impl LocalPrometheus {
    /// Options for a new instance.
    pub fn builder() -> LocalPrometheusBuilder {
        LocalPrometheusBuilder::default()
    }

    /// A plain HTTP Prometheus scraping `target` every second.
    ///
    /// # Errors
    /// See [`LocalPrometheusBuilder::start`].
    pub fn scraping(target: SocketAddr) -> io::Result<Self> {
        Self::builder().scrape(target).start()
    }

    /// `http://127.0.0.1:PORT` (or `https://`).
    pub fn address(&self) -> &str {
        &self.address
    }

    /// What Prometheus logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The temporary directory holding config and data.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn wait_ready(&self) -> io::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            let log = self.log();
            if log.contains(READY_LINE) {
                return Ok(());
            }
            if log.contains("level=error") && log.contains("err=") {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(io::Error::other(format!(
            "prometheus did not become ready at {}; its log:\n{}",
            self.address,
            self.log()
        )))
    }
}

impl Drop for LocalPrometheus {
    fn drop(&mut self) {
        // End of file on the watchdog's stdin: it kills Prometheus and waits for it.
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_binary() -> io::Result<PathBuf> {
    if let Some(path) = std::env::var_os(PROMETHEUS_ENV).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "{PROMETHEUS_ENV}={} is not a file: install Prometheus with `apt-get install prometheus` \
                     (Debian) or point {PROMETHEUS_ENV} at its binary",
                    path.display()
                ),
            ))
        };
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("prometheus"))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "the prometheus binary was not found in PATH: install it with `apt-get install prometheus` \
                     (Debian) or point {PROMETHEUS_ENV} at one"
                ),
            )
        })
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
