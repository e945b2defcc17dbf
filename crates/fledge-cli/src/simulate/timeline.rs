//! Printing a simulation: one line per event, in Flagger's words, with the simulated time,
//! the phase and the routes; then a summary of the story.

use std::fmt::Write as _;
use std::time::Duration;

use fledge_api::CanaryPhase;
use fledge_engine::simulation::{Simulation, TickRecord};
use fledge_engine::{EventLevel, Rollout, Routes};

/// The header: which canary, which strategy and settings, which scenario.
pub fn header(rollout: &Rollout, scenario: Option<&str>) -> String {
    let settings = rollout.settings();
    let mut out = format!(
        "fledge simulate: {} ({} strategy, interval {}, threshold {}",
        rollout.canary_id(),
        rollout.strategy().as_str(),
        duration(settings.interval),
        settings.threshold
    );
    if rollout.strategy().shifts_weight() {
        let _ = write!(out, ", maxWeight {}", settings.max_weight);
        if settings.step_weights.is_empty() {
            let _ = write!(out, ", stepWeight {}", settings.step_weight);
        } else {
            let _ = write!(out, ", stepWeights {:?}", settings.step_weights);
        }
    } else {
        let _ = write!(out, ", iterations {}", rollout.iterations());
    }
    out.push(')');
    if let Some(description) = scenario {
        let _ = write!(out, "\nscenario: {description}");
    }
    out.push('\n');
    out
}

/// The lines of one tick: its events, with the phase and the routes (primary/canary, `m` when
/// mirroring) as the tick left them.
pub fn tick_lines(record: &TickRecord, routes: Routes, deployed: Option<&str>) -> String {
    let mut out = String::new();
    let at = record.at.to_string();
    if let Some(revision) = deployed {
        let _ = writeln!(
            out,
            "{:>4}  {at}  {:<16} {:>7}  (revision {revision} of the target is deployed)",
            record.tick, "", ""
        );
    }
    // Until Initialization is done the apex Service still selects the target.
    let routes = if record.plan.status.phase == CanaryPhase::Initializing {
        "apex".to_owned()
    } else {
        format!(
            "{}/{}{}",
            routes.primary,
            routes.canary,
            if routes.mirrored { "m" } else { "" }
        )
    };
    if record.events.is_empty() {
        let _ = writeln!(
            out,
            "{:>4}  {at}  {:<16} {routes:>7}   ·",
            record.tick,
            record.plan.status.phase.as_str()
        );
    }
    for event in &record.events {
        let mark = match event.level {
            EventLevel::Info => ' ',
            EventLevel::Warning => '!',
            EventLevel::Error => 'E',
        };
        let _ = writeln!(
            out,
            "{:>4}  {at}  {:<16} {routes:>7} {mark} {}",
            record.tick,
            record.plan.status.phase.as_str(),
            event.message
        );
    }
    out
}

/// The summary: outcome, simulated duration, ticks, final weights.
pub fn summary(sim: &Simulation, started_at_tick: u32, expect: Option<CanaryPhase>) -> String {
    let phase = sim.status.phase;
    let ticks = sim.tick.saturating_sub(started_at_tick);
    let interval = sim.rollout.interval();
    // Saturating: an unvalidated canary's interval times the ticks may exceed what a
    // Duration holds.
    let simulated = interval.checked_mul(ticks).unwrap_or(Duration::MAX);
    let primary = sim.cluster.primary_revision.as_deref().unwrap_or("none");
    let mut out = String::from("\nsummary\n");
    let _ = writeln!(out, "  outcome:        {phase} (primary runs {primary})");
    if phase == CanaryPhase::Initializing {
        let _ = writeln!(
            out,
            "  duration:       {} simulated, {} ticks of {}, never initialised",
            duration(interval * sim.tick),
            sim.tick,
            duration(interval)
        );
    } else {
        let _ = writeln!(
            out,
            "  duration:       {} simulated, {ticks} ticks of {} since the new revision ({} ticks in all)",
            duration(simulated),
            duration(interval),
            sim.tick
        );
    }
    if phase == CanaryPhase::Initializing {
        let _ = writeln!(
            out,
            "  final weights:  none (routing not taken over: the apex Service still selects the target)"
        );
    } else {
        let _ = writeln!(
            out,
            "  final weights:  primary {}, canary {}{}",
            sim.cluster.routes.primary,
            sim.cluster.routes.canary,
            if sim.cluster.routes.mirrored {
                " (mirrored)"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(
        out,
        "  canary:         {}",
        if sim.cluster.canary_running() {
            "running"
        } else {
            "scaled to zero"
        }
    );
    if let Some(expected) = expect {
        let verdict = if expected == phase {
            "as expected"
        } else {
            "NOT as expected"
        };
        let _ = writeln!(out, "  expected:       {expected} ({verdict})");
    }
    out
}

/// A duration as Go prints whole seconds (`1m0s`, `1h2m3s`, `30s`).
pub fn duration(value: Duration) -> String {
    let total = value.as_secs();
    let (hours, minutes, seconds) = (total / 3600, total % 3600 / 60, total % 60);
    match (hours, minutes) {
        (0, 0) => format!("{seconds}s"),
        (0, _) => format!("{minutes}m{seconds}s"),
        _ => format!("{hours}h{minutes}m{seconds}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_go() {
        assert_eq!(duration(Duration::from_secs(30)), "30s");
        assert_eq!(duration(Duration::from_secs(840)), "14m0s");
        assert_eq!(duration(Duration::from_secs(3723)), "1h2m3s");
    }
}
