//! `cargo bench -p outbox --bench retry_path`: what one retry costs on each path the consumer
//! could take, measured the same way on the same servers, to choose between them (the choice
//! and the figures are in ARCHITECTURE.md and BENCHMARKS.md):
//!
//! - through a delay queue of the broker — classic with at-most-once dead-lettering (the old
//!   layout), quorum at most once, quorum at least once (the layout now): each retry is
//!   published with a confirm into the delay queue, expires after its delay and is
//!   dead-lettered into the target queue, where it is consumed and acknowledged;
//! - scheduled in the service's database: each retry is a row inserted (its own transaction,
//!   as the consumer would write it before acknowledging the delivery), and a sweeper claims
//!   due rows with `FOR UPDATE SKIP LOCKED`, deletes them and commits.
//!
//! `RETRY_BENCH_MESSAGES` (default 5000) retries per path, delay 50 ms.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};
use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};
use testkit::{TestDatabase, TestVhost};

const DELAY_MS: i64 = 50;

fn text(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value.as_bytes().to_vec()))
}

#[tokio::main]
async fn main() {
    let messages: u32 = std::env::var("RETRY_BENCH_MESSAGES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(5_000);
    println!("| retry path ({messages} retries, delay {DELAY_MS} ms) | retries/s |");
    println!("|---|---:|");
    for (name, delay_arguments) in [
        (
            "broker: classic delay queue, at-most-once dead-lettering",
            vec![],
        ),
        (
            "broker: quorum delay queue, at-most-once dead-lettering",
            vec![("x-queue-type", text("quorum"))],
        ),
        (
            "broker: quorum delay queue, at-least-once dead-lettering (chosen)",
            vec![
                ("x-queue-type", text("quorum")),
                ("x-dead-letter-strategy", text("at-least-once")),
                ("x-overflow", text("reject-publish")),
            ],
        ),
    ] {
        let rate = through_the_broker(messages, delay_arguments).await;
        println!("| {name} | {rate:.0} |");
    }
    let rate = through_the_database(messages).await;
    println!("| database: a row per retry, claimed by a sweeper (SKIP LOCKED) | {rate:.0} |");
}

/// Retries per second through a delay queue declared with `delay_arguments` into a quorum
/// target queue, consumed and acknowledged.
async fn through_the_broker(messages: u32, delay_arguments: Vec<(&str, AMQPValue)>) -> f64 {
    let vhost = TestVhost::create();
    let connection = Connection::connect(vhost.url(), ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    let queue = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .exchange_declare(
            "bench.requeue".into(),
            ExchangeKind::Direct,
            durable,
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut target = FieldTable::default();
    target.insert("x-queue-type".into(), text("quorum"));
    channel
        .queue_declare("bench.target".into(), queue, target)
        .await
        .unwrap();
    channel
        .queue_bind(
            "bench.target".into(),
            "bench.requeue".into(),
            "bench.target".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut delay = FieldTable::default();
    delay.insert("x-message-ttl".into(), AMQPValue::LongLongInt(DELAY_MS));
    delay.insert("x-dead-letter-exchange".into(), text("bench.requeue"));
    delay.insert("x-dead-letter-routing-key".into(), text("bench.target"));
    for (name, value) in delay_arguments {
        delay.insert(name.into(), value);
    }
    channel
        .queue_declare("bench.delay".into(), queue, delay)
        .await
        .unwrap();

    let consuming = connection.create_channel().await.unwrap();
    consuming
        .basic_qos(256, BasicQosOptions::default())
        .await
        .unwrap();
    let mut consumer = consuming
        .basic_consume(
            "bench.target".into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let started = Instant::now();
    let publishing = async {
        // Confirmed in windows of 64, as a consumer settling a batch would.
        for window in 0..messages.div_ceil(64) {
            let mut confirms = Vec::new();
            for _ in 0..64.min(messages - window * 64) {
                confirms.push(
                    channel
                        .basic_publish(
                            "".into(),
                            "bench.delay".into(),
                            BasicPublishOptions::default(),
                            br#"{"order_id":"0195a0a0-0000-7000-8000-000000000000"}"#,
                            BasicProperties::default().with_delivery_mode(2),
                        )
                        .await
                        .unwrap(),
                );
            }
            for confirm in confirms {
                assert!(confirm.await.unwrap().is_ack());
            }
        }
    };
    let consuming = async {
        for _ in 0..messages {
            let delivery = tokio::time::timeout(Duration::from_secs(60), consumer.next())
                .await
                .expect("every retry comes back")
                .unwrap()
                .unwrap();
            delivery.ack(BasicAckOptions::default()).await.unwrap();
        }
    };
    tokio::join!(publishing, consuming);
    let rate = f64::from(messages) / started.elapsed().as_secs_f64();
    connection.close(200, "done".into()).await.unwrap();
    rate
}

/// Retries per second scheduled in PostgreSQL: one insert transaction per retry, one sweeper
/// claiming due rows in batches of 256 and deleting them.
async fn through_the_database(messages: u32) -> f64 {
    let database = TestDatabase::create().await;
    let db = database.connect().await;
    db.execute_unprepared(
        "CREATE TABLE retries (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            queue text NOT NULL,
            body jsonb NOT NULL,
            due_at timestamptz NOT NULL
        );
        CREATE INDEX retries_due ON retries (due_at)",
    )
    .await
    .unwrap();
    let started = Instant::now();
    let writer = {
        let db = db.clone();
        tokio::spawn(async move {
            for _ in 0..messages {
                let transaction = db.begin().await.unwrap();
                transaction
                    .execute_raw(Statement::from_sql_and_values(
                        DbBackend::Postgres,
                        "INSERT INTO retries (queue, body, due_at)
                         VALUES ($1, $2::jsonb, now() + $3 * interval '1 millisecond')",
                        [
                            "bench.target".into(),
                            r#"{"order_id":"0195a0a0-0000-7000-8000-000000000000"}"#.into(),
                            DELAY_MS.into(),
                        ],
                    ))
                    .await
                    .unwrap();
                transaction.commit().await.unwrap();
            }
        })
    };
    let mut swept = 0_u64;
    while swept < u64::from(messages) {
        let transaction = db.begin().await.unwrap();
        let claimed = transaction
            .execute_raw(Statement::from_string(
                DbBackend::Postgres,
                "DELETE FROM retries WHERE id IN (
                     SELECT id FROM retries WHERE due_at <= now()
                     ORDER BY due_at LIMIT 256 FOR UPDATE SKIP LOCKED)",
            ))
            .await
            .unwrap()
            .rows_affected();
        transaction.commit().await.unwrap();
        swept += claimed;
        if claimed == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    writer.await.unwrap();
    f64::from(messages) / started.elapsed().as_secs_f64()
}
