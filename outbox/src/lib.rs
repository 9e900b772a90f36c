//! Reliable messaging over PostgreSQL and RabbitMQ, for any message type: every service
//! publishes and consumes through this crate, so it carries the system's delivery guarantees.
//!
//! - **Messages** ([`Inbound`], [`Outbound`], [`Publish`], [`NewMessage`]): a message crate
//!   says how its types are read off a delivery and written into the outbox; the outbox owns
//!   the transport's metadata and headers ([`headers`]).
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
//! - **Topology** ([`Topology`]): the whole broker layout from one exchange and a list of
//!   [`Route`]s (a quorum queue per subscriber and type, its `.dlq`, the retry delay queues),
//!   declared idempotently by every process whose user may, checked passively by the others.
//! - **Who sent it** ([`sender`], [`provision`]): every publish carries the connection's user as
//!   AMQP `user_id`; consumers accept a type only from its producer's user ([`Producers`]); the
//!   generated definitions give each service's user least privilege on the broker.
//! - **Retention** ([`retention`]) and **metrics** ([`stats`]).
//!
//! # Wiring a service
//!
//! A complete round trip of a message type of its own against the real PostgreSQL and
//! RabbitMQ (this example runs in the tests, in a database and vhost of its own):
//!
//! ```
//! use outbox::{
//!     Broker, ConsumerConfig, ConsumerRunner, Handler, HandlerError, Inbound, Incoming,
//!     NewMessage, Outbound, OutboxPublisher, OutboxSignal, Producers, PublisherConfig, Route,
//!     Topology, TransactionalProcessor,
//! };
//! use sea_orm::{DatabaseTransaction, TransactionSession, TransactionTrait};
//! use tokio_util::sync::CancellationToken;
//! use uuid::Uuid;
//!
//! /// The message: a greeting for a visitor (whose id correlates the visitor's messages).
//! #[derive(Clone, Debug, PartialEq)]
//! struct Greeting { id: Uuid, visitor: Uuid, text: String }
//!
//! impl Outbound for Greeting {
//!     fn to_new_message(&self) -> Result<NewMessage, serde_json::Error> {
//!         Ok(NewMessage {
//!             id: self.id,
//!             message_type: "Greeting".into(),
//!             correlation_id: self.visitor,
//!             causation_id: None,
//!             occurred_at: chrono::Utc::now(),
//!             headers: serde_json::Map::new(),
//!             payload: serde_json::json!({ "text": self.text }),
//!         })
//!     }
//! }
//!
//! impl Inbound for Greeting {
//!     fn decode(delivery: &Incoming<'_>) -> Result<Self, String> {
//!         let uuid = |text: Option<&str>, name: &str| {
//!             text.and_then(|text| text.parse().ok()).ok_or(format!("no {name}"))
//!         };
//!         let body: serde_json::Value =
//!             serde_json::from_slice(delivery.body()).map_err(|error| error.to_string())?;
//!         Ok(Greeting {
//!             id: uuid(delivery.message_id(), "message_id")?,
//!             visitor: uuid(delivery.correlation_id(), "correlation_id")?,
//!             text: body["text"].as_str().ok_or("no text")?.to_owned(),
//!         })
//!     }
//!     fn message_id(&self) -> Uuid { self.id }
//!     fn message_type(&self) -> &str { "Greeting" }
//!     fn correlation_id(&self) -> Uuid { self.visitor }
//! }
//!
//! /// The consumer's handler (here it only passes the greeting on).
//! struct Doorman(tokio::sync::mpsc::UnboundedSender<Greeting>);
//!
//! impl Handler<Greeting> for Doorman {
//!     async fn handle(&self, _txn: &DatabaseTransaction, greeting: &Greeting)
//!         -> Result<(), HandlerError>
//!     {
//!         // Real handlers change business tables through `_txn` and enqueue their own messages.
//!         let _ = self.0.send(greeting.clone());
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let database = testkit::TestDatabase::create().await;
//! # let vhost = testkit::TestVhost::create();
//! # let database_url = database.url();
//! # let amqp_url = vhost.url();
//! let db = sea_orm::Database::connect(database_url).await?;
//! outbox::migrate::<outbox::OutboxMigrator>(&db).await?;   // a service lists the migrations in its own migrator
//! // The system's layout: one exchange, one queue per subscriber and type.
//! let queue = "doorman.Greeting".to_owned();
//! let topology = Topology::new("example.events", vec![Route::new(&queue, "Greeting")]);
//! let broker = Broker::new(amqp_url, topology);
//! let signal = OutboxSignal::new();
//! let shutdown = CancellationToken::new();
//!
//! let publisher = OutboxPublisher::new(db.clone(), broker.clone(), signal.clone(), PublisherConfig::default());
//! tokio::spawn(publisher.run(shutdown.clone()));
//! let (handled, mut greetings) = tokio::sync::mpsc::unbounded_channel();
//! let processor = TransactionalProcessor::new(db.clone(), Doorman(handled), signal.clone());
//! // Consumers accept a type only from the broker user of its one producer.
//! let producers = Producers::new().with("Greeting", broker.user());
//! let config = ConsumerConfig { producers, ..ConsumerConfig::default() };
//! let consumer = ConsumerRunner::new(broker.clone(), vec![queue], processor, config);
//! tokio::spawn(consumer.run(shutdown.clone()));
//!
//! // A business transaction publishes by enqueueing, then wakes the relay after commit.
//! let greeting = Greeting { id: Uuid::now_v7(), visitor: Uuid::now_v7(), text: "hello".into() };
//! let transaction = db.begin().await?;
//! outbox::enqueue(&transaction, &greeting).await?;
//! transaction.commit().await?;
//! signal.wake();
//!
//! assert_eq!(greetings.recv().await, Some(greeting));
//! shutdown.cancel();
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

pub mod broker;
pub mod consumer;
pub mod dead_letters;
pub mod enqueue;
pub mod entity;
pub mod failure;
pub mod headers;
pub mod health;
pub mod message;
pub mod migration;
pub mod provision;
pub mod publisher;
pub mod retention;
pub mod runtime;
pub mod sender;
pub mod stats;
pub mod topology;
pub mod trace;
pub mod wire;

pub use broker::{Backoff, Broker};
pub use consumer::{
    ConsumerConfig, ConsumerRunner, Handler, HandlerError, InMemoryProcessor, ProcessError,
    Processor, Received, StatelessHandler, TransactionalProcessor, Verdict,
};
pub use dead_letters::{DeadLetter, DeadLetterQueues};
pub use enqueue::{EnqueueError, OutboxSignal, enqueue, enqueue_all, enqueue_message};
pub use message::{Inbound, Incoming, NewMessage, Outbound, Publish};
pub use migration::{OutboxMigrator, PoolOptions, connect, migrate};
pub use publisher::{OutboxPublisher, PublisherConfig};
pub use retention::{Purged, RetentionConfig, maintain, purge, run_retention};
pub use sender::{Producers, authenticate_sender};
pub use stats::{ConsumerStats, PublisherStats};
pub use topology::{Route, Topology, dead_letter_queue};
