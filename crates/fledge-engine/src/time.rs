//! Time is an input: the engine never reads a clock. Timestamps are jiff's, the type inside
//! `status.lastTransitionTime`.

use std::time::Duration;

pub use k8s_openapi::jiff::Timestamp;

/// Milliseconds from `since` to `now`; zero when `now` is earlier (clocks may disagree).
pub(crate) fn elapsed(since: Timestamp, now: Timestamp) -> Duration {
    let millis = now.as_millisecond().saturating_sub(since.as_millisecond());
    Duration::from_millis(u64::try_from(millis).unwrap_or(0))
}

/// `at + by`, saturating at the far end of jiff's range instead of failing.
pub fn advance(at: Timestamp, by: Duration) -> Timestamp {
    let millis = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
    Timestamp::from_millisecond(at.as_millisecond().saturating_add(millis))
        .unwrap_or(Timestamp::MAX)
}
