//! The transport of [`ConsumerRunner`]: one connection and channel per session, bounded
//! prefetch, decoding and the checks every delivery passes before a handler sees it (it
//! decodes, it belongs on its queue, its sender is its type's producer), lanes by correlation
//! id, batches, and reconnection.

use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{ChannelStatus, Connection};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::acknowledge::Acknowledger;
use super::settle::Settler;
use super::{ConsumerConfig, ProcessError, Processor, Received, Verdict};
use crate::broker::{Backoff, Broker};
use crate::headers::ORIGINAL_USER_ID;
use crate::health::{ComponentHealth, Condition};
use crate::message::Inbound;
use crate::stats::ConsumerStats;
use crate::trace::{TRACEPARENT, TRACESTATE, TraceContext};
use crate::wire;

/// How long closing a channel or connection may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Why a consumer session ended.
#[derive(Debug, thiserror::Error)]
pub(super) enum SessionError {
    #[error("broker: {0}")]
    Broker(#[from] lapin::Error),
    #[error("{0}")]
    Unconfirmed(String),
    #[error("the delivery stream closed")]
    StreamClosed,
}

/// Consumes named queues and hands the deliveries, decoded as `M`, to a [`Processor`];
/// reconnects after connection or channel loss; stops on its cancellation token.
pub struct ConsumerRunner<M, P> {
    broker: Broker,
    queues: Vec<String>,
    processor: Arc<P>,
    config: ConsumerConfig,
    stats: Arc<ConsumerStats>,
    health: ComponentHealth,
    /// What the deliveries are decoded as; `fn() -> M` keeps the runner `Send` whatever `M` is.
    message: PhantomData<fn() -> M>,
}

/// A delivery on its way to a lane.
struct Item<M> {
    delivery: Delivery,
    received: Received<M>,
    /// The validated sender (see [`crate::sender`]).
    sender: String,
}

impl<M: Inbound, P: Processor<M>> ConsumerRunner<M, P> {
    /// A runner for the named queues (each one of the broker's topology routes).
    pub fn new(broker: Broker, queues: Vec<String>, processor: P, config: ConsumerConfig) -> Self {
        ConsumerRunner {
            broker: broker.consuming(queues.clone()),
            queues,
            processor: Arc::new(processor),
            config,
            stats: Arc::default(),
            health: ComponentHealth::new(),
            message: PhantomData,
        }
    }

    /// Counters of what this runner did, readable while it runs.
    pub fn stats(&self) -> Arc<ConsumerStats> {
        Arc::clone(&self.stats)
    }

    /// Whether this runner consumes every queue now (for readiness), readable while it runs.
    pub fn health(&self) -> ComponentHealth {
        self.health.clone()
    }

    /// Consumes until `shutdown` is cancelled, then finishes the batches in flight.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Backoff::new(Duration::from_secs(10));
        while !shutdown.is_cancelled() {
            match self.connect_and_consume(&shutdown, &mut backoff).await {
                Ok(()) => break,
                Err(cause) => {
                    warn!(%cause, "consumer lost the broker; reconnecting");
                    self.health.set(Condition::Down(cause.to_string()));
                }
            }
            if !backoff.wait(&shutdown).await {
                break;
            }
        }
        info!(queues = ?self.queues, "consumer stopped");
    }

    /// One session: a connection to consume on and another to republish retries and dead
    /// letters on. Publishing apart means a connection the broker blocks during a resource
    /// alarm (it blocks connections that publish) never holds up the acknowledgements of the
    /// consuming one.
    async fn connect_and_consume(
        &self,
        shutdown: &CancellationToken,
        backoff: &mut Backoff,
    ) -> Result<(), SessionError> {
        let name = &self.config.connection_name;
        let consuming = self.broker.connect(name).await?;
        let republishing = match self.broker.connect(&format!("{name} (republish)")).await {
            Ok(connection) => connection,
            Err(cause) => {
                let _ = consuming.close(200, "consumer reconnecting".into()).await;
                return Err(cause.into());
            }
        };
        let ended = self
            .session(&consuming, &republishing, shutdown, backoff)
            .await;
        // Healthy again only once a new session consumes.
        self.health.set(match &ended {
            Ok(()) => Condition::Down("stopping".into()),
            Err(cause) => Condition::Down(cause.to_string()),
        });
        // A connection the broker blocks (an alarm) cannot send its close: never wait long.
        for connection in [&consuming, &republishing] {
            let _ = tokio::time::timeout(
                CLOSE_TIMEOUT,
                connection.close(200, "consumer stopping".into()),
            )
            .await;
        }
        ended
    }

    async fn session(
        &self,
        connection: &Connection,
        republishing: &Connection,
        shutdown: &CancellationToken,
        backoff: &mut Backoff,
    ) -> Result<(), SessionError> {
        let consume_channel = connection.create_channel().await?;
        consume_channel
            .basic_qos(self.config.prefetch, BasicQosOptions::default())
            .await?;
        let acknowledger = Arc::new(Acknowledger::new(consume_channel.clone()));
        let settler = Settler {
            channel: Broker::confirm_channel(republishing).await?,
            connection_status: republishing.status().clone(),
            own_user: Arc::from(self.broker.user()),
            topology: self.broker.topology().clone(),
            max_attempts: self.config.max_attempts,
            confirm_timeout: self.config.confirm_timeout,
            stats: Arc::clone(&self.stats),
            acknowledger: Arc::clone(&acknowledger),
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
        self.health.set(Condition::Up);
        // A session that consumed starts the next reconnection from the shortest delay.
        backoff.reset();
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
                consume_channel.status().clone(),
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
            let admitted = match self.admit(&queue, &delivery) {
                Ok(admitted) => admitted,
                Err(reason) => {
                    if let Err(cause) = settler.refuse(&queue, &delivery, &reason).await {
                        break Err(cause);
                    }
                    continue;
                }
            };
            let (message, sender) = admitted;
            let lane = (message.correlation_id().as_u128() % lane_count as u128) as usize;
            let redelivered = wire::redelivered(&delivery);
            let trace = TraceContext::parse(
                wire::header_text(&delivery.properties, TRACEPARENT).as_deref(),
                wire::header_text(&delivery.properties, TRACESTATE).as_deref(),
            );
            receive_span(&queue, &message, trace.as_ref());
            let item = Item {
                delivery,
                received: Received {
                    queue,
                    message,
                    redelivered,
                    trace,
                },
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
        // A lane that stopped short (paused by a failure when the shutdown came) leaves
        // deliveries unsettled; what other lanes settled after them is acknowledged one by one,
        // so the next session is not handed it again.
        if outcome.is_ok()
            && let Err(cause) = acknowledger.acknowledge_waiting().await
        {
            warn!(%cause, "could not acknowledge the settled deliveries on stopping");
        }
        // Close the channels before the connection: closing a connection whose channels are
        // still open makes lapin log spurious errors. Unacknowledged deliveries are requeued.
        if outcome.is_ok() {
            for channel in [&consume_channel, &settler.channel] {
                let _ = tokio::time::timeout(
                    CLOSE_TIMEOUT,
                    channel.close(200, "consumer stopping".into()),
                )
                .await;
            }
        }
        outcome
    }

    /// The checks before any handler: the delivery decodes, belongs on its queue, and comes
    /// from its type's producer. Returns the message and its validated sender, or the reason
    /// to dead-letter it.
    fn admit(&self, queue: &str, delivery: &Delivery) -> Result<(M, String), String> {
        let message: M = wire::decode(&delivery.properties, &delivery.data)?;
        // A queue carries one type: anything else was routed there by someone who could
        // write to a retry or dead-letter exchange, never by the system's own routing.
        if let Some(expected) = self.broker.topology().message_type_of(queue)
            && expected != message.message_type()
        {
            return Err(format!(
                "{} does not belong on {queue}, which carries {expected} only",
                message.message_type()
            ));
        }
        let sender = crate::sender::authenticate_sender(
            &self.config.producers,
            self.broker.user(),
            message.message_type(),
            delivery
                .properties
                .user_id()
                .as_ref()
                .map(|user| user.as_str()),
            wire::header_text(&delivery.properties, ORIGINAL_USER_ID).as_deref(),
        )?;
        Ok((message, sender))
    }
}

async fn run_lane<M: Inbound, P: Processor<M>>(
    mut receiver: mpsc::Receiver<Item<M>>,
    processor: Arc<P>,
    settler: Settler,
    consuming: ChannelStatus,
    max_batch: usize,
    shutdown: CancellationToken,
) -> Result<(), SessionError> {
    let mut backoff = Backoff::new(Duration::from_secs(5));
    // A redelivered item met while a batch was being filled: it starts the next batch.
    let mut held_back: Option<Item<M>> = None;
    loop {
        let first = match held_back.take() {
            Some(item) => item,
            None => match receiver.recv().await {
                Some(item) => item,
                None => break,
            },
        };
        // Deliveries of a channel that closed can no longer be acknowledged: the broker hands
        // them out again to the next session, so handling them now would be wasted work.
        if !consuming.connected() {
            return Err(SessionError::StreamClosed);
        }
        let items = fill_batch(first, &mut receiver, &mut held_back, max_batch);
        let (deliveries, batch): (Vec<_>, Vec<_>) = items
            .into_iter()
            .map(|item| ((item.delivery, item.sender), item.received))
            .unzip();
        let verdicts = loop {
            match process_guarded(processor.as_ref(), &batch).await {
                Ok(verdicts) => break verdicts,
                Err(cause) => {
                    // The infrastructure failed: the same deliveries are handled again after a
                    // pause, and no message spends an attempt on it.
                    warn!(%cause, batch = batch.len(), "cannot process a batch; pausing, then handling it again");
                    // Leaving the batch unacknowledged on shutdown is safe: it is redelivered.
                    if !backoff.wait(&shutdown).await {
                        return Ok(());
                    }
                }
            }
        };
        backoff.reset();
        settler.settle_batch(&batch, &deliveries, verdicts).await?;
    }
    Ok(())
}

/// Records the `receive` of a delivery (OpenTelemetry's messaging conventions) in the trace the
/// message carries; its handling is the `process` span that follows.
fn receive_span<M: Inbound>(queue: &str, message: &M, trace: Option<&TraceContext>) {
    let span = tracing::info_span!(
        "receive",
        otel.name = %format!("receive {queue}"),
        otel.kind = "consumer",
        messaging.system = "rabbitmq",
        messaging.operation.type = "receive",
        messaging.destination.name = %queue,
        messaging.rabbitmq.destination.routing_key = %message.message_type(),
        messaging.message.id = %message.message_id(),
        messaging.message.conversation_id = %message.correlation_id(),
        correlation_id = %message.correlation_id(),
    );
    crate::trace::adopt(&span, trace);
}

/// A batch starting with `first`: whatever else has arrived, up to `max_batch`. A redelivered
/// delivery (one the broker handed out before, to a consumer that died or lost its connection
/// holding it) is always a batch of its own: if it is what killed the previous consumer, it
/// fails alone and cannot take innocent neighbours with it. One met while filling is held back
/// to start the next batch.
fn fill_batch<M>(
    first: Item<M>,
    receiver: &mut mpsc::Receiver<Item<M>>,
    held_back: &mut Option<Item<M>>,
    max_batch: usize,
) -> Vec<Item<M>> {
    let alone = first.received.redelivered;
    let mut items = vec![first];
    if alone {
        return items;
    }
    while items.len() < max_batch {
        match receiver.try_recv() {
            Ok(item) if item.received.redelivered => {
                *held_back = Some(item);
                break;
            }
            Ok(item) => items.push(item),
            Err(_) => break,
        }
    }
    items
}

/// Processes `batch`, turning a panic into a failure of the message that caused it: a batch
/// that panics is processed again one message at a time, and a message that panics alone is
/// retried toward the dead-letter queue like any message that fails on its own. The panic
/// never reaches the lane, so it never closes the connection (which would return every
/// prefetched delivery to the broker).
async fn process_guarded<M: Inbound, P: Processor<M>>(
    processor: &P,
    batch: &[Received<M>],
) -> Result<Vec<Verdict>, ProcessError> {
    let panic = match AssertUnwindSafe(processor.process(batch))
        .catch_unwind()
        .await
    {
        Ok(verdicts) => return verdicts,
        Err(panic) => panic,
    };
    if let [item] = batch {
        let reason = format!("the handler panicked: {}", panic_message(panic.as_ref()));
        warn!(correlation_id = %item.message.correlation_id(), queue = %item.queue, %reason, "message failed");
        return Ok(vec![Verdict::Retry(reason)]);
    }
    let mut verdicts = Vec::with_capacity(batch.len());
    for item in batch {
        let alone = std::slice::from_ref(item);
        let verdict = match AssertUnwindSafe(processor.process(alone))
            .catch_unwind()
            .await
        {
            Ok(verdict) => verdict?,
            Err(panic) => vec![Verdict::Retry(format!(
                "the handler panicked: {}",
                panic_message(panic.as_ref())
            ))],
        };
        verdicts.extend(verdict);
    }
    Ok(verdicts)
}

/// The text a panic was raised with.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(text), _) => (*text).to_owned(),
        (None, Some(text)) => text.clone(),
        (None, None) => "(no message)".to_owned(),
    }
}
