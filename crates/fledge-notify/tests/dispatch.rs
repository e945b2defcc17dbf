//! The canary's analysis never waits for a notifier: dispatch returns at once, a full queue
//! drops instead of blocking, and failures and panics are counted, not propagated.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use fledge_api::canary::AlertSeverity;
use fledge_notify::msteams::MsTeams;
use fledge_notify::{
    DispatchConfig, DispatchStats, Dispatcher, Endpoint, Error, Notification, Notifier,
    NotifierKind,
};
use pretty_assertions::assert_eq;
use support::{Answer, Receiver};
use tokio::time::Instant;

/// A chat service that takes a minute to answer each post.
#[derive(Debug, Default)]
struct MinuteLongChat {
    answered: AtomicUsize,
}

#[async_trait]
impl Notifier for MinuteLongChat {
    fn kind(&self) -> NotifierKind {
        NotifierKind::Slack
    }

    async fn post(&self, _: &Notification) -> fledge_notify::Result<()> {
        tokio::time::sleep(Duration::from_secs(60)).await;
        self.answered.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// A notifier with a bug.
#[derive(Debug)]
struct Panicking;

#[async_trait]
impl Notifier for Panicking {
    fn kind(&self) -> NotifierKind {
        NotifierKind::Webhook
    }

    async fn post(&self, _: &Notification) -> fledge_notify::Result<()> {
        panic!("bug in a notifier");
    }
}

fn event(message: &str) -> Arc<Notification> {
    Arc::new(Notification::new(
        "podinfo",
        "test",
        message,
        AlertSeverity::Warn,
    ))
}

#[tokio::test(start_paused = true)]
async fn a_slow_notifier_never_holds_up_the_analysis() {
    let (dispatcher, worker) = Dispatcher::spawn(DispatchConfig {
        queue_capacity: 2,
        concurrency: 1,
    });
    let chat = Arc::new(MinuteLongChat::default());

    // One analysis tick raises five alerts; the clock does not move while it does.
    let tick = Instant::now();
    let outcomes: Vec<_> = (0..5)
        .map(|i| {
            dispatcher.dispatch(
                "flagger/on-call",
                chat.clone(),
                event(&format!("alert {i}")),
            )
        })
        .collect();
    assert_eq!(tick.elapsed(), Duration::ZERO);

    // Two wait in the queue; the rest are dropped instead of blocking the tick.
    assert!(outcomes[..2].iter().all(Result::is_ok), "{outcomes:?}");
    for outcome in &outcomes[2..] {
        let error = outcome.as_ref().expect_err("queue full");
        assert!(
            matches!(error, Error::QueueFull { capacity: 2, .. }),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            "notification for flagger/on-call dropped: the dispatch queue is full (2 pending)"
        );
    }
    assert_eq!(dispatcher.stats().dropped, 3);

    // The chat service answers a minute later, one post at a time.
    tokio::time::sleep(Duration::from_secs(61)).await;
    assert_eq!(chat.answered.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(chat.answered.load(Ordering::SeqCst), 2);

    drop(dispatcher);
    assert_eq!(
        worker.finish().await,
        DispatchStats {
            delivered: 2,
            failed: 0,
            dropped: 3
        }
    );
}

#[tokio::test(start_paused = true)]
async fn the_queue_frees_up_as_posts_complete() {
    let (dispatcher, worker) = Dispatcher::spawn(DispatchConfig {
        queue_capacity: 1,
        concurrency: 1,
    });
    let chat = Arc::new(MinuteLongChat::default());
    for tick in 0..3 {
        dispatcher
            .dispatch(
                "flagger/on-call",
                chat.clone(),
                event(&format!("tick {tick}")),
            )
            .expect("room in the queue each tick");
        // The next tick comes after the previous post has been answered.
        tokio::time::sleep(Duration::from_secs(61)).await;
    }
    drop(dispatcher);
    worker.finish().await;
    assert_eq!(chat.answered.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_panicking_notifier_is_counted_and_the_worker_carries_on() {
    let teams = Receiver::start(Answer::ok()).await;
    let endpoint = Endpoint::builder(NotifierKind::MsTeams, teams.url("/webhook"), "spec.address")
        .build()
        .expect("valid");
    let (dispatcher, worker) = Dispatcher::spawn(DispatchConfig::default());

    dispatcher
        .dispatch("test/buggy", Arc::new(Panicking), event("first"))
        .expect("queued");
    dispatcher
        .dispatch(
            "test/teams",
            Arc::new(MsTeams::new(endpoint)),
            event("second"),
        )
        .expect("queued");

    drop(dispatcher);
    let stats = worker.finish().await;

    assert_eq!(
        teams.next_request().await.json()["sections"][0]["activityTitle"],
        "second"
    );
    assert_eq!(
        stats,
        DispatchStats {
            delivered: 1,
            failed: 1,
            dropped: 0
        }
    );
}

#[tokio::test]
async fn slow_http_receivers_time_out_in_the_background() {
    let teams = Receiver::start(Answer::slow(Duration::from_secs(30))).await;
    let endpoint = Endpoint::builder(NotifierKind::MsTeams, teams.url("/webhook"), "spec.address")
        .timeout(Duration::from_secs(2))
        .build()
        .expect("valid");
    let notifier: Arc<dyn Notifier> = Arc::new(MsTeams::new(endpoint));
    let (dispatcher, worker) = Dispatcher::spawn(DispatchConfig {
        queue_capacity: 16,
        concurrency: 4,
    });

    let started = std::time::Instant::now();
    for i in 0..8 {
        dispatcher
            .dispatch(
                "test/teams",
                Arc::clone(&notifier),
                event(&format!("alert {i}")),
            )
            .expect("queued");
    }
    let dispatching = started.elapsed();
    // Eight dispatches take microseconds; posting them takes two rounds of 2 s timeouts. The
    // bounds are far from both, so a busy machine does not turn them into a flake.
    assert!(
        dispatching < Duration::from_secs(1),
        "dispatch waited for a post: {dispatching:?}"
    );

    drop(dispatcher);
    let stats = worker.finish().await;
    let draining = started.elapsed();
    eprintln!("8 dispatches: {dispatching:?}; drained (4 at a time, 2 s timeout): {draining:?}");
    // One at a time would take 16 s, all at once 2 s.
    assert!(
        draining >= Duration::from_secs(4) && draining < Duration::from_secs(12),
        "drained in {draining:?}"
    );
    assert_eq!(stats.failed, 8);
    assert_eq!(stats.delivered, 0);
}
