//! [`LocalGraphite`]: a real Graphite — Debian's `carbon-cache` (the `graphite-carbon`
//! package) storing whisper files, and `graphite-web` (the `graphite-web` package, a Django
//! application) serving the render API — in a temporary directory, fed over carbon's
//! plaintext protocol.
//!
//! graphite-web runs as Debian sets it up (`django-admin migrate` on its SQLite database,
//! a `local_settings.py` naming the storage directories), served by Django's own server on
//! a free port; it reads points carbon has not written yet from carbon's cache query port.
//! graphite-web has no setting that guards the render API (deployments put a proxy with
//! basic auth in front); [`LocalGraphiteBuilder::basic_auth`] adds a Django middleware that
//! requires HTTP basic auth checked against graphite-web's own user database.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::AsyncWriteExt as _;

use crate::binaries::on_path;
use crate::error::{Error, Result};
use crate::process::{ManagedProcess, free_port, is_port_conflict};
use crate::stale;

/// Prefix of a [`LocalGraphite`]'s temporary directory.
pub const GRAPHITE_DIR_PREFIX: &str = "fledge-graphite-";
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const PORT_ATTEMPTS: usize = 3;
/// How long [`LocalGraphite::feed`] waits until graphite-web shows the points.
const FEED_TIMEOUT: Duration = Duration::from_secs(20);
/// How to get the binaries, in words a developer can act on.
const HOW_TO_INSTALL: &str =
    "run `cargo xtask control-plane` or `apt-get install graphite-carbon graphite-web`";

/// Every point kept at one-second precision for six hours.
const STORAGE_SCHEMAS: &str = "[default]\npattern = .*\nretentions = 1s:6h\n";

/// The middleware [`LocalGraphiteBuilder::basic_auth`] installs: every request needs basic
/// auth of a graphite-web user.
const AUTH_MIDDLEWARE: &str = r#"import base64

from django.contrib.auth import authenticate
from django.http import HttpResponse


class BasicAuthMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        header = request.META.get('HTTP_AUTHORIZATION', '')
        if header.startswith('Basic '):
            try:
                decoded = base64.b64decode(header[6:]).decode('utf-8')
            except (ValueError, UnicodeDecodeError):
                decoded = ''
            username, _, password = decoded.partition(':')
            if authenticate(request, username=username, password=password) is not None:
                return self.get_response(request)
        response = HttpResponse('Unauthorized: basic auth of a graphite-web user is required\n',
                                status=401, content_type='text/plain')
        response['WWW-Authenticate'] = 'Basic realm="graphite"'
        return response
"#;

/// Options of a [`LocalGraphite`].
#[derive(Clone, Debug, Default)]
pub struct LocalGraphiteBuilder {
    basic_auth: Option<(String, String)>,
}

impl LocalGraphiteBuilder {
    /// Creates the graphite-web user `username` and refuses every request without its
    /// basic auth (401 with `WWW-Authenticate: Basic`).
    pub fn basic_auth(mut self, username: &str, password: &str) -> Self {
        self.basic_auth = Some((username.to_owned(), password.to_owned()));
        self
    }

    /// Starts carbon-cache and graphite-web and waits until both answer.
    ///
    /// # Errors
    /// [`Error::BinaryMissing`] when the packages are not installed; [`Error::ExitedEarly`]
    /// / [`Error::NotReady`] (with the log tail) when a server does not come up.
    pub async fn start(self) -> Result<LocalGraphite> {
        let carbon = locate("carbon-cache")?;
        let django = locate("django-admin")?;
        stale::sweep();
        let dir = tempfile::Builder::new()
            .prefix(GRAPHITE_DIR_PREFIX)
            .tempdir()
            .map_err(|e| Error::io("create temp dir", std::env::temp_dir(), e))?;
        stale::mark_owner(dir.path())?;
        for sub in ["storage/whisper", "log", "pid"] {
            let path = dir.path().join(sub);
            std::fs::create_dir_all(&path).map_err(|e| Error::io("create", &path, e))?;
        }
        write(&dir.path().join("storage-schemas.conf"), STORAGE_SCHEMAS)?;
        if self.basic_auth.is_some() {
            write(&dir.path().join("fledge_graphite_auth.py"), AUTH_MIDDLEWARE)?;
        }
        let http = reqwest::Client::new();
        let mut attempt = 0;
        let servers = loop {
            attempt += 1;
            match self.start_once(dir.path(), &carbon, &django, &http).await {
                Err(e) if attempt < PORT_ATTEMPTS && port_conflict(&e) => {}
                other => break other?,
            }
        };
        stale::record_pids(dir.path(), &[servers.carbon.pid(), servers.web.pid()])?;
        Ok(LocalGraphite {
            url: servers.url,
            carbon_port: servers.carbon_port,
            basic_auth: self.basic_auth,
            http,
            _web: servers.web,
            _carbon: servers.carbon,
            dir,
        })
    }

    async fn start_once(
        &self,
        dir: &Path,
        carbon: &Path,
        django: &Path,
        http: &reqwest::Client,
    ) -> Result<Servers> {
        let (line_port, pickle_port, query_port, web_port) =
            (free_port()?, free_port()?, free_port()?, free_port()?);
        let config = dir.join("carbon.conf");
        write(
            &config,
            &carbon_conf(dir, line_port, pickle_port, query_port),
        )?;
        write(
            &dir.join("local_settings.py"),
            &self.local_settings(dir, query_port),
        )?;
        self.prepare_database(dir, django)?;

        let args = vec![
            format!("--config={}", config.display()),
            format!("--pidfile={}", dir.join("pid/carbon-cache.pid").display()),
            "--nodaemon".to_owned(),
            "--logfile=-".to_owned(),
            "start".to_owned(),
        ];
        let mut carbon_process =
            ManagedProcess::spawn("carbon-cache", carbon, &args, &dir.join("carbon.log"))?;
        carbon_process
            .wait_ready(READY_TIMEOUT, || async move {
                tokio::net::TcpStream::connect(("127.0.0.1", line_port))
                    .await
                    .map(|_| true)
                    .map_err(|e| e.to_string())
            })
            .await?;

        let args = vec![
            "runserver".to_owned(),
            format!("127.0.0.1:{web_port}"),
            "--noreload".to_owned(),
            "--settings=graphite.settings".to_owned(),
            format!("--pythonpath={}", dir.display()),
        ];
        let mut web =
            ManagedProcess::spawn("graphite-web", django, &args, &dir.join("graphite-web.log"))?;
        let url = format!("http://127.0.0.1:{web_port}");
        let probe = format!("{url}/render?target=fledge.ready&format=json");
        let auth = self.basic_auth.clone();
        web.wait_ready(READY_TIMEOUT, || {
            let mut request = http.get(&probe).timeout(Duration::from_secs(2));
            if let Some((user, password)) = &auth {
                request = request.basic_auth(user, Some(password));
            }
            async move {
                let response = request.send().await.map_err(|e| e.to_string())?;
                Ok(response.status().is_success())
            }
        })
        .await?;
        Ok(Servers {
            url,
            carbon_port: line_port,
            carbon: carbon_process,
            web,
        })
    }

    /// graphite-web's `local_settings.py`: storage in `dir`, carbon's cache query port.
    fn local_settings(&self, dir: &Path, query_port: u16) -> String {
        let path = |sub: &str| format!("{:?}", dir.join(sub).display().to_string());
        let conf = format!("{:?}", dir.display().to_string());
        let mut settings = format!(
            "SECRET_KEY = 'fledge-testkit'\n\
             DEBUG = False\n\
             STORAGE_DIR = {storage}\n\
             WHISPER_DIR = {whisper}\n\
             INDEX_FILE = {index}\n\
             LOG_DIR = {log}\n\
             CONF_DIR = {conf}\n\
             CARBONLINK_HOSTS = ['127.0.0.1:{query_port}']\n\
             DATABASES = {{'default': {{'NAME': {db}, 'ENGINE': 'django.db.backends.sqlite3'}}}}\n",
            storage = path("storage"),
            whisper = path("storage/whisper"),
            index = path("storage/index"),
            log = path("log"),
            conf = conf,
            db = path("storage/graphite.db"),
        );
        if self.basic_auth.is_some() {
            // The application settings are read here, so the middleware can be added.
            settings.push_str(
                "from graphite.app_settings import *  # noqa\n\
                 GRAPHITE_WEB_APP_SETTINGS_LOADED = True\n\
                 MIDDLEWARE = MIDDLEWARE + ('fledge_graphite_auth.BasicAuthMiddleware',)\n",
            );
        }
        settings
    }

    /// `django-admin migrate`, and the basic-auth user, as graphite-web's Debian set-up does.
    fn prepare_database(&self, dir: &Path, django: &Path) -> Result<()> {
        let run = |args: &[&str], env: &[(&str, &str)], what: &str| -> Result<()> {
            let output = Command::new(django)
                .args(args)
                .arg("--settings=graphite.settings")
                .arg(format!("--pythonpath={}", dir.display()))
                .envs(env.iter().copied())
                .output()
                .map_err(|source| Error::Spawn {
                    name: format!("django-admin {what}"),
                    path: django.to_owned(),
                    source,
                })?;
            if output.status.success() {
                return Ok(());
            }
            Err(Error::ExitedEarly {
                name: format!("django-admin {what}"),
                status: output.status.to_string(),
                log: dir.to_owned(),
                tail: String::from_utf8_lossy(&output.stderr).into_owned(),
            })
        };
        if !dir.join("storage/graphite.db").exists() {
            run(&["migrate", "--noinput"], &[], "migrate")?;
            if let Some((user, password)) = &self.basic_auth {
                run(
                    &[
                        "createsuperuser",
                        "--noinput",
                        "--username",
                        user,
                        "--email",
                        "fledge@localhost",
                    ],
                    &[("DJANGO_SUPERUSER_PASSWORD", password)],
                    "createsuperuser",
                )?;
            }
        }
        Ok(())
    }
}

struct Servers {
    url: String,
    carbon_port: u16,
    carbon: ManagedProcess,
    web: ManagedProcess,
}

/// A carbon-cache and a graphite-web in a temporary directory; both are killed on drop.
pub struct LocalGraphite {
    url: String,
    carbon_port: u16,
    basic_auth: Option<(String, String)>,
    http: reqwest::Client,
    // Dropped before the directory: the web server first, then carbon.
    _web: ManagedProcess,
    _carbon: ManagedProcess,
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for LocalGraphite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalGraphite")
            .field("url", &self.url)
            .field("carbon_port", &self.carbon_port)
            .finish_non_exhaustive()
    }
}

impl LocalGraphite {
    /// Options for an instance with basic auth.
    pub fn builder() -> LocalGraphiteBuilder {
        LocalGraphiteBuilder::default()
    }

    /// Starts a Graphite without authentication.
    ///
    /// # Errors
    /// See [`LocalGraphiteBuilder::start`].
    pub async fn start() -> Result<Self> {
        LocalGraphiteBuilder::default().start().await
    }

    /// graphite-web's base URL (`http://127.0.0.1:PORT`), what a MetricTemplate's
    /// `provider.address` takes.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// carbon's plaintext port (`<path> <value> <timestamp>\n`).
    pub fn carbon_port(&self) -> u16 {
        self.carbon_port
    }

    /// The temporary directory with configuration, whisper files and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Sends points (`path`, value, Unix seconds) over carbon's plaintext protocol and
    /// waits until graphite-web's render API shows each series' newest point.
    ///
    /// # Errors
    /// [`Error::Io`] when carbon refuses the connection; [`Error::NotReady`] when the
    /// points do not show.
    pub async fn feed(&self, points: &[(&str, f64, u64)]) -> Result<()> {
        let mut text = String::new();
        for (path, value, timestamp) in points {
            let _ = writeln!(text, "{path} {value} {timestamp}");
        }
        let carbon = PathBuf::from(format!(
            "carbon plaintext port 127.0.0.1:{}",
            self.carbon_port
        ));
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.carbon_port))
            .await
            .map_err(|e| Error::io("connect to", &carbon, e))?;
        stream
            .write_all(text.as_bytes())
            .await
            .map_err(|e| Error::io("send points to", &carbon, e))?;
        stream
            .shutdown()
            .await
            .map_err(|e| Error::io("send points to", &carbon, e))?;
        let start = Instant::now();
        for (path, value, timestamp) in newest_per_series(points) {
            loop {
                if self.shows(path, value, timestamp).await {
                    break;
                }
                if start.elapsed() > FEED_TIMEOUT {
                    return Err(Error::NotReady {
                        what: format!("point {path} {value} {timestamp} in graphite-web"),
                        waited_ms: FEED_TIMEOUT.as_millis(),
                        detail: String::new(),
                    });
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// Whether the render API shows `value` at `timestamp` for `path`.
    async fn shows(&self, path: &str, value: f64, timestamp: u64) -> bool {
        let url = format!(
            "{}/render?target={path}&from={}&until={}&format=json",
            self.url,
            timestamp.saturating_sub(1),
            timestamp + 1
        );
        let mut request = self.http.get(url).timeout(Duration::from_secs(5));
        if let Some((user, password)) = &self.basic_auth {
            request = request.basic_auth(user, Some(password));
        }
        let Ok(response) = request.send().await else {
            return false;
        };
        let Ok(series) = response.json::<serde_json::Value>().await else {
            return false;
        };
        series
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|s| s["datapoints"].as_array().cloned().unwrap_or_default())
            .any(|point| {
                point[1].as_u64() == Some(timestamp)
                    && point[0].as_f64().is_some_and(|v| (v - value).abs() < 1e-9)
            })
    }
}

/// Unix seconds now, for points fed "just now".
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn newest_per_series<'a>(points: &[(&'a str, f64, u64)]) -> Vec<(&'a str, f64, u64)> {
    let mut newest: Vec<(&str, f64, u64)> = Vec::new();
    for &(path, value, timestamp) in points {
        match newest.iter_mut().find(|(p, _, _)| *p == path) {
            Some(entry) if entry.2 <= timestamp => *entry = (path, value, timestamp),
            Some(_) => {}
            None => newest.push((path, value, timestamp)),
        }
    }
    newest
}

fn carbon_conf(dir: &Path, line_port: u16, pickle_port: u16, query_port: u16) -> String {
    let dir = dir.display();
    format!(
        "[cache]\n\
         STORAGE_DIR = {dir}/storage/\n\
         LOCAL_DATA_DIR = {dir}/storage/whisper/\n\
         CONF_DIR = {dir}/\n\
         LOG_DIR = {dir}/log/\n\
         PID_DIR = {dir}/pid/\n\
         DATABASE = whisper\n\
         USER =\n\
         MAX_CACHE_SIZE = inf\n\
         MAX_UPDATES_PER_SECOND = inf\n\
         MAX_CREATES_PER_MINUTE = inf\n\
         LINE_RECEIVER_INTERFACE = 127.0.0.1\n\
         LINE_RECEIVER_PORT = {line_port}\n\
         ENABLE_UDP_LISTENER = False\n\
         PICKLE_RECEIVER_INTERFACE = 127.0.0.1\n\
         PICKLE_RECEIVER_PORT = {pickle_port}\n\
         CACHE_QUERY_INTERFACE = 127.0.0.1\n\
         CACHE_QUERY_PORT = {query_port}\n\
         LOG_LISTENER_CONNECTIONS = False\n"
    )
}

/// A port taken between choosing and binding it: carbon (Twisted) and Django say so in
/// their own words.
fn port_conflict(error: &Error) -> bool {
    is_port_conflict(error)
        || matches!(
            error,
            Error::ExitedEarly { tail, .. } | Error::NotReady { detail: tail, .. }
                if tail.contains("Address already in use") || tail.contains("port is already in use")
        )
}

fn locate(binary: &'static str) -> Result<PathBuf> {
    on_path(binary).ok_or_else(|| Error::BinaryMissing {
        tool: binary,
        how: HOW_TO_INSTALL.to_owned(),
    })
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::io("write", path, e))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (house rule).
mod tests {
    use super::*;

    #[test]
    fn the_newest_point_of_each_series_is_awaited() {
        let points = [
            ("a", 1.0, 10),
            ("b", 2.0, 5),
            ("a", 3.0, 20),
            ("a", 4.0, 15),
        ];
        assert_eq!(newest_per_series(&points), [("a", 3.0, 20), ("b", 2.0, 5)]);
    }

    #[test]
    fn basic_auth_loads_the_application_settings_before_adding_its_middleware() {
        let settings = LocalGraphite::builder()
            .basic_auth("fledge", "s3cret")
            .local_settings(Path::new("/tmp/g"), 7002);
        assert!(
            settings.contains("WHISPER_DIR = \"/tmp/g/storage/whisper\""),
            "{settings}"
        );
        assert!(
            settings.contains("CARBONLINK_HOSTS = ['127.0.0.1:7002']"),
            "{settings}"
        );
        let app = settings
            .find("from graphite.app_settings import *")
            .unwrap();
        let middleware = settings.find("BasicAuthMiddleware").unwrap();
        assert!(app < middleware, "{settings}");
        assert!(
            !settings.contains("s3cret"),
            "the password is in the database only"
        );
    }
}
