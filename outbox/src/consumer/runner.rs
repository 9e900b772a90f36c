//! The transport of [`ConsumerRunner`]: one connection and channel per session, bounded
//! prefetch, decoding and the checks every delivery passes before a handler sees it (it
//! decodes, it belongs on its queue, its sender is its type's producer), lanes by correlation
//! id, batches, and reconnection.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lapin::Connection;
use lapin::message::Delivery;
use lapin::options::{BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::settle::Settler;
use super::{ConsumerConfig, Processor, Received, Verdict};
use crate::broker::{Backoff, Broker};
use crate::headers::ORIGINAL_USER_ID;
use crate::message::Inbound;
use crate::stats::ConsumerStats;
use crate::wire;

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
            message: PhantomData,
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
            let admitted = match self.admit(&queue, &delivery) {
                Ok(admitted) => admitted,
                Err(reason) => {
                    if let Err(cause) = settler.dead_letter(&queue, &delivery, None, &reason).await
                    {
                        break Err(cause);
                    }
                    continue;
                }
            };
            let (message, sender) = admitted;
            let lane = (message.correlation_id().as_u128() % lane_count as u128) as usize;
            let item = Item {
                delivery,
                received: Received { queue, message },
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
