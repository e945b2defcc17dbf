//! `cargo xtask bench engine`: plans per second of the engine on one core, for a
//! progressing canary with two metrics and two webhooks. Always measured in a release
//! build: a debug xtask re-runs itself with `--release`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use fledge_api::{Canary, CanaryPhase, CanaryStatus};
use fledge_engine::{
    MetricResult, Observation, Revision, Rollout, Routes, Timestamp, WebhookOutcome, WorkloadState,
    World,
};

const CANARY: &str = r"
apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: podinfo, namespace: test}
spec:
  provider: istio
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  service: {port: 9898}
  analysis:
    interval: 1m
    threshold: 5
    maxWeight: 50
    stepWeight: 10
    metrics:
      - {name: request-success-rate, thresholdRange: {min: 99}, interval: 1m}
      - {name: request-duration, thresholdRange: {max: 500}, interval: 1m}
    webhooks:
      - {name: load-test, type: rollout, url: http://flagger-loadtester.test/}
      - {name: traffic-gate, type: confirm-traffic-increase, url: http://flagger-loadtester.test/gate/check}
";

/// Runs the benchmark (`--seconds N`, default 3 per measurement).
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let seconds = match args {
        [] => 3,
        [flag, n] if flag == "--seconds" => n.parse().context("--seconds takes a whole number")?,
        _ => bail!("usage: cargo xtask bench engine [--seconds N]"),
    };
    if cfg!(debug_assertions) {
        // Numbers from a debug build mean nothing: measure in release.
        let args = ["bench", "engine", "--seconds"].map(str::to_owned);
        let mut args = args.to_vec();
        args.push(seconds.to_string());
        crate::cargo_run_release(
            &["--package", "xtask"],
            &args,
            "the release build of the engine benchmark",
        )?;
        return Ok(());
    }
    let budget = Duration::from_secs(seconds);
    let canary: Canary = fledge_api::yaml::from_str(CANARY).context("the benchmark canary")?;
    let rollout = Rollout::new(&canary, Some("istio")).context("the benchmark canary plans")?;
    let (status, observation, now) = progressing();

    let plan = rollout
        .plan(&status, &observation, now)
        .context("the benchmark tick plans")?;
    let advanced = plan
        .messages()
        .any(|m| m == "Advance podinfo.test canary weight 30");
    if !advanced {
        bail!(
            "the benchmark tick did not advance the canary: {:?}",
            plan.events
        );
    }

    let plan_rate = measure(budget, || {
        black_box(rollout.plan(black_box(&status), black_box(&observation), now)).is_ok()
    });
    let tick_rate = measure(budget, || {
        let request = black_box(rollout.needs(black_box(&status), &observation.world, now));
        black_box(request.metrics.len());
        black_box(rollout.plan(black_box(&status), black_box(&observation), now)).is_ok()
    });
    let cold_rate = measure(budget, || {
        black_box(fledge_engine::plan(
            black_box(&canary),
            Some("istio"),
            &status,
            &observation,
            now,
        ))
        .is_ok()
    });

    println!(
        "engine benchmark: a progressing canary (weight 20 → 30), 2 metrics, 2 webhooks, one core (CPU time), release build"
    );
    println!("| measurement | plans/s |");
    println!("|---|---:|");
    println!(
        "| `Rollout::plan` (prepared rollout) | {} |",
        thousands(plan_rate)
    );
    println!(
        "| `Rollout::needs` + `Rollout::plan` (a whole tick) | {} |",
        thousands(tick_rate)
    );
    println!(
        "| `fledge_engine::plan` (prepares the spec every call) | {} |",
        thousands(cold_rate)
    );
    Ok(())
}

/// The tick being measured: Progressing at 20%, everything ready and passing.
fn progressing() -> (CanaryStatus, Observation, Timestamp) {
    let now = Timestamp::from_second(1_767_225_600).unwrap_or(Timestamp::UNIX_EPOCH);
    let status = CanaryStatus {
        phase: CanaryPhase::Progressing,
        canary_weight: 20,
        last_applied_spec: Some("podinfo-7d9f8c".to_owned()),
        last_promoted_spec: Some("podinfo-5b6c4d".to_owned()),
        ..CanaryStatus::default()
    };
    let world = World {
        primary: Some(WorkloadState::ready(2)),
        canary: WorkloadState::ready(2),
        revision: Revision::new("podinfo-7d9f8c"),
        routes: Routes::split(80, 20),
        ..World::default()
    };
    let observation = Observation::of(world)
        .with_metric("request-success-rate", MetricResult::Value(99.8))
        .with_metric("request-duration", MetricResult::Value(212.0))
        .with_webhook("load-test", WebhookOutcome::Passed)
        .with_webhook("traffic-gate", WebhookOutcome::Passed);
    (status, observation, now)
}

/// Calls per second of CPU time of `work` over `budget` of wall time, after a short warm-up.
/// CPU time of this thread (from `/proc/thread-self/schedstat`) makes the figure "per second
/// of one core" even on a busy machine; without it, wall time is used.
fn measure(budget: Duration, mut work: impl FnMut() -> bool) -> f64 {
    let warm_up = Instant::now();
    while warm_up.elapsed() < Duration::from_millis(200) {
        black_box(work());
    }
    let started = Instant::now();
    let cpu_start = thread_cpu_time();
    let mut calls: u64 = 0;
    while started.elapsed() < budget {
        for _ in 0..1_000 {
            black_box(work());
        }
        calls += 1_000;
    }
    let seconds = match (cpu_start, thread_cpu_time()) {
        (Some(begin), Some(end)) if end > begin => end.saturating_sub(begin).as_secs_f64(),
        _ => started.elapsed().as_secs_f64(),
    };
    calls as f64 / seconds
}

/// Time this thread has spent on a CPU.
fn thread_cpu_time() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

/// `1234567.8` as `1,234,568`.
fn thousands(rate: f64) -> String {
    let digits = format!("{:.0}", rate.max(0.0));
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}
