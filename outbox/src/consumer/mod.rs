//! The consumer runner (the seed's background consumer classes) and the processors that give it
//! idempotency, for any message type that implements [`Inbound`].
//!
//! [`ConsumerRunner`] (`runner.rs`) owns the transport: it consumes named queues on one channel
//! with bounded prefetch, decodes each delivery (undecodable ones go straight to the `.dlq` with
//! the reason), and dispatches them to *lanes* by correlation id, so one correlation's messages
//! are handled in order and never race each other inside one process. A lane takes whatever has
//! arrived (up to a batch), hands it to a [`Processor`], then settles each delivery by its
//! [`Verdict`] (`settle.rs`): ack, retry later through the delay queues, or dead-letter. Nothing is
//! acknowledged before it was handled (committed) or dead-lettered (confirmed by the broker), and
//! a batch is acknowledged with one frame where delivery order allows (`acknowledge.rs`).
//!
//! [`TransactionalProcessor`] (`transactional.rs`) handles a batch in one database transaction,
//! each message with its inbox row (`processed_messages`), so a duplicate is skipped; if any
//! message fails, the batch is rolled back and its messages are handled one transaction each, so
//! that only the failing one is retried or dead-lettered. [`InMemoryProcessor`] (`in_memory.rs`)
//! is for services without a database: it remembers recent message ids in memory only.

mod acknowledge;
mod in_memory;
mod runner;
mod settle;
mod transactional;

use std::future::Future;
use std::sync::Arc;

use sea_orm::{DatabaseTransaction, DbErr};
use tracing::info_span;

pub use in_memory::InMemoryProcessor;
pub use runner::ConsumerRunner;
pub use transactional::TransactionalProcessor;

use crate::enqueue::EnqueueError;
use crate::message::Inbound;
use crate::sender::Producers;

/// Why a handler could not handle a message.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Lost an optimistic-concurrency race: the message is handled again at once, on fresh state.
    #[error("optimistic concurrency conflict")]
    Conflict,
    /// The message failed but might succeed later: retried with backoff, spending one of its
    /// attempts each time, then dead-lettered.
    #[error("{0}")]
    Transient(String),
    /// Can never succeed: dead-lettered at once with this reason.
    #[error("{0}")]
    Rejected(String),
    /// Something the handler depends on is unavailable (not the message's fault): the consumer
    /// pauses and handles the message again, without spending its attempts.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The database failed. Handled again at once a few times (deadlocks and races with a
    /// concurrent copy resolve), then blamed by [`crate::failure::blame_database`]: an
    /// infrastructure failure (connection, pool, timeout, contention) pauses the consumer
    /// without spending the message's attempts; any other database error is the message's own
    /// and is retried toward the dead-letter queue.
    #[error("database: {0}")]
    Database(#[from] DbErr),
}

impl From<EnqueueError> for HandlerError {
    fn from(error: EnqueueError) -> Self {
        match error {
            EnqueueError::Database(cause) => HandlerError::Database(cause),
            EnqueueError::Encode(cause) => {
                HandlerError::Rejected(format!("cannot encode an effect: {cause}"))
            }
        }
    }
}

/// A service's business logic for one message of type `M`, run inside the transaction that
/// also records the message in the inbox. Effects go to the outbox through the same
/// transaction ([`enqueue`](crate::enqueue())).
pub trait Handler<M: Inbound>: Send + Sync + 'static {
    /// Handles one message. Returning `Err` rolls back everything the handler wrote.
    fn handle(
        &self,
        transaction: &DatabaseTransaction,
        message: &M,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// Takes, before the messages of a batch are handled in one transaction, every row lock
    /// their handlers will take that another batch may want too, in one global order (by key).
    ///
    /// Each handler locks its own rows in order, but a batch holds the locks of its first
    /// messages while its later ones take theirs: two batches handled at once would deadlock
    /// where their rows cross. Locking them all up front, sorted, makes batches queue instead.
    /// The default locks nothing, which is right for a handler whose messages never contend
    /// for a row with another correlation's (messages of one correlation share a lane).
    fn lock_batch(
        &self,
        transaction: &DatabaseTransaction,
        messages: &[&M],
    ) -> impl Future<Output = Result<(), HandlerError>> + Send {
        let _ = (transaction, messages);
        std::future::ready(Ok(()))
    }
}

/// Business logic for services without a database.
pub trait StatelessHandler<M: Inbound>: Send + Sync + 'static {
    /// Handles one message.
    fn handle(&self, message: &M) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// A decoded delivery, as processors see it.
#[derive(Clone, Debug)]
pub struct Received<M> {
    /// The queue it came from; also the consumer's identity in the inbox.
    pub queue: Arc<str>,
    /// The message.
    pub message: M,
    /// Whether the broker handed it out before, to a consumer that did not settle it (such a
    /// delivery is processed in a batch of its own).
    pub redelivered: bool,
    /// The trace the message belongs to (its `traceparent` header), continued by the spans
    /// its handling runs in.
    pub trace: Option<crate::trace::TraceContext>,
}

/// What to do with one delivery after processing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Handled and committed: acknowledge.
    Handled,
    /// Seen before: acknowledge without effect.
    Duplicate,
    /// Failed, might succeed later: schedule another attempt (or dead-letter when out of them).
    Retry(String),
    /// Can never succeed: dead-letter with this reason.
    DeadLetter(String),
}

/// The infrastructure failed (the database, the broker, something a handler depends on): the
/// batch is handled again after a pause, without spending any message's attempts. Messages of
/// the batch that were committed before the failure are recognised as duplicates then.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ProcessError(String);

impl ProcessError {
    /// An infrastructure failure described by `reason`.
    pub fn new(reason: impl Into<String>) -> Self {
        ProcessError(reason.into())
    }
}

impl From<DbErr> for ProcessError {
    fn from(error: DbErr) -> Self {
        ProcessError(format!("database: {error}"))
    }
}

/// Turns a batch of decoded deliveries into verdicts, one per delivery, in order.
pub trait Processor<M: Inbound>: Send + Sync + 'static {
    /// Processes `batch`. `Err` means nothing was handled; the runner retries the batch.
    fn process(
        &self,
        batch: &[Received<M>],
    ) -> impl Future<Output = Result<Vec<Verdict>, ProcessError>> + Send;
}

/// How the runner consumes.
#[derive(Clone, Debug)]
pub struct ConsumerConfig {
    /// Unacknowledged deliveries the broker may push per queue.
    pub prefetch: u16,
    /// Deliveries handled per batch (one transaction with [`TransactionalProcessor`]).
    pub max_batch: usize,
    /// Parallel lanes; messages of one correlation always take the same lane.
    pub lanes: usize,
    /// Deliveries of one message before it is dead-lettered.
    pub max_attempts: u32,
    /// How long a retry or dead letter the runner republishes may wait for the broker's
    /// confirm before the session is given up and reconnected (the delivery stays
    /// unacknowledged, so it comes back).
    pub confirm_timeout: std::time::Duration,
    /// The connection name shown by the broker.
    pub connection_name: String,
    /// Who may send each message type: a delivery whose `user_id` is not its type's producer
    /// is dead-lettered before any handler sees it ([`crate::sender`]). None by default, which
    /// refuses everything: a consumer must say whom it trusts.
    pub producers: Producers,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            prefetch: 128,
            max_batch: 64,
            lanes: 2,
            max_attempts: 5,
            confirm_timeout: std::time::Duration::from_secs(10),
            connection_name: "consumer".into(),
            producers: Producers::default(),
        }
    }
}

/// The span every handling of `item` runs in: `process`, by OpenTelemetry's messaging
/// conventions, a child of the trace the message carries.
fn message_span<M: Inbound>(item: &Received<M>) -> tracing::Span {
    let span = info_span!(
        "message",
        otel.name = %format!("process {}", item.queue),
        otel.kind = "consumer",
        messaging.system = "rabbitmq",
        messaging.operation.type = "process",
        messaging.destination.name = %item.queue,
        messaging.rabbitmq.destination.routing_key = %item.message.message_type(),
        messaging.message.id = %item.message.message_id(),
        messaging.message.conversation_id = %item.message.correlation_id(),
        correlation_id = %item.message.correlation_id(),
        message_type = %item.message.message_type(),
        message_id = %item.message.message_id(),
        queue = %item.queue,
    );
    crate::trace::adopt(&span, item.trace.as_ref());
    span
}
