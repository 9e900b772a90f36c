//! The outbox's delivery guarantees, against the real PostgreSQL and RabbitMQ: each test has a
//! database and a vhost of its own, provisioned like production. The relay publishes as
//! order-svc's user and the consumer runs as inventory-svc's, accepting only the vhost's
//! producer users (see `tests/senders.rs` for what it refuses).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Behaviour, Fixture, Recorder, Who, eventually, publish};
use contracts::{AnyMessage, CommitStock, Envelope, MessageId, MessageType, OrderId, Service};
use futures::FutureExt;
use lapin::BasicProperties;
use outbox::{
    Broker, ConsumerConfig, Handler, HandlerError, OutboxSignal, Processor, PublisherConfig,
    Received, TransactionalProcessor, Verdict, wire,
};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, EntityTrait, Statement,
    TransactionTrait,
};

const PATIENCE: Duration = Duration::from_secs(30);

/// 1. A rolled-back transaction publishes nothing; a committed one is published and consumed once.
#[tokio::test]
async fn only_committed_messages_are_published_and_each_is_consumed_once() {
    let fixture = Fixture::new().await;
    fixture.publisher(PublisherConfig::default());
    let consumed = fixture.consumer(Recorder::new(Behaviour::Succeed), fixture.consumer_config());

    let rolled_back = OrderId::generate();
    let transaction = fixture.db.begin().await.unwrap();
    outbox::enqueue_message(
        &transaction,
        &CommitStock {
            order_id: rolled_back,
        },
        None,
    )
    .await
    .unwrap();
    transaction.rollback().await.unwrap();
    fixture.signal.wake();

    let committed = OrderId::generate();
    fixture.enqueue_commit(committed).await;

    eventually("the committed message is handled", PATIENCE, || async {
        fixture.handled_count().await == 1
    })
    .await;
    // Give a wrongly published message every chance to arrive.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let orders = fixture
        .count(&format!(
            "SELECT count(*) FROM handled WHERE order_id = '{}'",
            committed.as_uuid()
        ))
        .await;
    assert_eq!((fixture.handled_count().await, orders), (1, 1));
    assert_eq!(
        fixture.count("SELECT count(*) FROM outbox_messages").await,
        1
    );
    assert_eq!(fixture.unprocessed_count().await, 0);
    assert_eq!((consumed.handled(), consumed.duplicate()), (1, 0));
}

/// 2. The relay dies after publishing and before marking: the message is published again, and the
/// consumer's effect still happens once.
#[tokio::test]
async fn a_relay_crash_between_publish_and_mark_republishes_and_the_effect_happens_once() {
    let fixture = Fixture::new().await;
    let order_id = OrderId::generate();
    let transaction = fixture.db.begin().await.unwrap();
    outbox::enqueue_message(&transaction, &CommitStock { order_id }, None)
        .await
        .unwrap();
    transaction.commit().await.unwrap();

    // What a relay does up to its crash: publish the row (as its user), then die before
    // marking it.
    let connection = fixture.broker.connect("doomed relay").await.unwrap();
    let channel = Broker::confirm_channel(&connection).await.unwrap();
    let row = outbox::entity::outbox_message::Entity::find()
        .one(&fixture.db)
        .await
        .unwrap()
        .unwrap();
    let outgoing = wire::outgoing(&outbox::NewMessage::from(&row));
    publish(
        &channel,
        contracts::EXCHANGE,
        &row.message_type,
        outgoing
            .properties
            .with_user_id(fixture.broker.user().into()),
        &outgoing.body,
    )
    .await;
    drop(connection);
    assert_eq!(fixture.unprocessed_count().await, 1);

    let consumed = fixture.consumer(Recorder::new(Behaviour::Succeed), fixture.consumer_config());
    let published = fixture.publisher(PublisherConfig::default());
    eventually("both copies are consumed", PATIENCE, || async {
        consumed.handled() + consumed.duplicate() == 2
    })
    .await;
    assert_eq!(
        published.published(),
        1,
        "the restarted relay republished the row"
    );
    assert_eq!((consumed.handled(), consumed.duplicate()), (1, 1));
    assert_eq!(fixture.handled_count().await, 1);
    assert_eq!(fixture.unprocessed_count().await, 0);
}

/// 3. Two relays on one table: every message published once, both relays working, no duplicates.
#[tokio::test]
async fn two_relays_share_one_outbox_without_blocking_or_duplicating() {
    let fixture = Fixture::new().await;
    let total = 2_000;
    let transaction = fixture.db.begin().await.unwrap();
    for _ in 0..total {
        outbox::enqueue_message(
            &transaction,
            &CommitStock {
                order_id: OrderId::generate(),
            },
            None,
        )
        .await
        .unwrap();
    }
    transaction.commit().await.unwrap();

    let consumed = fixture.consumer(Recorder::new(Behaviour::Succeed), fixture.consumer_config());
    let small_batches = PublisherConfig {
        batch_size: 20,
        ..PublisherConfig::default()
    };
    let first = fixture.publisher(small_batches.clone());
    let second = fixture.publisher(small_batches);
    eventually("every message is consumed", PATIENCE, || async {
        consumed.handled() == total
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(first.published() + second.published(), total);
    assert!(
        first.published() > 0 && second.published() > 0,
        "both relays worked"
    );
    assert_eq!(consumed.duplicate(), 0, "no duplicates in the normal path");
    assert_eq!(fixture.handled_count().await, i64::try_from(total).unwrap());
    assert_eq!(fixture.unprocessed_count().await, 0);
}

/// 4. The broker closes every connection mid-stream: relay and consumer reconnect, the backlog
/// drains, nothing is lost and nothing is handled twice.
#[tokio::test]
async fn a_broker_cut_mid_stream_loses_nothing() {
    let fixture = Fixture::new().await;
    let published = fixture.publisher(PublisherConfig::default());
    let consumed = fixture.consumer(Recorder::new(Behaviour::Succeed), fixture.consumer_config());
    let total: i64 = 3_000;
    for batch in 0..30 {
        let transaction = fixture.db.begin().await.unwrap();
        for _ in 0..100 {
            outbox::enqueue_message(
                &transaction,
                &CommitStock {
                    order_id: OrderId::generate(),
                },
                None,
            )
            .await
            .unwrap();
        }
        transaction.commit().await.unwrap();
        fixture.signal.wake();
        if batch == 10 {
            eventually("some messages are consumed", PATIENCE, || async {
                consumed.handled() >= 500
            })
            .await;
            assert!(
                fixture.vhost.close_connections() >= 2,
                "relay and consumer connections were cut"
            );
        }
    }
    eventually(
        "every message is handled",
        Duration::from_secs(60),
        || async { fixture.handled_count().await == total },
    )
    .await;
    eventually("the outbox is drained", PATIENCE, || async {
        fixture.unprocessed_count().await == 0
    })
    .await;
    let distinct = fixture
        .count("SELECT count(DISTINCT message_id) FROM handled")
        .await;
    assert_eq!(
        distinct, total,
        "each message's effect happened exactly once"
    );
    assert!(published.published() >= 3_000);
}

/// 5. Malformed JSON, an unknown type, missing fields and missing headers go to the DLQ with a
/// reason; the next valid message is still processed.
#[tokio::test]
async fn malformed_messages_are_dead_lettered_with_a_reason_and_the_consumer_goes_on() {
    let fixture = Fixture::new().await;
    // Straight onto the queue (only the administrator may use the default exchange); the
    // valid message comes from its producer, through the exchange.
    let (_admin, channel) = fixture.channel_as(Who::Admin).await;
    let (_producer, producer_channel) = fixture.channel_as(Who::User(Service::Order)).await;
    let consumed = fixture.consumer(Recorder::new(Behaviour::Succeed), fixture.consumer_config());
    let queue = "inventory-svc.CommitStock";
    let order = OrderId::generate().to_string();
    let properties = |message_type: &str| {
        BasicProperties::default()
            .with_message_id(uuid::Uuid::now_v7().to_string().into())
            .with_type(message_type.into())
            .with_correlation_id(order.as_str().into())
    };
    let cases: [(BasicProperties, Vec<u8>, &str); 5] = [
        (
            properties("CommitStock"),
            b"{not json".to_vec(),
            "invalid CommitStock payload: key must be a string",
        ),
        (
            properties("LaunchRocket"),
            b"{}".to_vec(),
            "unknown message type \"LaunchRocket\"",
        ),
        (
            properties("CommitStock"),
            b"{}".to_vec(),
            "missing field `order_id`",
        ),
        (
            BasicProperties::default(),
            b"{}".to_vec(),
            "missing header `message_id`",
        ),
        (
            properties("CommitStock"),
            vec![b'x'; 10 * 1024 * 1024],
            "invalid CommitStock payload",
        ),
    ];
    for (properties, body, _) in &cases {
        publish(&channel, "", queue, properties.clone(), body).await;
    }
    let valid = format!(r#"{{"order_id":"{order}"}}"#);
    publish(
        &producer_channel,
        contracts::EXCHANGE,
        "CommitStock",
        properties("CommitStock").with_user_id(fixture.user(Who::User(Service::Order)).into()),
        valid.as_bytes(),
    )
    .await;

    eventually("the valid message is handled", PATIENCE, || async {
        consumed.handled() == 1
    })
    .await;
    eventually("the malformed ones are dead-lettered", PATIENCE, || async {
        consumed.dead_lettered() == 5
    })
    .await;
    let letters = fixture.dead_letters(queue).await;
    assert_eq!(letters.len(), cases.len());
    for ((_, _, expected), letter) in cases.iter().zip(&letters) {
        assert!(
            letter.reason.contains(expected),
            "{:?} lacks {expected:?}",
            letter.reason
        );
    }
}

/// 6. A handler failing transiently succeeds on a later attempt; one that always fails lands in
/// the DLQ after the maximum number of attempts.
#[tokio::test]
async fn transient_failures_are_retried_and_permanent_ones_end_in_the_dlq() {
    let cases = [
        (Behaviour::FailTimes(2), (1, 2, 0), None),
        (
            Behaviour::AlwaysFail,
            (0, 2, 1),
            Some("gave up after 3 attempts: planned failure"),
        ),
        (Behaviour::Reject, (0, 0, 1), Some("planned rejection")),
    ];
    for (behaviour, (handled, retried, dead_lettered), reason) in cases {
        let fixture = Fixture::new().await;
        fixture.publisher(PublisherConfig::default());
        let config = ConsumerConfig {
            max_attempts: 3,
            ..fixture.consumer_config()
        };
        let consumed = fixture.consumer(Recorder::new(behaviour), config);
        fixture.enqueue_commit(OrderId::generate()).await;
        eventually("the message is settled", PATIENCE, || async {
            consumed.handled() + consumed.dead_lettered() == 1
        })
        .await;
        let outcome = (
            consumed.handled(),
            consumed.retried(),
            consumed.dead_lettered(),
        );
        assert_eq!(outcome, (handled, retried, dead_lettered), "{behaviour:?}");
        assert_eq!(
            fixture.handled_count().await,
            i64::try_from(handled).unwrap()
        );
        let letters = fixture.dead_letters("inventory-svc.CommitStock").await;
        let reasons: Vec<&str> = letters
            .iter()
            .map(|letter| letter.reason.as_str())
            .collect();
        match reason {
            Some(expected) => assert!(
                matches!(reasons[..], [reason] if reason.contains(expected)),
                "{reasons:?} lacks {expected:?}"
            ),
            None => assert!(reasons.is_empty(), "{reasons:?}"),
        }
    }
}

/// A message that fails inside a batch costs the batch nothing: the others are handled once,
/// the failing one alone is dead-lettered.
#[tokio::test]
async fn one_failing_message_does_not_fail_its_batch() {
    let fixture = Fixture::new().await;
    let doomed = OrderId::generate();
    let transaction = fixture.db.begin().await.unwrap();
    for index in 0..40 {
        let order_id = if index == 17 {
            doomed
        } else {
            OrderId::generate()
        };
        outbox::enqueue_message(&transaction, &CommitStock { order_id }, None)
            .await
            .unwrap();
    }
    transaction.commit().await.unwrap();
    // One lane and large batches, so that the failing message shares a transaction with others.
    let config = ConsumerConfig {
        lanes: 1,
        max_batch: 64,
        ..fixture.consumer_config()
    };
    let consumed = fixture.consumer(Recorder::new(Behaviour::RejectOrder(doomed)), config);
    fixture.publisher(PublisherConfig::default());
    eventually("every message is settled", PATIENCE, || async {
        consumed.handled() + consumed.dead_lettered() == 40
    })
    .await;
    assert_eq!(
        (
            consumed.handled(),
            consumed.dead_lettered(),
            consumed.duplicate()
        ),
        (39, 1, 0)
    );
    assert_eq!(fixture.handled_count().await, 39);
    let doomed_rows = fixture
        .count(&format!(
            "SELECT count(*) FROM handled WHERE order_id = '{}'",
            doomed.as_uuid()
        ))
        .await;
    assert_eq!(
        doomed_rows, 0,
        "nothing of the failing message was committed"
    );
}

/// A batch that repeats a message, or carries one handled in an earlier batch, handles each
/// message once: the inbox rows of a batch are written by one statement, and its repeats are
/// told apart from first sightings.
#[tokio::test]
async fn a_batch_handles_each_message_once_even_when_it_repeats() {
    let fixture = Fixture::new().await;
    let processor = TransactionalProcessor::new(
        fixture.db.clone(),
        Recorder::new(Behaviour::Succeed),
        OutboxSignal::new(),
    );
    let (seen, fresh) = (received(OrderId::generate()), received(OrderId::generate()));
    let first = processor
        .process(std::slice::from_ref(&seen))
        .await
        .unwrap();
    assert_eq!(first, vec![Verdict::Handled]);
    let batch = [fresh.clone(), seen.clone(), fresh.clone(), seen];
    let verdicts = processor.process(&batch).await.unwrap();
    assert_eq!(
        verdicts,
        vec![
            Verdict::Handled,
            Verdict::Duplicate,
            Verdict::Duplicate,
            Verdict::Duplicate
        ]
    );
    assert_eq!(fixture.handled_count().await, 2);
}

fn received(order_id: OrderId) -> Received<Envelope<AnyMessage>> {
    Received {
        queue: Arc::from("inventory-svc.CommitStock"),
        message: Envelope {
            message_id: MessageId::generate(),
            message_type: MessageType::CommitStock,
            correlation_id: order_id,
            causation_id: None,
            occurred_at: contracts::envelope::now(),
            schema_version: 1,
            payload: AnyMessage::CommitStock(CommitStock { order_id }),
        },
        redelivered: false,
        trace: None,
    }
}

/// The relay is woken by a batch that enqueued messages, and only by such a batch: a handler
/// that answers nothing (a duplicate, a step without effects) costs the relay no empty claim.
#[tokio::test]
async fn only_batches_that_enqueued_wake_the_relay() {
    struct Answering(bool);
    impl Handler<Envelope<AnyMessage>> for Answering {
        async fn handle(
            &self,
            transaction: &DatabaseTransaction,
            envelope: &Envelope<AnyMessage>,
        ) -> Result<(), HandlerError> {
            if self.0 {
                let order_id = envelope.correlation_id;
                outbox::enqueue_message(transaction, &CommitStock { order_id }, None).await?;
            }
            Ok(())
        }
    }
    let fixture = Fixture::new().await;
    for (answers, batch) in [(false, 1), (true, 1), (false, 3), (true, 3)] {
        let signal = OutboxSignal::new();
        let processor =
            TransactionalProcessor::new(fixture.db.clone(), Answering(answers), signal.clone());
        let items: Vec<Received<_>> = (0..batch).map(|_| received(OrderId::generate())).collect();
        let verdicts = processor.process(&items).await.unwrap();
        assert_eq!(verdicts, vec![Verdict::Handled; batch], "{answers} {batch}");
        assert_eq!(
            signal.woken().now_or_never().is_some(),
            answers,
            "answering {answers}, batch of {batch}"
        );
    }
}

/// 7. Messages of one order are published and handled in the order they were enqueued, across
/// batches and lanes.
#[tokio::test]
async fn per_order_order_is_preserved_across_batches() {
    let fixture = Fixture::new().await;
    let orders: Vec<OrderId> = (0..10).map(|_| OrderId::generate()).collect();
    let mut enqueued = Vec::new();
    for round in 0..20 {
        let transaction = fixture.db.begin().await.unwrap();
        for (index, &order_id) in orders.iter().enumerate() {
            // Interleave orders differently in each transaction.
            if (round + index) % 3 == 0 {
                continue;
            }
            let id = outbox::enqueue_message(&transaction, &CommitStock { order_id }, None)
                .await
                .unwrap();
            enqueued.push((order_id, id));
        }
        transaction.commit().await.unwrap();
    }
    fixture.consumer(
        Recorder::new(Behaviour::Succeed),
        ConsumerConfig {
            lanes: 4,
            max_batch: 7,
            ..fixture.consumer_config()
        },
    );
    fixture.publisher(PublisherConfig {
        batch_size: 16,
        ..PublisherConfig::default()
    });
    let total = i64::try_from(enqueued.len()).unwrap();
    eventually("everything is handled", PATIENCE, || async {
        fixture.handled_count().await == total
    })
    .await;
    for order_id in orders {
        let expected: Vec<uuid::Uuid> = enqueued
            .iter()
            .filter(|(order, _)| *order == order_id)
            .map(|(_, id)| id.as_uuid())
            .collect();
        let rows = fixture
            .db
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT message_id FROM handled WHERE order_id = $1 ORDER BY seq",
                [order_id.as_uuid().into()],
            ))
            .await
            .unwrap();
        let handled: Vec<uuid::Uuid> = rows
            .iter()
            .map(|row| row.try_get_by_index(0).unwrap())
            .collect();
        assert_eq!(handled, expected, "order {order_id}");
    }
    // Four lanes settle their batches out of delivery order, and acknowledgements cover
    // several deliveries at once: once the consumer has stopped, nothing it held comes back.
    fixture
        .stop_and_expect_nothing_unacknowledged(Service::Inventory)
        .await;
}

/// The deliveries of several queues share their channel's numbering but reach the runner
/// through one stream per queue, so a delivery may be read after a later one of another queue
/// was settled — a malformed one is settled the moment it is read. Each is still acknowledged
/// once, after it was handled: an acknowledgement that covered an unread delivery would name a
/// tag twice later, the broker would close the channel, and the redeliveries would show as
/// duplicates and second dead letters.
#[tokio::test]
async fn deliveries_of_several_queues_are_each_acknowledged_once_after_handling() {
    let fixture = Fixture::new().await;
    let (_admin, channel) = fixture.channel_as(Who::Admin).await;
    let (_producer, producer_channel) = fixture.channel_as(Who::User(Service::Order)).await;
    let producer = fixture.user(Who::User(Service::Order));
    // Each queue holds malformed messages first, then valid ones, before the consumer starts:
    // whichever queue the broker serves first, the other's malformed messages carry later
    // tags than its valid ones and are read (and settled) before them.
    let mut valid = 0;
    for message_type in ["CommitStock", "ReleaseStock"] {
        let queue = format!("inventory-svc.{message_type}");
        for _ in 0..3 {
            let properties = BasicProperties::default()
                .with_message_id(uuid::Uuid::now_v7().to_string().into())
                .with_type(message_type.into())
                .with_correlation_id(OrderId::generate().to_string().into());
            publish(&channel, "", &queue, properties, b"{not json").await;
        }
        for _ in 0..10 {
            let order = OrderId::generate().to_string();
            let properties = BasicProperties::default()
                .with_message_id(uuid::Uuid::now_v7().to_string().into())
                .with_type(message_type.into())
                .with_correlation_id(order.as_str().into())
                .with_user_id(producer.as_str().into());
            let body = format!(r#"{{"order_id":"{order}","reason":"a test"}}"#);
            publish(
                &producer_channel,
                contracts::EXCHANGE,
                message_type,
                properties,
                body.as_bytes(),
            )
            .await;
            valid += 1;
        }
    }
    let stats = fixture.consumer(Recorder::new(Behaviour::Succeed), fixture.consumer_config());
    eventually(
        "everything is handled or dead-lettered",
        PATIENCE,
        || async { stats.handled() == valid && stats.dead_lettered() == 6 },
    )
    .await;
    assert_eq!(stats.duplicate(), 0, "no delivery came twice");
    fixture
        .stop_and_expect_nothing_unacknowledged(Service::Inventory)
        .await;
    assert_eq!(stats.handled(), valid, "nothing was handled twice");
    assert_eq!(stats.dead_lettered(), 6, "nothing was dead-lettered twice");
}

/// Retention deletes processed outbox rows and inbox records past their age, and nothing else.
#[tokio::test]
async fn retention_deletes_only_old_processed_rows() {
    let fixture = Fixture::new().await;
    for _ in 0..5 {
        fixture.enqueue_commit(OrderId::generate()).await;
    }
    fixture
        .db
        .execute_unprepared(
            "UPDATE outbox_messages SET processed_at = now() - interval '8 days'
             WHERE id IN (SELECT id FROM outbox_messages ORDER BY seq LIMIT 3);
             INSERT INTO processed_messages (consumer, message_id, type, correlation_id, processed_at)
             SELECT 'q', gen_random_uuid(), 'CommitStock', gen_random_uuid(), now() - interval '8 days'
             FROM generate_series(1, 2500);
             INSERT INTO processed_messages (consumer, message_id, type, correlation_id)
             VALUES ('q', gen_random_uuid(), 'CommitStock', gen_random_uuid());",
        )
        .await
        .unwrap();
    let purged = outbox::purge(&fixture.db, &outbox::RetentionConfig::default())
        .await
        .unwrap();
    assert_eq!(
        purged,
        outbox::Purged {
            outbox: 3,
            inbox: 2_500
        }
    );
    assert_eq!(
        fixture.count("SELECT count(*) FROM outbox_messages").await,
        2,
        "unprocessed rows stay"
    );
    assert_eq!(
        fixture
            .count("SELECT count(*) FROM processed_messages")
            .await,
        1
    );
}

/// How many times `tables` were vacuumed and analysed, summed, as the statistics say now.
async fn maintenance_counts(db: &DatabaseConnection, tables: &[&str]) -> (i64, i64) {
    db.execute_unprepared("SELECT pg_stat_clear_snapshot()")
        .await
        .unwrap();
    let tables: Vec<String> = tables.iter().map(|table| table.to_string()).collect();
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT sum(vacuum_count)::bigint, sum(analyze_count)::bigint
             FROM pg_stat_user_tables WHERE relname = ANY($1)",
            [tables.into()],
        ))
        .await
        .unwrap()
        .unwrap();
    (
        row.try_get_by_index::<i64>(0).unwrap(),
        row.try_get_by_index::<i64>(1).unwrap(),
    )
}

/// A relay's connection plans its prepared claim once and reuses the plan. Planned while the
/// outbox was nearly empty and never re-planned (no statistics: autovacuum off or behind), the
/// claim keeps a plan that reads every row that ever went through the table. After
/// [`outbox::maintain`] the same prepared claim is an index scan of the unprocessed rows.
#[tokio::test]
async fn maintenance_replans_a_stale_claim_into_an_index_scan() {
    let fixture = Fixture::new().await;
    // One connection, like one of the relay's: each statement its own transaction, so that it
    // sees the invalidations other sessions send.
    let relay_session = sea_orm::Database::connect(
        sea_orm::ConnectOptions::new(fixture.database.url())
            .max_connections(1)
            .to_owned(),
    )
    .await
    .unwrap();
    relay_session
        .execute_unprepared(
            "SET plan_cache_mode = force_generic_plan;
             PREPARE claim (bigint) AS
                 SELECT * FROM outbox_messages
                 WHERE processed_at IS NULL AND (next_attempt_at IS NULL OR next_attempt_at <= now())
                 ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED;
             EXECUTE claim(256);",
        )
        .await
        .unwrap();
    // Traffic: 20,000 messages enqueued, then published and marked.
    fixture
        .db
        .execute_unprepared(
            "INSERT INTO outbox_messages (id, type, payload, correlation_id, occurred_at)
             SELECT gen_random_uuid(), 'CommitStock', '{}', gen_random_uuid(), now()
             FROM generate_series(1, 20000);
             UPDATE outbox_messages SET processed_at = now();
             INSERT INTO processed_messages (consumer, message_id, type, correlation_id)
             SELECT 'q', gen_random_uuid(), 'CommitStock', gen_random_uuid()
             FROM generate_series(1, 20000);",
        )
        .await
        .unwrap();
    let counts = || maintenance_counts(&fixture.db, &["outbox_messages", "processed_messages"]);
    let before = counts().await;
    // Due for analyse once the backend has reported its 40,000 changes (within a second or so).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        outbox::maintain(&fixture.db).await.unwrap();
        let after = counts().await;
        if after.1 - before.1 == 2 {
            assert!(after.0 - before.0 >= 2, "both tables vacuumed: {after:?}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "both tables never analysed: {before:?} -> {after:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let plan: Vec<String> = relay_session
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "EXPLAIN EXECUTE claim(256)",
        ))
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get_by_index(0).unwrap())
        .collect();
    let plan = plan.join("\n");
    assert!(
        plan.contains("Index Scan using outbox_messages_unprocessed")
            && !plan.contains("Seq Scan")
            && !plan.contains("Bitmap"),
        "{plan}"
    );
    relay_session.close().await.unwrap();
}

/// The queue tables are vacuumed every round but analysed only when they are due (an analyse
/// samples the JSON payloads and costs far more than the vacuum): a few new rows are not due,
/// a hundred in an empty outbox are.
#[tokio::test]
async fn maintenance_analyses_the_queue_tables_only_when_due() {
    let fixture = Fixture::new().await;
    let counts = || maintenance_counts(&fixture.db, &["outbox_messages"]);
    let enqueue = |rows: i32| {
        let db = fixture.db.clone();
        async move {
            db.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "INSERT INTO outbox_messages (id, type, payload, correlation_id, occurred_at)
                 SELECT gen_random_uuid(), 'CommitStock', '{}', gen_random_uuid(), now()
                 FROM generate_series(1, $1)",
                [rows.into()],
            ))
            .await
            .unwrap();
        }
    };
    enqueue(10).await;
    let before = counts().await;
    outbox::maintain(&fixture.db).await.unwrap();
    assert_eq!(
        counts().await,
        (before.0 + 1, before.1),
        "ten rows: vacuumed, not analysed"
    );

    enqueue(100).await;
    // A backend reports its table statistics within a second or so of its last transaction.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while counts().await.1 == before.1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a hundred new rows never analysed: {:?}",
            counts().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        outbox::maintain(&fixture.db).await.unwrap();
    }
    assert_eq!(counts().await.1, before.1 + 1, "analysed once");
}

/// Maintenance reaches the service's own tables too, as autovacuum would: a table whose rows
/// were all updated is vacuumed and analysed, a table with a few fresh rows is left alone.
#[tokio::test]
async fn maintenance_vacuums_the_service_tables_that_are_due() {
    let fixture = Fixture::new().await;
    fixture
        .db
        .execute_unprepared(
            "CREATE TABLE churned (id bigint PRIMARY KEY, counter bigint NOT NULL);
             CREATE TABLE quiet (id bigint PRIMARY KEY);
             INSERT INTO churned SELECT n, 0 FROM generate_series(1, 1000) n;
             UPDATE churned SET counter = counter + 1;
             UPDATE churned SET counter = counter + 1;
             INSERT INTO quiet SELECT n FROM generate_series(1, 10) n;",
        )
        .await
        .unwrap();
    let vacuums = |table: &'static str| {
        let db = fixture.db.clone();
        async move {
            db.execute_unprepared("SELECT pg_stat_clear_snapshot()")
                .await
                .unwrap();
            db.query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT vacuum_count + 0, n_dead_tup + 0 FROM pg_stat_user_tables WHERE relname = $1",
                [table.into()],
            ))
            .await
            .unwrap()
            .map(|row| {
                (
                    row.try_get_by_index::<i64>(0).unwrap(),
                    row.try_get_by_index::<i64>(1).unwrap(),
                )
            })
            .unwrap()
        }
    };
    // A backend reports its table statistics within a second or so of its last transaction.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while vacuums("churned").await.0 == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "churned never vacuumed: {:?}",
            vacuums("churned").await
        );
        outbox::maintain(&fixture.db).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        vacuums("churned").await,
        (1, 0),
        "vacuumed once, no dead rows left"
    );
    assert_eq!(vacuums("quiet").await.0, 0, "ten fresh rows are not due");
}

/// Replicas starting together apply the migrations once, without failing.
#[tokio::test]
async fn concurrent_migrations_apply_once() {
    let database = testkit::TestDatabase::create().await;
    let (first, second) = (database.connect().await, database.connect().await);
    let (a, b) = tokio::join!(
        outbox::migrate::<outbox::OutboxMigrator>(&first),
        outbox::migrate::<outbox::OutboxMigrator>(&second)
    );
    a.unwrap();
    b.unwrap();
    let applied = first
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT count(*) FROM seaql_migrations",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<i64>(0)
        .unwrap();
    assert_eq!(applied, 2);
}
