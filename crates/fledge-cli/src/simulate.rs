//! `fledge simulate`: the real engine against an in-memory world. The canary is initialised,
//! a new revision of its target arrives, and the engine decides tick after tick while the
//! scenario plays the workloads, the metrics and the webhooks. No cluster needed.

mod scenario;
mod timeline;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use fledge_api::{Canary, CanaryPhase};
use fledge_engine::simulation::{Cluster, Simulation};
use fledge_engine::{Rollout, Timestamp};

pub use scenario::Scenario;

/// The revision the target runs before the simulated rollout.
const FIRST_REVISION: &str = "v1";
/// Simulated clocks start at 2026-01-01T00:00:00Z.
const START_SECOND: i64 = 1_767_225_600;

/// Arguments of `fledge simulate`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The Canary manifest (the first Canary of a multi-document file is used).
    pub canary: PathBuf,
    /// A scenario file (see examples/scenarios); without one, every check passes.
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// The mesh provider used when the Canary names none (Flagger's -mesh-provider).
    #[arg(long, default_value = "istio")]
    pub provider: String,
}

/// Runs the simulation and prints its timeline and summary. Exits 0 unless the scenario
/// expects an outcome that did not happen (then 1).
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let canary = read_canary(&args.canary)?;
    let scenario = match &args.scenario {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Scenario::parse(&text).with_context(|| format!("in {}", path.display()))?
        }
        None => Scenario {
            description: Some("every check passes".to_owned()),
            ..Scenario::default()
        },
    };
    let story = tell(&canary, &scenario, &args.provider)
        .with_context(|| format!("{} cannot be simulated", args.canary.display()))?;
    std::io::stdout().lock().write_all(story.text.as_bytes())?;
    Ok(match scenario.expect {
        Some(expected) if expected != story.outcome => ExitCode::FAILURE,
        _ => ExitCode::SUCCESS,
    })
}

/// A simulation told: the printed timeline and summary, and where the canary ended.
#[derive(Clone, Debug)]
pub struct Story {
    /// Header, timeline and summary, as printed.
    pub text: String,
    /// The canary's phase when the simulation stopped.
    pub outcome: CanaryPhase,
}

/// Plays `scenario` against `canary`: initialises it, deploys a new revision, and ticks until
/// the rollout ends (or the scenario's tick limit).
pub fn tell(canary: &Canary, scenario: &Scenario, provider: &str) -> anyhow::Result<Story> {
    scenario.check_names(&canary.spec)?;
    let rollout = Rollout::new(canary, Some(provider))?;
    let mut checks = scenario.checks(&canary.spec);
    let cluster = Cluster::new(
        FIRST_REVISION,
        scenario.replicas.unwrap_or(2).max(1),
        scenario.timing(),
    );
    let start = Timestamp::from_second(START_SECOND).context("the simulated clock")?;
    let mut sim = Simulation::new(rollout.clone(), cluster, start);

    let mut text = timeline::header(&rollout, scenario.description.as_deref());
    let max_ticks = scenario.max_ticks()?;
    let mut revisions = 1;
    let mut rollout_began = None;
    while sim.tick < max_ticks {
        let deploy_now = (rollout_began.is_none() && sim.status.phase == CanaryPhase::Initialized)
            || scenario.new_revision_at.contains(&sim.tick);
        let deployed = if deploy_now {
            revisions += 1;
            let revision = format!("v{revisions}");
            let (tick, now) = (sim.tick, sim.now);
            sim.cluster.deploy(&revision, tick, now);
            rollout_began.get_or_insert(sim.tick);
            Some(revision)
        } else {
            None
        };
        let record = sim.step(&mut checks)?;
        text.push_str(&timeline::tick_lines(
            &record,
            sim.cluster.routes,
            deployed.as_deref(),
        ));
        let more_revisions = scenario.new_revision_at.iter().any(|at| *at > record.tick);
        if rollout_began.is_some() && is_final(sim.status.phase) && !more_revisions {
            break;
        }
    }
    text.push_str(&timeline::summary(
        &sim,
        rollout_began.unwrap_or(sim.tick),
        scenario.expect,
    ));
    Ok(Story {
        text,
        outcome: sim.status.phase,
    })
}

fn is_final(phase: CanaryPhase) -> bool {
    matches!(phase, CanaryPhase::Succeeded | CanaryPhase::Failed)
}

/// The first Canary in the file.
pub fn read_canary(path: &std::path::Path) -> anyhow::Result<Canary> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let documents = fledge_api::yaml::documents(&text)
        .with_context(|| format!("{} is not YAML", path.display()))?;
    for (index, document) in documents.into_iter().enumerate() {
        if document.get("kind").and_then(serde_json::Value::as_str) == Some("Canary") {
            // The engine runs only what `fledge validate` accepts, as the operator does: an
            // invalid spec is reported, never simulated.
            let report = fledge_api::validation::validate_document(index, &document);
            if !report.problems.is_empty() {
                let problems: Vec<String> =
                    report.problems.iter().map(ToString::to_string).collect();
                bail!(
                    "{} document {index}: not a valid Canary (`fledge validate` says why):\n  {}",
                    path.display(),
                    problems.join("\n  ")
                );
            }
            return serde_json::from_value(document).with_context(|| {
                format!("{} document {index}: not a valid Canary", path.display())
            });
        }
    }
    bail!("{}: no document with kind: Canary", path.display())
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    fn examples() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/scenarios")
    }

    fn story(name: &str) -> Story {
        let dir = examples();
        let canary = read_canary(&dir.join("podinfo.yaml")).expect("the example canary");
        let text = std::fs::read_to_string(dir.join(format!("{name}.yaml"))).expect("the scenario");
        let scenario = Scenario::parse(&text).expect("a valid scenario");
        let story = tell(&canary, &scenario, "istio").expect("the simulation runs");
        assert_eq!(
            Some(story.outcome),
            scenario.expect,
            "{name} ends as it says:\n{}",
            story.text
        );
        story
    }

    fn lines_with(story: &Story, words: &str) -> usize {
        story
            .text
            .lines()
            .filter(|line| line.contains(words))
            .count()
    }

    #[test]
    fn healthy_promotes_after_five_steps() {
        let story = story("healthy");
        assert_eq!(lines_with(&story, "Advance podinfo.test canary weight"), 5);
        assert_eq!(
            lines_with(&story, "Promotion completed! Scaling down podinfo.test"),
            1
        );
        assert!(
            story
                .text
                .contains("outcome:        Succeeded (primary runs v2)"),
            "{}",
            story.text
        );
        assert!(story.text.contains("final weights:  primary 100, canary 0"));
    }

    #[test]
    fn error_spike_rolls_back_after_five_failed_checks() {
        let story = story("error-spike");
        assert_eq!(
            lines_with(
                &story,
                "Halt podinfo.test advancement success rate 87.50% < 99%"
            ),
            5
        );
        assert_eq!(
            lines_with(
                &story,
                "Rolling back podinfo.test failed checks threshold reached 5"
            ),
            1
        );
        assert!(
            story
                .text
                .contains("outcome:        Failed (primary runs v1)")
        );
    }

    #[test]
    fn latency_regression_halts_on_request_duration() {
        let story = story("latency-regression");
        assert!(
            story
                .text
                .contains("Halt podinfo.test advancement request duration 1.2s > 500ms"),
            "{}",
            story.text
        );
        assert_eq!(
            lines_with(&story, "Canary failed! Scaling down podinfo.test"),
            1
        );
    }

    #[test]
    fn never_ready_rolls_back_at_the_progress_deadline() {
        let story = story("never-ready");
        assert!(lines_with(&story, "canary deployment podinfo.test not ready") >= 5);
        assert!(
            !story.text.contains("Starting canary analysis"),
            "a canary never ready is never analysed"
        );
        assert_eq!(
            lines_with(&story, "Canary failed! Scaling down podinfo.test"),
            1
        );
    }

    #[test]
    fn closed_gate_waits_for_approval_then_promotes() {
        let story = story("closed-gate");
        assert_eq!(
            lines_with(
                &story,
                "Halt podinfo.test advancement waiting for promotion approval promotion-gate"
            ),
            1
        );
        assert_eq!(lines_with(&story, "WaitingPromotion"), 4, "{}", story.text);
        assert_eq!(
            lines_with(&story, "Confirm-promotion check promotion-gate passed"),
            1
        );
    }

    #[test]
    fn revision_change_restarts_the_analysis_and_promotes_the_newest() {
        let story = story("revision-change");
        assert_eq!(
            lines_with(
                &story,
                "New revision detected! Restarting analysis for podinfo.test"
            ),
            1
        );
        assert_eq!(
            lines_with(&story, "Starting canary analysis for podinfo.test"),
            2
        );
        assert!(
            story
                .text
                .contains("outcome:        Succeeded (primary runs v3)")
        );
    }

    #[test]
    fn a_primary_that_never_becomes_ready_leaves_the_target_serving_everything() {
        let story = story("primary-never-ready");
        assert_eq!(
            lines_with(
                &story,
                "podinfo-primary.test not ready: waiting for rollout to finish"
            ),
            20,
            "one warning per tick, past the 5m deadline too:\n{}",
            story.text
        );
        assert_eq!(lines_with(&story, "Initialization done!"), 0);
        assert_eq!(lines_with(&story, "Canary failed!"), 0);
        assert!(
            story
                .text
                .contains("final weights:  none (routing not taken over")
        );
        assert!(
            story.text.contains("canary:         running"),
            "the target is never scaled down:\n{}",
            story.text
        );
    }

    #[test]
    fn a_primary_stuck_in_promotion_leaves_all_traffic_on_the_ready_canary() {
        let story = story("primary-stuck-in-promotion");
        assert_eq!(
            lines_with(
                &story,
                "Promotion of podinfo.test failed, primary not ready: podinfo-primary.test not ready"
            ),
            1,
            "{}",
            story.text
        );
        assert_eq!(lines_with(&story, "Routing all traffic to primary"), 0);
        assert!(
            story.text.contains("final weights:  primary 0, canary 100"),
            "{}",
            story.text
        );
        assert!(story.text.contains("canary:         running"));
    }

    #[test]
    fn a_scenario_naming_an_unknown_metric_is_refused() {
        let canary = read_canary(&examples().join("podinfo.yaml")).expect("the example canary");
        let scenario = Scenario::parse("metrics:\n  error-rate: {constant: 1}\n").expect("valid");
        let error = tell(&canary, &scenario, "istio").expect_err("unknown metric");
        assert!(
            error
                .to_string()
                .starts_with("scenario metrics.error-rate: the canary has no such metric"),
            "{error}"
        );
    }
}
