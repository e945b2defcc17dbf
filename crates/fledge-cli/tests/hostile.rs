//! No Canary can panic or hang Fledge: hostile documents — every field huge, negative, zero,
//! non-finite, overflowing, empty, very long or of the wrong type — go through validation,
//! the engine (which, being a library, may be handed specs nobody validated) and the
//! `fledge simulate` binary. Each must answer, with a field path when it refuses.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use fledge_api::validation::{Verdict, validate_document};
use fledge_api::{Canary, CanaryPhase, CanaryStatus};
use fledge_engine::simulation::{AllPassing, Cluster, Simulation, Timing};
use fledge_engine::{Observation, Rollout, Routes, Timestamp, WorkloadState, World};
use proptest::prelude::*;
use serde_json::{Value, json};

/// Far beyond what any simulation of at most 10,000 ticks takes, even on a loaded machine.
const SIMULATE_WALL_TIME: Duration = Duration::from_secs(60);

/// A canary strategy canary with every kind of field set to something sensible.
fn canary_release() -> Value {
    json!({
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test"},
        "spec": {
            "provider": "istio",
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "autoscalerRef": {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "name": "podinfo",
                "primaryScalerReplicas": {"minReplicas": 2, "maxReplicas": 4}},
            "progressDeadlineSeconds": 60,
            "service": {"port": 9898, "timeout": "15s",
                "retries": {"attempts": 3, "perTryTimeout": "5s"}},
            "analysis": {
                "interval": "1m", "threshold": 5, "maxWeight": 50, "stepWeight": 10,
                "stepWeightPromotion": 50,
                "primaryReadyThreshold": 100, "canaryReadyThreshold": 100,
                "sessionAffinity": {"cookieName": "canary-ck", "maxAge": 21600},
                "metrics": [
                    {"name": "request-success-rate", "thresholdRange": {"min": 99}, "interval": "1m"},
                    {"name": "latency", "templateRef": {"name": "latency"},
                        "thresholdRange": {"min": 0, "max": 500}, "interval": "30s"}
                ],
                "webhooks": [
                    {"name": "load-test", "type": "rollout", "url": "http://loadtester.test/",
                        "timeout": "5s", "retries": 2},
                    {"name": "gate", "type": "confirm-promotion", "url": "http://loadtester.test/gate"}
                ],
                "alerts": [{"name": "on-call", "severity": "error", "providerRef": {"name": "slack"}}]
            }
        }
    })
}

/// A blue/green (mirroring) and A/B testing canary, the strategies counted in iterations.
fn iterations_release() -> Value {
    json!({
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": "abtest", "namespace": "test"},
        "spec": {
            "provider": "istio",
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "abtest"},
            "service": {"port": 80},
            "analysis": {
                "interval": "30s", "threshold": 2, "iterations": 10, "mirror": true, "mirrorWeight": 50,
                "match": [{"headers": {"x-canary": {"exact": "insider"}}}],
                "metrics": [{"name": "request-duration", "thresholdRange": {"max": 500}, "interval": "1m"}],
                "webhooks": [{"name": "smoke", "type": "pre-rollout", "url": "http://tester/", "timeout": "30s"}]
            }
        }
    })
}

/// What a field holds, so most hostile values are of its type and reach past the schema.
#[derive(Clone, Copy, Debug)]
enum Holds {
    Duration,
    Integer,
    Number,
    Text,
    Weights,
}

/// Where hostile values go: every duration, count, weight, bound and name of a Canary.
const FIELDS: [(&str, Holds); 30] = [
    ("/metadata/name", Holds::Text),
    ("/spec/provider", Holds::Text),
    ("/spec/targetRef/name", Holds::Text),
    ("/spec/progressDeadlineSeconds", Holds::Integer),
    ("/spec/service/port", Holds::Integer),
    ("/spec/service/timeout", Holds::Duration),
    ("/spec/service/retries/attempts", Holds::Integer),
    (
        "/spec/autoscalerRef/primaryScalerReplicas/minReplicas",
        Holds::Integer,
    ),
    (
        "/spec/autoscalerRef/primaryScalerReplicas/maxReplicas",
        Holds::Integer,
    ),
    ("/spec/analysis/interval", Holds::Duration),
    ("/spec/analysis/threshold", Holds::Integer),
    ("/spec/analysis/iterations", Holds::Integer),
    ("/spec/analysis/maxWeight", Holds::Integer),
    ("/spec/analysis/stepWeight", Holds::Integer),
    ("/spec/analysis/stepWeights", Holds::Weights),
    ("/spec/analysis/stepWeightPromotion", Holds::Integer),
    ("/spec/analysis/mirrorWeight", Holds::Integer),
    ("/spec/analysis/primaryReadyThreshold", Holds::Integer),
    ("/spec/analysis/canaryReadyThreshold", Holds::Integer),
    ("/spec/analysis/sessionAffinity/maxAge", Holds::Integer),
    ("/spec/analysis/metrics/0/name", Holds::Text),
    ("/spec/analysis/metrics/0/interval", Holds::Duration),
    ("/spec/analysis/metrics/0/threshold", Holds::Number),
    ("/spec/analysis/metrics/0/thresholdRange/min", Holds::Number),
    ("/spec/analysis/metrics/0/thresholdRange/max", Holds::Number),
    ("/spec/analysis/webhooks/0/name", Holds::Text),
    ("/spec/analysis/webhooks/0/url", Holds::Text),
    ("/spec/analysis/webhooks/0/timeout", Holds::Duration),
    ("/spec/analysis/webhooks/0/retries", Holds::Integer),
    ("/spec/analysis/alerts/0/name", Holds::Text),
];

fn hostile_integer() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!(i32::MAX)),
        Just(json!(i32::MIN)),
        Just(json!(i32::MAX - 1)),
        Just(json!(-1)),
        Just(json!(0)),
        Just(json!(1)),
        Just(json!(100)),
        Just(json!(101)),
        Just(json!(65_536)),
        any::<i32>().prop_map(|n| json!(n)),
    ]
}

fn hostile_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!(i64::MAX)),
        Just(json!(i64::MIN)),
        Just(json!(i32::MAX)),
        Just(json!(i32::MIN)),
        Just(json!(u64::MAX)),
        Just(json!(-1)),
        Just(json!(0)),
        Just(json!(1)),
        Just(json!(101)),
        Just(json!(f64::MAX)),
        Just(json!(-f64::MAX)),
        Just(json!(f64::MIN_POSITIVE)),
        Just(json!(-0.5)),
        any::<i32>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|n| json!(n)),
    ]
}

fn hostile_duration() -> impl Strategy<Value = Value> {
    prop_oneof![
        // Durations that overflow, are negative, mean nothing, or have many parts.
        Just(json!("2562047788015216h")),
        Just(json!("9223372036854775807s")),
        Just(json!("18446744073709551615s")),
        Just(json!("340282366920938463463374607431768211455ns")),
        Just(json!("99999999999999999999999999999999999999999999h")),
        Just(json!("1.99999999999999999999999999999h")),
        Just(json!("-1s")),
        Just(json!("1e99h")),
        Just(json!("0")),
        Just(json!("0s")),
        Just(json!("1ns")),
        Just(json!("25h")),
        Just(json!("1h".repeat(10_000))),
        Just(json!("٣s")),
        Just(json!("NaN")),
        Just(json!("inf")),
        Just(json!("")),
        (
            0u64..u64::MAX,
            prop_oneof![Just("h"), Just("m"), Just("s"), Just("ms")]
        )
            .prop_map(|(n, unit)| json!(format!("{n}{unit}"))),
    ]
}

fn hostile_text() -> impl Strategy<Value = Value> {
    prop_oneof![
        // Names and URLs: empty, long, odd.
        Just(json!("")),
        Just(json!(" ")),
        Just(json!("x".repeat(70_000))),
        Just(json!("é".repeat(300))),
        Just(json!("\u{0}")),
        Just(json!("http://")),
        Just(json!(format!("http://{}/", "a".repeat(10_000)))),
        "\\PC{0,24}".prop_map(|s| json!(s)),
    ]
}

fn hostile_weights() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::collection::vec(any::<i32>(), 0..8).prop_map(|v| json!(v)),
        prop::collection::vec(-5i32..120, 0..8).prop_map(|v| json!(v)),
        Just(json!((1..=10_000).collect::<Vec<u32>>())),
        Just(json!([i32::MAX, i32::MIN, 0, -1])),
        Just(json!([])),
    ]
}

/// Mostly a hostile value of the field's type; sometimes one of another type.
fn hostile_value(holds: Holds) -> BoxedStrategy<Value> {
    let typed = match holds {
        Holds::Duration => hostile_duration().boxed(),
        Holds::Integer => hostile_integer().boxed(),
        Holds::Number => hostile_number().boxed(),
        Holds::Text => hostile_text().boxed(),
        Holds::Weights => hostile_weights().boxed(),
    };
    prop_oneof![
        8 => typed,
        1 => hostile_duration(),
        1 => hostile_number(),
        1 => prop_oneof![Just(json!({})), Just(json!(true)), Just(Value::Null), Just(json!([1]))],
    ]
    .boxed()
}

/// A Canary with up to six of its fields replaced by hostile values.
fn hostile_canary() -> impl Strategy<Value = Value> {
    (
        any::<bool>(),
        prop::collection::vec(
            (0..FIELDS.len()).prop_flat_map(|field| (Just(field), hostile_value(FIELDS[field].1))),
            1..5,
        ),
    )
        .prop_map(|(canary_strategy, changes)| {
            let mut document = if canary_strategy {
                canary_release()
            } else {
                iterations_release()
            };
            for (field, value) in changes {
                set(&mut document, FIELDS[field].0, value);
            }
            document
        })
}

/// Sets the value at a JSON pointer, creating the objects on the way.
fn set(document: &mut Value, pointer: &str, value: Value) {
    let mut at = document;
    let parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    let (last, parents) = parts.split_last().expect("a pointer has a field");
    for part in parents {
        at = match at {
            Value::Array(items) => {
                let index: usize = part.parse().expect("an index");
                if items.len() <= index {
                    items.resize(index + 1, json!({}));
                }
                &mut items[index]
            }
            other => {
                if !other.is_object() {
                    *other = json!({});
                }
                other
                    .as_object_mut()
                    .expect("an object")
                    .entry(part.to_string())
                    .or_insert_with(|| json!({}))
            }
        };
    }
    if let Some(fields) = at.as_object_mut() {
        fields.insert((*last).to_owned(), value);
    }
}

/// Plans ticks of a Canary nobody validated: a simulated rollout with every check passing,
/// then single plans against hostile statuses, worlds and clocks.
fn plan_unvalidated(canary: &Canary, metric_value: f64) {
    let Ok(rollout) = Rollout::new(canary, Some("istio")) else {
        return;
    };
    let start = Timestamp::from_second(1_767_225_600).expect("a valid start");
    let mut sim = Simulation::new(
        rollout.clone(),
        Cluster::new("v1", 2, Timing::default()),
        start,
    );
    let mut checks = AllPassing {
        value: metric_value,
    };
    for tick in 0..40 {
        if tick == 1 {
            let now = sim.now;
            sim.cluster.deploy("v2", tick, now);
        }
        if sim.step(&mut checks).is_err() {
            break;
        }
    }
    let world = World {
        primary: Some(WorkloadState::ready(u32::MAX)),
        canary: WorkloadState::rolling_out(u32::MAX, u32::MAX, Timestamp::MIN),
        revision: fledge_engine::Revision::new("v3"),
        routes: Routes {
            primary: u32::MAX,
            canary: u32::MAX,
            mirrored: true,
        },
        autoscaler_min_replicas: Some(u32::MAX),
        deleting: false,
    };
    for phase in CanaryPhase::ALL {
        for now in [Timestamp::MIN, start, Timestamp::MAX] {
            let status = CanaryStatus {
                phase,
                failed_checks: i32::MAX,
                canary_weight: i32::MIN,
                iterations: i32::MAX,
                last_applied_spec: Some("v2".to_owned()),
                last_promoted_spec: Some("v1".to_owned()),
                ..CanaryStatus::default()
            };
            let request = rollout.needs(&status, &world, now);
            let mut observation = Observation::of(world.clone());
            for name in request.metrics {
                observation
                    .metrics
                    .insert(name, fledge_engine::MetricResult::Value(metric_value));
            }
            for hook in request.webhooks {
                observation
                    .webhooks
                    .insert(hook.name, fledge_engine::WebhookOutcome::Passed);
            }
            let _ = rollout.plan(&status, &observation, now);
        }
    }
}

/// Runs `fledge simulate` on `document`, killing it if it outlives the wall-time bound.
fn simulate(dir: &Path, document: &Value) -> (Output, Duration) {
    fledge_on(dir, "simulate", document)
}

/// Runs `fledge <command>` on `document`, killing it if it outlives the wall-time bound.
fn fledge_on(dir: &Path, command: &str, document: &Value) -> (Output, Duration) {
    let path = dir.join("canary.yaml");
    let mut file = std::fs::File::create(&path).expect("a temporary file");
    file.write_all(document.to_string().as_bytes())
        .expect("the canary written");
    drop(file);
    let began = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_fledge"))
        .arg(command)
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("fledge runs");
    // Drain stdout and stderr while waiting, so a long timeline cannot block the child.
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let read = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let (stdout, stderr) = (read(Box::new(stdout)), read(Box::new(stderr)));
    let status = loop {
        if let Some(status) = child.try_wait().expect("fledge is waited for") {
            break status;
        }
        if began.elapsed() > SIMULATE_WALL_TIME {
            let _ = child.kill();
            panic!(
                "fledge {command} hung for {SIMULATE_WALL_TIME:?} on {}",
                truncated(&document.to_string())
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let output = Output {
        status,
        stdout: stdout.join().expect("stdout read"),
        stderr: stderr.join().expect("stderr read"),
    };
    (output, began.elapsed())
}

fn truncated(text: &str) -> String {
    text.chars().take(2_000).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn no_canary_panics_or_hangs_validate_the_engine_or_simulate(
        document in hostile_canary(),
        metric_value in prop_oneof![Just(f64::NAN), Just(f64::INFINITY), Just(-f64::MAX), Just(99.5), any::<f64>()],
    ) {
        let report = validate_document(0, &document);
        for problem in &report.problems {
            prop_assert!(!problem.path.is_empty() && !problem.message.is_empty(), "{problem:?}");
        }
        prop_assert_eq!(report.verdict == Verdict::Invalid, !report.problems.is_empty());

        if let Ok(canary) = serde_json::from_value::<Canary>(document.clone()) {
            plan_unvalidated(&canary, metric_value);
        }

        let dir = tempfile::tempdir().expect("a temporary directory");
        let (output, _) = simulate(dir.path(), &document);
        let stderr = String::from_utf8_lossy(&output.stderr);
        prop_assert!(!stderr.contains("panicked"), "fledge simulate panicked: {stderr}");
        for command in ["validate", "migrate"] {
            let (output, _) = fledge_on(dir.path(), command, &document);
            let stderr = String::from_utf8_lossy(&output.stderr);
            prop_assert!(!stderr.contains("panicked"), "fledge {command} panicked: {stderr}");
            prop_assert!(matches!(output.status.code(), Some(0 | 1)), "fledge {command}: {stderr}");
        }
        if report.verdict == Verdict::Valid {
            prop_assert!(
                output.status.success(),
                "a valid canary simulates: {stderr}\n{}",
                truncated(&document.to_string())
            );
        } else {
            prop_assert_eq!(output.status.code(), Some(2), "{}", stderr);
            let first = &report.problems[0];
            prop_assert!(
                stderr.contains(&first.path),
                "the refusal names {}: {stderr}",
                first.path
            );
        }
    }
}

#[test]
fn the_huge_interval_canary_is_refused_by_validate_and_simulate_instead_of_panicking() {
    let mut document = canary_release();
    set(
        &mut document,
        "/spec/analysis/interval",
        json!("2562047788015216h"),
    );
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("huge-interval.yaml");
    std::fs::write(&path, fledge_api::yaml::to_string(&document).expect("yaml"))
        .expect("the canary written");

    let validate = Command::new(env!("CARGO_BIN_EXE_fledge"))
        .arg("validate")
        .arg(&path)
        .output()
        .expect("fledge validate runs");
    let verdict = String::from_utf8_lossy(&validate.stdout);
    assert_eq!(validate.status.code(), Some(1), "{verdict}");
    assert!(
        verdict.contains(
            "spec.analysis.interval: must be at most 24h, got 2562047788015216h; write a shorter duration"
        ),
        "{verdict}"
    );

    let (simulate, took) = simulate(dir.path(), &document);
    let stderr = String::from_utf8_lossy(&simulate.stderr);
    assert_eq!(simulate.status.code(), Some(2), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains("spec.analysis.interval: must be at most 24h, got 2562047788015216h"),
        "{stderr}"
    );
    assert!(took < SIMULATE_WALL_TIME);
}

#[test]
fn the_engine_plans_the_huge_interval_canary_it_is_handed_without_validation() {
    let mut document = canary_release();
    set(
        &mut document,
        "/spec/analysis/interval",
        json!("2562047788015216h"),
    );
    let canary: Canary = serde_json::from_value(document).expect("a typed canary");
    let rollout = Rollout::new(&canary, Some("istio")).expect("the engine accepts it");
    assert_eq!(
        rollout.interval(),
        Duration::from_secs(2_562_047_788_015_216 * 3600)
    );
    plan_unvalidated(&canary, 99.5);
}

#[test]
fn a_scenario_asking_for_endless_ticks_is_refused() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let canary = dir.path().join("canary.yaml");
    std::fs::write(&canary, canary_release().to_string()).expect("the canary written");
    let scenario = dir.path().join("endless.yaml");
    std::fs::write(
        &scenario,
        "maxTicks: 4294967295\ncanary: {neverReady: true}\n",
    )
    .expect("the scenario written");
    let out = Command::new(env!("CARGO_BIN_EXE_fledge"))
        .arg("simulate")
        .arg(&canary)
        .arg("--scenario")
        .arg(&scenario)
        .output()
        .expect("fledge simulate runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("scenario maxTicks: must be at most 10000, got 4294967295"),
        "{stderr}"
    );
}

#[test]
fn a_scenario_whose_workloads_take_forever_ends_without_overflowing_ticks() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let canary = dir.path().join("canary.yaml");
    std::fs::write(&canary, canary_release().to_string()).expect("the canary written");
    let scenario = dir.path().join("slow.yaml");
    std::fs::write(
        &scenario,
        "canary: {readyAfterTicks: 4294967295}\nprimary: {readyAfterTicks: 4294967295}\nreplicas: 4294967295\nmaxTicks: 10000\n",
    )
    .expect("the scenario written");
    let out = Command::new(env!("CARGO_BIN_EXE_fledge"))
        .arg("simulate")
        .arg(&canary)
        .arg("--scenario")
        .arg(&scenario)
        .output()
        .expect("fledge simulate runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("not ready") && stdout.contains("outcome:"),
        "the primary never becomes ready, and the story still ends:\n{stdout}"
    );
}

#[test]
fn a_simulation_stepped_at_the_last_tick_number_does_not_overflow() {
    let canary: Canary = serde_json::from_value(canary_release()).expect("a typed canary");
    let rollout = Rollout::new(&canary, Some("istio")).expect("a valid canary");
    let start = Timestamp::from_second(1_767_225_600).expect("a valid start");
    let mut sim = Simulation::new(rollout, Cluster::new("v1", 2, Timing::default()), start);
    sim.tick = u32::MAX;
    let record = sim
        .step(&mut AllPassing { value: 99.5 })
        .expect("the tick plans");
    assert_eq!(record.tick, u32::MAX);
    assert_eq!(sim.tick, u32::MAX, "the tick count saturates");
}
