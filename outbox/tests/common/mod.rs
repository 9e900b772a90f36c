//! Fixtures shared by the outbox tests: a fresh database and vhost per test (provisioned like
//! production: a least-privilege broker user per service), a handler that records what it
//! handled in a table, publishing as any broker user, and polling helpers.
//!
//! The relay runs as order-svc's user (the producer of `CommitStock`, which the tests publish)
//! and the consumer as inventory-svc's (its subscriber), each expecting the vhost's producer
//! users; the administrator only declares the tests' short retry delays and reads dead letters.

#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use contracts::envelope::HEADER_DEAD_LETTER_REASON;
use contracts::{AnyMessage, CommitStock, Envelope, MessageId, OrderId, Service};
use lapin::options::{BasicGetOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
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
        ..contracts::topology()
    }
}

pub struct Fixture {
    pub database: TestDatabase,
    pub vhost: TestVhost,
    pub db: DatabaseConnection,
    /// The relay's broker: order-svc's user.
    pub broker: Broker,
    /// The administrator's broker (every right on the vhost).
    pub admin: Broker,
    pub signal: OutboxSignal,
    pub shutdown: CancellationToken,
    /// The topology every broker of the fixture uses ([`fast_topology`] unless told otherwise).
    pub topology: Topology,
}

/// Who talks to the broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Who {
    /// The administrator of `TestVhost::url` (guest).
    Admin,
    /// A service's own least-privilege user.
    User(Service),
}

impl Fixture {
    /// A fresh database and a fresh vhost on the machine's shared broker.
    pub async fn new() -> Fixture {
        Fixture::on(TestVhost::create(), fast_topology()).await
    }

    /// A fresh database and `vhost` (on a node of the test's own, say), used with `topology`.
    pub async fn on(vhost: TestVhost, topology: Topology) -> Fixture {
        let database = TestDatabase::create().await;
        let db = database.connect().await;
        outbox::migrate::<outbox::OutboxMigrator>(&db)
            .await
            .unwrap();
        db.execute_unprepared(
            "CREATE TABLE handled (
                seq bigint GENERATED ALWAYS AS IDENTITY,
                message_type text NOT NULL,
                message_id uuid NOT NULL,
                order_id uuid NOT NULL
            )",
        )
        .await
        .unwrap();
        // The provisioning declared the production retry delays; the tests' shorter ones are
        // declared here, by the administrator, since service users may configure nothing.
        let admin = Broker::new(vhost.url(), topology.clone());
        let declared = admin.connect("test topology").await.unwrap();
        declared.close(200, "declared".into()).await.unwrap();
        let broker = fixture_broker(&vhost, Who::User(Service::Order), &topology);
        Fixture {
            database,
            vhost,
            db,
            broker,
            admin,
            signal: OutboxSignal::new(),
            shutdown: CancellationToken::new(),
            topology,
        }
    }

    /// A broker for `who` on this vhost, with the tests' topology.
    pub fn broker_as(&self, who: Who) -> Broker {
        fixture_broker(&self.vhost, who, &self.topology)
    }

    /// The broker user of `who`.
    pub fn user(&self, who: Who) -> String {
        self.broker_as(who).user().to_owned()
    }

    /// How the tests consume: the default configuration, expecting this vhost's service users
    /// as the producers.
    pub fn consumer_config(&self) -> ConsumerConfig {
        ConsumerConfig {
            producers: self.vhost.producer_users().producers(),
            ..ConsumerConfig::default()
        }
    }

    /// Starts a relay as order-svc's user.
    pub fn publisher(&self, config: PublisherConfig) -> Arc<PublisherStats> {
        self.publisher_as(Service::Order, config)
    }

    /// Starts a relay as `service`'s user.
    pub fn publisher_as(&self, service: Service, config: PublisherConfig) -> Arc<PublisherStats> {
        let publisher = OutboxPublisher::new(
            self.db.clone(),
            self.broker_as(Who::User(service)),
            self.signal.clone(),
            config,
        );
        let stats = publisher.stats();
        tokio::spawn(publisher.run(self.shutdown.clone()));
        stats
    }

    /// Starts inventory-svc's consumer as its own user (it subscribes to CommitStock, which the
    /// tests publish).
    pub fn consumer(&self, handler: Recorder, config: ConsumerConfig) -> Arc<ConsumerStats> {
        self.consumer_of(Service::Inventory, handler, config)
    }

    /// Starts the consumer of every queue of `service`, as `service`'s own user.
    pub fn consumer_of(
        &self,
        service: Service,
        handler: Recorder,
        config: ConsumerConfig,
    ) -> Arc<ConsumerStats> {
        let processor = TransactionalProcessor::new(self.db.clone(), handler, self.signal.clone());
        let broker = self.broker_as(Who::User(service));
        let runner = ConsumerRunner::new(broker, service.queues(), processor, config);
        let stats = runner.stats();
        tokio::spawn(runner.run(self.shutdown.clone()));
        stats
    }

    /// A connection and a confirm channel on the vhost as `who` (no topology check).
    pub async fn channel_as(&self, who: Who) -> (Connection, Channel) {
        let url = match who {
            Who::Admin => self.vhost.url().to_owned(),
            Who::User(service) => self.vhost.service_url(service),
        };
        let connection = Connection::connect(&url, ConnectionProperties::default())
            .await
            .unwrap();
        let channel = Broker::confirm_channel(&connection).await.unwrap();
        (connection, channel)
    }

    /// Every dead letter of `queue` (read as the administrator: service users may not).
    pub async fn dead_letters(&self, queue: &str) -> Vec<DeadLetter> {
        let (connection, channel) = self.channel_as(Who::Admin).await;
        let mut letters = Vec::new();
        while let Some(message) = channel
            .basic_get(
                outbox::dead_letter_queue(queue).as_str().into(),
                BasicGetOptions { no_ack: true },
            )
            .await
            .unwrap()
        {
            letters.push(DeadLetter::of(&message.delivery.properties));
        }
        connection.close(200, "read".into()).await.unwrap();
        letters
    }

    /// The ids of the messages the handler handled (committed), in the order it did.
    pub async fn handled_ids(&self) -> Vec<MessageId> {
        let rows = self
            .db
            .query_all_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT message_id FROM handled ORDER BY seq",
            ))
            .await
            .unwrap();
        rows.iter()
            .map(|row| MessageId::from(row.try_get_by_index::<uuid::Uuid>(0).unwrap()))
            .collect()
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

    /// Like [`Fixture::enqueue_commit`], but a database failure (a cut, say) is reported as
    /// `false` instead of failing the test: nothing was committed then.
    pub async fn try_enqueue_commit(&self, order_id: OrderId) -> bool {
        let Ok(transaction) = self.db.begin().await else {
            return false;
        };
        if outbox::enqueue_message(&transaction, &CommitStock { order_id }, None)
            .await
            .is_err()
        {
            return false;
        }
        let committed = transaction.commit().await.is_ok();
        self.signal.wake();
        committed
    }

    /// Stops the fixture's relays and consumers and checks that `service`'s queues are left
    /// empty: a delivery a consumer held without acknowledging would come back to its queue.
    pub async fn stop_and_expect_nothing_unacknowledged(&self, service: Service) {
        self.shutdown.cancel();
        let (connection, channel) = self.channel_as(Who::Admin).await;
        eventually(
            "the consumer is gone and left nothing behind",
            Duration::from_secs(30),
            || async {
                let (mut consumers, mut messages) = (0, 0);
                for queue in service.queues() {
                    let state = channel
                        .queue_declare(
                            queue.as_str().into(),
                            QueueDeclareOptions {
                                passive: true,
                                ..QueueDeclareOptions::default()
                            },
                            FieldTable::default(),
                        )
                        .await
                        .unwrap();
                    consumers += state.consumer_count();
                    messages += state.message_count();
                }
                assert_eq!(messages, 0, "deliveries came back unacknowledged");
                consumers == 0
            },
        )
        .await;
        connection.close(200, "checked".into()).await.unwrap();
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

fn fixture_broker(vhost: &TestVhost, who: Who, topology: &Topology) -> Broker {
    let url = match who {
        Who::Admin => vhost.url().to_owned(),
        Who::User(service) => vhost.service_url(service),
    };
    Broker::new(url, topology.clone())
}

/// What a dead letter says about itself.
#[derive(Clone, Debug)]
pub struct DeadLetter {
    pub message_id: Option<String>,
    /// Who republished it into the `.dlq` (the consumer's user).
    pub user_id: Option<String>,
    pub reason: String,
    pub original_user_id: Option<String>,
}

impl DeadLetter {
    fn of(properties: &BasicProperties) -> DeadLetter {
        let header = |name: &str| outbox::wire::header_text(properties, name);
        DeadLetter {
            message_id: properties.message_id().as_ref().map(|id| id.to_string()),
            user_id: properties.user_id().as_ref().map(|user| user.to_string()),
            reason: header(HEADER_DEAD_LETTER_REASON).expect("a dead letter has a reason"),
            original_user_id: header(contracts::envelope::HEADER_ORIGINAL_USER_ID),
        }
    }
}

/// Publishes with publisher confirms and asserts the broker accepted (and routed) the message.
pub async fn publish(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    properties: BasicProperties,
    body: &[u8],
) {
    let confirmation = channel
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            body,
            properties,
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(
        matches!(confirmation, lapin::Confirmation::Ack(None)),
        "{exchange}/{routing_key}: {confirmation:?}"
    );
}

/// A header value holding text.
pub fn text(value: &str) -> AMQPValue {
    outbox::wire::long_string(value)
}

/// `properties` with the given headers added.
pub fn with_headers(properties: BasicProperties, headers: &[(&str, &str)]) -> BasicProperties {
    let mut table = properties.headers().clone().unwrap_or_default();
    for (name, value) in headers {
        table.insert((*name).into(), text(value));
    }
    properties.with_headers(table)
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
    /// Panics on the messages of this order, handles the others.
    PanicOrder(OrderId),
    /// The database fails this many times per message (as a pool that cannot hand out a
    /// connection does), then it succeeds.
    DatabaseUnavailableTimes(u32),
    /// Handles every message, holding its transaction open this long first (so that faults
    /// land mid-transaction).
    Slow(Duration),
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

impl Handler<Envelope<AnyMessage>> for Recorder {
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
            Behaviour::PanicOrder(order_id) if envelope.correlation_id == order_id => {
                panic!("planned panic for order {order_id}");
            }
            Behaviour::PanicOrder(_) => {}
            Behaviour::DatabaseUnavailableTimes(times) => {
                let mut failures = self.failures.lock().unwrap();
                let failed = failures.entry(envelope.message_id).or_insert(0);
                if *failed < times {
                    *failed += 1;
                    return Err(HandlerError::Database(sea_orm::DbErr::ConnectionAcquire(
                        sea_orm::ConnAcquireErr::Timeout,
                    )));
                }
            }
            Behaviour::Slow(pause) => {
                transaction
                    .execute_raw(Statement::from_sql_and_values(
                        DbBackend::Postgres,
                        "SELECT pg_sleep($1)",
                        [pause.as_secs_f64().into()],
                    ))
                    .await?;
            }
        }
        transaction
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "INSERT INTO handled (message_type, message_id, order_id) VALUES ($1, $2, $3)",
                [
                    envelope.message_type.name().into(),
                    envelope.message_id.as_uuid().into(),
                    envelope.correlation_id.as_uuid().into(),
                ],
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
