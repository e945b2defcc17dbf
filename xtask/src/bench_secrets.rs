//! `cargo xtask bench secrets`: does the operator's memory grow with Secrets it does not use?
//!
//! The real `fledge-operator` binary on the local control plane with a few canaries whose
//! targets use a Secret each (`envFrom`, so config tracking reads it). Its resident set
//! (`VmRSS`) is read once they are initialized and idle, then 1,000 unrelated 10 KB Secrets
//! are created in the watched namespace and it is read again once the watch events had time
//! to arrive; the API requests of an idle window after that show whether any Secret is read
//! per tick. `--binary PATH` runs a binary built elsewhere (an older commit, for comparison).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use fledge_api::CanaryPhase;
use fledge_testkit::LocalCluster;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, PostParams};

use crate::bench_operator::{
    BenchStage, INTERVAL_SECONDS, NAMESPACE, memory, request_delta, wait_all,
};
use crate::control_plane;
use crate::operator::{self, Operator};

/// The benchmark's options.
#[derive(Debug)]
struct Options {
    release: bool,
    binary: Option<PathBuf>,
    canaries: usize,
    secrets: usize,
    secret_bytes: usize,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut options = Options {
        release: false,
        binary: None,
        canaries: 5,
        secrets: 1000,
        secret_bytes: 10 * 1024,
    };
    let usage = "usage: cargo xtask bench secrets [--release] [--binary PATH] [--canaries N] [--secrets N] [--secret-bytes N]";
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> Result<usize> {
            let value = args
                .next()
                .with_context(|| format!("{name} needs a number"))?;
            value
                .parse::<usize>()
                .ok()
                .filter(|n| *n >= 1)
                .with_context(|| format!("{name} {value}: expected a whole number >= 1"))
        };
        match arg.as_str() {
            "--release" => options.release = true,
            "--canaries" => options.canaries = number("--canaries")?,
            "--secrets" => options.secrets = number("--secrets")?,
            "--secret-bytes" => options.secret_bytes = number("--secret-bytes")?,
            "--binary" => {
                let path = args.next().context("--binary needs a path")?;
                options.binary = Some(PathBuf::from(path));
            }
            other => bail!("unknown argument {other:?}; {usage}"),
        }
    }
    Ok(options)
}

/// Runs the command.
pub fn run(args: &[String]) -> Result<()> {
    let options = parse(args)?;
    control_plane::ensure()?;
    let binary = if let Some(binary) = &options.binary {
        binary.clone()
    } else {
        println!(
            "==> building fledge-operator{}",
            if options.release { " (release)" } else { "" }
        );
        operator::build(options.release)?
    };
    crate::cluster::run_until_stopped(
        bench(&options, &binary),
        "interrupted; everything it started was stopped",
    )
}

async fn bench(options: &Options, binary: &Path) -> Result<()> {
    let mut stage = BenchStage::start(binary, "fledge-bench-secrets").await?;
    let measured = measure(options, &stage.cluster, &mut stage.fledge).await;
    stage.stop();
    measured
}

async fn measure(options: &Options, cluster: &LocalCluster, fledge: &mut Operator) -> Result<()> {
    let client = cluster.client();
    let n = options.canaries;
    println!("==> creating {n} canaries whose targets use a Secret each");
    for index in 0..n {
        cluster.apply_yaml(&manifests(index), NAMESPACE).await?;
    }
    wait_all(&client, n, CanaryPhase::Initialized, fledge).await?;
    // Idle: initialized, every canary ticked at least twice since.
    tokio::time::sleep(Duration::from_secs(2 * INTERVAL_SECONDS)).await;
    fledge.check_alive()?;
    let before = memory(fledge.pid(), "VmRSS")?;
    println!("  {n} canaries initialized: VmRSS {before} KiB");

    let (count, bytes) = (options.secrets, options.secret_bytes);
    println!("==> creating {count} unrelated Secrets of {bytes} bytes each");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);
    for index in 0..count {
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(format!("unrelated-{index}")),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([(
                "blob".to_owned(),
                ByteString(noise(index, bytes)),
            )])),
            ..Secret::default()
        };
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .with_context(|| format!("create Secret unrelated-{index}"))?;
    }
    // The watch events arrive within a second; two intervals let every canary tick again.
    tokio::time::sleep(Duration::from_secs(2 * INTERVAL_SECONDS)).await;
    fledge.check_alive()?;
    let after = memory(fledge.pid(), "VmRSS")?;
    println!("  with {count} unrelated Secrets: VmRSS {after} KiB");
    let window = Duration::from_secs(3 * INTERVAL_SECONDS);
    println!("==> idle window of {} s: API requests", window.as_secs());
    let requests = request_delta(&client, window).await?;
    let secret_requests: Vec<String> = requests
        .iter()
        .filter(|((_, resource), _)| resource == "secrets")
        .map(|((verb, resource), count)| format!("{verb} {resource}: {count}"))
        .collect();
    fledge.check_alive()?;

    println!();
    println!("| canaries | unrelated Secrets | VmRSS before | VmRSS after | difference |");
    println!("|---:|---:|---:|---:|---:|");
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "| {n} | {count} × {} KB | {:.1} MiB | {:.1} MiB | {:+.1} MiB |",
        bytes / 1024,
        mib(before),
        mib(after),
        mib(after) - mib(before)
    );
    println!(
        "Secret requests in the idle window ({} ticks): {}",
        n * 3,
        if secret_requests.is_empty() {
            "none".to_owned()
        } else {
            secret_requests.join(", ")
        }
    );
    Ok(())
}

/// `bytes` of incompressible-looking data (a linear congruential sequence seeded by `seed`).
fn noise(seed: usize, bytes: usize) -> Vec<u8> {
    let mut state = (seed as u64).wrapping_mul(6_364_136_223_846_793_005) | 1;
    (0..bytes)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 56) as u8
        })
        .collect()
}

/// The Secret, Deployment (using it through `envFrom`) and Canary number `index`.
fn manifests(index: usize) -> String {
    format!(
        r"
apiVersion: v1
kind: Secret
metadata: {{ name: bench-{index}-token }}
stringData: {{ TOKEN: token-{index} }}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{ name: bench-{index}, labels: {{ app: bench-{index} }} }}
spec:
  replicas: 1
  selector: {{ matchLabels: {{ app: bench-{index} }} }}
  template:
    metadata: {{ labels: {{ app: bench-{index} }} }}
    spec:
      containers:
        - name: podinfod
          image: 'ghcr.io/stefanprodan/podinfo:6.0.0'
          ports: [{{ containerPort: 9898 }}]
          envFrom: [{{ secretRef: {{ name: bench-{index}-token }} }}]
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
