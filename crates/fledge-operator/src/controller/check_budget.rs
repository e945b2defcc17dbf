//! One deadline for the checks of a tick (metric queries and webhooks together), so a slow
//! metrics server or a hanging hook delays its own canary by at most one budget.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// The longest the checks of one tick may take, whatever the analysis interval.
pub const MAX_TICK_BUDGET: Duration = Duration::from_secs(2 * 60);
/// The shortest budget (the shortest analysis interval validation accepts).
pub const MIN_TICK_BUDGET: Duration = Duration::from_secs(10);

/// The time left for a tick's checks: the analysis interval, at least
/// [`MIN_TICK_BUDGET`] and at most [`MAX_TICK_BUDGET`], counted from the tick's start.
#[derive(Clone, Copy, Debug)]
pub struct TickBudget {
    length: Duration,
    deadline: Instant,
}

/// A check that did not run, or was stopped, because its tick's budget ran out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("tick time budget of {}s exceeded", length.as_secs())]
pub struct BudgetExceeded {
    /// The budget that ran out.
    pub length: Duration,
}

impl TickBudget {
    /// The budget of a tick of a canary analysed every `interval`, starting now.
    pub fn for_interval(interval: Duration) -> Self {
        let length = interval.clamp(MIN_TICK_BUDGET, MAX_TICK_BUDGET);
        Self {
            length,
            deadline: Instant::now() + length,
        }
    }

    /// Runs `check` until it finishes or the budget runs out (a check started after the
    /// deadline does not run at all).
    ///
    /// # Errors
    /// [`BudgetExceeded`] when the deadline came first.
    pub async fn run<F: Future>(&self, check: F) -> Result<F::Output, BudgetExceeded> {
        let exceeded = BudgetExceeded {
            length: self.length,
        };
        if Instant::now() >= self.deadline {
            return Err(exceeded);
        }
        tokio::time::timeout_at(self.deadline, check)
            .await
            .map_err(|_| exceeded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_the_interval_within_its_bounds() {
        let length = |secs| TickBudget::for_interval(Duration::from_secs(secs)).length;
        assert_eq!(length(30), Duration::from_secs(30));
        assert_eq!(length(3600), MAX_TICK_BUDGET);
        assert_eq!(length(0), MIN_TICK_BUDGET);
    }

    /// A budget of `length` whose deadline is `left` away (the tests' clock is real).
    fn budget(length: u64, left: Duration) -> TickBudget {
        TickBudget {
            length: Duration::from_secs(length),
            deadline: Instant::now() + left,
        }
    }

    #[tokio::test]
    async fn a_check_past_the_deadline_fails_and_later_ones_do_not_run() {
        let budget = budget(10, Duration::from_millis(100));
        let started = Instant::now();
        let slow = budget
            .run(tokio::time::sleep(Duration::from_secs(300)))
            .await;
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(
            slow.map_err(|e| e.to_string()),
            Err("tick time budget of 10s exceeded".to_owned())
        );
        let mut ran = false;
        let next = budget.run(async { ran = true }).await;
        assert!(next.is_err() && !ran);
    }

    #[tokio::test]
    async fn a_check_within_the_budget_answers() {
        let budget = budget(60, Duration::from_secs(60));
        let answer = budget
            .run(async {
                tokio::time::sleep(Duration::from_millis(10)).await;
                42
            })
            .await;
        assert_eq!(answer, Ok(42));
    }
}
