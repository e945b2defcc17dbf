//! `cargo xtask test`: the full test command (what the README shows and `.ci/run` calls).
//!
//! It first runs the static checks — formatting, clippy with warnings denied, the CRD and
//! `deploy/install.yaml` drift checks and rustdoc with warnings denied — then makes sure the control plane's binaries exist (building kube-apiserver if needed),
//! points the tests at exactly those binaries, then runs the tiers in order: unit tests,
//! doc tests, then the integration tests (providers against real servers and end-to-end
//! tests on the local control plane). Under `CI=true` nothing may be skipped: when the
//! control plane cannot be had, the command fails before running any test. Under
//! `CI=true` or with `--demo`, `cargo xtask demo --check` runs the tutorial end to end.
//! Last, `cargo xtask rbac --check` compares the shipped RBAC with the requests the
//! operator's ServiceAccount made in every test cluster and the demo (recorded into a fresh
//! `target/rbac-usage/`): an unused rule or a refused request fails. Only a whole run can
//! say a rule is unused, so with filter arguments that part is skipped (and says so).

use std::process::Command;

use anyhow::{Context, Result, bail};

use fledge_testkit::operator_rbac::USAGE_DIR_ENV;

use crate::control_plane;

/// Formatting, lints, docs, CRD and install.yaml drift: cheap checks that fail fast, before any test runs.
fn static_checks() -> Result<()> {
    let cargo = || {
        let mut command =
            Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
        command.current_dir(crate::workspace_root());
        command
    };
    let steps: [(&str, Command); 3] = [
        ("format check", {
            let mut c = cargo();
            c.args(["fmt", "--all", "--", "--check"]);
            c
        }),
        ("clippy (warnings denied)", {
            let mut c = cargo();
            c.args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]);
            c
        }),
        ("rustdoc (warnings denied)", {
            let mut c = cargo();
            c.args(["doc", "--workspace", "--no-deps"])
                .env("RUSTDOCFLAGS", "-D warnings");
            c
        }),
    ];
    for (name, mut command) in steps {
        println!("==> {name}");
        let status = command.status().with_context(|| format!("run {name}"))?;
        if !status.success() {
            bail!("{name} failed ({status})");
        }
    }
    println!("==> CRD drift check");
    crate::crd::run(&["--check".to_owned()])?;
    // `kubectl kustomize` of one overlay: a fraction of a second.
    println!("==> install.yaml drift check");
    crate::install::run(&["--check".to_owned()])
}

/// Runs the command: `cargo xtask test [--demo] [-- <extra cargo test args>]`.
///
/// After the tiers, `cargo xtask demo --check` runs (about two minutes) under `CI=true` or
/// with `--demo`: the tutorial end to end with the real operator binary.
pub fn run(args: &[String]) -> Result<()> {
    let (mut demo, mut args) = (false, args);
    if let Some((flag, rest)) = args.split_first()
        && flag == "--demo"
    {
        (demo, args) = (true, rest);
    }
    let extra: Vec<String> = match args.split_first() {
        None => Vec::new(),
        Some((dashdash, rest)) if dashdash == "--" => rest.to_vec(),
        Some((other, _)) => {
            bail!(
                "unknown argument {other:?}; usage: cargo xtask test [--demo] [-- <cargo test args>]"
            )
        }
    };
    static_checks()?;
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    demo |= ci;
    let binaries = match control_plane::ensure() {
        Ok(binaries) => Some(binaries),
        Err(e) if ci => return Err(e.context("CI=true: the local control plane is required")),
        Err(e) => {
            eprintln!("warning: {e:#}\nwarning: tests that need the control plane will fail");
            None
        }
    };
    // Every cluster of this run records the operator's requests here (see crate::rbac).
    let usage_dir = crate::workspace_root().join("target").join("rbac-usage");
    if usage_dir.exists() {
        std::fs::remove_dir_all(&usage_dir)
            .with_context(|| format!("clear {}", usage_dir.display()))?;
    }
    std::fs::create_dir_all(&usage_dir)
        .with_context(|| format!("create {}", usage_dir.display()))?;
    let tiers: [(&str, &[&str]); 3] = [
        ("unit tests", &["--workspace", "--lib", "--bins"]),
        ("doc tests", &["--workspace", "--doc"]),
        (
            "integration and end-to-end tests",
            &["--workspace", "--test", "*"],
        ),
    ];
    let mut failed = Vec::new();
    for (name, selection) in tiers {
        println!("==> {name}");
        let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
        // Every test binary runs even when an earlier one fails, so one run shows every failure.
        cargo
            .arg("test")
            .args(selection)
            .arg("--no-fail-fast")
            .args(&extra)
            .env(USAGE_DIR_ENV, &usage_dir)
            .current_dir(crate::workspace_root());
        if let Some(binaries) = &binaries {
            for (var, path) in binaries.env() {
                cargo.env(var, path);
            }
        }
        let status = cargo.status().context("run cargo test")?;
        if !status.success() {
            failed.push(name);
        }
    }
    if demo {
        println!("==> demo (cargo xtask demo --check)");
        // A process of its own, so that its cluster records into the usage directory too.
        let status = Command::new(std::env::current_exe().context("the xtask binary's path")?)
            .args(["demo", "--check"])
            .env(USAGE_DIR_ENV, &usage_dir)
            .status()
            .context("run cargo xtask demo --check")?;
        if !status.success() {
            failed.push("demo");
        }
    }
    if extra.is_empty() {
        println!(
            "==> RBAC (cargo xtask rbac --check {})",
            usage_dir.display()
        );
        if let Err(e) = crate::rbac::check(&usage_dir) {
            eprintln!("rbac: {e:#}");
            failed.push("rbac");
        }
    } else {
        println!(
            "==> RBAC check skipped: the tests were filtered ({}), and only the whole suite \
             can show that a rule is unused; refused requests already failed their tests",
            extra.join(" ")
        );
    }
    if !failed.is_empty() {
        bail!("failed: {}", failed.join(", "));
    }
    println!("==> all tiers passed");
    Ok(())
}
