//! `cargo xtask bench cluster [--starts N]`: how long the local control plane (etcd and
//! kube-apiserver from the testkit) takes to answer `/readyz`, over N starts one after another
//! (default 5). The target is 10 s; the figures go to docs/benchmarks.md ("Local control
//! plane"). The testkit's own start-up test only guards against a hang, since one timed run on
//! a shared machine proves little.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use fledge_testkit::LocalCluster;

const TARGET: Duration = Duration::from_secs(10);

/// Runs the benchmark.
pub fn run(args: &[String]) -> Result<()> {
    let starts: usize = match args {
        [] => 5,
        [flag, value] if flag == "--starts" => {
            value.parse().context("--starts takes a whole number")?
        }
        _ => bail!("usage: cargo xtask bench cluster [--starts N]"),
    };
    if starts == 0 {
        bail!("--starts must be at least 1");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut times = Vec::with_capacity(starts);
    for start in 1..=starts {
        let duration = runtime.block_on(async {
            let cluster = LocalCluster::start().await?;
            let ready_in = cluster.startup_duration();
            drop(cluster);
            anyhow::Ok(ready_in)
        })?;
        println!(
            "start {start}/{starts}: ready in {} ms",
            duration.as_millis()
        );
        times.push(duration);
    }
    times.sort();
    let median = times[times.len() / 2];
    let (fastest, slowest) = (times[0], times[times.len() - 1]);
    println!(
        "\nlocal control plane ready: median {} ms, fastest {} ms, slowest {} ms ({} starts; target {} s)",
        median.as_millis(),
        fastest.as_millis(),
        slowest.as_millis(),
        starts,
        TARGET.as_secs()
    );
    if median > TARGET {
        bail!(
            "the median start-up exceeds the {} s target",
            TARGET.as_secs()
        );
    }
    Ok(())
}
