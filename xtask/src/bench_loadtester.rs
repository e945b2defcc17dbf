//! `cargo xtask bench loadtester`: the built-in hey against Debian's `hey` (0.1.4, the tool the
//! tutorials call) and `wrk`, side by side in one run, at the same concurrency against the
//! same local HTTP server on loopback (`fledge_loadtester::TargetServer`, answering `OK\n`).
//!
//! Each generator runs as its own process for `--seconds` (10) with `-c 50` (wrk: 50
//! connections on 2 threads); the rounds (`--rounds`, 3) alternate the generators so that
//! noise from the rest of the machine falls on all three alike. Reported: requests per
//! second and the 50th/90th/99th percentile latencies each tool prints, median over rounds.
//! `--release` builds the loadtester in release mode (what the figures in
//! docs/benchmarks.md use).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::control_plane;

#[derive(Debug)]
struct Options {
    release: bool,
    seconds: u64,
    rounds: usize,
    connections: usize,
}

/// One tool's figures in one round.
#[derive(Clone, Copy, Debug, Default)]
struct Figures {
    rps: f64,
    p50: f64,
    p90: f64,
    p99: f64,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut options = Options {
        release: false,
        seconds: 10,
        rounds: 3,
        connections: 50,
    };
    let usage = "usage: cargo xtask bench loadtester [--release] [--seconds N] [--rounds N] [--connections N]";
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> Result<u64> {
            let value = args
                .next()
                .with_context(|| format!("{name} needs a number"))?;
            value
                .parse::<u64>()
                .ok()
                .filter(|n| *n >= 1)
                .with_context(|| format!("{name} {value}: expected a whole number >= 1"))
        };
        match arg.as_str() {
            "--release" => options.release = true,
            "--seconds" => options.seconds = number("--seconds")?,
            "--rounds" => options.rounds = number("--rounds")? as usize,
            "--connections" => options.connections = number("--connections")? as usize,
            _ => bail!("unknown argument {arg:?}\n{usage}"),
        }
    }
    Ok(options)
}

/// Runs the benchmark.
pub fn run(args: &[String]) -> Result<()> {
    let options = parse(args)?;
    let tools = control_plane::ensure_load_tools()?;
    let (hey, wrk) = (tools[0].clone(), tools[1].clone());
    let loadtester = build(options.release)?;
    let runtime = tokio::runtime::Runtime::new().context("start the async runtime")?;
    let target = runtime
        .block_on(fledge_loadtester::TargetServer::start(Duration::ZERO))
        .context("start the target server")?;
    let url = target.url();
    let c = options.connections.to_string();
    let z = format!("{}s", options.seconds);
    println!(
        "load tester benchmark: -c {c} for {z} against {url}, {} rounds, {} build, {} cores",
        options.rounds,
        if options.release { "release" } else { "debug" },
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    let names = [
        "fledge-loadtester hey",
        "hey 0.1.4 (Debian)",
        "wrk (Debian)",
    ];
    let mut results: Vec<Vec<Figures>> = vec![Vec::new(); names.len()];
    for round in 1..=options.rounds {
        for (index, name) in names.iter().enumerate() {
            target.reset();
            let figures = match index {
                0 => hey_like(Command::new(&loadtester).args(["hey", "-z", &z, "-c", &c, &url]))?,
                1 => hey_like(Command::new(&hey).args(["-z", &z, "-c", &c, &url]))?,
                _ => wrk_run(Command::new(&wrk).args([
                    "-t",
                    "2",
                    "-c",
                    &c,
                    "-d",
                    &z,
                    "--latency",
                    &url,
                ]))?,
            };
            println!(
                "  round {round} {name:<22} {:>9.0} requests/s  p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  (server counted {})",
                figures.rps,
                figures.p50 * 1e3,
                figures.p90 * 1e3,
                figures.p99 * 1e3,
                target.requests()
            );
            results[index].push(figures);
        }
    }
    println!("\n| generator | requests/s | p50 | p90 | p99 |\n|---|---:|---:|---:|---:|");
    let medians: Vec<Figures> = results.iter().map(|rounds| median(rounds)).collect();
    for (name, figures) in names.iter().zip(&medians) {
        println!(
            "| {name} | {:.0} | {:.2} ms | {:.2} ms | {:.2} ms |",
            figures.rps,
            figures.p50 * 1e3,
            figures.p90 * 1e3,
            figures.p99 * 1e3
        );
    }
    let (ours, hey, wrk) = (medians[0].rps, medians[1].rps, medians[2].rps);
    println!(
        "\nbuilt-in / hey: {:.2} (target >= 1.00)   built-in / wrk: {:.2} (target >= 0.80)",
        ours / hey,
        ours / wrk
    );
    Ok(())
}

fn median(rounds: &[Figures]) -> Figures {
    let pick = |f: fn(&Figures) -> f64| {
        let mut values: Vec<f64> = rounds.iter().map(f).collect();
        values.sort_by(f64::total_cmp);
        values.get(values.len() / 2).copied().unwrap_or_default()
    };
    Figures {
        rps: pick(|f| f.rps),
        p50: pick(|f| f.p50),
        p90: pick(|f| f.p90),
        p99: pick(|f| f.p99),
    }
}

fn output_of(command: &mut Command) -> Result<String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// hey's summary: `Requests/sec:` and `NN% in X secs`.
fn hey_like(command: &mut Command) -> Result<Figures> {
    let summary = output_of(command)?;
    let mut figures = Figures::default();
    for line in summary.lines().map(str::trim) {
        if let Some(rate) = line.strip_prefix("Requests/sec:") {
            figures.rps = rate.trim().parse().context("hey's Requests/sec")?;
        }
        if let Some((percent, rest)) = line.split_once("% in ") {
            let seconds: f64 = rest
                .trim_end_matches(" secs")
                .trim()
                .parse()
                .context("hey's latency")?;
            match percent {
                "50" => figures.p50 = seconds,
                "90" => figures.p90 = seconds,
                "99" => figures.p99 = seconds,
                _ => {}
            }
        }
    }
    if figures.rps == 0.0 {
        bail!("no Requests/sec in the summary:\n{summary}");
    }
    Ok(figures)
}

/// wrk's `Requests/sec:` and its `--latency` distribution (`50%  1.23ms`).
fn wrk_run(command: &mut Command) -> Result<Figures> {
    let summary = output_of(command)?;
    let mut figures = Figures::default();
    for line in summary.lines().map(str::trim) {
        if let Some(rate) = line.strip_prefix("Requests/sec:") {
            figures.rps = rate.trim().parse().context("wrk's Requests/sec")?;
        }
        let mut words = line.split_whitespace();
        if let (Some(percent), Some(value), None) = (words.next(), words.next(), words.next()) {
            let slot = match percent {
                "50%" => &mut figures.p50,
                "90%" => &mut figures.p90,
                "99%" => &mut figures.p99,
                _ => continue,
            };
            *slot = wrk_seconds(value).with_context(|| format!("wrk's latency {value}"))?;
        }
    }
    if figures.rps == 0.0 {
        bail!("no Requests/sec in wrk's output:\n{summary}");
    }
    Ok(figures)
}

fn wrk_seconds(value: &str) -> Option<f64> {
    let split = value.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale = match unit {
        "us" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        _ => return None,
    };
    Some(number * scale)
}

/// Builds `fledge-loadtester` and returns the binary cargo reports.
fn build(release: bool) -> Result<PathBuf> {
    crate::operator::build_binary("fledge-loadtester", release)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_units_read_as_seconds() {
        assert_eq!(wrk_seconds("512.00us"), Some(0.000_512));
        assert_eq!(wrk_seconds("1.50ms"), Some(0.0015));
        assert_eq!(wrk_seconds("2.00s"), Some(2.0));
        assert_eq!(wrk_seconds("fast"), None);
    }
}
