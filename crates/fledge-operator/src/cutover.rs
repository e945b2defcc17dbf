//! The cut-over from Flagger: Fledge does not act while a Flagger holds its leader Lease
//! (`flagger-leader-election`), so that the two never drive the same canaries at once.
//!
//! Flagger's Lease is held and fresh when it names a holder and either its `renewTime` plus
//! `leaseDurationSeconds` is still ahead on Fledge's own clock, or Fledge saw the record change
//! less than `leaseDurationSeconds` ago (client-go's rule, which holds whatever the skew
//! between the clocks of Flagger's node and Fledge's). A released Lease (no holder: Flagger
//! releases it when it stops on SIGTERM), a stale one or none lets Fledge start. Without
//! `-enable-leader-election` Flagger holds no Lease, and nothing can be seen: scale it to
//! zero first (docs/migrating-from-flagger.md). When RBAC forbids reading the Lease, Fledge
//! says so at warn and starts: it cannot tell. Other read errors keep it waiting (and
//! `/readyz` says why), since an API server that cannot be read cannot be acted on either.
//!
//! Once Fledge acts, it takes over the status Flagger wrote ([`adopt_flaggers_revision`]):
//! Flagger's revision hashes cannot be recomputed, so the revision Flagger last applied is
//! taken to be the target as it is now.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use tokio::time::Instant;

use crate::leader::LeaseRecord;
use crate::telemetry::{Readiness, Telemetry};

/// The name of Flagger's leader-election Lease.
pub const FLAGGER_LEASE_NAME: &str = "flagger-leader-election";

/// How often Flagger's Lease is looked at (Flagger renews every 5 s).
pub const DEFAULT_POLL: Duration = Duration::from_secs(5);

/// What Fledge makes of Flagger's Lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FlaggerLease {
    /// There is no Lease, or nobody holds it (released): Flagger does not run.
    Free,
    /// A holder is named but stopped renewing.
    Stale {
        /// The last holder.
        holder: String,
    },
    /// A Flagger holds the Lease and renewed it recently: Fledge must not act.
    Held {
        /// The holder (Flagger's `<hostname>_<uuid>`).
        holder: String,
        /// How long the Lease stays fresh without another renewal.
        fresh_for: Duration,
    },
}

/// Judges Flagger's Lease `record` (`None`: no Lease) at `wall_now` on Fledge's clock, given
/// when Fledge last saw the record change (`None`: not seen changing) and the monotonic `now`.
pub fn judge(
    record: Option<&LeaseRecord>,
    wall_now: Timestamp,
    changed_at: Option<Instant>,
    now: Instant,
) -> FlaggerLease {
    let Some(record) = record else {
        return FlaggerLease::Free;
    };
    let Some(holder) = record.holder.clone() else {
        return FlaggerLease::Free;
    };
    let by_renew_time = record.renew_time.and_then(|renewed| {
        let expires = renewed.checked_add(record.lease_duration).ok()?;
        let left = expires.duration_since(wall_now);
        (left.is_positive()).then(|| Duration::try_from(left).ok())?
    });
    let by_observed_change = changed_at.and_then(|seen| {
        let expires = seen + record.lease_duration;
        (expires > now).then(|| expires - now)
    });
    match by_renew_time.into_iter().chain(by_observed_change).max() {
        Some(fresh_for) => FlaggerLease::Held { holder, fresh_for },
        None => FlaggerLease::Stale { holder },
    }
}

/// Watches Flagger's Lease in one namespace.
pub struct CutoverGuard {
    leases: Api<Lease>,
    namespace: String,
    poll: Duration,
    /// The record of the previous look, and when Fledge saw it change.
    previous: Option<(Option<LeaseRecord>, Option<Instant>)>,
}

impl CutoverGuard {
    /// A guard on the Lease `flagger-leader-election` in `namespace`, read every `poll`.
    pub fn new(client: kube::Client, namespace: &str, poll: Duration) -> Self {
        Self {
            leases: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            poll,
            previous: None,
        }
    }

    /// Reads the Lease once and judges it.
    ///
    /// # Errors
    /// The API server's error (a missing Lease is [`FlaggerLease::Free`], not an error).
    pub async fn look(&mut self) -> Result<FlaggerLease, kube::Error> {
        let record = self
            .leases
            .get_opt(FLAGGER_LEASE_NAME)
            .await?
            .as_ref()
            .map(LeaseRecord::of);
        let now = Instant::now();
        let changed_at = match self.previous.take() {
            Some((before, _)) if before != record => Some(now),
            Some((_, changed_at)) => changed_at,
            None => None,
        };
        let verdict = judge(record.as_ref(), Timestamp::now(), changed_at, now);
        self.previous = Some((record, changed_at));
        Ok(verdict)
    }

    /// Why Fledge waits, for the log and `/readyz`; `None` when it need not.
    fn reason(&self, verdict: &Result<FlaggerLease, kube::Error>) -> Option<String> {
        let lease = format!("Lease {}/{FLAGGER_LEASE_NAME}", self.namespace);
        match verdict {
            Ok(FlaggerLease::Held { holder, fresh_for }) => Some(format!(
                "Flagger holds its leader-election {lease} ({holder}, fresh for {}s more); \
                 scale Flagger to zero before Fledge acts",
                fresh_for.as_secs()
            )),
            Ok(FlaggerLease::Free | FlaggerLease::Stale { .. }) => None,
            Err(error) => Some(format!(
                "cannot read Flagger's {lease} to check that Flagger stopped: {error}"
            )),
        }
    }

    /// Returns once Flagger's Lease is free, stale or gone. Until then `/readyz` answers 503
    /// with the reason, which is also logged at warn (again when it changes).
    pub async fn wait_until_flagger_stopped(&mut self, telemetry: &Telemetry) {
        let mut said = String::new();
        loop {
            let verdict = self.look().await;
            if let Err(kube::Error::Api(status)) = &verdict
                && status.code == 403
            {
                // Not allowed to look: no way to tell, and refusing to ever start for want of
                // one RBAC rule helps nobody. Said once, with the rule to add.
                tracing::warn!(
                    error = %status.message,
                    "Cannot check that Flagger stopped: reading Lease {}/{FLAGGER_LEASE_NAME} is forbidden; \
                     grant get on leases/{FLAGGER_LEASE_NAME} in {} (or set -flagger-lease-namespace to Flagger's namespace). Starting anyway",
                    self.namespace,
                    self.namespace
                );
                return;
            }
            let Some(reason) = self.reason(&verdict) else {
                if let Ok(FlaggerLease::Stale { holder }) = verdict {
                    tracing::info!(%holder, "Flagger's leader-election Lease is stale; starting");
                }
                return;
            };
            telemetry.set_readiness_because(Readiness::WaitingForFlagger, reason.clone());
            // The holder's freshness counts down: say it again only when the holder changes.
            let gist = reason
                .split(", fresh for")
                .next()
                .unwrap_or_default()
                .to_owned();
            if gist != said {
                tracing::warn!(reason = %reason, "Not acting: {reason}");
                said = gist;
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    /// Resolves, with the reason, when a Flagger holds its Lease afresh while Fledge acts.
    /// Read errors are logged and looked at again (Fledge keeps running: it already checked).
    pub async fn flagger_returned(&mut self) -> String {
        loop {
            tokio::time::sleep(self.poll).await;
            let verdict = self.look().await;
            match (&verdict, self.reason(&verdict)) {
                (Ok(FlaggerLease::Held { .. }), Some(reason)) => return reason,
                (Err(error), _) => {
                    tracing::debug!(%error, "cannot read Flagger's leader-election Lease");
                }
                _ => {}
            }
        }
    }
}

/// The characters of a Flagger revision hash: `rand.SafeEncodeString` of the decimal digits
/// of an FNV-32a hash maps `0`..`9` to these ten.
const FLAGGER_HASH_ALPHABET: &str = "456789bcdf";

/// Whether `hash` is one Flagger wrote (`ComputeHash`: at most 10 characters of
/// `FLAGGER_HASH_ALPHABET`); Fledge's are 16 hexadecimal digits, so the two never mix up.
pub fn is_flaggers_hash(hash: &str) -> bool {
    (1..=10).contains(&hash.len()) && hash.chars().all(|c| FLAGGER_HASH_ALPHABET.contains(c))
}

/// The status Flagger wrote, as Fledge reads it: Flagger hashes the Go structure of the pod
/// template (go-spew's dump of the vendored Kubernetes types), which no other program can
/// reproduce, so `lastAppliedSpec` in Flagger's form stands for the target as it is now
/// (`revision`); `lastPromotedSpec` too when it was the same (a canary at rest). Without
/// this, the first tick would see a new revision: a canary at rest would run its analysis
/// again, one mid-flight would restart it with all traffic sent back to the primary.
/// Any status Fledge wrote is returned unchanged.
pub fn adopt_flaggers_revision(
    mut status: fledge_api::CanaryStatus,
    revision: &fledge_engine::Revision,
) -> fledge_api::CanaryStatus {
    let Some(applied) = status
        .last_applied_spec
        .clone()
        .filter(|hash| is_flaggers_hash(hash))
    else {
        return status;
    };
    if status.last_promoted_spec.as_deref() == Some(applied.as_str()) {
        status.last_promoted_spec = Some(revision.spec_hash.clone());
    }
    status.last_applied_spec = Some(revision.spec_hash.clone());
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flagger_status(applied: &str, promoted: &str) -> fledge_api::CanaryStatus {
        fledge_api::CanaryStatus {
            phase: fledge_api::CanaryPhase::Progressing,
            last_applied_spec: Some(applied.to_owned()),
            last_promoted_spec: Some(promoted.to_owned()),
            ..fledge_api::CanaryStatus::default()
        }
    }

    fn revision(hash: &str) -> fledge_engine::Revision {
        fledge_engine::Revision {
            spec_hash: hash.to_owned(),
            configs: std::collections::BTreeMap::new(),
        }
    }

    #[test]
    fn flaggers_hashes_are_told_from_fledges() {
        // From Flagger's e2e runs: SafeEncodeString of an FNV-32a sum.
        assert!(is_flaggers_hash("5b6f7c8d9c"));
        assert!(is_flaggers_hash("7c4f9d5b"));
        assert!(
            !is_flaggers_hash("3f2a9c1d0b7e6a54"),
            "Fledge's 16 hex digits"
        );
        assert!(!is_flaggers_hash(""));
        assert!(!is_flaggers_hash("5b6f7c8d9c4"), "longer than a uint32");
    }

    #[test]
    fn a_canary_mid_flight_keeps_its_revision_and_its_promoted_one() {
        let adopted = adopt_flaggers_revision(
            flagger_status("5b6f7c8d9c", "7c4f9d5b"),
            &revision("3f2a9c1d0b7e6a54"),
        );
        assert_eq!(
            adopted.last_applied_spec.as_deref(),
            Some("3f2a9c1d0b7e6a54")
        );
        assert_eq!(
            adopted.last_promoted_spec.as_deref(),
            Some("7c4f9d5b"),
            "the primary still runs an older revision"
        );
    }

    #[test]
    fn a_canary_at_rest_stays_at_rest_and_fledges_status_is_left_alone() {
        let adopted = adopt_flaggers_revision(
            flagger_status("5b6f7c8d9c", "5b6f7c8d9c"),
            &revision("3f2a9c1d0b7e6a54"),
        );
        assert_eq!(
            adopted.last_promoted_spec.as_deref(),
            Some("3f2a9c1d0b7e6a54")
        );
        let fledges = flagger_status("0123456789abcdef", "0123456789abcdef");
        assert_eq!(
            adopt_flaggers_revision(fledges.clone(), &revision("fedcba9876543210")),
            fledges
        );
    }

    fn record(holder: Option<&str>, renewed_secs_ago: i64, duration_secs: u64) -> LeaseRecord {
        LeaseRecord {
            holder: holder.map(str::to_owned),
            lease_duration: Duration::from_secs(duration_secs),
            renew_time: Some(
                Timestamp::now()
                    .checked_sub(jiff_secs(renewed_secs_ago))
                    .expect("in range"),
            ),
            transitions: 0,
        }
    }

    fn jiff_secs(secs: i64) -> k8s_openapi::jiff::SignedDuration {
        k8s_openapi::jiff::SignedDuration::from_secs(secs)
    }

    #[test]
    fn a_lease_renewed_within_its_duration_is_held() {
        let now = Instant::now();
        let verdict = judge(
            Some(&record(Some("flagger-7d9_abc"), 10, 60)),
            Timestamp::now(),
            None,
            now,
        );
        let FlaggerLease::Held { holder, fresh_for } = verdict else {
            panic!("held, got {verdict:?}");
        };
        assert_eq!(holder, "flagger-7d9_abc");
        assert!((45..=50).contains(&fresh_for.as_secs()), "{fresh_for:?}");
    }

    #[test]
    fn a_lease_not_renewed_for_its_duration_is_stale_and_a_released_one_free() {
        let now = Instant::now();
        assert_eq!(
            judge(
                Some(&record(Some("f_1"), 61, 60)),
                Timestamp::now(),
                None,
                now
            ),
            FlaggerLease::Stale {
                holder: "f_1".to_owned()
            }
        );
        assert_eq!(
            judge(Some(&record(None, 0, 1)), Timestamp::now(), None, now),
            FlaggerLease::Free
        );
        assert_eq!(judge(None, Timestamp::now(), None, now), FlaggerLease::Free);
    }

    #[test]
    fn a_lease_seen_changing_is_held_whatever_its_renew_time_says() {
        // Flagger's node clock runs 10 minutes late: its renewTime looks old, but Fledge saw
        // the record change 5 seconds ago, so Flagger is alive.
        let now = Instant::now();
        let changed = now.checked_sub(Duration::from_secs(5)).expect("uptime");
        let verdict = judge(
            Some(&record(Some("f_1"), 600, 60)),
            Timestamp::now(),
            Some(changed),
            now,
        );
        assert!(
            matches!(verdict, FlaggerLease::Held { fresh_for, .. } if fresh_for.as_secs() >= 54),
            "{verdict:?}"
        );
    }
}
