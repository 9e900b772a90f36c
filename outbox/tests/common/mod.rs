//! Fixtures shared by the outbox tests: a fresh database and vhost per test, a handler that
//! records what it handled in a table, and polling helpers.

#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use contracts::{AnyMessage, CommitStock, Envelope, MessageId, OrderId, Service};
use outbox::{
    Broker, ConsumerConfig, ConsumerRunner, ConsumerStats, Handler, HandlerError, OutboxPublisher,
    OutboxSignal, PublisherConfig, PublisherStats, Topology, TransactionalProcessor,
};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, Statement,
    TransactionTrait,
};
use testkit::{TestDatabase, TestVhost};
use tokio_util::sync::CancellationToken;

/// Retry delays short enough for tests.
pub fn fast_topology() -> Topology {
    Topology {
        retry_delays: vec![Duration::from_millis(50), Duration::from_millis(100)],
        delivery_limit: 20,
    }
}

pub struct Fixture {
    pub database: TestDatabase,
    pub vhost: TestVhost,
    pub db: DatabaseConnection,
    pub broker: Broker,
    pub signal: OutboxSignal,
    pub shutdown: CancellationToken,
}

impl Fixture {
    pub async fn new() -> Fixture {
        let database = TestDatabase::create().await;
        let vhost = TestVhost::create();
        let db = database.connect().await;
        outbox::migrate::<outbox::OutboxMigrator>(&db)
            .await
            .unwrap();
        db.execute_unprepared(
            "CREATE TABLE handled (
                seq bigint GENERATED ALWAYS AS IDENTITY,
                queue text NOT NULL,
                message_id uuid NOT NULL,
                order_id uuid NOT NULL,
                attempt_note text
            )",
        )
        .await
        .unwrap();
        let broker = Broker::new(vhost.url(), fast_topology());
        Fixture {
            database,
            vhost,
            db,
            broker,
            signal: OutboxSignal::new(),
            shutdown: CancellationToken::new(),
        }
    }

    pub fn publisher(&self, config: PublisherConfig) -> Arc<PublisherStats> {
        let publisher = OutboxPublisher::new(
            self.db.clone(),
            self.broker.clone(),
            self.signal.clone(),
            config,
        );
        let stats = publisher.stats();
        tokio::spawn(publisher.run(self.shutdown.clone()));
        stats
    }

    /// Starts inventory-svc's consumer (it subscribes to CommitStock, which the tests publish).
    pub fn consumer(&self, handler: Recorder, config: ConsumerConfig) -> Arc<ConsumerStats> {
        let processor = TransactionalProcessor::new(self.db.clone(), handler, self.signal.clone());
        let runner =
            ConsumerRunner::new(self.broker.clone(), Service::Inventory, processor, config);
        let stats = runner.stats();
        tokio::spawn(runner.run(self.shutdown.clone()));
        stats
    }

    /// Enqueues one `CommitStock` for `order_id` in its own transaction and wakes the relay.
    pub async fn enqueue_commit(&self, order_id: OrderId) -> MessageId {
        let transaction = self.db.begin().await.unwrap();
        let id = outbox::enqueue_message(&transaction, &CommitStock { order_id }, None)
            .await
            .unwrap();
        transaction.commit().await.unwrap();
        self.signal.wake();
        id
    }

    pub async fn count(&self, sql: &str) -> i64 {
        let row = self
            .db
            .query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
            .await
            .unwrap()
            .unwrap();
        row.try_get_by_index::<i64>(0).unwrap()
    }

    pub async fn handled_count(&self) -> i64 {
        self.count("SELECT count(*) FROM handled").await
    }

    pub async fn unprocessed_count(&self) -> i64 {
        self.count("SELECT count(*) FROM outbox_messages WHERE processed_at IS NULL")
            .await
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// How the recording handler behaves for a message.
#[derive(Clone, Copy, Debug)]
pub enum Behaviour {
    Succeed,
    /// Fails transiently this many times per message, then succeeds.
    FailTimes(u32),
    /// Always fails transiently.
    AlwaysFail,
    /// Rejects as unhandleable.
    Reject,
    /// Rejects the messages of this order, handles the others.
    RejectOrder(OrderId),
}

/// Records each handled message as a row of `handled`, in the handler's transaction.
#[derive(Clone)]
pub struct Recorder {
    behaviour: Behaviour,
    failures: Arc<Mutex<HashMap<MessageId, u32>>>,
}

impl Recorder {
    pub fn new(behaviour: Behaviour) -> Recorder {
        Recorder {
            behaviour,
            failures: Arc::default(),
        }
    }
}

impl Handler for Recorder {
    async fn handle(
        &self,
        transaction: &DatabaseTransaction,
        envelope: &Envelope<AnyMessage>,
    ) -> Result<(), HandlerError> {
        match self.behaviour {
            Behaviour::Succeed => {}
            Behaviour::FailTimes(times) => {
                let mut failures = self.failures.lock().unwrap();
                let failed = failures.entry(envelope.message_id).or_insert(0);
                if *failed < times {
                    *failed += 1;
                    return Err(HandlerError::Transient(format!(
                        "planned failure #{failed}"
                    )));
                }
            }
            Behaviour::AlwaysFail => return Err(HandlerError::Transient("planned failure".into())),
            Behaviour::Reject => return Err(HandlerError::Rejected("planned rejection".into())),
            Behaviour::RejectOrder(order_id) if envelope.correlation_id == order_id => {
                return Err(HandlerError::Rejected(
                    "planned rejection of one order".into(),
                ));
            }
            Behaviour::RejectOrder(_) => {}
        }
        transaction
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "INSERT INTO handled (queue, message_id, order_id) VALUES ('inventory-svc.CommitStock', $1, $2)",
                [envelope.message_id.as_uuid().into(), envelope.correlation_id.as_uuid().into()],
            ))
            .await?;
        Ok(())
    }
}

/// Polls `condition` every 25 ms until it holds; panics with `what` after `timeout`.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if condition().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
