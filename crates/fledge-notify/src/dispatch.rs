//! Fire-and-forget delivery: the canary's analysis hands notifications over and moves on.
//!
//! A [`Dispatcher`] puts each delivery on a bounded queue; a worker task posts them, a few at
//! a time. When the queue is full the delivery is dropped (and counted) instead of making the
//! caller wait: a stuck chat service must never hold up a rollback.

use std::error::Error as StdError;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{Semaphore, mpsc};
use tokio::task::{JoinHandle, JoinSet};

use crate::error::{Error, Result};
use crate::notification::Notification;
use crate::notifier::Notifier;

/// Sizes of the dispatch queue and of the pool of concurrent posts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DispatchConfig {
    /// Deliveries that may wait for a free sender before new ones are dropped.
    pub queue_capacity: usize,
    /// Posts in flight at once.
    pub concurrency: usize,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 256,
            concurrency: 4,
        }
    }
}

/// Counts of what happened to dispatched notifications, for the operator's metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DispatchStats {
    /// Accepted by the receiver (2xx).
    pub delivered: u64,
    /// Refused, timed out or unreachable.
    pub failed: u64,
    /// Never sent: the queue was full.
    pub dropped: u64,
}

#[derive(Debug, Default)]
struct Counters {
    delivered: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
}

/// One notification on its way to one notifier.
#[derive(Debug)]
struct Delivery {
    target: String,
    notifier: Arc<dyn Notifier>,
    notification: Arc<Notification>,
}

/// Hands notifications to a background worker without waiting. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Dispatcher {
    queue: mpsc::Sender<Delivery>,
    capacity: usize,
    counters: Arc<Counters>,
}

/// The background worker of a [`Dispatcher`].
#[derive(Debug)]
pub struct DispatchWorker {
    handle: JoinHandle<()>,
    counters: Arc<Counters>,
}

impl Dispatcher {
    /// Starts the worker on the current tokio runtime.
    ///
    /// A zero capacity or concurrency is raised to one.
    pub fn spawn(config: DispatchConfig) -> (Self, DispatchWorker) {
        let capacity = config.queue_capacity.max(1);
        let (queue, receiver) = mpsc::channel(capacity);
        let counters = Arc::new(Counters::default());
        let handle = tokio::spawn(run(
            receiver,
            Arc::new(Semaphore::new(config.concurrency.max(1))),
            Arc::clone(&counters),
        ));
        (
            Self {
                queue,
                capacity,
                counters: Arc::clone(&counters),
            },
            DispatchWorker {
                handle,
                counters: Arc::clone(&counters),
            },
        )
    }

    /// Queues `notification` for `notifier` and returns at once.
    ///
    /// `target` names the receiver in logs (`flagger/on-call`, `global`); it must not be an
    /// address.
    ///
    /// # Errors
    ///
    /// [`Error::QueueFull`] when the queue is full (the notification is dropped and
    /// counted), [`Error::DispatcherClosed`] after the worker has stopped.
    pub fn dispatch(
        &self,
        target: impl Into<String>,
        notifier: Arc<dyn Notifier>,
        notification: Arc<Notification>,
    ) -> Result<()> {
        let delivery = Delivery {
            target: target.into(),
            notifier,
            notification,
        };
        self.queue.try_send(delivery).map_err(|e| match e {
            mpsc::error::TrySendError::Full(delivery) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    target_provider = %delivery.target,
                    canary = %delivery.notification.subject(),
                    capacity = self.capacity,
                    "alert dropped: notification queue is full"
                );
                Error::QueueFull {
                    target: delivery.target,
                    capacity: self.capacity,
                }
            }
            mpsc::error::TrySendError::Closed(delivery) => Error::DispatcherClosed {
                target: delivery.target,
            },
        })
    }

    /// What has happened to the notifications dispatched so far.
    pub fn stats(&self) -> DispatchStats {
        self.counters.snapshot()
    }
}

impl Counters {
    fn snapshot(&self) -> DispatchStats {
        DispatchStats {
            delivered: self.delivered.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

impl DispatchWorker {
    /// Waits until every [`Dispatcher`] clone is dropped and the queue has drained, and
    /// answers the final counts.
    pub async fn finish(self) -> DispatchStats {
        // The worker only ends by draining; a JoinError here is a cancelled runtime.
        let _ = self.handle.await;
        self.counters.snapshot()
    }
}

async fn run(
    mut queue: mpsc::Receiver<Delivery>,
    senders: Arc<Semaphore>,
    counters: Arc<Counters>,
) {
    let mut in_flight = JoinSet::new();
    while let Some(delivery) = queue.recv().await {
        while let Some(finished) = in_flight.try_join_next() {
            reap(finished, &counters);
        }
        let Ok(permit) = Arc::clone(&senders).acquire_owned().await else {
            break;
        };
        let counters = Arc::clone(&counters);
        in_flight.spawn(async move {
            deliver(&delivery, &counters).await;
            drop(permit);
        });
    }
    while let Some(finished) = in_flight.join_next().await {
        reap(finished, &counters);
    }
}

async fn deliver(delivery: &Delivery, counters: &Counters) {
    match delivery.notifier.post(&delivery.notification).await {
        Ok(()) => {
            counters.delivered.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                target_provider = %delivery.target,
                provider = %delivery.notifier.kind(),
                canary = %delivery.notification.subject(),
                "alert sent"
            );
        }
        Err(error) => {
            counters.failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                target_provider = %delivery.target,
                provider = %delivery.notifier.kind(),
                canary = %delivery.notification.subject(),
                error = %chain(&error),
                "alert can't be sent"
            );
        }
    }
}

/// A notifier that panics is counted as a failure instead of taking the worker down.
fn reap(finished: std::result::Result<(), tokio::task::JoinError>, counters: &Counters) {
    if let Err(error) = finished {
        counters.failed.fetch_add(1, Ordering::Relaxed);
        tracing::error!(%error, "alert can't be sent: the notifier panicked");
    }
}

/// `error: cause: cause`, the whole story on one log line.
fn chain(error: &dyn StdError) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
