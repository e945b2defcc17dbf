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

use scenario::Scenario;

/// The revision the target runs before the simulated rollout.
const FIRST_REVISION: &str = "v1";
/// Ticks when the scenario sets no limit.
const DEFAULT_MAX_TICKS: u32 = 100;
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
    scenario.check_names(&canary.spec)?;
    let rollout = Rollout::new(&canary, Some(&args.provider))
        .with_context(|| format!("{} cannot be simulated", args.canary.display()))?;
    let mut checks = scenario.checks(&canary.spec);
    let cluster = Cluster::new(
        FIRST_REVISION,
        scenario.replicas.unwrap_or(2).max(1),
        scenario.timing(),
    );
    let start = Timestamp::from_second(START_SECOND).context("the simulated clock")?;
    let mut sim = Simulation::new(rollout.clone(), cluster, start);

    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    write!(
        out,
        "{}",
        timeline::header(&rollout, scenario.description.as_deref())
    )?;
    let max_ticks = scenario.max_ticks.unwrap_or(DEFAULT_MAX_TICKS);
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
        write!(
            out,
            "{}",
            timeline::tick_lines(&record, sim.cluster.routes, deployed.as_deref())
        )?;
        let more_revisions = scenario.new_revision_at.iter().any(|at| *at > record.tick);
        if rollout_began.is_some() && is_final(sim.status.phase) && !more_revisions {
            break;
        }
    }
    write!(
        out,
        "{}",
        timeline::summary(&sim, rollout_began.unwrap_or(sim.tick), scenario.expect)
    )?;
    Ok(match scenario.expect {
        Some(expected) if expected != sim.status.phase => ExitCode::FAILURE,
        _ => ExitCode::SUCCESS,
    })
}

fn is_final(phase: CanaryPhase) -> bool {
    matches!(phase, CanaryPhase::Succeeded | CanaryPhase::Failed)
}

/// The first Canary in the file.
fn read_canary(path: &PathBuf) -> anyhow::Result<Canary> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let documents = fledge_api::yaml::documents(&text)
        .with_context(|| format!("{} is not YAML", path.display()))?;
    for (index, document) in documents.into_iter().enumerate() {
        if document.get("kind").and_then(serde_json::Value::as_str) == Some("Canary") {
            return serde_json::from_value(document).with_context(|| {
                format!("{} document {index}: not a valid Canary", path.display())
            });
        }
    }
    bail!("{}: no document with kind: Canary", path.display())
}
