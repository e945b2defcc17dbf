//! The same hey command line through Debian's `hey` (0.1.4, the tool the tutorials call) and
//! the built-in one, against the same local server: the request counts and rates agree.
//!
//! Debian's hey is found as the testkit finds its binaries: `FLEDGE_HEY`, then `PATH`; when
//! it is missing and the test runs as root it is installed with `apt-get install hey` (what
//! `cargo xtask control-plane` does too), otherwise the test fails saying how to get it.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use fledge_loadtester::TargetServer;
use fledge_loadtester::task::find_program;

fn debian_hey() -> PathBuf {
    if let Some(path) = std::env::var_os("FLEDGE_HEY") {
        return PathBuf::from(path);
    }
    if let Some(path) = find_program("hey") {
        return path;
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    assert!(
        root,
        "Debian's hey is missing: `sudo apt-get install hey` (or `cargo xtask control-plane`), \
         or point FLEDGE_HEY at a hey binary"
    );
    let installed = Command::new("apt-get")
        .args(["install", "-y", "-q", "hey"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .is_ok_and(|s| s.success())
        || (Command::new("apt-get")
            .args(["update", "-q"])
            .status()
            .is_ok()
            && Command::new("apt-get")
                .args(["install", "-y", "-q", "hey"])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status()
                .is_ok_and(|s| s.success()));
    assert!(installed, "apt-get install hey failed");
    find_program("hey").expect("hey is on PATH after apt-get install hey")
}

/// Runs `program args url` and returns hey's `Requests/sec`.
fn run(program: &mut Command, args: &str, url: &str) -> f64 {
    let output = program
        .args(args.split_whitespace())
        .arg(url)
        .output()
        .expect("the generator runs");
    assert!(output.status.success(), "{output:?}");
    let summary = String::from_utf8_lossy(&output.stdout);
    summary
        .lines()
        .find_map(|line| line.trim().strip_prefix("Requests/sec:"))
        .and_then(|rate| rate.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in the summary:\n{summary}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_built_in_hey_sends_what_debians_hey_sends() {
    let hey = debian_hey();
    let target = TargetServer::start(Duration::ZERO).await.expect("target");
    let url = target.url();
    let builtin = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_fledge-loadtester"));
        command.arg("hey");
        command
    };

    // -n: the same exact count (n / c per worker: 7 workers send 196 of 200).
    for args in ["-n 200 -c 10", "-n 200 -c 7"] {
        target.reset();
        tokio::task::block_in_place(|| run(&mut Command::new(&hey), args, &url));
        let debian = target.requests();
        target.reset();
        tokio::task::block_in_place(|| run(&mut builtin(), args, &url));
        assert_eq!(target.requests(), debian, "{args}");
    }

    // -z with -q: the same rate (4 workers at 25 per second: 100 per second for 2 s).
    // Tolerance 15% between the two, as both wait for their tickers on a shared machine.
    let args = "-z 2s -q 25 -c 4";
    target.reset();
    let debian_rate = tokio::task::block_in_place(|| run(&mut Command::new(&hey), args, &url));
    let debian = target.requests() as f64;
    target.reset();
    let builtin_rate = tokio::task::block_in_place(|| run(&mut builtin(), args, &url));
    let ours = target.requests() as f64;
    assert!(
        (ours - debian).abs() <= debian * 0.15,
        "requests: built-in {ours}, Debian's hey {debian}"
    );
    assert!(
        (builtin_rate - debian_rate).abs() <= debian_rate * 0.15,
        "Requests/sec: built-in {builtin_rate}, Debian's hey {debian_rate}"
    );
    assert!(
        (debian_rate - 100.0).abs() <= 20.0,
        "Debian's hey at {debian_rate}/s"
    );
}
