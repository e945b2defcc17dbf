//! `cargo xtask bench index [--canaries N]`: how long the operator maps a watch event to its
//! canaries with N canaries (default 10,000), by index and by the scan it replaced. The
//! measuring program is the operator crate's `canary_index_bench` example, run in release.

use anyhow::bail;

/// Runs the example with `args` (passed through).
pub fn run(args: &[String]) -> anyhow::Result<()> {
    match args {
        [] => {}
        [flag, n] if flag == "--canaries" && n.parse::<usize>().is_ok() => {}
        _ => bail!("usage: cargo xtask bench index [--canaries N]"),
    }
    crate::cargo_run_release(
        &[
            "--package",
            "fledge-operator",
            "--example",
            "canary_index_bench",
        ],
        args,
        "the canary index benchmark",
    )
}
