//! `cargo bench -p outbox`: the relay's throughput and the hop latency, next to the raw limits of
//! the same PostgreSQL and RabbitMQ measured the same way. Each part runs in a fresh database and
//! vhost (the servers on 127.0.0.1). Prints a Markdown table for BENCHMARKS.md.
//!
//! The relay and the consumer run as in production: as order-svc's and inventory-svc's own
//! least-privilege broker users on a provisioned vhost, the consumer checking each sender.
//!
//! Sizes can be changed with `RELAY_BENCH_MESSAGES` (default 20000) and
//! `RELAY_BENCH_RATE_SECONDS` (default 10). `RELAY_BENCH_ONLY_RAW=1` runs only the raw broker
//! limits; `RELAY_BENCH_ONLY_LATENCY=1` runs only the 500 msg/s
//! latency part; `RELAY_BENCH_DEBUG=1` splits its latency into enqueue → consumer start and
//! consumer start → commit.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use contracts::{CommitStock, Envelope, MessageId, OrderId, Service};
use lapin::options::{BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use outbox::{
    Broker, ConsumerConfig, ConsumerRunner, Handler, HandlerError, OutboxPublisher, OutboxSignal,
    ProcessError, Processor, PublisherConfig, Received, TransactionalProcessor, Verdict,
};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, Statement, TransactionTrait};
use testkit::{TestDatabase, TestVhost};
use tokio_util::sync::CancellationToken;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let messages = setting("RELAY_BENCH_MESSAGES", 20_000);
    let rate_seconds = setting("RELAY_BENCH_RATE_SECONDS", 10);
    println!("| measure | result |");
    println!("|---|---|");
    if std::env::var_os("RELAY_BENCH_ONLY_LATENCY").is_some() {
        let (p50, p99, max) = hop_latency(500, rate_seconds).await;
        println!("{p50:?} {p99:?} {max:?}");
        return;
    }
    let confirmed_window = raw_publish_with_confirms(messages, 256).await;
    println!(
        "| RabbitMQ raw: persistent publishes with confirms, window 256 | {confirmed_window:.0} msg/s |"
    );
    let confirmed_each = raw_publish_with_confirms(messages / 10, 1).await;
    println!(
        "| RabbitMQ raw: persistent publishes, each awaiting its confirm | {confirmed_each:.0} msg/s |"
    );
    let consumed = raw_consume_and_ack(messages, 1).await;
    println!("| RabbitMQ raw: consume + ack, prefetch 256, one consumer | {consumed:.0} msg/s |");
    let consumed_multiple = raw_consume_and_ack(messages, 32).await;
    println!(
        "| RabbitMQ raw: consume, one ack (multiple) per 32 deliveries, prefetch 256 | {consumed_multiple:.0} msg/s |"
    );
    if std::env::var_os("RELAY_BENCH_ONLY_RAW").is_some() {
        return;
    }
    let transactions = raw_insert_update_transactions(messages / 4).await;
    println!(
        "| PostgreSQL raw: insert + update transactions, one connection | {transactions:.0} tx/s |"
    );
    let relay = relay_throughput(messages).await;
    println!("| Relay: committed outbox rows to broker-confirmed and marked | {relay:.0} msg/s |");
    for rate in [500, 1_000] {
        let (p50, p99, max) = hop_latency(rate, rate_seconds).await;
        println!(
            "| Hop latency at {rate} msg/s (enqueue commit → consumer commit), p50 / p99 / max | {:.1} / {:.1} / {:.1} ms |",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3
        );
    }
}

/// Persistent publishes to a quorum queue, awaiting confirms every `window` messages.
async fn raw_publish_with_confirms(messages: u64, window: u64) -> f64 {
    let vhost = TestVhost::create();
    let connection = Connection::connect(vhost.url(), ConnectionProperties::default())
        .await
        .unwrap();
    let channel = Broker::confirm_channel(&connection).await.unwrap();
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-queue-type".into(),
        lapin::types::AMQPValue::LongString("quorum".into()),
    );
    channel
        .queue_declare(
            "raw".into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            arguments,
        )
        .await
        .unwrap();
    let body = vec![b'x'; 200];
    let started = Instant::now();
    let mut pending = Vec::new();
    for sent in 1..=messages {
        let confirm = channel
            .basic_publish(
                "".into(),
                "raw".into(),
                BasicPublishOptions::default(),
                &body,
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .unwrap();
        pending.push(confirm);
        if sent % window == 0 || sent == messages {
            for confirm in pending.drain(..) {
                assert!(confirm.await.unwrap().is_ack());
            }
        }
    }
    let rate = messages as f64 / started.elapsed().as_secs_f64();
    let _ = connection.close(200, "done".into()).await;
    rate
}

/// Consumes and acknowledges a backlog of persistent messages in a quorum queue, one
/// acknowledgement (`multiple` when it covers more than one) per `ack_every` deliveries.
async fn raw_consume_and_ack(messages: u64, ack_every: u64) -> f64 {
    use futures::StreamExt;
    use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
    let vhost = TestVhost::create();
    let connection = Connection::connect(vhost.url(), ConnectionProperties::default())
        .await
        .unwrap();
    let channel = Broker::confirm_channel(&connection).await.unwrap();
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-queue-type".into(),
        lapin::types::AMQPValue::LongString("quorum".into()),
    );
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare("raw".into(), durable, arguments)
        .await
        .unwrap();
    let body = vec![b'x'; 200];
    let mut pending = Vec::new();
    for sent in 1..=messages {
        let properties = BasicProperties::default().with_delivery_mode(2);
        let confirm = channel
            .basic_publish(
                "".into(),
                "raw".into(),
                BasicPublishOptions::default(),
                &body,
                properties,
            )
            .await
            .unwrap();
        pending.push(confirm);
        if sent % 256 == 0 || sent == messages {
            for confirm in pending.drain(..) {
                confirm.await.unwrap();
            }
        }
    }
    let consumer_channel = connection.create_channel().await.unwrap();
    consumer_channel
        .basic_qos(256, BasicQosOptions::default())
        .await
        .unwrap();
    let mut consumer = consumer_channel
        .basic_consume(
            "raw".into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let started = Instant::now();
    for received in 1..=messages {
        let delivery = consumer.next().await.unwrap().unwrap();
        if received % ack_every == 0 || received == messages {
            let multiple = ack_every > 1;
            consumer_channel
                .basic_ack(delivery.delivery_tag, BasicAckOptions { multiple })
                .await
                .unwrap();
        }
    }
    let rate = messages as f64 / started.elapsed().as_secs_f64();
    let _ = connection.close(200, "done".into()).await;
    rate
}

/// The transaction shape a relay round trip needs per row, without batching: insert, update.
async fn raw_insert_update_transactions(transactions: u64) -> f64 {
    let database = TestDatabase::create().await;
    let db = database.connect().await;
    db.execute_unprepared(
        "CREATE TABLE raw (id uuid PRIMARY KEY, payload jsonb, processed_at timestamptz)",
    )
    .await
    .unwrap();
    let started = Instant::now();
    for _ in 0..transactions {
        let transaction = db.begin().await.unwrap();
        let id = uuid::Uuid::now_v7();
        transaction
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "INSERT INTO raw (id, payload) VALUES ($1, '{\"order_id\": 1}')",
                [id.into()],
            ))
            .await
            .unwrap();
        transaction
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "UPDATE raw SET processed_at = now() WHERE id = $1",
                [id.into()],
            ))
            .await
            .unwrap();
        transaction.commit().await.unwrap();
    }
    transactions as f64 / started.elapsed().as_secs_f64()
}

async fn enqueue_backlog(db: &sea_orm::DatabaseConnection, messages: u64) {
    for _ in 0..messages.div_ceil(1_000) {
        let transaction = db.begin().await.unwrap();
        let envelopes: Vec<outbox::NewMessage> = (0..1_000)
            .map(|_| {
                let envelope = Envelope::new(
                    &CommitStock {
                        order_id: OrderId::generate(),
                    },
                    None,
                )
                .unwrap();
                outbox::NewMessage::from(&envelope)
            })
            .collect();
        outbox::enqueue_all(&transaction, &envelopes).await.unwrap();
        transaction.commit().await.unwrap();
    }
}

/// A backlog of committed rows, drained by one relay.
async fn relay_throughput(messages: u64) -> f64 {
    let database = TestDatabase::create().await;
    let vhost = TestVhost::create();
    let db = outbox::connect(database.url(), &outbox::PoolOptions::default())
        .await
        .unwrap();
    outbox::migrate::<outbox::OutboxMigrator>(&db)
        .await
        .unwrap();
    let messages = messages.div_ceil(1_000) * 1_000;
    enqueue_backlog(&db, messages).await;
    // order-svc's user, the producer of CommitStock. The vhost is provisioned; its topology
    // is checked before the clock starts.
    let broker = Broker::new(vhost.service_url(Service::Order), contracts::topology());
    drop(broker.connect("check").await.unwrap());
    let shutdown = CancellationToken::new();
    let publisher = OutboxPublisher::new(
        db.clone(),
        broker,
        OutboxSignal::new(),
        PublisherConfig::default(),
    );
    let stats = publisher.stats();
    let started = Instant::now();
    tokio::spawn(publisher.run(shutdown.clone()));
    while stats.published() < messages {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let rate = messages as f64 / started.elapsed().as_secs_f64();
    shutdown.cancel();
    rate
}

struct Nothing;

impl Handler<Envelope<contracts::AnyMessage>> for Nothing {
    async fn handle(
        &self,
        _: &DatabaseTransaction,
        _: &Envelope<contracts::AnyMessage>,
    ) -> Result<(), HandlerError> {
        Ok(())
    }
}

/// Wraps the real processor to note when each message's transaction committed.
struct Timed {
    inner: TransactionalProcessor<Envelope<contracts::AnyMessage>, Nothing>,
    committed: Arc<Mutex<HashMap<MessageId, Instant>>>,
    arrived: Arc<Mutex<HashMap<MessageId, Instant>>>,
}

impl Processor<Envelope<contracts::AnyMessage>> for Timed {
    async fn process(
        &self,
        batch: &[Received<Envelope<contracts::AnyMessage>>],
    ) -> Result<Vec<Verdict>, ProcessError> {
        {
            let now = Instant::now();
            let mut arrived = self.arrived.lock().unwrap();
            for item in batch {
                arrived.entry(item.message.message_id).or_insert(now);
            }
        }
        let verdicts = self.inner.process(batch).await?;
        let now = Instant::now();
        let mut committed = self.committed.lock().unwrap();
        for item in batch {
            committed.insert(item.message.message_id, now);
        }
        Ok(verdicts)
    }
}

/// Messages enqueued one per transaction at a fixed rate, timed from commit to the consumer's
/// commit. Returns p50, p99 and max.
async fn hop_latency(rate: u64, seconds: u64) -> (Duration, Duration, Duration) {
    let database = TestDatabase::create().await;
    let vhost = TestVhost::create();
    let db = outbox::connect(database.url(), &outbox::PoolOptions::default())
        .await
        .unwrap();
    outbox::migrate::<outbox::OutboxMigrator>(&db)
        .await
        .unwrap();
    let relay_broker = Broker::new(vhost.service_url(Service::Order), contracts::topology());
    let consumer_broker = Broker::new(vhost.service_url(Service::Inventory), contracts::topology());
    let signal = OutboxSignal::new();
    let shutdown = CancellationToken::new();
    let committed = Arc::new(Mutex::new(HashMap::new()));
    let arrived = Arc::new(Mutex::new(HashMap::new()));
    let processor = Timed {
        inner: TransactionalProcessor::new(db.clone(), Nothing, signal.clone()),
        committed: Arc::clone(&committed),
        arrived: Arc::clone(&arrived),
    };
    let consumer = ConsumerRunner::new(
        consumer_broker,
        Service::Inventory.queues(),
        processor,
        ConsumerConfig {
            producers: vhost.producer_users().producers(),
            ..ConsumerConfig::default()
        },
    );
    let consumed = consumer.stats();
    tokio::spawn(consumer.run(shutdown.clone()));
    let publisher = OutboxPublisher::new(
        db.clone(),
        relay_broker,
        signal.clone(),
        PublisherConfig::default(),
    );
    tokio::spawn(publisher.run(shutdown.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;

    let total = rate * seconds;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut enqueued = Vec::with_capacity(total as usize);
    for _ in 0..total {
        ticker.tick().await;
        let transaction = db.begin().await.unwrap();
        let id = outbox::enqueue_message(
            &transaction,
            &CommitStock {
                order_id: OrderId::generate(),
            },
            None,
        )
        .await
        .unwrap();
        transaction.commit().await.unwrap();
        enqueued.push((id, Instant::now()));
        signal.wake();
    }
    while consumed.handled() < total {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    shutdown.cancel();
    let committed = committed.lock().unwrap();
    let mut latencies: Vec<Duration> = enqueued
        .iter()
        .map(|(id, at)| {
            committed
                .get(id)
                .expect("every message committed")
                .saturating_duration_since(*at)
        })
        .collect();
    latencies.sort();
    if std::env::var_os("RELAY_BENCH_DEBUG").is_some() {
        let arrived = arrived.lock().unwrap();
        let mut to_arrival: Vec<Duration> = enqueued
            .iter()
            .map(|(id, at)| arrived[id].saturating_duration_since(*at))
            .collect();
        let mut to_commit: Vec<Duration> = enqueued
            .iter()
            .map(|(id, _)| committed[id].saturating_duration_since(arrived[id]))
            .collect();
        to_arrival.sort();
        to_commit.sort();
        let n = to_arrival.len() - 1;
        eprintln!(
            "arrival p50 {:?} p99 {:?}; commit p50 {:?} p99 {:?}",
            to_arrival[n / 2],
            to_arrival[n * 99 / 100],
            to_commit[n / 2],
            to_commit[n * 99 / 100]
        );
    }
    let percentile = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize];
    (percentile(0.50), percentile(0.99), percentile(1.0))
}
