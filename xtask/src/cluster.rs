//! `cargo xtask cluster`: a playground to try Fledge by hand.
//!
//! Starts the local control plane (etcd + kube-apiserver), installs Fledge's and the mesh
//! CRDs, runs the cluster simulator (standing in for kubelet and the workload controllers),
//! the traffic simulator (standing in for the mesh data plane) and a Prometheus scraping
//! it, prints how to reach them, and stops everything on Ctrl-C or SIGTERM.

use anyhow::{Context, Result, bail};
use fledge_testkit::{
    ClusterSim, ClusterSimConfig, LocalCluster, LocalPrometheus, MeshCrdSource, SimApp, TrafficSim,
    TrafficSimConfig,
};

use crate::control_plane;

/// The playground's options.
struct Options {
    apps: Vec<(String, String)>,
    rate: f64,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut options = Options {
        apps: Vec::new(),
        rate: 10.0,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--app" => {
                let value = args
                    .next()
                    .context("--app needs NAMESPACE/DEPLOYMENT, e.g. --app test/podinfo")?;
                let Some((namespace, target)) = value.split_once('/') else {
                    bail!("--app {value}: expected NAMESPACE/DEPLOYMENT, e.g. test/podinfo");
                };
                options.apps.push((namespace.to_owned(), target.to_owned()));
            }
            "--rate" => {
                let value = args
                    .next()
                    .context("--rate needs requests per second, e.g. --rate 20")?;
                options.rate = value
                    .parse()
                    .ok()
                    .filter(|r: &f64| *r >= 0.0)
                    .with_context(|| {
                        format!("--rate {value}: expected a number of requests per second >= 0")
                    })?;
            }
            other => bail!(
                "unknown argument {other:?}; usage: cargo xtask cluster [--app NAMESPACE/DEPLOYMENT]... [--rate RPS]"
            ),
        }
    }
    if options.apps.is_empty() {
        options.apps.push(("test".to_owned(), "podinfo".to_owned()));
    }
    Ok(options)
}

/// Runs the command.
pub fn run(args: &[String]) -> Result<()> {
    let options = parse(args)?;
    control_plane::ensure()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    runtime.block_on(playground(options))
}

/// Everything the playground runs; dropping it stops all of it. `cargo xtask demo` and
/// `cargo xtask bench operator` run the operator on the same stack.
pub(crate) struct Playground {
    // Field order is drop order: traffic and scraping stop before the cluster.
    pub(crate) prometheus: LocalPrometheus,
    pub(crate) traffic_sim: TrafficSim,
    pub(crate) cluster_sim: ClusterSim,
    pub(crate) cluster: LocalCluster,
}

impl Playground {
    /// Stops everything in order: traffic and scraping, the simulator, then the cluster.
    pub(crate) fn stop(self) {
        let Playground {
            prometheus,
            traffic_sim,
            cluster_sim,
            cluster,
        } = self;
        drop(prometheus);
        drop(traffic_sim);
        drop(cluster_sim);
        cluster.stop();
    }
}

async fn playground(options: Options) -> Result<()> {
    let (stopped, mut stop) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        wait_for_stop().await;
        let _ = stopped.send(true);
    });
    // Ctrl-C during start-up drops whatever was started so far: its processes end with it.
    let playground = tokio::select! {
        started = start(&options.apps, options.rate) => started?,
        _ = stop.wait_for(|s| *s) => {
            println!("stopped during start-up; no process is left running");
            return Ok(());
        }
    };
    describe(&playground, &options);
    let _ = stop.wait_for(|s| *s).await;
    println!("stopping...");
    playground.stop();
    println!("stopped; no process is left running");
    Ok(())
}

/// Starts the control plane with Fledge's and the mesh CRDs, a namespace per app, the
/// cluster simulator, the traffic simulator sending `rate` requests per second to each app
/// (`(namespace, deployment)`) and a Prometheus scraping it, printing progress.
pub(crate) async fn start(apps: &[(String, String)], rate: f64) -> Result<Playground> {
    println!("starting etcd and kube-apiserver...");
    let cluster = LocalCluster::start().await?;
    println!("  ready in {} ms", cluster.startup_duration().as_millis());
    let crds = cluster.install_fledge_crds().await?;
    println!("  installed {}", crds.join(", "));
    match cluster.install_mesh_crds().await? {
        MeshCrdSource::Reference(dir) => {
            println!("  installed the upstream mesh CRDs from {}", dir.display());
        }
        MeshCrdSource::Fallback => {
            println!("  installed minimal mesh CRDs (no upstream schemas on this machine)");
        }
    }
    for namespace in apps
        .iter()
        .map(|(ns, _)| ns.as_str())
        .collect::<std::collections::BTreeSet<_>>()
    {
        cluster
            .apply_yaml(
                &format!("apiVersion: v1\nkind: Namespace\nmetadata: {{ name: {namespace} }}\n"),
                "default",
            )
            .await?;
    }
    let cluster_sim = ClusterSim::start(cluster.client(), ClusterSimConfig::default());
    let apps: Vec<SimApp> = apps
        .iter()
        .map(|(ns, target)| SimApp::new(ns, target).with_rate(rate))
        .collect();
    let traffic_sim =
        TrafficSim::start(cluster.client(), apps, TrafficSimConfig::default()).await?;
    let prometheus = LocalPrometheus::start(&[traffic_sim.metrics_addr()]).await?;
    Ok(Playground {
        prometheus,
        traffic_sim,
        cluster_sim,
        cluster,
    })
}

fn describe(playground: &Playground, options: &Options) {
    let Playground {
        prometheus,
        traffic_sim,
        cluster,
        ..
    } = playground;
    println!();
    println!("The Fledge playground is running. In another shell:");
    println!();
    println!(
        "  export KUBECONFIG={}",
        cluster.kubeconfig_path().display()
    );
    println!("  kubectl get namespaces");
    println!();
    println!("  API server        {}", cluster.server_url());
    println!(
        "  Prometheus        {}   (a MetricTemplate's provider.address)",
        prometheus.url()
    );
    println!(
        "  simulated traffic http://{}/metrics",
        traffic_sim.metrics_addr()
    );
    for (ns, target) in &options.apps {
        println!(
            "  app               {ns}/{target} at {} requests/s (primary: {target}-primary)",
            options.rate
        );
    }
    println!();
    println!(
        "Deployments become ready after 1 s; set FLEDGE_SIM_READY=false in a pod template to keep one"
    );
    println!(
        "from ever getting ready, FLEDGE_SIM_ERROR_RATE=0.3 / FLEDGE_SIM_LATENCY_MS=500 to make a bad version:"
    );
    println!("  kubectl -n test set env deploy/podinfo FLEDGE_SIM_ERROR_RATE=0.3");
    println!();
    println!("Ctrl-C stops everything.");
}

/// Runs `work` on a new multi-threaded runtime until it finishes or Ctrl-C / SIGTERM comes,
/// then fails with `interrupted`. Dropping `work` stops what it started (its processes are
/// owned by values it holds).
pub(crate) fn run_until_stopped(
    work: impl std::future::Future<Output = Result<()>>,
    interrupted: &str,
) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    runtime.block_on(async {
        tokio::select! {
            finished = work => finished,
            () = wait_for_stop() => bail!("{interrupted}"),
        }
    })
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM.
pub(crate) async fn wait_for_stop() {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let sigterm = async {
        match terminate.as_mut() {
            Some(signal) => {
                signal.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = sigterm => {}
    }
}
