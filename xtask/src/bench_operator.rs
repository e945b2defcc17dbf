//! `cargo xtask bench operator`: the real `fledge-operator` binary on the local control plane.
//!
//! Measures, as in docs/benchmarks.md ("Operator"):
//!
//! - memory: the operator's resident set (`VmRSS` in `/proc/<pid>/status`) idle with no
//!   canary, then with N canaries initialized (N Deployments + Canaries, provider kubernetes);
//! - API requests per canary per tick in two steady states — every canary initialized, then
//!   every canary progressing (a new revision each; `iterations: 1000` keeps them there) —
//!   from the kube-apiserver's own `apiserver_request_total{verb,resource}`: the delta over a
//!   window minus the delta over a window of the same length with the operator stopped
//!   (everything else — the cluster simulator, the API server's own loops — still runs).
//!   Watches count only when they end, so the operator's open watches are not in it;
//! - reaction time: from a `kubectl set image` (a strategic merge patch of a Deployment's
//!   image) to the `New revision detected!` Event (its `eventTime`, written by the operator)
//!   and to the Canary's status turning `Progressing` (observed by polling every 20 ms), on a
//!   different initialized canary each time, with the N canaries present.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use fledge_api::{Canary, CanaryPhase};
use fledge_testkit::{ClusterSim, ClusterSimConfig, LocalCluster};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

use crate::control_plane;
use crate::operator::{self, Operator};

/// The namespace the benchmark's canaries live in.
pub(crate) const NAMESPACE: &str = "bench";
/// The canaries' analysis interval, in seconds: one tick per canary per interval.
pub(crate) const INTERVAL_SECONDS: u64 = 10;

/// The benchmark's options.
#[derive(Debug)]
struct Options {
    release: bool,
    canaries: usize,
    repeats: usize,
    window: Duration,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut options = Options {
        release: false,
        canaries: 100,
        repeats: 7,
        window: Duration::from_secs(60),
    };
    let usage = "usage: cargo xtask bench operator [--release] [--canaries N] [--repeats N] [--window SECONDS]";
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut number = |name: &str, min: u64| -> Result<u64> {
            let value = args
                .next()
                .with_context(|| format!("{name} needs a number"))?;
            value
                .parse::<u64>()
                .ok()
                .filter(|n| *n >= min)
                .with_context(|| format!("{name} {value}: expected a whole number >= {min}"))
        };
        match arg.as_str() {
            "--release" => options.release = true,
            "--canaries" => options.canaries = number("--canaries", 5)? as usize,
            "--repeats" => options.repeats = number("--repeats", 1)? as usize,
            "--window" => {
                options.window = Duration::from_secs(number("--window", INTERVAL_SECONDS)?);
            }
            other => bail!("unknown argument {other:?}; {usage}"),
        }
    }
    if options.repeats > options.canaries {
        bail!(
            "--repeats {} needs as many canaries (--canaries {})",
            options.repeats,
            options.canaries
        );
    }
    Ok(options)
}

/// Runs the command.
pub fn run(args: &[String]) -> Result<()> {
    let options = parse(args)?;
    control_plane::ensure()?;
    println!(
        "==> building fledge-operator{}",
        if options.release { " (release)" } else { "" }
    );
    let binary = operator::build(options.release)?;
    crate::cluster::run_until_stopped(
        bench(&options, &binary),
        "interrupted; everything it started was stopped",
    )
}

/// The benchmark's results.
struct Results {
    /// VmRSS idle, with the canaries initialized, with them progressing; then VmHWM (KiB).
    rss_kib: [u64; 4],
    initialize_all: Duration,
    requests: Vec<RequestRow>,
    reaction_event: Vec<Duration>,
    reaction_status: Vec<Duration>,
}

/// API requests of one verb and resource in each window.
struct RequestRow {
    verb: String,
    resource: String,
    initialized: f64,
    progressing: f64,
    baseline: f64,
}

async fn bench(options: &Options, binary: &Path) -> Result<()> {
    let mut stage = BenchStage::start(binary, "fledge-bench-operator").await?;
    let results = measure(options, &stage.cluster, &mut stage.fledge).await;
    stage.stop();
    let results = results?;
    report(options, &results);
    Ok(())
}

/// What an operator benchmark runs on: a local control plane with Fledge's CRDs and the
/// benchmark's namespace, the cluster simulator, and the operator binary watching it.
pub(crate) struct BenchStage {
    pub cluster: LocalCluster,
    pub fledge: Operator,
    sim: ClusterSim,
}

impl BenchStage {
    /// Starts it all; `run` names the directory of the operator's log.
    pub(crate) async fn start(binary: &Path, run: &str) -> Result<Self> {
        println!("==> starting etcd and kube-apiserver");
        let cluster = LocalCluster::start().await?;
        cluster.install_fledge_crds().await?;
        cluster
            .apply_yaml(
                &format!("apiVersion: v1\nkind: Namespace\nmetadata: {{ name: {NAMESPACE} }}\n"),
                "default",
            )
            .await?;
        let sim = ClusterSim::start(
            cluster.client(),
            ClusterSimConfig {
                ready_delay: Duration::from_millis(200),
                namespace: Some(NAMESPACE.to_owned()),
            },
        );
        let log = operator::run_dir(run)?.join("fledge-operator.log");
        let args = operator::flags(cluster.kubeconfig_path(), NAMESPACE, "kubernetes", None)?;
        let fledge = Operator::spawn(binary, &args, &log)?;
        // Ended by the next start's sweep should this process be killed outright.
        cluster.adopt(fledge.pid())?;
        println!(
            "==> {} {} (pid {}, log {})",
            binary.display(),
            args.join(" "),
            fledge.pid(),
            log.display()
        );
        Ok(Self {
            cluster,
            fledge,
            sim,
        })
    }

    /// Stops the operator, the simulator and the control plane, in that order.
    pub(crate) fn stop(self) {
        let Self {
            cluster,
            fledge,
            sim,
        } = self;
        drop(fledge);
        drop(sim);
        cluster.stop();
    }
}

async fn measure(
    options: &Options,
    cluster: &LocalCluster,
    fledge: &mut Operator,
) -> Result<Results> {
    let client = cluster.client();
    let n = options.canaries;
    // Idle: connected, caches synced, nothing to do.
    tokio::time::sleep(Duration::from_secs(5)).await;
    fledge.check_alive()?;
    let idle_rss_kib = memory(fledge.pid(), "VmRSS")?;
    println!("  idle, 0 canaries: VmRSS {idle_rss_kib} KiB");

    println!(
        "==> creating {n} Deployments and Canaries (provider kubernetes, interval {INTERVAL_SECONDS}s)"
    );
    let started = Instant::now();
    for index in 0..n {
        cluster.apply_yaml(&manifests(index), NAMESPACE).await?;
    }
    wait_all(&client, n, CanaryPhase::Initialized, fledge).await?;
    let initialize_all = started.elapsed();
    println!(
        "  all {n} initialized in {:.1} s",
        initialize_all.as_secs_f64()
    );
    // Let the initialization's writes settle before the steady-state window.
    tokio::time::sleep(Duration::from_secs(2 * INTERVAL_SECONDS)).await;
    fledge.check_alive()?;
    let initialized_rss_kib = memory(fledge.pid(), "VmRSS")?;
    println!("  {n} canaries initialized: VmRSS {initialized_rss_kib} KiB");
    println!(
        "==> steady state, {n} canaries initialized: API requests over {} s",
        options.window.as_secs()
    );
    let initialized = request_delta(&client, options.window).await?;
    fledge.check_alive()?;

    println!("==> reaction to a new revision, {} times", options.repeats);
    let mut reaction_event = Vec::new();
    let mut reaction_status = Vec::new();
    for index in 0..options.repeats {
        let (event, status) = reaction(&client, index, fledge).await?;
        println!(
            "  bench-{index}: Event after {:.0} ms, status Progressing seen after {:.0} ms",
            millis(event),
            millis(status)
        );
        reaction_event.push(event);
        reaction_status.push(status);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    println!("==> a new revision for every other canary: all {n} progressing");
    for index in options.repeats..n {
        set_image(&client, index).await?;
    }
    wait_all(&client, n, CanaryPhase::Progressing, fledge).await?;
    // Past the scale-up and the start of the analysis: every tick is one more iteration.
    tokio::time::sleep(Duration::from_secs(2 * INTERVAL_SECONDS)).await;
    fledge.check_alive()?;
    println!(
        "==> steady state, {n} canaries progressing: API requests over {} s",
        options.window.as_secs()
    );
    let progressing = request_delta(&client, options.window).await?;
    fledge.check_alive()?;
    let progressing_rss_kib = memory(fledge.pid(), "VmRSS")?;
    let peak_rss_kib = memory(fledge.pid(), "VmHWM")?;
    println!(
        "  {n} canaries progressing: VmRSS {progressing_rss_kib} KiB (peak {peak_rss_kib} KiB)"
    );

    println!("==> the same window without the operator (the baseline to subtract)");
    fledge.stop();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let baseline = request_delta(&client, options.window).await?;
    let mut keys: Vec<&(String, String)> = initialized
        .keys()
        .chain(progressing.keys())
        .chain(baseline.keys())
        .collect();
    keys.sort();
    keys.dedup();
    let count =
        |map: &BTreeMap<(String, String), f64>, key| map.get(key).copied().unwrap_or_default();
    let requests = keys
        .into_iter()
        .map(|key| RequestRow {
            verb: key.0.clone(),
            resource: key.1.clone(),
            initialized: count(&initialized, key),
            progressing: count(&progressing, key),
            baseline: count(&baseline, key),
        })
        .collect();
    Ok(Results {
        rss_kib: [
            idle_rss_kib,
            initialized_rss_kib,
            progressing_rss_kib,
            peak_rss_kib,
        ],
        initialize_all,
        requests,
        reaction_event,
        reaction_status,
    })
}

/// A Deployment and its Canary, `bench-<index>`.
fn manifests(index: usize) -> String {
    format!(
        r"
apiVersion: apps/v1
kind: Deployment
metadata: {{ name: bench-{index}, labels: {{ app: bench-{index} }} }}
spec:
  replicas: 1
  selector: {{ matchLabels: {{ app: bench-{index} }} }}
  template:
    metadata: {{ labels: {{ app: bench-{index} }} }}
    spec: {{ containers: [{{ name: podinfod, image: 'ghcr.io/stefanprodan/podinfo:6.0.0', ports: [{{ containerPort: 9898 }}] }}] }}
---
apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {{ name: bench-{index} }}
spec:
  provider: kubernetes
  targetRef: {{ apiVersion: apps/v1, kind: Deployment, name: bench-{index} }}
  progressDeadlineSeconds: 60
  service: {{ port: 9898 }}
  analysis: {{ interval: {INTERVAL_SECONDS}s, threshold: 2, iterations: 1000 }}
"
    )
}

/// Waits until `count` canaries are in `phase`.
pub(crate) async fn wait_all(
    client: &kube::Client,
    count: usize,
    phase: CanaryPhase,
    fledge: &mut Operator,
) -> Result<()> {
    let canaries: Api<Canary> = Api::namespaced(client.clone(), NAMESPACE);
    let started = Instant::now();
    loop {
        fledge.check_alive()?;
        let list = canaries
            .list(&ListParams::default())
            .await
            .context("list the Canaries")?;
        let reached = list
            .items
            .iter()
            .filter(|c| c.status.as_ref().is_some_and(|s| s.phase == phase))
            .count();
        if reached >= count {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(300) {
            bail!(
                "only {reached} of {count} canaries {phase} after 300 s; the operator's log ({}):\n{}",
                fledge.log_path().display(),
                fledge.log_tail(15)
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Patches `bench-<index>`'s image and measures how long until the operator's
/// `New revision detected!` Event (by its `eventTime`) and until the status is seen
/// `Progressing`.
async fn reaction(
    client: &kube::Client,
    index: usize,
    fledge: &mut Operator,
) -> Result<(Duration, Duration)> {
    let name = format!("bench-{index}");
    let canaries: Api<Canary> = Api::namespaced(client.clone(), NAMESPACE);
    let events: Api<Event> = Api::namespaced(client.clone(), NAMESPACE);
    let sent_at = SystemTime::now();
    let sent = Instant::now();
    set_image(client, index).await?;
    let status = loop {
        let canary = canaries
            .get(&name)
            .await
            .with_context(|| format!("read Canary {name}"))?;
        if canary
            .status
            .is_some_and(|s| s.phase == CanaryPhase::Progressing)
        {
            break sent.elapsed();
        }
        if sent.elapsed() > Duration::from_secs(30) {
            fledge.check_alive()?;
            bail!(
                "{name} not Progressing 30 s after its new revision; log tail:\n{}",
                fledge.log_tail(15)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let sent_us = i128::try_from(
        sent_at
            .duration_since(UNIX_EPOCH)
            .context("the clock is before 1970")?
            .as_micros(),
    )
    .context("the clock is past the year 5 million")?;
    let selector = format!("involvedObject.name={name},involvedObject.kind=Canary");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list = events
            .list(&ListParams::default().fields(&selector))
            .await
            .context("list the Events")?;
        let written = list
            .items
            .iter()
            .filter(|e| {
                e.message
                    .as_deref()
                    .is_some_and(|m| m.starts_with("New revision detected!"))
            })
            .filter_map(|e| e.event_time.as_ref())
            .map(|t| i128::from(t.0.as_microsecond()))
            .max();
        if let Some(written) = written {
            let delta = u64::try_from(written - sent_us).unwrap_or(0);
            return Ok((Duration::from_micros(delta), status));
        }
        if Instant::now() > deadline {
            bail!("no \"New revision detected!\" Event for {name}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `kubectl set image deployment/bench-<index> podinfod=...:6.0.1`.
async fn set_image(client: &kube::Client, index: usize) -> Result<()> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    let patch = json!({ "spec": { "template": { "spec": { "containers": [
        { "name": "podinfod", "image": "ghcr.io/stefanprodan/podinfo:6.0.1" }
    ] } } } });
    deployments
        .patch(
            &format!("bench-{index}"),
            &PatchParams::default(),
            &Patch::Strategic(patch),
        )
        .await
        .with_context(|| format!("set the image of bench-{index}"))?;
    Ok(())
}

/// `apiserver_request_total` summed by (verb, resource[/subresource]), once.
async fn request_counts(client: &kube::Client) -> Result<BTreeMap<(String, String), f64>> {
    let request = http::Request::get("/metrics")
        .body(Vec::new())
        .context("build the /metrics request")?;
    let text = client
        .request_text(request)
        .await
        .context("read the kube-apiserver's /metrics")?;
    let mut counts = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let label = |name: &str| {
            labels
                .split(',')
                .find_map(|pair| pair.strip_prefix(&format!("{name}=\"")))
                .map(|v| v.trim_end_matches('"').to_owned())
                .unwrap_or_default()
        };
        let resource = match label("subresource").as_str() {
            "" => label("resource"),
            sub => format!("{}/{sub}", label("resource")),
        };
        *counts.entry((label("verb"), resource)).or_insert(0.0) += value;
    }
    if counts.is_empty() {
        bail!("the kube-apiserver's /metrics has no apiserver_request_total");
    }
    Ok(counts)
}

/// Requests the API server served during `window`, by (verb, resource).
pub(crate) async fn request_delta(
    client: &kube::Client,
    window: Duration,
) -> Result<BTreeMap<(String, String), f64>> {
    let before = request_counts(client).await?;
    tokio::time::sleep(window).await;
    let after = request_counts(client).await?;
    let mut delta: BTreeMap<(String, String), f64> = after
        .into_iter()
        .map(|(key, value)| {
            let was = before.get(&key).copied().unwrap_or_default();
            (key, value - was)
        })
        .filter(|(_, d)| *d > 0.0)
        .collect();
    // The reading of /metrics itself.
    if let Some(own) = delta.get_mut(&("GET".to_owned(), String::new())) {
        *own -= 1.0;
    }
    delta.retain(|_, d| *d > 0.0);
    Ok(delta)
}

/// A field of `/proc/<pid>/status`, in KiB.
pub(crate) fn memory(pid: u32, field: &str) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {field} in {path}"))
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median_and_max(samples: &[Duration]) -> (f64, f64) {
    let mut ms: Vec<f64> = samples.iter().copied().map(millis).collect();
    ms.sort_by(f64::total_cmp);
    let median = if ms.is_empty() {
        0.0
    } else if ms.len() % 2 == 1 {
        ms[ms.len() / 2]
    } else {
        f64::midpoint(ms[ms.len() / 2 - 1], ms[ms.len() / 2])
    };
    (median, ms.last().copied().unwrap_or_default())
}

fn report(options: &Options, results: &Results) {
    let n = options.canaries;
    let build = if options.release { "release" } else { "debug" };
    let mib = |kib: u64| kib as f64 / 1024.0;
    let [idle, initialized, progressing, peak] = results.rss_kib;
    println!();
    println!(
        "## fledge-operator ({build} build), {n} canaries, provider kubernetes, interval {INTERVAL_SECONDS}s"
    );
    println!();
    println!("| measurement | value |");
    println!("|---|---:|");
    let (event_median, event_max) = median_and_max(&results.reaction_event);
    let (status_median, status_max) = median_and_max(&results.reaction_status);
    println!(
        "| set image → `New revision detected!` Event, median / max of {} | {event_median:.0} ms / {event_max:.0} ms |",
        results.reaction_event.len()
    );
    println!(
        "| set image → status `Progressing` seen (20 ms polling), median / max | {status_median:.0} ms / {status_max:.0} ms |"
    );
    println!("| VmRSS idle, 0 canaries | {:.1} MiB |", mib(idle));
    println!(
        "| VmRSS, {n} canaries initialized | {:.1} MiB |",
        mib(initialized)
    );
    println!(
        "| VmRSS, {n} canaries progressing | {:.1} MiB |",
        mib(progressing)
    );
    println!("| VmHWM (peak RSS) over the run | {:.1} MiB |", mib(peak));
    println!(
        "| creating {n} canaries → all Initialized | {:.1} s |",
        results.initialize_all.as_secs_f64()
    );
    let window = options.window.as_secs_f64();
    let ticks = n as f64 * window / INTERVAL_SECONDS as f64;
    println!();
    println!(
        "API requests per {window:.0} s window ({ticks:.0} canary ticks) from apiserver_request_total; \
         the operator's = window − baseline (operator stopped):"
    );
    println!();
    println!(
        "| verb | resource | baseline | all initialized | per canary per tick | all progressing | per canary per tick |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    let (mut initialized_total, mut progressing_total) = (0.0, 0.0);
    for row in &results.requests {
        let initialized = (row.initialized - row.baseline).max(0.0);
        let progressing = (row.progressing - row.baseline).max(0.0);
        initialized_total += initialized;
        progressing_total += progressing;
        let resource = if row.resource.is_empty() {
            "(non-resource)"
        } else {
            &row.resource
        };
        println!(
            "| {} | {resource} | {:.0} | {:.0} | {:.3} | {:.0} | {:.3} |",
            row.verb,
            row.baseline,
            row.initialized,
            initialized / ticks,
            row.progressing,
            progressing / ticks
        );
    }
    println!(
        "| **operator, all** | | | **{initialized_total:.0}** | **{:.3}** | **{progressing_total:.0}** | **{:.3}** |",
        initialized_total / ticks,
        progressing_total / ticks
    );
}
