//! Reliable messaging for the order system: every service publishes and consumes through this
//! crate, so it carries the system's delivery guarantees.
//!
//! - **Outbox** ([`enqueue()`], [`entity::outbox_message`], [`migration`]): a service writes
//!   the messages it publishes into `outbox_messages` inside its own business transaction —
//!   published if and only if the transaction commits.
//! - **Relay** ([`OutboxPublisher`]): claims committed rows with `FOR UPDATE SKIP LOCKED`,
//!   publishes them in order as persistent, mandatory messages with publisher confirms, and marks
//!   them processed only after the broker confirmed them. Wakes at once on an [`OutboxSignal`]
//!   given after commit; polls slowly as a safety net. At least once, never lost.
//! - **Inbox and consumers** ([`ConsumerRunner`], [`TransactionalProcessor`]): manual acks after
//!   commit, bounded prefetch, an inbox row per handled message in the handler's transaction
//!   (duplicates are skipped), retries through delay queues, dead letters with a reason.
//! - **Topology** ([`Topology`]): the whole broker layout from `contracts::SUBSCRIPTIONS`
//!   (quorum queues `<service>.<Type>`, their `.dlq`s, the retry delay queues), declared
//!   idempotently by every process whose user may, checked passively by the others.
//! - **Who sent it** ([`sender`], [`provision`]): every publish carries the connection's user as
//!   AMQP `user_id`; consumers accept a type only from its producer's user; the generated
//!   definitions give each service's user least privilege on the broker.
//! - **Retention** ([`retention`]) and **metrics** ([`stats`]).
//!
//! # Wiring a service
//!
//! A complete round trip against the real PostgreSQL and RabbitMQ (this example runs in the
//! tests, in a database and vhost of its own):
//!
//! ```
//! use contracts::{AnyMessage, CommitStock, Envelope, OrderId, Service};
//! use outbox::{
//!     Broker, ConsumerConfig, ConsumerRunner, Handler, HandlerError, OutboxPublisher, OutboxSignal,
//!     PublisherConfig, Topology, TransactionalProcessor,
//! };
//! use sea_orm::{DatabaseTransaction, TransactionSession, TransactionTrait};
//! use tokio_util::sync::CancellationToken;
//!
//! /// Inventory's handler for `CommitStock` (here it only counts).
//! struct Inventory(tokio::sync::mpsc::UnboundedSender<OrderId>);
//!
//! impl Handler for Inventory {
//!     async fn handle(&self, _txn: &DatabaseTransaction, envelope: &Envelope<AnyMessage>)
//!         -> Result<(), HandlerError>
//!     {
//!         // Real handlers change business tables through `_txn` and enqueue their own events.
//!         let _ = self.0.send(envelope.correlation_id);
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let database = testkit::TestDatabase::create().await;
//! # let vhost = testkit::TestVhost::create();
//! # let database_url = database.url();
//! # let order_svc_url = vhost.service_url(Service::Order);
//! # let inventory_svc_url = vhost.service_url(Service::Inventory);
//! // Each service connects as its own broker user; consumers accept a message type only from
//! // the user of the service that produces it (`AMQP_PRODUCER_USERS` renames the users).
//! # let producers = vhost.producer_users();
//! let db = sea_orm::Database::connect(database_url).await?;
//! outbox::migrate::<outbox::OutboxMigrator>(&db).await?;   // a service lists the migrations in its own migrator
//! let broker = Broker::new(order_svc_url, Topology::default());
//! let signal = OutboxSignal::new();
//! let shutdown = CancellationToken::new();
//!
//! let publisher = OutboxPublisher::new(db.clone(), broker.clone(), signal.clone(), PublisherConfig::default());
//! tokio::spawn(publisher.run(shutdown.clone()));
//! let (handled, mut handled_orders) = tokio::sync::mpsc::unbounded_channel();
//! let processor = TransactionalProcessor::new(db.clone(), Inventory(handled), signal.clone());
//! let consumer_broker = Broker::new(inventory_svc_url, Topology::default());
//! let config = ConsumerConfig { producers, ..ConsumerConfig::default() };
//! let consumer = ConsumerRunner::new(consumer_broker, Service::Inventory, processor, config);
//! tokio::spawn(consumer.run(shutdown.clone()));
//!
//! // A business transaction publishes by enqueueing, then wakes the relay after commit.
//! let order_id = OrderId::generate();
//! let transaction = db.begin().await?;
//! outbox::enqueue_message(&transaction, &CommitStock { order_id }, None).await?;
//! transaction.commit().await?;
//! signal.wake();
//!
//! assert_eq!(handled_orders.recv().await, Some(order_id));
//! shutdown.cancel();
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

pub mod broker;
pub mod consumer;
pub mod enqueue;
pub mod entity;
pub mod migration;
pub mod provision;
pub mod publisher;
pub mod retention;
pub mod runtime;
pub mod sender;
pub mod stats;
pub mod topology;
pub mod wire;

pub use broker::{Backoff, Broker};
pub use consumer::{
    ConsumerConfig, ConsumerRunner, Handler, HandlerError, InMemoryProcessor, ProcessError,
    Processor, Received, StatelessHandler, TransactionalProcessor, Verdict,
};
pub use enqueue::{EnqueueError, OutboxSignal, enqueue, enqueue_all, enqueue_message};
pub use migration::{OutboxMigrator, PoolOptions, connect, migrate};
pub use publisher::{OutboxPublisher, PublisherConfig};
pub use retention::{Purged, RetentionConfig, maintain, purge, run_retention};
pub use stats::{ConsumerStats, PublisherStats};
pub use topology::{Topology, dead_letter_queue};
