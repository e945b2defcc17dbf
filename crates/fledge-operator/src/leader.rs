//! Leader election on a `coordination.k8s.io/v1` Lease (`-enable-leader-election`), so that of
//! several replicas only one acts on canaries.
//!
//! It follows client-go's `leaderelection` package, which Flagger uses: a replica takes the
//! Lease when it is free (no holder) or when the holder's record has not changed for the
//! holder's `leaseDurationSeconds`, measured on the replica's own clock from when it first
//! saw that record (so clock skew between nodes does not matter). Every write carries the
//! `resourceVersion` read, so of two replicas racing for the Lease only one wins. The leader
//! renews every retry period; when it cannot renew for the renew deadline, it has lost the
//! Lease and the process exits (as Flagger does), well before another replica may take over.
//! On SIGTERM the leader releases the Lease so that a standby takes over at once.
//!
//! The guarantee: another replica takes over no sooner than the lease duration after it saw
//! the leader's last renewal, which the API server wrote after the leader sent it. The
//! leader counts its renew deadline from the moment it *sent* that renewal, on its own
//! monotonic clock, and waits for no request past that deadline (a hung renewal is given
//! up at it); the renew deadline is shorter than the lease duration, so the leader has
//! stopped before anyone may take over. The Lease is read and written through its own client
//! ([`crate::cluster::connect_for_leases`]): no rate limit shared with the controller's
//! traffic, its own connections, timeouts of the renew deadline.

use std::hash::BuildHasher;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use tokio::time::Instant;

/// The Lease's name: Flagger's is `flagger-leader-election`; Fledge's is named alike, so the
/// two never mistake each other's Lease for their own.
pub const LEASE_NAME: &str = "fledge-leader-election";

/// How a replica elects itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElectionSettings {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub lease_name: String,
    /// This replica's holder identity.
    pub identity: String,
    /// How long others wait, after the last renewal they saw, before taking over.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it gives up leading.
    pub renew_deadline: Duration,
    /// Time between attempts to acquire or renew.
    pub retry_period: Duration,
}

/// A unique holder identity: the host name (the pod's name in a cluster) and a random
/// suffix, as Flagger's `<hostname>_<uuid>`, so that two processes never share one.
pub fn identity(hostname: Option<&str>) -> String {
    let host = hostname
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .unwrap_or("fledge-operator");
    let random = std::collections::hash_map::RandomState::new()
        .hash_one((std::process::id(), std::time::SystemTime::now()));
    format!("{host}_{random:016x}")
}

/// What a replica reads from the Lease to decide.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseRecord {
    /// The holder; `None` when the Lease is free (never held, or released).
    pub holder: Option<String>,
    /// The holder's `leaseDurationSeconds`.
    pub lease_duration: Duration,
    /// The last renewal, as written (only compared, never trusted as a clock).
    pub renew_time: Option<Timestamp>,
    /// How often the Lease changed hands.
    pub transitions: i32,
}

impl LeaseRecord {
    /// The record of `lease`.
    pub fn of(lease: &Lease) -> Self {
        let spec = lease.spec.clone().unwrap_or_default();
        Self {
            holder: spec.holder_identity.filter(|h| !h.is_empty()),
            lease_duration: Duration::from_secs(
                u64::try_from(spec.lease_duration_seconds.unwrap_or(0)).unwrap_or(0),
            ),
            renew_time: spec.renew_time.map(|t| t.0),
            transitions: spec.lease_transitions.unwrap_or(0),
        }
    }
}

/// What a replica may do with the Lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// There is no Lease: create it, holding it.
    Create,
    /// The Lease is free or its holder stopped renewing: take it.
    TakeOver,
    /// This replica holds the Lease: renew it.
    Renew,
    /// Another replica holds the Lease and renewed it recently.
    Wait {
        /// The holder.
        holder: String,
        /// When the holder's Lease runs out if it does not renew.
        expires_in: Duration,
    },
}

/// Decides, from the Lease's record (`None`: no Lease), when this replica first saw that
/// record, and now.
pub fn decide(
    record: Option<&LeaseRecord>,
    first_seen: Instant,
    identity: &str,
    now: Instant,
) -> Decision {
    let Some(record) = record else {
        return Decision::Create;
    };
    match record.holder.as_deref() {
        None => Decision::TakeOver,
        Some(holder) if holder == identity => Decision::Renew,
        Some(holder) => {
            let expires = first_seen + record.lease_duration;
            if now >= expires {
                Decision::TakeOver
            } else {
                Decision::Wait {
                    holder: holder.to_owned(),
                    expires_in: expires - now,
                }
            }
        }
    }
}

/// The outcome of one attempt to acquire or renew.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// This replica holds the Lease.
    Leading,
    /// Another replica holds it.
    Following(String),
    /// Another write came in between (a conflict): try again.
    Raced,
}

/// One replica's side of the election.
pub struct LeaderElector {
    api: Api<Lease>,
    settings: ElectionSettings,
    /// The last record read and when it was first seen.
    observed: Option<(LeaseRecord, Instant)>,
    /// The last leader reported in the log.
    reported: Option<String>,
    /// When the last successful acquisition or renewal was sent (before the API server
    /// wrote it, so before any other replica can have seen it).
    renewed: Option<Instant>,
}

impl std::fmt::Debug for LeaderElector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderElector")
            .field("settings", &self.settings)
            .field("observed", &self.observed)
            .finish_non_exhaustive()
    }
}

impl LeaderElector {
    /// An elector for the Lease `settings` names.
    pub fn new(client: kube::Client, settings: ElectionSettings) -> Self {
        Self {
            api: Api::namespaced(client, &settings.namespace),
            settings,
            observed: None,
            reported: None,
            renewed: None,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &ElectionSettings {
        &self.settings
    }

    /// Reads the Lease and creates, takes over or renews it when this replica may.
    ///
    /// # Errors
    /// The API server's error, other than a conflict (which is [`Attempt::Raced`]).
    pub async fn try_acquire_or_renew(&mut self) -> Result<Attempt, kube::Error> {
        let sent = Instant::now();
        let lease = self.api.get_opt(&self.settings.lease_name).await?;
        let now = Instant::now();
        let record = lease.as_ref().map(LeaseRecord::of);
        if let Some(record) = &record
            && self
                .observed
                .as_ref()
                .is_none_or(|(seen, _)| seen != record)
        {
            self.observed = Some((record.clone(), now));
        }
        let first_seen = self.observed.as_ref().map_or(now, |(_, at)| *at);
        let written = match (
            decide(record.as_ref(), first_seen, &self.settings.identity, now),
            lease,
        ) {
            (Decision::Wait { holder, .. }, _) => {
                self.report(&holder);
                return Ok(Attempt::Following(holder));
            }
            (Decision::Create, _) | (_, None) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.settings.lease_name.clone()),
                        namespace: Some(self.settings.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(self.held(None)),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            (Decision::TakeOver | Decision::Renew, Some(mut lease)) => {
                lease.spec = Some(self.held(lease.spec.take()));
                self.api
                    .replace(&self.settings.lease_name, &PostParams::default(), &lease)
                    .await
            }
        };
        match written {
            Ok(lease) => {
                self.observed = Some((LeaseRecord::of(&lease), now));
                self.renewed = Some(sent);
                let identity = self.settings.identity.clone();
                self.report(&identity);
                Ok(Attempt::Leading)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(Attempt::Raced),
            Err(error) => Err(error),
        }
    }

    /// The Lease's spec with this replica holding it, from `previous` (`None` when new).
    fn held(&self, previous: Option<LeaseSpec>) -> LeaseSpec {
        let now = MicroTime(Timestamp::now());
        let mut spec = previous.unwrap_or_default();
        let ours = spec.holder_identity.as_deref() == Some(self.settings.identity.as_str());
        if !ours {
            spec.acquire_time = Some(now.clone());
            if spec
                .holder_identity
                .as_deref()
                .is_some_and(|h| !h.is_empty())
            {
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            }
        }
        spec.lease_transitions.get_or_insert(0);
        spec.holder_identity = Some(self.settings.identity.clone());
        spec.lease_duration_seconds = Some(duration_seconds(self.settings.lease_duration));
        spec.renew_time = Some(now);
        spec
    }

    fn report(&mut self, holder: &str) {
        if self.reported.as_deref() == Some(holder) {
            return;
        }
        if holder != self.settings.identity {
            tracing::info!(
                leader = holder,
                "Another instance has been elected as leader: {holder}"
            );
        }
        self.reported = Some(holder.to_owned());
    }

    /// Waits until this replica holds the Lease, trying every retry period.
    pub async fn acquire(&mut self) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(Attempt::Leading) => return,
                Ok(Attempt::Following(_) | Attempt::Raced) => {}
                Err(error) => {
                    tracing::warn!(%error, "cannot read or write the leader-election Lease");
                }
            }
            tokio::time::sleep(self.settings.retry_period).await;
        }
    }

    /// Renews the Lease every retry period for as long as this replica leads; returns why
    /// it stopped leading: another replica holds the Lease, or it could not be renewed
    /// within the renew deadline.
    ///
    /// It returns at the latest at the renew deadline after the last successful renewal was
    /// sent: no sleep and no request outlasts that moment.
    pub async fn keep_leading(&mut self) -> String {
        let since = Instant::now();
        loop {
            let deadline = self.renewed.unwrap_or(since) + self.settings.renew_deadline;
            let next = (Instant::now() + self.settings.retry_period).min(deadline);
            tokio::time::sleep_until(next).await;
            if Instant::now() < deadline {
                match tokio::time::timeout_at(deadline, self.try_acquire_or_renew()).await {
                    Ok(Ok(Attempt::Following(holder))) => {
                        return format!("{holder} holds the Lease");
                    }
                    // Renewed, a conflict, or a request cut at the deadline: look again.
                    Ok(Ok(Attempt::Leading | Attempt::Raced)) | Err(_) => {}
                    Ok(Err(error)) => {
                        tracing::warn!(%error, "cannot renew the leader-election Lease");
                    }
                }
            }
            let deadline = self.renewed.unwrap_or(since) + self.settings.renew_deadline;
            if Instant::now() >= deadline {
                return format!(
                    "the Lease was not renewed for {}s",
                    self.settings.renew_deadline.as_secs_f64()
                );
            }
        }
    }

    /// Gives the Lease up, if this replica holds it, so that another takes over at once (as
    /// client-go's `ReleaseOnCancel`: no holder, a lease of one second).
    ///
    /// # Errors
    /// The API server's error.
    pub async fn release(&mut self) -> Result<bool, kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.settings.lease_name).await? else {
            return Ok(false);
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(false);
        };
        if spec.holder_identity.as_deref() != Some(self.settings.identity.as_str()) {
            return Ok(false);
        }
        let now = MicroTime(Timestamp::now());
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.acquire_time = Some(now.clone());
        spec.renew_time = Some(now);
        match self
            .api
            .replace(&self.settings.lease_name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(error) => Err(error),
        }
    }
}

/// Whole seconds of a Lease, rounded up (a Lease holds seconds only), at least 1.
fn duration_seconds(duration: Duration) -> i32 {
    let seconds = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    i32::try_from(seconds.max(1)).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held_by(holder: Option<&str>, seconds: u64) -> LeaseRecord {
        LeaseRecord {
            holder: holder.map(str::to_owned),
            lease_duration: Duration::from_secs(seconds),
            renew_time: None,
            transitions: 0,
        }
    }

    #[test]
    fn a_missing_lease_is_created_and_a_free_one_taken() {
        let now = Instant::now();
        assert_eq!(decide(None, now, "a", now), Decision::Create);
        assert_eq!(
            decide(Some(&held_by(None, 60)), now, "a", now),
            Decision::TakeOver,
            "released (no holder): no need to wait"
        );
    }

    #[test]
    fn the_holder_renews() {
        let now = Instant::now();
        let record = held_by(Some("a"), 60);
        assert_eq!(decide(Some(&record), now, "a", now), Decision::Renew);
        assert_eq!(
            decide(Some(&record), now, "a", now + Duration::from_secs(600)),
            Decision::Renew,
            "even past its duration, as long as nobody took it"
        );
    }

    #[test]
    fn others_wait_for_the_lease_duration_since_they_first_saw_the_record() {
        let seen = Instant::now();
        let record = held_by(Some("a"), 15);
        assert_eq!(
            decide(Some(&record), seen, "b", seen + Duration::from_secs(5)),
            Decision::Wait {
                holder: "a".to_owned(),
                expires_in: Duration::from_secs(10)
            }
        );
        assert_eq!(
            decide(Some(&record), seen, "b", seen + Duration::from_secs(15)),
            Decision::TakeOver
        );
    }

    #[test]
    fn a_lease_of_zero_seconds_is_expired_at_once() {
        let seen = Instant::now();
        assert_eq!(
            decide(Some(&held_by(Some("a"), 0)), seen, "b", seen),
            Decision::TakeOver
        );
    }

    #[test]
    fn identities_are_unique_and_name_the_host() {
        let (one, two) = (identity(Some("fledge-7d9f")), identity(Some("fledge-7d9f")));
        assert!(one.starts_with("fledge-7d9f_"), "{one}");
        assert_ne!(one, two);
        assert!(identity(None).starts_with("fledge-operator_"));
        assert!(identity(Some("  ")).starts_with("fledge-operator_"));
    }

    #[test]
    fn lease_seconds_round_up() {
        assert_eq!(duration_seconds(Duration::from_secs(60)), 60);
        assert_eq!(duration_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(duration_seconds(Duration::ZERO), 1);
    }

    #[test]
    fn a_lease_record_reads_the_spec() {
        let lease = Lease {
            spec: Some(LeaseSpec {
                holder_identity: Some(String::new()),
                lease_duration_seconds: Some(15),
                lease_transitions: Some(3),
                ..LeaseSpec::default()
            }),
            ..Lease::default()
        };
        assert_eq!(
            LeaseRecord::of(&lease),
            LeaseRecord {
                holder: None,
                lease_duration: Duration::from_secs(15),
                renew_time: None,
                transitions: 3
            }
        );
    }
}
