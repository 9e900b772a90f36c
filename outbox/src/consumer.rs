//! The consumer runner (the seed's background consumer classes) and the processors that give it
//! idempotency.
//!
//! [`ConsumerRunner`] owns the transport: it consumes every queue of a service on one channel
//! with bounded prefetch, decodes each delivery (undecodable ones go straight to the `.dlq` with
//! the reason), and dispatches them to *lanes* by order id, so one order's messages are handled
//! in order and never race each other inside one process. A lane takes whatever has arrived (up
//! to a batch), hands it to a [`Processor`], then settles each delivery by its [`Verdict`]: ack,
//! retry later through the delay queues, or dead-letter. Nothing is acknowledged before it was
//! handled (committed) or dead-lettered (confirmed by the broker).
//!
//! [`TransactionalProcessor`] handles a batch in one database transaction, each message with
//! its inbox row (`processed_messages`), so a duplicate is skipped; if any message fails, the
//! batch is rolled back and its messages are handled one transaction each, so that only the
//! failing one is retried or dead-lettered. [`InMemoryProcessor`] is for services without a
//! database: it remembers recent message ids in memory only.

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use contracts::envelope::{
    HEADER_ATTEMPT, HEADER_DEAD_LETTER_REASON, HEADER_LAST_ERROR, HEADER_ORIGINAL_QUEUE,
    HEADER_ORIGINAL_USER_ID,
};
use contracts::{AnyMessage, Envelope, MessageId, ProducerUsers, Service};
use futures::StreamExt;
use lapin::Confirmation;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, Statement,
    TransactionTrait,
};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::broker::{Backoff, Broker};
use crate::enqueue::{EnqueueError, OutboxSignal};
use crate::stats::{ConsumerStats, Outcome};
use crate::topology::{DEAD_LETTER_EXCHANGE, Topology};
use crate::wire;

/// Why a handler could not handle a message.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Lost an optimistic-concurrency race: the message is handled again at once, on fresh state.
    #[error("optimistic concurrency conflict")]
    Conflict,
    /// Might succeed later: retried with backoff, then dead-lettered.
    #[error("{0}")]
    Transient(String),
    /// Can never succeed: dead-lettered at once with this reason.
    #[error("{0}")]
    Rejected(String),
    /// The database failed: handled again at once a few times (deadlocks resolve), then retried
    /// with backoff.
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

/// A service's business logic for one message, run inside the transaction that also records
/// the message in the inbox. Effects go to the outbox through the same transaction
/// ([`enqueue`](crate::enqueue())).
pub trait Handler: Send + Sync + 'static {
    /// Handles one message. Returning `Err` rolls back everything the handler wrote.
    fn handle(
        &self,
        transaction: &DatabaseTransaction,
        envelope: &Envelope<AnyMessage>,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// Business logic for services without a database.
pub trait StatelessHandler: Send + Sync + 'static {
    /// Handles one message.
    fn handle(
        &self,
        envelope: &Envelope<AnyMessage>,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// A decoded delivery, as processors see it.
#[derive(Clone, Debug)]
pub struct Received {
    /// The queue it came from; also the consumer's identity in the inbox.
    pub queue: Arc<str>,
    /// The message.
    pub envelope: Envelope<AnyMessage>,
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

/// The infrastructure failed; nothing of the batch was handled.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ProcessError(String);

impl From<DbErr> for ProcessError {
    fn from(error: DbErr) -> Self {
        ProcessError(format!("database: {error}"))
    }
}

/// Turns a batch of decoded deliveries into verdicts, one per delivery, in order.
pub trait Processor: Send + Sync + 'static {
    /// Processes `batch`. `Err` means nothing was handled; the runner retries the batch.
    fn process(
        &self,
        batch: &[Received],
    ) -> impl Future<Output = Result<Vec<Verdict>, ProcessError>> + Send;
}

/// Handles a batch in one transaction, each message with its inbox row; falls back to one
/// transaction per message when a message of the batch fails.
pub struct TransactionalProcessor<H> {
    db: DatabaseConnection,
    handler: H,
    signal: OutboxSignal,
    immediate_retries: u32,
}

impl<H: Handler> TransactionalProcessor<H> {
    /// Runs `handler` against `db`; wakes the relay through `signal` after each batch that
    /// enqueued messages.
    pub fn new(db: DatabaseConnection, handler: H, signal: OutboxSignal) -> Self {
        TransactionalProcessor {
            db,
            handler,
            signal,
            immediate_retries: 5,
        }
    }

    /// Handles a whole batch in one transaction, without savepoints (two round trips per
    /// message saved), with every inbox row written by one statement. `None`, after rolling
    /// everything back, if any handler failed: the caller then handles the messages one by one,
    /// so that only the failing one is retried.
    async fn process_at_once(
        &self,
        batch: &[Received],
    ) -> Result<Option<Vec<Verdict>>, ProcessError> {
        let transaction = self.db.begin().await?;
        let mut first_sight = record_all_in_inbox(&transaction, batch).await?;
        let mut verdicts = Vec::with_capacity(batch.len());
        for item in batch {
            // A message seen before, or a second copy of one earlier in this batch.
            if !first_sight.remove(&(Arc::clone(&item.queue), item.envelope.message_id)) {
                verdicts.push(Verdict::Duplicate);
                continue;
            }
            let handled = self
                .handler
                .handle(&transaction, &item.envelope)
                .instrument(message_span(item))
                .await;
            if let Err(error) = handled {
                debug!(%error, batch = batch.len(), "a message failed; handling its batch one by one");
                transaction.rollback().await?;
                return Ok(None);
            }
            verdicts.push(Verdict::Handled);
        }
        transaction.commit().await?;
        Ok(Some(verdicts))
    }

    /// Handles one message in a transaction of its own, handling it again at once after a lost
    /// optimistic-concurrency race or a database error.
    async fn process_alone(&self, item: &Received) -> Result<Verdict, ProcessError> {
        let mut immediate_retries = 0;
        loop {
            let transaction = self.db.begin().await?;
            let first_sight = record_all_in_inbox(&transaction, std::slice::from_ref(item)).await?;
            if first_sight.is_empty() {
                transaction.rollback().await?;
                return Ok(Verdict::Duplicate);
            }
            let error = match self.handler.handle(&transaction, &item.envelope).await {
                Ok(()) => {
                    transaction.commit().await?;
                    return Ok(Verdict::Handled);
                }
                Err(error) => error,
            };
            transaction.rollback().await?;
            if let Some(verdict) = self.after_failure(error, &mut immediate_retries) {
                return Ok(verdict);
            }
        }
    }

    /// The verdict after a failed attempt, or `None` to handle the message again at once
    /// (a lost optimistic-concurrency race, or a database error such as a deadlock).
    fn after_failure(&self, error: HandlerError, immediate_retries: &mut u32) -> Option<Verdict> {
        match error {
            HandlerError::Rejected(reason) => Some(Verdict::DeadLetter(reason)),
            HandlerError::Transient(reason) => Some(Verdict::Retry(reason)),
            HandlerError::Conflict | HandlerError::Database(_)
                if *immediate_retries < self.immediate_retries =>
            {
                *immediate_retries += 1;
                debug!(%error, immediate_retries = *immediate_retries, "handling again");
                None
            }
            other => Some(Verdict::Retry(other.to_string())),
        }
    }
}

/// Inserts the inbox rows of a whole batch in one statement; returns the messages seen for the
/// first time.
async fn record_all_in_inbox(
    transaction: &DatabaseTransaction,
    batch: &[Received],
) -> Result<HashSet<(Arc<str>, MessageId)>, DbErr> {
    let (mut consumers, mut message_ids, mut types, mut correlation_ids) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for item in batch {
        consumers.push(item.queue.to_string());
        message_ids.push(item.envelope.message_id.as_uuid());
        types.push(item.envelope.message_type.name().to_owned());
        correlation_ids.push(item.envelope.correlation_id.as_uuid());
    }
    let inserted = transaction
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO processed_messages (consumer, message_id, type, correlation_id)
             SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::uuid[])
             ON CONFLICT DO NOTHING
             RETURNING consumer, message_id",
            [
                consumers.into(),
                message_ids.into(),
                types.into(),
                correlation_ids.into(),
            ],
        ))
        .await?;
    inserted
        .iter()
        .map(|row| {
            let consumer: String = row.try_get_by_index(0)?;
            let message_id: uuid::Uuid = row.try_get_by_index(1)?;
            Ok((Arc::from(consumer), MessageId::from(message_id)))
        })
        .collect()
}

impl<H: Handler> Processor for TransactionalProcessor<H> {
    async fn process(&self, batch: &[Received]) -> Result<Vec<Verdict>, ProcessError> {
        let (verdicts, enqueued) = crate::enqueue::noting_enqueues(self.process_batch(batch)).await;
        // A rolled-back attempt may have enqueued too: a spurious wake is harmless, a missed
        // one would leave rows for the slow poll.
        if enqueued {
            self.signal.wake();
        }
        verdicts
    }
}

impl<H: Handler> TransactionalProcessor<H> {
    async fn process_batch(&self, batch: &[Received]) -> Result<Vec<Verdict>, ProcessError> {
        let verdicts = match batch {
            [item] => vec![
                self.process_alone(item)
                    .instrument(message_span(item))
                    .await?,
            ],
            _ => match self.process_at_once(batch).await? {
                Some(verdicts) => verdicts,
                None => {
                    let mut verdicts = Vec::with_capacity(batch.len());
                    for item in batch {
                        verdicts.push(
                            self.process_alone(item)
                                .instrument(message_span(item))
                                .await?,
                        );
                    }
                    verdicts
                }
            },
        };
        Ok(verdicts)
    }
}

fn message_span(item: &Received) -> tracing::Span {
    info_span!(
        "message",
        order_id = %item.envelope.correlation_id,
        message_type = %item.envelope.message_type,
        message_id = %item.envelope.message_id,
        queue = %item.queue,
    )
}

/// Deduplicates in memory, remembering the last `capacity` message ids: a duplicate arriving
/// after a restart, or after that many other messages, is handled again.
pub struct InMemoryProcessor<H> {
    handler: H,
    seen: Mutex<SeenMessages>,
}

struct SeenMessages {
    capacity: usize,
    order: VecDeque<(Arc<str>, MessageId)>,
    set: HashSet<(Arc<str>, MessageId)>,
}

impl SeenMessages {
    fn contains(&self, key: &(Arc<str>, MessageId)) -> bool {
        self.set.contains(key)
    }

    fn insert(&mut self, key: (Arc<str>, MessageId)) {
        if !self.set.insert(key.clone()) {
            return;
        }
        self.order.push_back(key);
        while self.order.len() > self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.set.remove(&oldest);
            }
        }
    }
}

impl<H: StatelessHandler> InMemoryProcessor<H> {
    /// Runs `handler`, remembering up to `capacity` message ids.
    pub fn new(handler: H, capacity: usize) -> Self {
        InMemoryProcessor {
            handler,
            seen: Mutex::new(SeenMessages {
                capacity,
                order: VecDeque::new(),
                set: HashSet::new(),
            }),
        }
    }

    fn already_seen(&self, key: &(Arc<str>, MessageId)) -> bool {
        self.seen
            .lock()
            .map(|seen| seen.contains(key))
            .unwrap_or(false)
    }

    fn remember(&self, key: (Arc<str>, MessageId)) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.insert(key);
        }
    }
}

impl<H: StatelessHandler> Processor for InMemoryProcessor<H> {
    async fn process(&self, batch: &[Received]) -> Result<Vec<Verdict>, ProcessError> {
        let mut verdicts = Vec::with_capacity(batch.len());
        for item in batch {
            let key = (Arc::clone(&item.queue), item.envelope.message_id);
            if self.already_seen(&key) {
                verdicts.push(Verdict::Duplicate);
                continue;
            }
            let result = self
                .handler
                .handle(&item.envelope)
                .instrument(message_span(item))
                .await;
            let verdict = match result {
                Ok(()) => {
                    self.remember(key);
                    Verdict::Handled
                }
                Err(HandlerError::Rejected(reason)) => Verdict::DeadLetter(reason),
                Err(other) => Verdict::Retry(other.to_string()),
            };
            verdicts.push(verdict);
        }
        Ok(verdicts)
    }
}

/// How the runner consumes.
#[derive(Clone, Debug)]
pub struct ConsumerConfig {
    /// Unacknowledged deliveries the broker may push per queue.
    pub prefetch: u16,
    /// Deliveries handled per batch (one transaction with [`TransactionalProcessor`]).
    pub max_batch: usize,
    /// Parallel lanes; messages of one order always take the same lane.
    pub lanes: usize,
    /// Deliveries of one message before it is dead-lettered.
    pub max_attempts: u32,
    /// The connection name shown by the broker.
    pub connection_name: String,
    /// Who may send each message type: a delivery whose `user_id` is not its type's producer
    /// is dead-lettered before any handler sees it ([`crate::sender`]).
    pub producers: ProducerUsers,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            prefetch: 128,
            max_batch: 64,
            lanes: 2,
            max_attempts: 5,
            connection_name: "consumer".into(),
            producers: ProducerUsers::default(),
        }
    }
}

/// Why a consumer session ended.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("broker: {0}")]
    Broker(#[from] lapin::Error),
    #[error("{0}")]
    Unconfirmed(String),
    #[error("the delivery stream closed")]
    StreamClosed,
}

/// Consumes a service's queues and hands the deliveries to a [`Processor`]; reconnects after
/// connection or channel loss; stops on its cancellation token.
pub struct ConsumerRunner<P> {
    broker: Broker,
    queues: Vec<String>,
    processor: Arc<P>,
    config: ConsumerConfig,
    stats: Arc<ConsumerStats>,
}

impl<P: Processor> ConsumerRunner<P> {
    /// A runner for every queue `service` subscribes to (from `contracts::SUBSCRIPTIONS`).
    pub fn new(broker: Broker, service: Service, processor: P, config: ConsumerConfig) -> Self {
        let queues = contracts::SUBSCRIPTIONS
            .iter()
            .filter(|subscription| subscription.service == service)
            .map(contracts::Subscription::queue)
            .collect();
        Self::for_queues(broker, queues, processor, config)
    }

    /// A runner for the named queues.
    pub fn for_queues(
        broker: Broker,
        queues: Vec<String>,
        processor: P,
        config: ConsumerConfig,
    ) -> Self {
        ConsumerRunner {
            broker: broker.consuming(queues.clone()),
            queues,
            processor: Arc::new(processor),
            config,
            stats: Arc::default(),
        }
    }

    /// Counters of what this runner did, readable while it runs.
    pub fn stats(&self) -> Arc<ConsumerStats> {
        Arc::clone(&self.stats)
    }

    /// Consumes until `shutdown` is cancelled, then finishes the batches in flight.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Backoff::new(Duration::from_secs(10));
        while !shutdown.is_cancelled() {
            let connection = match self.broker.connect(&self.config.connection_name).await {
                Ok(connection) => connection,
                Err(cause) => {
                    warn!(%cause, "consumer cannot reach the broker; retrying");
                    if !backoff.wait(&shutdown).await {
                        break;
                    }
                    continue;
                }
            };
            backoff.reset();
            let ended = self.session(&connection, &shutdown).await;
            let _ = connection.close(200, "consumer stopping".into()).await;
            match ended {
                Ok(()) => break,
                Err(cause) => {
                    warn!(%cause, "consumer lost the broker; reconnecting");
                    if !backoff.wait(&shutdown).await {
                        break;
                    }
                }
            }
        }
        info!(queues = ?self.queues, "consumer stopped");
    }

    async fn session(
        &self,
        connection: &Connection,
        shutdown: &CancellationToken,
    ) -> Result<(), SessionError> {
        let consume_channel = connection.create_channel().await?;
        consume_channel
            .basic_qos(self.config.prefetch, BasicQosOptions::default())
            .await?;
        let settler = Settler {
            channel: Broker::confirm_channel(connection).await?,
            own_user: Arc::from(self.broker.user()),
            topology: self.broker.topology().clone(),
            max_attempts: self.config.max_attempts,
            stats: Arc::clone(&self.stats),
        };
        let mut streams = Vec::with_capacity(self.queues.len());
        for queue in &self.queues {
            let consumer = consume_channel
                .basic_consume(
                    wire::short_string(queue),
                    "".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            let queue: Arc<str> = Arc::from(queue.as_str());
            streams.push(consumer.map(move |delivery| (Arc::clone(&queue), delivery)));
        }
        let mut deliveries = futures::stream::select_all(streams);
        let subscribed_types: std::collections::HashMap<String, contracts::MessageType> =
            contracts::SUBSCRIPTIONS
                .iter()
                .map(|subscription| (subscription.queue(), subscription.message_type))
                .collect();
        info!(queues = ?self.queues, "consumer connected");

        let lane_count = self.config.lanes.max(1);
        let mut lanes = JoinSet::new();
        let mut senders = Vec::with_capacity(lane_count);
        for _ in 0..lane_count {
            let (sender, receiver) = mpsc::channel(self.config.max_batch.max(1) * 2);
            senders.push(sender);
            lanes.spawn(run_lane(
                receiver,
                Arc::clone(&self.processor),
                settler.clone(),
                self.config.max_batch.max(1),
                shutdown.clone(),
            ));
        }

        let outcome = loop {
            let next = tokio::select! {
                () = shutdown.cancelled() => break Ok(()),
                Some(lane_ended) = lanes.join_next() => {
                    break Err(lane_ended.unwrap_or(Err(SessionError::StreamClosed)).err().unwrap_or(SessionError::StreamClosed));
                }
                next = deliveries.next() => next,
            };
            let (queue, delivery) = match next {
                None => break Err(SessionError::StreamClosed),
                Some((_, Err(cause))) => break Err(SessionError::Broker(cause)),
                Some((queue, Ok(delivery))) => (queue, delivery),
            };
            let envelope = match wire::decode(&delivery.properties, &delivery.data) {
                Ok(envelope) => envelope,
                Err(reason) => {
                    if let Err(cause) = settler
                        .dead_letter(&queue, &delivery, None, &reason.to_string())
                        .await
                    {
                        break Err(cause);
                    }
                    continue;
                }
            };
            // A queue carries one type: anything else was routed there by someone who could
            // write to a retry or dead-letter exchange, never by the system's own routing.
            if let Some(expected) = subscribed_types.get(&*queue)
                && *expected != envelope.message_type
            {
                let reason = format!(
                    "{} does not belong on {queue}, which carries {expected} only",
                    envelope.message_type
                );
                if let Err(cause) = settler.dead_letter(&queue, &delivery, None, &reason).await {
                    break Err(cause);
                }
                continue;
            }
            let sender = match crate::sender::authenticate_sender(
                &self.config.producers,
                self.broker.user(),
                envelope.message_type,
                delivery
                    .properties
                    .user_id()
                    .as_ref()
                    .map(|user| user.as_str()),
                wire::header_text(&delivery.properties, HEADER_ORIGINAL_USER_ID).as_deref(),
            ) {
                Ok(sender) => sender,
                Err(reason) => {
                    if let Err(cause) = settler.dead_letter(&queue, &delivery, None, &reason).await
                    {
                        break Err(cause);
                    }
                    continue;
                }
            };
            let lane = (envelope.correlation_id.as_uuid().as_u128() % lane_count as u128) as usize;
            let item = Item {
                delivery,
                received: Received { queue, envelope },
                sender,
            };
            tokio::select! {
                sent = senders[lane].send(item) => if sent.is_err() { break Err(SessionError::StreamClosed) },
                () = shutdown.cancelled() => break Ok(()),
            }
        };
        // Lanes finish what they were given, then end.
        drop(senders);
        while let Some(lane_ended) = lanes.join_next().await {
            if let Ok(Err(cause)) = lane_ended {
                warn!(%cause, "a consumer lane stopped with an error");
            }
        }
        // Close the channels before the connection: closing a connection whose channels are
        // still open makes lapin log spurious errors. Unacknowledged deliveries are requeued.
        if outcome.is_ok() {
            let _ = consume_channel.close(200, "consumer stopping".into()).await;
            let _ = settler.channel.close(200, "consumer stopping".into()).await;
        }
        outcome
    }
}

struct Item {
    delivery: Delivery,
    received: Received,
    /// The validated sender (see [`crate::sender`]).
    sender: String,
}

async fn run_lane<P: Processor>(
    mut receiver: mpsc::Receiver<Item>,
    processor: Arc<P>,
    settler: Settler,
    max_batch: usize,
    shutdown: CancellationToken,
) -> Result<(), SessionError> {
    let mut backoff = Backoff::new(Duration::from_secs(5));
    while let Some(first) = receiver.recv().await {
        let mut deliveries = vec![(first.delivery, first.sender)];
        let mut batch = vec![first.received];
        while batch.len() < max_batch {
            let Ok(item) = receiver.try_recv() else {
                break;
            };
            deliveries.push((item.delivery, item.sender));
            batch.push(item.received);
        }
        let verdicts = loop {
            match processor.process(&batch).await {
                Ok(verdicts) => break verdicts,
                Err(cause) => {
                    warn!(%cause, batch = batch.len(), "cannot process a batch; retrying it");
                    // Leaving the batch unacknowledged on shutdown is safe: it is redelivered.
                    if !backoff.wait(&shutdown).await {
                        return Ok(());
                    }
                }
            }
        };
        backoff.reset();
        let mut verdicts = verdicts.into_iter();
        for ((delivery, sender), item) in deliveries.iter().zip(&batch) {
            let verdict = verdicts
                .next()
                .unwrap_or_else(|| Verdict::Retry("the processor returned no verdict".into()));
            settler.settle(item, delivery, sender, verdict).await?;
        }
    }
    Ok(())
}

/// Acknowledges, retries or dead-letters deliveries.
#[derive(Clone)]
struct Settler {
    channel: Channel,
    /// Our broker user: the `user_id` of what we republish (the broker accepts no other).
    own_user: Arc<str>,
    topology: Topology,
    max_attempts: u32,
    stats: Arc<ConsumerStats>,
}

impl Settler {
    async fn settle(
        &self,
        item: &Received,
        delivery: &Delivery,
        sender: &str,
        verdict: Verdict,
    ) -> Result<(), SessionError> {
        let order_id = item.envelope.correlation_id;
        match verdict {
            Verdict::Handled => {
                delivery.ack(BasicAckOptions::default()).await?;
                self.stats.record(&item.queue, Outcome::Handled);
                debug!(%order_id, queue = %item.queue, message_type = %item.envelope.message_type, "handled");
            }
            Verdict::Duplicate => {
                delivery.ack(BasicAckOptions::default()).await?;
                self.stats.record(&item.queue, Outcome::Duplicate);
                debug!(%order_id, queue = %item.queue, message_id = %item.envelope.message_id, "duplicate skipped");
            }
            Verdict::Retry(reason) => {
                let attempt = wire::attempt(&delivery.properties);
                if attempt >= self.max_attempts {
                    let reason = format!("gave up after {attempt} attempts: {reason}");
                    return self
                        .dead_letter(&item.queue, delivery, Some(item), &reason)
                        .await;
                }
                let properties = wire::with_headers(
                    &delivery.properties,
                    &[
                        (
                            HEADER_ATTEMPT,
                            AMQPValue::LongLongInt(i64::from(attempt) + 1),
                        ),
                        (HEADER_LAST_ERROR, wire::long_string(&reason)),
                        (HEADER_ORIGINAL_QUEUE, wire::long_string(&item.queue)),
                        (HEADER_ORIGINAL_USER_ID, wire::long_string(sender)),
                    ],
                )
                .with_user_id(wire::short_string(&self.own_user));
                let exchange = self.topology.retry_exchange(attempt);
                self.publish_confirmed(&exchange, &item.queue, &delivery.data, properties)
                    .await?;
                delivery.ack(BasicAckOptions::default()).await?;
                self.stats.record(&item.queue, Outcome::Retried);
                warn!(%order_id, queue = %item.queue, attempt, %reason, "handler failed; retry scheduled");
            }
            Verdict::DeadLetter(reason) => {
                return self
                    .dead_letter(&item.queue, delivery, Some(item), &reason)
                    .await;
            }
        }
        Ok(())
    }

    /// Moves a delivery to its queue's `.dlq` with the reason, then acknowledges it.
    async fn dead_letter(
        &self,
        queue: &str,
        delivery: &Delivery,
        item: Option<&Received>,
        reason: &str,
    ) -> Result<(), SessionError> {
        let mut headers = vec![
            (HEADER_DEAD_LETTER_REASON, wire::long_string(reason)),
            (HEADER_ORIGINAL_QUEUE, wire::long_string(queue)),
        ];
        // Who sent it as far as the broker knows (unvalidated: it may be why it is here). A
        // message we republished before keeps the sender recorded then.
        let original_sender = match delivery.properties.user_id() {
            Some(user) if user.as_str() != &*self.own_user => Some(user.as_str().to_owned()),
            Some(_) | None => wire::header_text(&delivery.properties, HEADER_ORIGINAL_USER_ID),
        };
        if let Some(sender) = original_sender {
            headers.push((HEADER_ORIGINAL_USER_ID, wire::long_string(&sender)));
        }
        let properties = wire::with_headers(&delivery.properties, &headers)
            .with_user_id(wire::short_string(&self.own_user));
        self.publish_confirmed(DEAD_LETTER_EXCHANGE, queue, &delivery.data, properties)
            .await?;
        delivery.ack(BasicAckOptions::default()).await?;
        self.stats.record(queue, Outcome::DeadLettered);
        match item {
            Some(item) => {
                warn!(order_id = %item.envelope.correlation_id, %queue, %reason, "message dead-lettered")
            }
            None => warn!(%queue, %reason, "message dead-lettered before handling"),
        }
        Ok(())
    }

    async fn publish_confirmed(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: lapin::BasicProperties,
    ) -> Result<(), SessionError> {
        let confirmation = self
            .channel
            .basic_publish(
                wire::short_string(exchange),
                wire::short_string(routing_key),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                body,
                properties,
            )
            .await?
            .await?;
        match confirmation {
            Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
            Confirmation::Ack(Some(returned)) => Err(SessionError::Unconfirmed(format!(
                "{exchange}/{routing_key} is unroutable: {}",
                returned.reply_text
            ))),
            Confirmation::Nack(_) => Err(SessionError::Unconfirmed(format!(
                "the broker nacked a message for {exchange}/{routing_key}"
            ))),
        }
    }
}
