//! Per-canary backoff after failed ticks, and the rate limit of their Warning events.
//!
//! A tick fails when the API server refuses or throttles a request (429, 5xx), a router or
//! a workload write fails, and so on. The canary is tried again after 5 s, then 10 s, 20 s,
//! ... up to 5 min, each ±20 % (so canaries that failed together do not retry together),
//! and never before the `Retry-After` a throttling API server asked for. The count starts
//! over at the canary's next successful tick. After a fault of the API server (429, 5xx,
//! unreachable) watch events in between do not tick the canary, unless its spec changed or
//! its deletion started; after another error (a missing ConfigMap, say) the watch event that
//! brings the fix ticks it at once. Each distinct error
//! becomes a Warning event on the Canary at most once per [`EVENT_INTERVAL`].

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use fledge_api::Canary;
use kube::runtime::reflector::ObjectRef;

/// The first wait after a failed tick.
pub const FIRST_RETRY: Duration = Duration::from_secs(5);

/// The longest wait between tries.
pub const MAX_RETRY: Duration = Duration::from_secs(300);

/// The share by which each wait varies, either way.
pub const JITTER: f64 = 0.2;

/// How long after a Warning event about an error the same error is not recorded again on
/// the same Canary.
pub const EVENT_INTERVAL: Duration = Duration::from_secs(300);

/// The wait before the next try after `failures` failed ticks in a row (1 for the first),
/// with `jitter` in [-1, 1] scaling the ±[`JITTER`] spread, and at least the `retry_after`
/// the API server asked for (bounded by [`MAX_RETRY`] too, so a hostile answer cannot park
/// a canary for long).
pub fn retry_delay(failures: u32, jitter: f64, retry_after: Option<Duration>) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    let base = FIRST_RETRY.saturating_mul(1 << doublings).min(MAX_RETRY);
    let spread = 1.0 + JITTER * jitter.clamp(-1.0, 1.0);
    let jittered = base.mul_f64(spread);
    retry_after.map_or(jittered, |asked| jittered.max(asked.min(MAX_RETRY)))
}

/// A number in [-1, 1], different on every call.
fn jitter_sample() -> f64 {
    let random = std::collections::hash_map::RandomState::new().hash_one(Instant::now());
    // The top 53 bits as a fraction in [0, 1), then onto [-1, 1).
    let unit = (random >> 11) as f64 / (1u64 << 53) as f64;
    unit.mul_add(2.0, -1.0)
}

/// What a canary that is backing off failed on.
#[derive(Clone, Debug)]
struct Failing {
    failures: u32,
    retry_at: Instant,
    /// The Canary's generation and whether it was being deleted when it failed: a change of
    /// either ticks it at once.
    generation: Option<i64>,
    deleting: bool,
    /// Whether watch events wait for the retry too (after a fault of the API server).
    hold: bool,
}

/// What a failed tick leads to.
#[derive(Clone, Debug, PartialEq)]
pub struct Retry {
    /// How long until the canary is tried again.
    pub after: Duration,
    /// How many ticks failed in a row.
    pub failures: u32,
    /// Whether the error is to be recorded as a Warning event (not recorded recently).
    pub record_event: bool,
}

/// The backoff of every canary whose last tick failed, and the errors recently recorded.
#[derive(Debug, Default)]
pub struct Backoffs {
    failing: Mutex<HashMap<ObjectRef<Canary>, Failing>>,
    recorded: Mutex<HashMap<ObjectRef<Canary>, HashMap<String, Instant>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The maps stay consistent whatever panicked while holding them.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Backoffs {
    /// Records a failed tick of `canary` on `error` at `now`; the server asked to wait
    /// `retry_after`; `hold`: watch events wait for the retry too (a fault of the API server).
    pub fn failed(
        &self,
        canary: &Canary,
        error: &str,
        retry_after: Option<Duration>,
        hold: bool,
        now: Instant,
    ) -> Retry {
        let key = ObjectRef::from_obj(canary);
        let failures = {
            let mut failing = lock(&self.failing);
            let failures = failing
                .get(&key)
                .map_or(0, |f| f.failures)
                .saturating_add(1);
            let after = retry_delay(failures, jitter_sample(), retry_after);
            failing.insert(
                key.clone(),
                Failing {
                    failures,
                    retry_at: now + after,
                    generation: canary.metadata.generation,
                    deleting: canary.metadata.deletion_timestamp.is_some(),
                    hold,
                },
            );
            (failures, after)
        };
        let mut recorded = lock(&self.recorded);
        let errors = recorded.entry(key).or_default();
        errors.retain(|_, at| now.saturating_duration_since(*at) < EVENT_INTERVAL);
        let record_event = !errors.contains_key(error);
        if record_event {
            errors.insert(error.to_owned(), now);
        }
        Retry {
            after: failures.1,
            failures: failures.0,
            record_event,
        }
    }

    /// How long `canary` must still wait before it may tick at `now`; `None` when it is not
    /// held (not backing off, or after an error a watch event may fix), its wait is over, or
    /// it changed (spec or deletion) since it failed.
    pub fn holding(&self, canary: &Canary, now: Instant) -> Option<Duration> {
        let failing = lock(&self.failing);
        let failed = failing
            .get(&ObjectRef::from_obj(canary))
            .filter(|f| f.hold)?;
        let changed = failed.generation != canary.metadata.generation
            || failed.deleting != canary.metadata.deletion_timestamp.is_some();
        if changed {
            return None;
        }
        failed
            .retry_at
            .checked_duration_since(now)
            .filter(|wait| !wait.is_zero())
    }

    /// A successful tick of `canary`: the next failure waits the first retry again.
    pub fn succeeded(&self, canary: &ObjectRef<Canary>) {
        lock(&self.failing).remove(canary);
    }

    /// Forgets a Canary that no longer exists.
    pub fn forget(&self, canary: &ObjectRef<Canary>) {
        lock(&self.failing).remove(canary);
        lock(&self.recorded).remove(canary);
    }

    /// How many canaries are backing off or have errors remembered (for tests of cleanup).
    pub fn len(&self) -> usize {
        let failing = lock(&self.failing);
        let recorded = lock(&self.recorded);
        failing.len()
            + recorded
                .keys()
                .filter(|k| !failing.contains_key(*k))
                .count()
    }

    /// Whether no canary is backing off and no error is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn waits_double_from_five_seconds_to_five_minutes() {
        let waits: Vec<u64> = (1..=9)
            .map(|n| retry_delay(n, 0.0, None).as_secs())
            .collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(retry_delay(u32::MAX, 0.0, None), MAX_RETRY, "no overflow");
    }

    #[test]
    fn jitter_spreads_each_wait_by_a_fifth_either_way() {
        assert_eq!(retry_delay(2, -1.0, None), 8 * S);
        assert_eq!(retry_delay(2, 1.0, None), 12 * S);
        assert_eq!(
            retry_delay(7, 1.0, None),
            360 * S,
            "the cap is jittered too"
        );
        assert_eq!(
            retry_delay(1, 7.0, None),
            6 * S,
            "out-of-range samples are clamped"
        );
        for _ in 0..1000 {
            let sample = jitter_sample();
            assert!((-1.0..1.0).contains(&sample), "{sample}");
        }
    }

    #[test]
    fn a_retry_after_is_honoured_up_to_the_cap() {
        assert_eq!(retry_delay(1, 0.0, Some(30 * S)), 30 * S);
        assert_eq!(
            retry_delay(3, 0.0, Some(2 * S)),
            20 * S,
            "shorter than the backoff"
        );
        assert_eq!(retry_delay(1, 0.0, Some(3600 * S)), MAX_RETRY);
    }

    fn canary(generation: i64) -> Canary {
        let mut canary: Canary = fledge_api::yaml::from_str(
            "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: { name: podinfo, namespace: test }\n\
             spec:\n  targetRef: { apiVersion: apps/v1, kind: Deployment, name: podinfo }\n  \
             service: { port: 9898 }\n",
        )
        .expect("a Canary");
        canary.metadata.generation = Some(generation);
        canary
    }

    #[test]
    fn a_canary_backs_off_until_a_tick_succeeds_and_its_events_are_rate_limited() {
        let backoffs = Backoffs::default();
        let podinfo = canary(1);
        let key = ObjectRef::from_obj(&podinfo);
        let start = Instant::now();
        let first = backoffs.failed(&podinfo, "patch: 500", None, true, start);
        assert_eq!(first.failures, 1);
        assert!(first.record_event);
        assert!((4 * S..=6 * S).contains(&first.after), "{:?}", first.after);
        let waiting = backoffs.holding(&podinfo, start + S).expect("backing off");
        assert!(waiting >= 3 * S);
        assert_eq!(
            backoffs.holding(&podinfo, start + 7 * S),
            None,
            "the wait is over"
        );

        let second = backoffs.failed(&podinfo, "patch: 500", None, true, start + 7 * S);
        assert_eq!(second.failures, 2);
        assert!(
            (8 * S..=12 * S).contains(&second.after),
            "{:?}",
            second.after
        );
        assert!(
            !second.record_event,
            "the same error within 5 minutes is not recorded again"
        );
        let other = backoffs.failed(&podinfo, "patch: 429", Some(30 * S), true, start + 8 * S);
        assert!(other.record_event, "a distinct error is");
        assert!(
            other.after >= 30 * S,
            "Retry-After is honoured: {:?}",
            other.after
        );
        let later = backoffs.failed(&podinfo, "patch: 500", None, true, start + 400 * S);
        assert!(later.record_event, "5 minutes later it is recorded again");
        assert_eq!(later.failures, 4);

        // A changed spec or a deletion ticks at once.
        assert_eq!(backoffs.holding(&canary(2), start + 401 * S), None);
        let mut deleting = canary(1);
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::now(),
            ));
        assert_eq!(backoffs.holding(&deleting, start + 401 * S), None);
        assert!(backoffs.holding(&podinfo, start + 401 * S).is_some());

        backoffs.succeeded(&key);
        assert_eq!(backoffs.holding(&podinfo, start + 401 * S), None);
        let again = backoffs.failed(&podinfo, "patch: 503", None, true, start + 402 * S);
        assert_eq!(again.failures, 1, "the count starts over after a success");
        let missing = backoffs.failed(&podinfo, "configmap missing", None, false, start + 403 * S);
        assert_eq!(missing.failures, 2, "backing off all the same");
        assert_eq!(
            backoffs.holding(&podinfo, start + 404 * S),
            None,
            "the watch event that brings the fix ticks at once"
        );

        backoffs.forget(&key);
        assert!(
            backoffs.is_empty(),
            "a deleted canary leaves nothing behind"
        );
    }
}
