//! `cargo xtask chart`: prints what the Helm chart `deploy/chart/fledge` renders, as
//! `helm template fledge deploy/chart/fledge -n fledge-system` would, without a helm binary.
//!
//! The renderer is `deploy/chart/render/main.go`: Go's `text/template` with sprig and Helm's
//! own functions and render rules, built from Debian's Go packages ([`RENDER_PACKAGES`]) in
//! GOPATH mode and cached as `~/.cache/fledge/chart-render-<hash of main.go>/chart-render`.
//! The Helm chart's test (`crates/fledge-operator/tests/helm_chart.rs`) builds and caches it
//! the same way.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

/// The chart.
pub const CHART: &str = "deploy/chart/fledge";

/// The renderer's source.
pub const RENDER_SOURCE: &str = "deploy/chart/render/main.go";

/// The Debian packages the renderer builds from.
pub const RENDER_PACKAGES: [&str; 3] = [
    "golang-go",
    "golang-github-masterminds-sprig-dev",
    "golang-k8s-sigs-yaml-dev",
];

/// Where Debian's packages put Go sources (GOPATH mode).
const GOPATH: &str = "/usr/share/gocode";

const USAGE: &str = "usage: cargo xtask chart [--include-crds] [--name RELEASE] [--namespace NS] \
                     [-f VALUES.yaml]... [--set k=v]... [--set-string k=v]...";

/// Runs `chart [ARGS]`: the rendered YAML on stdout; the renderer's message on failure.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}\n(release `fledge` in `fledge-system` unless given)");
        return Ok(());
    }
    crate::control_plane::ensure_packages(&RENDER_PACKAGES)?;
    let root = crate::workspace_root();
    let renderer = renderer(&root)?;
    let status = Command::new(&renderer)
        .arg("--chart")
        .arg(root.join(CHART))
        .args(["--name", "fledge", "--namespace", "fledge-system"])
        .args(args)
        .status()
        .with_context(|| format!("running {}", renderer.display()))?;
    if !status.success() {
        bail!("the chart did not render ({status}); {USAGE}");
    }
    Ok(())
}

/// The renderer binary for the current source, built when the cache has none.
pub fn renderer(root: &Path) -> anyhow::Result<PathBuf> {
    let source = root.join(RENDER_SOURCE);
    let text = std::fs::read(&source).with_context(|| format!("reading {}", source.display()))?;
    let dir =
        fledge_testkit::binaries::cache_dir().join(format!("chart-render-{:016x}", fnv1a(&text)));
    let binary = dir.join("chart-render");
    if binary.is_file() {
        return Ok(binary);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let partial = dir.join(format!("chart-render.{}.partial", std::process::id()));
    let output = Command::new("go")
        .args(["build", "-o"])
        .arg(&partial)
        .arg(&source)
        .env("GO111MODULE", "off")
        .env("GOPATH", GOPATH)
        .env("GOFLAGS", "")
        .output()
        .context("running `go build` (is golang-go installed? `cargo xtask control-plane`)")?;
    if !output.status.success() {
        bail!(
            "building {RENDER_SOURCE} failed (it needs the Debian packages {}): {}",
            RENDER_PACKAGES.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    std::fs::rename(&partial, &binary).with_context(|| format!("moving {}", partial.display()))?;
    Ok(binary)
}

/// FNV-1a (64 bits) of the source: the renderer's cache key.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_key_is_fnv1a_so_that_the_chart_test_finds_the_same_build() {
        // The reference values of FNV-1a 64 (the chart's test computes the key the same way).
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
