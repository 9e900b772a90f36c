//! Failure classes against the real PostgreSQL and RabbitMQ: an infrastructure failure (the
//! database unreachable, cut mid-transaction, a pool that times out) pauses the consumer and
//! costs no message an attempt; a message that fails on its own (a panic included) is retried
//! toward the dead-letter queue alone; a delivery the broker hands out again after a consumer
//! died holding it is processed in a batch of its own.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Behaviour, Fixture, Recorder, eventually};
use contracts::{AnyMessage, Envelope, OrderId};
use outbox::{
    ConsumerConfig, ConsumerRunner, ProcessError, Processor, PublisherConfig, Received,
    TransactionalProcessor, Verdict,
};

const INVENTORY_COMMITS: &str = "inventory-svc.CommitStock";

/// One attempt only: any message that is blamed for a failure is dead-lettered at its first
/// failure, so a dead letter is proof of a wrong blame.
fn unforgiving(fixture: &Fixture) -> ConsumerConfig {
    ConsumerConfig {
        max_attempts: 1,
        max_batch: 8,
        ..fixture.consumer_config()
    }
}

#[tokio::test]
async fn a_pool_that_times_out_pauses_the_consumer_without_spending_attempts() {
    let fixture = Fixture::new().await;
    fixture.publisher(PublisherConfig::default());
    // More failures per message than the processor's immediate retries: the pause is reached.
    let stats = fixture.consumer(
        Recorder::new(Behaviour::DatabaseUnavailableTimes(8)),
        unforgiving(&fixture),
    );
    for _ in 0..5 {
        fixture.enqueue_commit(OrderId::generate()).await;
    }
    eventually("every message handled", Duration::from_secs(60), || async {
        fixture.handled_count().await == 5
    })
    .await;
    assert_eq!(stats.retried(), 0, "no attempt was spent");
    assert_eq!(stats.dead_lettered(), 0);
    assert!(fixture.dead_letters(INVENTORY_COMMITS).await.is_empty());
}

#[tokio::test]
async fn a_database_that_drops_every_connection_every_few_seconds_dead_letters_nothing() {
    let fixture = Fixture::new().await;
    fixture.publisher(PublisherConfig::default());
    // Each handling holds its transaction open for a while, so that cuts land mid-transaction
    // as well as between them.
    let stats = fixture.consumer(
        Recorder::new(Behaviour::Slow(Duration::from_millis(30))),
        unforgiving(&fixture),
    );
    let cutting = tokio_util::sync::CancellationToken::new();
    let cuts = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let cutter = {
        let cutting = cutting.clone();
        let cuts = Arc::clone(&cuts);
        let name = fixture.database.name().to_owned();
        tokio::spawn(async move {
            while !cutting.is_cancelled() {
                tokio::time::sleep(Duration::from_millis(1_500)).await;
                testkit::terminate_connections_of(&name).await;
                cuts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        })
    };
    // 25 s of traffic under cuts every 1.5 s; the writer itself retries what a cut refused.
    let mut enqueued = 0;
    let traffic_until = tokio::time::Instant::now() + Duration::from_secs(25);
    while tokio::time::Instant::now() < traffic_until {
        if fixture.try_enqueue_commit(OrderId::generate()).await {
            enqueued += 1;
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    cutting.cancel();
    cutter.await.unwrap();
    eventually(
        "every committed message handled once",
        Duration::from_secs(90),
        || async { fixture.handled_count().await == enqueued },
    )
    .await;
    let handled = fixture.handled_ids().await;
    let distinct: std::collections::HashSet<_> = handled.iter().collect();
    assert_eq!(distinct.len(), handled.len(), "nothing was handled twice");
    assert!(
        cuts.load(std::sync::atomic::Ordering::Relaxed) >= 10,
        "the database was cut again and again"
    );
    assert!(enqueued > 100, "traffic flowed under the cuts: {enqueued}");
    assert_eq!(stats.retried(), 0, "no attempt was spent on a cut");
    assert_eq!(stats.dead_lettered(), 0);
    assert!(fixture.dead_letters(INVENTORY_COMMITS).await.is_empty());
}

#[tokio::test]
async fn a_panicking_handler_fails_alone_and_its_neighbours_are_handled() {
    let fixture = Fixture::new().await;
    let poison = OrderId::generate();
    let innocent: Vec<OrderId> = (0..6).map(|_| OrderId::generate()).collect();
    // Everything is committed before the consumer starts, so the first batch holds them all.
    fixture.enqueue_commit(innocent[0]).await;
    fixture.enqueue_commit(innocent[1]).await;
    fixture.enqueue_commit(poison).await;
    for &order in &innocent[2..] {
        fixture.enqueue_commit(order).await;
    }
    fixture.publisher(PublisherConfig::default());
    eventually("everything published", Duration::from_secs(20), || async {
        fixture.unprocessed_count().await == 0
    })
    .await;
    let stats = fixture.consumer(
        Recorder::new(Behaviour::PanicOrder(poison)),
        ConsumerConfig {
            max_attempts: 2,
            max_batch: 16,
            ..fixture.consumer_config()
        },
    );
    eventually(
        "the panicking message dead-lettered",
        Duration::from_secs(30),
        || async { stats.dead_lettered() == 1 },
    )
    .await;
    assert_eq!(
        fixture.handled_count().await,
        6,
        "the neighbours were handled"
    );
    let dead = fixture.dead_letters(INVENTORY_COMMITS).await;
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0]
            .reason
            .contains("the handler panicked: planned panic"),
        "{}",
        dead[0].reason
    );
    assert_eq!(stats.retried(), 1, "one retry, then the dead-letter queue");
}

/// A processor that remembers the size of every batch it saw and whether it held a redelivered
/// message, and can be told to hold up the first batch.
struct Watching<P> {
    inner: P,
    batches: Arc<Mutex<Vec<(usize, bool)>>>,
    first_batch_started: Arc<tokio::sync::Notify>,
    hold_first_batch: Arc<tokio::sync::Semaphore>,
}

impl<P: Processor<Envelope<AnyMessage>>> Processor<Envelope<AnyMessage>> for Watching<P> {
    async fn process(
        &self,
        batch: &[Received<Envelope<AnyMessage>>],
    ) -> Result<Vec<Verdict>, ProcessError> {
        let first = {
            let mut batches = self.batches.lock().unwrap();
            batches.push((batch.len(), batch.iter().any(|item| item.redelivered)));
            batches.len() == 1
        };
        if first {
            self.first_batch_started.notify_one();
            let _permit = self.hold_first_batch.acquire().await;
        }
        self.inner.process(batch).await
    }
}

#[tokio::test]
async fn deliveries_redelivered_after_a_lost_consumer_are_processed_alone() {
    let fixture = Fixture::new().await;
    for _ in 0..12 {
        fixture.enqueue_commit(OrderId::generate()).await;
    }
    fixture.publisher(PublisherConfig::default());
    eventually("everything published", Duration::from_secs(20), || async {
        fixture.unprocessed_count().await == 0
    })
    .await;
    let batches = Arc::new(Mutex::new(Vec::new()));
    let first_batch_started = Arc::new(tokio::sync::Notify::new());
    let hold_first_batch = Arc::new(tokio::sync::Semaphore::new(0));
    let processor = Watching {
        inner: TransactionalProcessor::new(
            fixture.db.clone(),
            Recorder::new(Behaviour::Succeed),
            fixture.signal.clone(),
        ),
        batches: Arc::clone(&batches),
        first_batch_started: Arc::clone(&first_batch_started),
        hold_first_batch: Arc::clone(&hold_first_batch),
    };
    let runner = ConsumerRunner::new(
        fixture.broker_as(common::Who::User(contracts::Service::Inventory)),
        vec![INVENTORY_COMMITS.to_owned()],
        processor,
        ConsumerConfig {
            lanes: 1,
            max_batch: 64,
            ..fixture.consumer_config()
        },
    );
    tokio::spawn(runner.run(fixture.shutdown.clone()));
    // The consumer holds every message (prefetched, the first batch in its hands) when its
    // connections are cut: the broker hands them all out again, flagged as redelivered.
    first_batch_started.notified().await;
    assert!(fixture.vhost.close_connections() > 0);
    // Let the consumer notice before the first batch goes on.
    tokio::time::sleep(Duration::from_millis(500)).await;
    hold_first_batch.add_permits(1_000);
    eventually(
        "every message handled, and every one handed out again processed",
        Duration::from_secs(30),
        || async {
            let redelivered = batches
                .lock()
                .unwrap()
                .iter()
                .filter(|(_, again)| *again)
                .count();
            fixture.handled_count().await == 12 && redelivered >= 12
        },
    )
    .await;
    let batches = batches.lock().unwrap().clone();
    let redelivered: Vec<&(usize, bool)> = batches.iter().filter(|(_, again)| *again).collect();
    assert!(
        !redelivered.is_empty(),
        "some deliveries came again: {batches:?}"
    );
    assert!(
        redelivered.iter().all(|(size, _)| *size == 1),
        "every redelivered delivery was processed alone: {batches:?}"
    );
}
