//! [`LocalCluster`]: a real etcd and kube-apiserver on loopback ports, for one test.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::binaries::Tool;
use crate::error::{Error, Result};
use crate::operator_rbac::{self, OperatorIdentity, OperatorRequest};
use crate::pki::ApiServerPki;
use crate::process::{ManagedProcess, free_port, is_port_conflict};
use crate::stale;

/// How long the API server may take to report `/readyz` ok.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// One start at a time per test process: two API servers booting at once on a small
/// machine each take twice as long, and a start-up time is only meaningful alone.
static START_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The audit log of the operator's requests, in the cluster's directory.
const AUDIT_LOG: &str = "audit.log";
/// The audit policy file, in the cluster's directory.
const AUDIT_POLICY: &str = "audit-policy.yaml";

/// Start attempts when a freshly picked port was taken by someone else meanwhile.
const PORT_ATTEMPTS: usize = 3;

/// The two binaries a [`LocalCluster`] runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterBinaries {
    /// etcd.
    pub etcd: PathBuf,
    /// kube-apiserver.
    pub kube_apiserver: PathBuf,
}

impl ClusterBinaries {
    /// Finds both the usual way (see [`crate::binaries`]).
    ///
    /// # Errors
    /// [`Error::BinaryMissing`] saying how to get the missing one.
    pub fn locate() -> Result<Self> {
        Ok(Self {
            etcd: Tool::Etcd.locate()?,
            kube_apiserver: Tool::KubeApiserver.locate()?,
        })
    }
}

/// A real Kubernetes control plane (etcd + kube-apiserver) running in a temporary directory.
///
/// Two identities talk to it: the admin ([`LocalCluster::client`], for a test's own set-up
/// and assertions) and the operator's ServiceAccount ([`LocalCluster::operator_client`],
/// [`LocalCluster::operator_kubeconfig_path`]), which has exactly the shipped rights once
/// [`LocalCluster::install_operator_rbac`] ran and whose every request is audited (see
/// [`crate::operator_rbac`]).
///
/// Dropping it kills both processes and removes the directory. If the drop happens while
/// a test panics, the processes' log tails are printed and the directory is kept (its path
/// is printed) for inspection. Otherwise, with `FLEDGE_RBAC_USAGE_DIR` set, the operator's
/// requests are first recorded there.
///
/// ```no_run
/// # async fn demo() -> fledge_testkit::Result<()> {
/// let cluster = fledge_testkit::LocalCluster::start().await?;
/// let ns = cluster.temp_namespace("demo").await?;
/// println!("kubectl --kubeconfig {} -n {} get all", cluster.kubeconfig_path().display(), ns.name());
/// # Ok(()) }
/// ```
pub struct LocalCluster {
    // Field order is drop order: the API server goes before its store.
    apiserver: ManagedProcess,
    etcd: ManagedProcess,
    client: kube::Client,
    kubeconfig: PathBuf,
    server_url: String,
    admin_token: String,
    operator: OperatorIdentity,
    operator_client: kube::Client,
    operator_kubeconfig: PathBuf,
    operator_token: String,
    audit_log: PathBuf,
    /// Why this cluster's operator requests are not recorded (see
    /// [`LocalCluster::narrow_operator_rights`]), if they are not.
    unrecorded: std::sync::Mutex<Option<String>>,
    ca_cert: PathBuf,
    startup: Duration,
    /// Processes started against this cluster by its user (see [`LocalCluster::adopt`]).
    adopted: std::sync::Mutex<Vec<u32>>,
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for LocalCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCluster")
            .field("server_url", &self.server_url)
            .field("kubeconfig", &self.kubeconfig)
            .field("etcd_pid", &self.etcd.pid())
            .field("apiserver_pid", &self.apiserver.pid())
            .finish_non_exhaustive()
    }
}

impl LocalCluster {
    /// Starts etcd and kube-apiserver and waits until the API server is ready.
    ///
    /// # Errors
    /// [`Error::BinaryMissing`] (with how to get it) when a binary is not available,
    /// [`Error::ExitedEarly`] / [`Error::NotReady`] (with the log tail) when a process fails.
    pub async fn start() -> Result<Self> {
        Self::start_with(&ClusterBinaries::locate()?).await
    }

    /// Starts the control plane from the given binaries.
    ///
    /// # Errors
    /// As [`LocalCluster::start`]; a binary that exits during start-up gives
    /// [`Error::ExitedEarly`] with its log tail, and whatever was already started is stopped.
    pub async fn start_with(binaries: &ClusterBinaries) -> Result<Self> {
        let etcd_bin = binaries.etcd.clone();
        let apiserver_bin = binaries.kube_apiserver.clone();
        let _one_at_a_time = START_LOCK.lock().await;
        let started = Instant::now();
        stale::sweep();
        let dir = tempfile::Builder::new()
            .prefix(stale::CLUSTER_DIR_PREFIX)
            .tempdir()
            .map_err(|e| Error::io("create temp dir", std::env::temp_dir(), e))?;
        stale::mark_owner(dir.path())?;
        let pki = ApiServerPki::generate(dir.path())?;

        let (etcd, etcd_url) = start_with_retries(|| start_etcd(&etcd_bin, dir.path())).await?;
        // Recorded at once, so a run killed outright from here on is swept up next time.
        stale::record_pids(dir.path(), &[etcd.pid()])?;
        let (apiserver, port) =
            start_with_retries(|| start_apiserver(&apiserver_bin, dir.path(), &pki, &etcd_url))
                .await?;
        stale::record_pids(dir.path(), &[etcd.pid(), apiserver.pid()])?;

        let server_url = format!("https://127.0.0.1:{port}");
        let kubeconfig = dir.path().join("kubeconfig");
        write_kubeconfig(
            &kubeconfig,
            &server_url,
            &pki.ca_cert,
            &pki.admin_token,
            "admin",
        )?;
        let client = client_from_kubeconfig(&kubeconfig).await?;
        let operator = OperatorIdentity::shipped()?;
        let operator_kubeconfig = dir.path().join("operator.kubeconfig");
        write_kubeconfig(
            &operator_kubeconfig,
            &server_url,
            &pki.ca_cert,
            &pki.operator_token,
            &operator.user(),
        )?;
        let operator_client = client_from_kubeconfig(&operator_kubeconfig).await?;
        let cluster = Self {
            apiserver,
            etcd,
            client,
            kubeconfig,
            server_url,
            admin_token: pki.admin_token,
            operator,
            operator_client,
            operator_kubeconfig,
            operator_token: pki.operator_token,
            audit_log: dir.path().join(AUDIT_LOG),
            unrecorded: std::sync::Mutex::new(None),
            ca_cert: pki.ca_cert,
            startup: started.elapsed(),
            adopted: std::sync::Mutex::default(),
            dir,
        };
        Ok(cluster)
    }

    /// A client with cluster-admin rights.
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// A kubeconfig file with cluster-admin rights, for `kubectl` and a test's own set-up.
    /// The operator under test uses [`LocalCluster::operator_kubeconfig_path`].
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// Applies the operator's shipped identity and rights: the base's Namespace,
    /// ServiceAccount, ClusterRole `fledge` and Role `fledge-leader-election` with their
    /// bindings, exactly as in `deploy/kustomize/base` (in its `namespace:`).
    ///
    /// # Errors
    /// [`Error::Manifest`] / [`Error::Kube`] when a file cannot be read or applied.
    pub async fn install_operator_rbac(&self) -> Result<()> {
        for (origin, object) in self.operator.shipped_objects()? {
            crate::manifests::apply_value(&self.client, object, origin, &self.operator.namespace)
                .await?;
        }
        Ok(())
    }

    /// Who the operator is: the ServiceAccount of the shipped base.
    pub fn operator_identity(&self) -> &OperatorIdentity {
        &self.operator
    }

    /// A client acting as the operator's ServiceAccount (its rights are what
    /// [`LocalCluster::install_operator_rbac`] granted, nothing more).
    pub fn operator_client(&self) -> kube::Client {
        self.operator_client.clone()
    }

    /// A kubeconfig file acting as the operator's ServiceAccount, for the operator binary.
    pub fn operator_kubeconfig_path(&self) -> &Path {
        &self.operator_kubeconfig
    }

    /// The operator ServiceAccount's bearer token.
    pub fn operator_token(&self) -> &str {
        &self.operator_token
    }

    /// Every request the operator's ServiceAccount made so far, from the audit log.
    ///
    /// # Errors
    /// See [`operator_rbac::read_audit_log`].
    pub fn operator_requests(&self) -> Result<Vec<OperatorRequest>> {
        operator_rbac::read_audit_log(&self.audit_log)
    }

    /// The operator's requests so far that were forbidden (403): a right the shipped RBAC
    /// lacks. A test that ran the operator expects none.
    ///
    /// # Errors
    /// See [`operator_rbac::read_audit_log`].
    pub fn operator_forbidden_requests(&self) -> Result<Vec<OperatorRequest>> {
        let mut requests = self.operator_requests()?;
        requests.retain(OperatorRequest::is_forbidden);
        Ok(requests)
    }

    /// Says that this test narrows the operator's shipped rights on purpose (to show what a
    /// rule is for), so its requests, forbidden ones expected, are not recorded as the
    /// shipped rules' usage. `why` is printed with the cluster's drop.
    pub fn narrow_operator_rights(&self, why: &str) {
        *self
            .unrecorded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(why.to_owned());
    }

    /// Whether the operator's requests are recorded (no [`LocalCluster::narrow_operator_rights`]).
    pub fn operator_rights_are_shipped(&self) -> bool {
        self.unrecorded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_none()
    }

    /// Writes the operator's requests into `FLEDGE_RBAC_USAGE_DIR`, if set and the rights
    /// were not narrowed.
    fn record_operator_usage(&self) -> Result<()> {
        let Some(dir) = std::env::var_os(operator_rbac::USAGE_DIR_ENV) else {
            return Ok(());
        };
        if let Some(why) = self
            .unrecorded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_deref()
        {
            eprintln!("LocalCluster: operator rights narrowed ({why}); requests not recorded");
            return Ok(());
        }
        let requests = self.operator_requests()?;
        if requests.is_empty() {
            return Ok(());
        }
        // A test runs on a thread named after it; a program (the demo) is named by its
        // command line.
        let thread = std::thread::current();
        let test = match thread.name() {
            Some(name) if name != "main" => name.to_owned(),
            _ => std::env::args()
                .enumerate()
                .map(|(i, arg)| match i {
                    0 => Path::new(&arg)
                        .file_name()
                        .map_or(arg.clone(), |n| n.to_string_lossy().into_owned()),
                    _ => arg,
                })
                .collect::<Vec<_>>()
                .join(" "),
        };
        let stem = self.dir.path().file_name().map_or_else(
            || "cluster".to_owned(),
            |n| n.to_string_lossy().into_owned(),
        );
        operator_rbac::write_usage(Path::new(&dir), &stem, &test, requests)
    }

    /// The API server's URL (`https://127.0.0.1:PORT`).
    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    /// The admin bearer token.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// The CA certificate that signed the API server's serving certificate.
    pub fn ca_cert_path(&self) -> &Path {
        &self.ca_cert
    }

    /// The temporary directory holding data, certificates, kubeconfig and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// How long etcd and the API server took to become ready (not counting waiting for
    /// other clusters of the same process to finish starting).
    pub fn startup_duration(&self) -> Duration {
        self.startup
    }

    /// Records `pid`, a process its caller started against this cluster with the cluster's
    /// directory on its command line (an operator given [`LocalCluster::kubeconfig_path`]),
    /// so that if the caller is killed outright, the next start's sweep ends it along with
    /// etcd and the API server. The caller still stops it normally.
    ///
    /// # Errors
    /// [`Error::Io`] when the record cannot be written.
    pub fn adopt(&self, pid: u32) -> Result<()> {
        let mut adopted = self
            .adopted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        adopted.push(pid);
        let mut pids = vec![self.etcd.pid(), self.apiserver.pid()];
        pids.extend(adopted.iter().copied());
        stale::record_pids(self.dir.path(), &pids)
    }

    /// The process ids of etcd and kube-apiserver.
    pub fn pids(&self) -> [u32; 2] {
        [self.etcd.pid(), self.apiserver.pid()]
    }

    /// The last lines of both processes' logs.
    pub fn log_tails(&self, lines: usize) -> String {
        format!(
            "--- etcd ({}) ---\n{}\n--- kube-apiserver ({}) ---\n{}",
            self.etcd.log_path().display(),
            self.etcd.log_tail(lines),
            self.apiserver.log_path().display(),
            self.apiserver.log_tail(lines)
        )
    }

    /// Fails with the log tail if etcd or the API server has died.
    ///
    /// # Errors
    /// [`Error::ExitedEarly`] naming the process that exited.
    pub fn check_alive(&mut self) -> Result<()> {
        self.etcd.check_alive()?;
        self.apiserver.check_alive()
    }

    /// Stops both processes now (dropping does the same).
    pub fn stop(mut self) {
        self.apiserver.stop();
        self.etcd.stop();
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        if !std::thread::panicking()
            && let Err(e) = self.record_operator_usage()
        {
            eprintln!("LocalCluster: cannot record the operator's requests: {e}");
        }
        if std::thread::panicking() {
            self.dir.disable_cleanup(true);
            eprintln!(
                "LocalCluster: the test failed; its files are kept in {}",
                self.dir.path().display()
            );
        }
    }
}

async fn start_with_retries<T, F, Fut>(mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut tries = 0;
    loop {
        tries += 1;
        match attempt().await {
            Err(e) if tries < PORT_ATTEMPTS && is_port_conflict(&e) => {
                tracing::info!(error = %e, "port taken meanwhile, retrying on new ports");
            }
            other => return other,
        }
    }
}

async fn start_etcd(binary: &Path, dir: &Path) -> Result<(ManagedProcess, String)> {
    let client_port = free_port()?;
    let peer_port = free_port()?;
    let client_url = format!("http://127.0.0.1:{client_port}");
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    let data_dir = dir.join(format!("etcd-{client_port}"));
    let args = vec![
        "--name=fledge".to_owned(),
        format!("--data-dir={}", data_dir.display()),
        format!("--listen-client-urls={client_url}"),
        format!("--advertise-client-urls={client_url}"),
        format!("--listen-peer-urls={peer_url}"),
        format!("--initial-advertise-peer-urls={peer_url}"),
        format!("--initial-cluster=fledge={peer_url}"),
        "--log-level=warn".to_owned(),
    ];
    let mut process = ManagedProcess::spawn("etcd", binary, &args, &dir.join("etcd.log"))?;
    let health = format!("{client_url}/health");
    let http = reqwest::Client::new();
    process
        .wait_ready(READY_TIMEOUT, || {
            let request = http.get(&health).timeout(Duration::from_secs(2)).send();
            async move {
                let response = request.await.map_err(|e| e.to_string())?;
                let body = response.text().await.map_err(|e| e.to_string())?;
                Ok(body.contains("\"health\":\"true\""))
            }
        })
        .await?;
    Ok((process, client_url))
}

async fn start_apiserver(
    binary: &Path,
    dir: &Path,
    pki: &ApiServerPki,
    etcd_url: &str,
) -> Result<(ManagedProcess, u16)> {
    let port = free_port()?;
    OperatorIdentity::shipped()?.write_audit_policy(&dir.join(AUDIT_POLICY))?;
    let args = vec![
        format!("--etcd-servers={etcd_url}"),
        "--bind-address=127.0.0.1".to_owned(),
        "--advertise-address=127.0.0.1".to_owned(),
        format!("--secure-port={port}"),
        "--insecure-port=0".to_owned(),
        format!("--cert-dir={}", dir.join("certs").display()),
        format!("--tls-cert-file={}", pki.serving_cert.display()),
        format!("--tls-private-key-file={}", pki.serving_key.display()),
        format!("--client-ca-file={}", pki.ca_cert.display()),
        format!("--token-auth-file={}", pki.token_file.display()),
        "--authorization-mode=RBAC".to_owned(),
        "--service-account-issuer=https://kubernetes.default.svc".to_owned(),
        format!(
            "--service-account-key-file={}",
            pki.service_account_public_key.display()
        ),
        format!(
            "--service-account-signing-key-file={}",
            pki.service_account_key.display()
        ),
        // A /16: every canary takes three Services (`<name>`, `-canary`, `-primary`), so a /24
        // runs out of cluster IPs ("range is full", a 500) at 84 canaries.
        "--service-cluster-ip-range=10.0.0.0/16".to_owned(),
        "--disable-admission-plugins=ServiceAccount".to_owned(),
        // As OpenShift: setting an ownerReference with blockOwnerDeletion needs `update` on
        // the owner's `finalizers`, so the shipped `canaries/finalizers` rule is exercised.
        "--enable-admission-plugins=OwnerReferencesPermissionEnforcement".to_owned(),
        // The operator's requests, for RBAC usage (crate::operator_rbac). Blocking: a line
        // is written before its response goes out, so a test that saw a response reads it.
        format!("--audit-policy-file={}", dir.join(AUDIT_POLICY).display()),
        format!("--audit-log-path={}", dir.join(AUDIT_LOG).display()),
        "--audit-log-format=json".to_owned(),
        "--audit-log-mode=blocking".to_owned(),
        "--allow-privileged=true".to_owned(),
        "--v=1".to_owned(),
    ];
    let mut process = ManagedProcess::spawn(
        "kube-apiserver",
        binary,
        &args,
        &dir.join("kube-apiserver.log"),
    )?;
    let ca = std::fs::read(&pki.ca_cert).map_err(|e| Error::io("read", &pki.ca_cert, e))?;
    let ca = reqwest::Certificate::from_pem(&ca).map_err(|e| Error::Manifest {
        origin: pki.ca_cert.display().to_string(),
        reason: e.to_string(),
    })?;
    let http = reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .map_err(|e| Error::NotReady {
            what: "an HTTPS client for kube-apiserver".to_owned(),
            waited_ms: 0,
            detail: format!(": {e}"),
        })?;
    let readyz = format!("https://127.0.0.1:{port}/readyz");
    let started = Instant::now();
    process
        .wait_ready(READY_TIMEOUT, || {
            let request = http
                .get(&readyz)
                .bearer_auth(&pki.admin_token)
                .timeout(Duration::from_secs(2))
                .send();
            async move {
                let response = request.await.map_err(|e| e.to_string())?;
                let status = response.status();
                let body = response.text().await.map_err(|e| e.to_string())?;
                if status.is_success() {
                    Ok(true)
                } else {
                    Err(format!(
                        "{status}: {}",
                        body.lines()
                            .filter(|l| l.contains("failed"))
                            .collect::<Vec<_>>()
                            .join("; ")
                    ))
                }
            }
        })
        .await?;
    tracing::info!(
        port,
        ready_ms = started.elapsed().as_millis(),
        "kube-apiserver ready"
    );
    Ok((process, port))
}

fn write_kubeconfig(
    path: &Path,
    server_url: &str,
    ca_cert: &Path,
    token: &str,
    user: &str,
) -> Result<()> {
    // JSON is YAML: kubectl and kube-rs read it as a kubeconfig.
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": "fledge-local", "cluster": {
            "server": server_url,
            "certificate-authority": ca_cert,
        }}],
        "users": [{ "name": user, "user": { "token": token } }],
        "contexts": [{ "name": "fledge-local", "context": { "cluster": "fledge-local", "user": user, "namespace": "default" } }],
        "current-context": "fledge-local",
    });
    let text = serde_json::to_string_pretty(&config).map_err(|e| Error::Kubeconfig {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    std::fs::write(path, text).map_err(|e| Error::io("write kubeconfig", path, e))
}

/// A client built from a kubeconfig file, the way an operator under test would build it.
///
/// # Errors
/// [`Error::Kubeconfig`] when the file cannot be read or used.
pub async fn client_from_kubeconfig(path: &Path) -> Result<kube::Client> {
    let kubeconfig = Kubeconfig::read_from(path).map_err(|e| Error::Kubeconfig {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| Error::Kubeconfig {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    kube::Client::try_from(config)
        .map_err(|e| Error::kube(format!("build a client from {}", path.display()), e))
}
