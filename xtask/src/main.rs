//! `cargo xtask`: developer automation for Fledge.
//!
//! Each subcommand lives in its own module; this file only dispatches.

mod bench_cluster;
mod bench_engine;
mod bench_index;
mod bench_loadtester;
mod bench_metrics;
mod bench_operator;
mod bench_secrets;
mod chart;
mod cluster;
mod control_plane;
mod crd;
mod demo;
mod install;
mod operator;
mod rbac;
mod test;

use std::process::ExitCode;

fn usage() -> &'static str {
    "usage: cargo xtask <command>\n\
     \n\
     commands:\n\
     \x20 crd [--check]   write deploy/crds/ from the Rust types (--check: fail on drift)\n\
     \x20 install [--check]  write deploy/install.yaml from deploy/kustomize/istio (--check: fail on drift)\n\
     \x20 chart [--set k=v] [-f F] [--include-crds]  print what the Helm chart deploy/chart/fledge renders\n\
     \x20 bench cluster [--starts N]   start-up time of the local control plane (target 10 s)\n\
     \x20 bench engine [--seconds N]   plans per second of the engine (release build, one core)\n\
     \x20 bench metrics [--seconds N]  Prometheus query round trips for N concurrent canaries\n\
     \x20 bench operator [--release]   the operator binary: reaction time, memory, API requests\n\
     \x20 bench index [--canaries N]  mapping a watch event to its canaries (release build)\n\
     \x20 bench loadtester [--release]  built-in hey vs Debian's hey and wrk at -c 50 on loopback\n\
     \x20 bench secrets [--binary P]  the operator's memory before/after 1,000 unrelated 10 KB Secrets\n\
     \x20 control-plane [--check]  make sure kube-apiserver, etcd and prometheus exist (build/install)\n\
     \x20 cluster         a playground: control plane, Prometheus and simulators until Ctrl-C\n\
     \x20 demo [--check]  the Flagger + Istio tutorial on a local cluster: a promotion, a rollback\n\
     \x20 rbac --check DIR  the shipped RBAC against the operator's recorded requests: fail on\n\
     \x20                 an unused rule or a refused request (cargo xtask test runs it)\n\
     \x20 test [--demo] [-- ARGS]  the full test suite: unit, doc, integration and end-to-end tests\n\
     \x20                 (then `demo --check` with --demo or CI=true, then `rbac --check`)\n"
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprint!("{}", usage());
        return ExitCode::from(2);
    };
    let result = match command.as_str() {
        "crd" => crd::run(rest),
        "install" => install::run(rest),
        "chart" => chart::run(rest),
        "bench" if rest.first().is_some_and(|what| what == "cluster") => {
            bench_cluster::run(&rest[1..])
        }
        "bench" if rest.first().is_some_and(|what| what == "engine") => {
            bench_engine::run(&rest[1..])
        }
        "bench" if rest.first().is_some_and(|what| what == "metrics") => {
            bench_metrics::run(&rest[1..])
        }
        "bench" if rest.first().is_some_and(|what| what == "index") => bench_index::run(&rest[1..]),
        "bench" if rest.first().is_some_and(|w| w == "loadtester") => {
            bench_loadtester::run(&rest[1..])
        }
        "bench" if rest.first().is_some_and(|what| what == "secrets") => {
            bench_secrets::run(&rest[1..])
        }
        "bench" if rest.first().is_some_and(|what| what == "operator") => {
            bench_operator::run(&rest[1..])
        }
        "control-plane" => control_plane::run(rest),
        "cluster" => cluster::run(rest),
        "demo" => demo::run(rest),
        "rbac" => rbac::run(rest),
        "test" => test::run(rest),
        _ => {
            eprint!("unknown command {command:?}\n\n{}", usage());
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask {command}: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `cargo run --quiet --release` with `target` (`--package xtask`, say) and `args` after
/// `--`, from the workspace root: benchmarks measure release builds. `what` names the run in
/// errors.
pub fn cargo_run_release(target: &[&str], args: &[String], what: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    let status =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
            .args(["run", "--quiet", "--release"])
            .args(target)
            .arg("--")
            .args(args)
            .current_dir(workspace_root())
            .status()
            .with_context(|| format!("running {what}"))?;
    if !status.success() {
        anyhow::bail!("{what} failed ({status})");
    }
    Ok(())
}

/// The workspace root (the parent of `xtask/`).
pub fn workspace_root() -> std::path::PathBuf {
    let manifest_dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or(manifest_dir)
}
