//! `cargo xtask control-plane`: makes sure kube-apiserver, etcd and prometheus exist.
//!
//! Each binary is first looked up the way the tests look it up (`FLEDGE_*`,
//! `KUBEBUILDER_ASSETS`, the cache, `PATH`). What is missing is installed from Debian's
//! packages (when running as root), and kube-apiserver is built from Debian's `kubernetes`
//! source package into `~/.cache/fledge/kubernetes-<version>/bin/`, with the vendored
//! `reflect2`/`json-iterator` swapped for versions that work under Go >= 1.18 (without the
//! swap the server crashes on the first write of a custom resource). Running it again when
//! everything is there only prints where each binary is.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use fledge_testkit::Tool;
use fledge_testkit::binaries::{
    KUBERNETES_VERSION, cached_kube_apiserver, kubernetes_cache_dir, on_path,
};

/// The Debian source package's upstream tarball.
const ORIG_TARBALL: &str = "kubernetes_1.20.5+really1.20.2.orig.tar.gz";
/// Packages the build needs.
const BUILD_PACKAGES: [&str; 6] = [
    "golang-go",
    "rsync",
    "jq",
    "make",
    "golang-github-modern-go-reflect2-dev",
    "golang-github-json-iterator-go-dev",
];
/// Load generators the tests and `cargo xtask bench loadtester` compare the built-in hey
/// with: (program, Debian package).
pub(crate) const LOAD_TOOLS: [(&str, &str); 2] = [("hey", "hey"), ("wrk", "wrk")];
/// Debian's Graphite: carbon-cache and graphite-web (Django), for fledge-testkit's LocalGraphite.
pub const GRAPHITE_PACKAGES: [&str; 2] = ["graphite-carbon", "graphite-web"];
/// Vendored libraries replaced by Debian's newer sources before building.
const VENDOR_SWAPS: [&str; 2] = [
    "github.com/modern-go/reflect2",
    "github.com/json-iterator/go",
];
/// Marks a source tree whose vendored libraries were swapped.
const SWAP_MARKER: &str = ".fledge-vendor-swapped";

/// Where each binary was found.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// The kube-apiserver binary.
    pub kube_apiserver: PathBuf,
    /// The etcd binary.
    pub etcd: PathBuf,
    /// The prometheus binary.
    pub prometheus: PathBuf,
}

impl Binaries {
    /// The environment that points the testkit at exactly these binaries.
    pub fn env(&self) -> [(&'static str, &Path); 3] {
        [
            (Tool::KubeApiserver.env_var(), self.kube_apiserver.as_path()),
            (Tool::Etcd.env_var(), self.etcd.as_path()),
            (Tool::Prometheus.env_var(), self.prometheus.as_path()),
        ]
    }
}

/// Runs the command: `cargo xtask control-plane [--check]`.
pub fn run(args: &[String]) -> Result<()> {
    match args {
        [] => ensure().map(|_| ()),
        [flag] if flag == "--check" => check().map(|_| ()),
        _ => bail!("usage: cargo xtask control-plane [--check]"),
    }
}

/// Only looks: fails, saying how to get them, when any binary is missing.
pub fn check() -> Result<Binaries> {
    let mut missing = Vec::new();
    for tool in Tool::ALL {
        match tool.locate() {
            Ok(path) => println!("  {tool:<15} {}", path.display()),
            Err(e) => missing.push(e.to_string()),
        }
    }
    if !missing.is_empty() {
        bail!(
            "the local control plane is incomplete:\n  {}",
            missing.join("\n  ")
        );
    }
    located()
}

/// Finds every binary, installing or building what is missing.
pub fn ensure() -> Result<Binaries> {
    let missing: Vec<Tool> = Tool::ALL
        .into_iter()
        .filter(|t| t.locate().is_err())
        .collect();
    let packages: Vec<&str> = missing
        .iter()
        .filter_map(|t| match t {
            Tool::Etcd => Some("etcd-server"),
            Tool::Prometheus => Some("prometheus"),
            Tool::KubeApiserver => None,
        })
        .collect();
    if !packages.is_empty() {
        apt_install(&packages)?;
    }
    ensure_load_tools()?;
    if missing.contains(&Tool::KubeApiserver) {
        build_kube_apiserver()?;
    }
    // The Go packages of the Helm chart's renderer (deploy/chart/render), which
    // tests/helm_chart.rs builds; without them only that test fails.
    if let Err(e) = ensure_packages(&crate::chart::RENDER_PACKAGES) {
        eprintln!(
            "warning: {e:#}
warning: the Helm chart's test cannot build its renderer"
        );
    }
    // Graphite (carbon-cache + graphite-web), which fledge-testkit's LocalGraphite runs for
    // fledge-metrics' Graphite tests; without them only those tests fail.
    if let Err(e) = ensure_packages(&GRAPHITE_PACKAGES) {
        eprintln!(
            "warning: {e:#}
warning: the Graphite provider's tests cannot start graphite"
        );
    }
    println!("control plane binaries:");
    check()
}

/// Installs those of `packages` that dpkg does not list as installed.
pub fn ensure_packages(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !package_installed(p))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    apt_install(&missing)
}

fn located() -> Result<Binaries> {
    Ok(Binaries {
        kube_apiserver: Tool::KubeApiserver.locate()?,
        etcd: Tool::Etcd.locate()?,
        prometheus: Tool::Prometheus.locate()?,
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Installs Debian's `hey` and `wrk` when they are not on PATH; returns their paths.
pub(crate) fn ensure_load_tools() -> Result<Vec<PathBuf>> {
    let missing: Vec<&str> = LOAD_TOOLS
        .iter()
        .filter(|(program, _)| on_path(program).is_none())
        .map(|(_, package)| *package)
        .collect();
    if !missing.is_empty() {
        apt_install(&missing)?;
    }
    LOAD_TOOLS
        .iter()
        .map(|(program, package)| {
            on_path(program)
                .with_context(|| format!("{program} is missing: apt-get install {package}"))
        })
        .collect()
}

fn apt_install(packages: &[&str]) -> Result<()> {
    if !is_root() {
        bail!(
            "missing Debian packages; install them with:\n  sudo apt-get install {}\n\
             (or set KUBEBUILDER_ASSETS / FLEDGE_ETCD / FLEDGE_PROMETHEUS to existing binaries)",
            packages.join(" ")
        );
    }
    step(&format!("apt-get install {}", packages.join(" ")));
    let mut command = Command::new("apt-get");
    command
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive");
    if run_quiet(&mut command).is_err() {
        // A fresh machine has no package lists yet.
        run_quiet(Command::new("apt-get").args(["update", "-q"]))?;
        run_quiet(&mut command)
            .with_context(|| format!("apt-get install {}", packages.join(" ")))?;
    }
    Ok(())
}

fn build_kube_apiserver() -> Result<()> {
    let root = kubernetes_cache_dir();
    println!(
        "building kube-apiserver {KUBERNETES_VERSION} into {} (about 6 minutes on 2 cores)",
        root.display()
    );
    let missing: Vec<&str> = BUILD_PACKAGES
        .iter()
        .copied()
        .filter(|p| !package_installed(p))
        .collect();
    if !missing.is_empty() {
        apt_install(&missing)?;
    }
    let download = root.join("dl");
    let tarball = download.join(ORIG_TARBALL);
    if !tarball.is_file() {
        ensure_deb_src()?;
        std::fs::create_dir_all(&download)?;
        step("apt-get source --download-only kubernetes (34 MB)");
        run_quiet(
            Command::new("apt-get")
                .args(["source", "--download-only", "kubernetes"])
                .current_dir(&download),
        )
        .context("download Debian's kubernetes source package")?;
    }
    let src = unpack(&root, &tarball)?;
    swap_vendored_libraries(&src)?;
    compile(&root, &src)?;
    install(&src)
}

/// Unpacks the upstream tarball into `<root>/src` (once; a half-done unpack is redone).
fn unpack(root: &Path, tarball: &Path) -> Result<PathBuf> {
    let src = root.join("src");
    if !src.join("Makefile").is_file() {
        step("unpack the source");
        let partial = root.join("src.partial");
        let _ = std::fs::remove_dir_all(&partial);
        std::fs::create_dir_all(&partial)?;
        run_quiet(
            Command::new("tar")
                .arg("-xzf")
                .arg(tarball)
                .arg("-C")
                .arg(&partial)
                .arg("--strip-components=1"),
        )?;
        let _ = std::fs::remove_dir_all(&src);
        std::fs::rename(&partial, &src)?;
    }
    Ok(src)
}

/// Replaces the vendored reflect2 and json-iterator, without which the server crashes on
/// the first write of a custom resource when built with Go >= 1.18.
fn swap_vendored_libraries(src: &Path) -> Result<()> {
    if !src.join(SWAP_MARKER).is_file() {
        step(
            "swap vendored reflect2 1.0.1 / json-iterator for Debian's 1.0.2 / 1.1.12 (Go >= 1.18 fix)",
        );
        for library in VENDOR_SWAPS {
            let from = Path::new("/usr/share/gocode/src").join(library);
            if !from.is_dir() {
                bail!(
                    "{} is missing: apt-get install {}",
                    from.display(),
                    BUILD_PACKAGES.join(" ")
                );
            }
            let to = src.join("vendor").join(library);
            std::fs::remove_dir_all(&to).with_context(|| format!("remove {}", to.display()))?;
            run_quiet(Command::new("cp").arg("-rL").arg(&from).arg(&to))?;
        }
        std::fs::write(
            src.join(SWAP_MARKER),
            "reflect2 and json-iterator from /usr/share/gocode\n",
        )?;
    }
    Ok(())
}

/// Runs the upstream build in GOPATH mode (a plain `go build` lacks generated code).
fn compile(root: &Path, src: &Path) -> Result<()> {
    let gopath = src.join(".go");
    let link = gopath.join("src/k8s.io/kubernetes");
    if !link.exists() {
        std::fs::create_dir_all(gopath.join("src/k8s.io"))?;
        std::os::unix::fs::symlink("../../..", &link)?;
    }
    if on_path("go").is_none() {
        bail!("go is not on PATH: apt-get install golang-go");
    }
    step("make WHAT=cmd/kube-apiserver (GOPATH mode)");
    let home = root.join("home");
    let gocache = root.join("gocache");
    std::fs::create_dir_all(&home)?;
    std::fs::create_dir_all(&gocache)?;
    let mut make = Command::new("make");
    make.arg("WHAT=cmd/kube-apiserver")
        .current_dir(&link)
        .env("GOPATH", &gopath)
        .env("GO111MODULE", "off")
        .env("CGO_ENABLED", "0")
        .env("HOME", &home)
        .env("GOCACHE", &gocache);
    run_with_progress(&mut make).context("build kube-apiserver")
}

/// Copies the built binary into the cache (atomically) and checks its version.
fn install(src: &Path) -> Result<()> {
    let built = src.join("_output/bin/kube-apiserver");
    let target = cached_kube_apiserver();
    if let Some(dir) = target.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let partial = target.with_extension("partial");
    std::fs::copy(&built, &partial).with_context(|| format!("copy {}", built.display()))?;
    std::fs::rename(&partial, &target)?;
    let version = Command::new(&target).arg("--version").output()?;
    let version = String::from_utf8_lossy(&version.stdout);
    if !version.contains(KUBERNETES_VERSION) {
        bail!(
            "{} reports {version:?}, expected {KUBERNETES_VERSION}",
            target.display()
        );
    }
    println!("built {} ({})", target.display(), version.trim());
    Ok(())
}

/// Adds a `deb-src` entry for bookworm unless apt already has one.
fn ensure_deb_src() -> Result<()> {
    let mut texts = vec![std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default()];
    if let Ok(entries) = std::fs::read_dir("/etc/apt/sources.list.d") {
        texts.extend(
            entries
                .flatten()
                .filter_map(|e| std::fs::read_to_string(e.path()).ok()),
        );
    }
    if texts.iter().any(|t| {
        t.lines()
            .any(|l| l.trim_start().starts_with("deb-src") || l.contains("Types: deb-src"))
    }) {
        return Ok(());
    }
    if !is_root() {
        bail!(
            "apt has no deb-src entry: add one for bookworm (see docs in DESIGN §4) or run as root"
        );
    }
    step("add a deb-src entry for bookworm and apt-get update");
    let debian =
        std::fs::read_to_string("/etc/apt/sources.list.d/debian.sources").unwrap_or_default();
    let field = |name: &str, fallback: &str| {
        debian
            .lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
            .unwrap_or_else(|| fallback.to_owned())
    };
    let entry = format!(
        "Types: deb-src\nURIs: {}\nSuites: bookworm\nComponents: main\nSigned-By: {}\n",
        field("URIs:", "http://deb.debian.org/debian"),
        field(
            "Signed-By:",
            "/usr/share/keyrings/debian-archive-keyring.gpg"
        )
    );
    std::fs::write("/etc/apt/sources.list.d/fledge-deb-src.sources", entry)?;
    run_quiet(Command::new("apt-get").args(["update", "-q"]))
}

fn package_installed(name: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", name])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

fn step(what: &str) {
    println!("==> {what}");
}

/// Runs a command, showing its output only when it fails.
fn run_quiet(command: &mut Command) -> Result<()> {
    let output = command
        .output()
        .with_context(|| format!("run {command:?}"))?;
    if output.status.success() {
        return Ok(());
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let tail: Vec<&str> = text
        .lines()
        .rev()
        .take(20)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    bail!(
        "{command:?} failed ({}):\n{}",
        output.status,
        tail.join("\n")
    )
}

/// Runs a long command, printing its lines with the elapsed time, and a heartbeat while the
/// Go compiler is silent.
fn run_with_progress(command: &mut Command) -> Result<()> {
    let started = Instant::now();
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("run {command:?}"))?;
    if let Some(stdout) = child.stdout.take() {
        let (lines, received) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout)
                .lines()
                .map_while(std::io::Result::ok)
            {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        loop {
            match received.recv_timeout(std::time::Duration::from_secs(30)) {
                Ok(line) => println!("    [{:>4}s] {line}", started.elapsed().as_secs()),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    println!(
                        "    [{:>4}s] still compiling...",
                        started.elapsed().as_secs()
                    );
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("{command:?} failed ({status})");
    }
    println!("    done in {}s", started.elapsed().as_secs());
    Ok(())
}
