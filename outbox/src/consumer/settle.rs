//! Settling deliveries after processing: acknowledge, retry through the delay queues, or
//! dead-letter — each republish confirmed by the broker before the delivery is acknowledged,
//! and a batch's deliveries acknowledged together (`acknowledge.rs`).

use std::sync::Arc;

use lapin::message::Delivery;
use lapin::options::BasicPublishOptions;
use lapin::types::AMQPValue;
use lapin::{Channel, Confirmation};
use tracing::{debug, warn};

use super::Received;
use super::Verdict;
use super::acknowledge::Acknowledger;
use super::runner::SessionError;
use crate::headers::{
    ATTEMPT, DEAD_LETTER_REASON, DEAD_LETTERED_AT, LAST_ERROR, ORIGINAL_QUEUE, ORIGINAL_USER_ID,
    format_occurred_at,
};
use crate::message::Inbound;
use crate::stats::{ConsumerStats, Outcome};
use crate::topology::{DEAD_LETTER_EXCHANGE, Topology};
use crate::wire;

/// Acknowledges, retries or dead-letters deliveries.
#[derive(Clone)]
pub(super) struct Settler {
    /// A confirm channel for republishing.
    pub(super) channel: Channel,
    /// The status of the channel's connection (whether the broker blocks it).
    pub(super) connection_status: lapin::ConnectionStatus,
    /// Our broker user: the `user_id` of what we republish (the broker accepts no other).
    pub(super) own_user: Arc<str>,
    pub(super) topology: Topology,
    pub(super) max_attempts: u32,
    /// How long a republish may wait for the broker's confirm (a blocked connection never
    /// confirms): past it, the session ends and the delivery is redelivered later.
    pub(super) confirm_timeout: std::time::Duration,
    pub(super) stats: Arc<ConsumerStats>,
    /// Acknowledges on the consuming channel (the lanes of a session share it).
    pub(super) acknowledger: Arc<Acknowledger>,
}

impl Settler {
    /// Settles a batch's deliveries by their verdicts (`deliveries` pairs each with its
    /// validated sender), then acknowledges them together.
    pub(super) async fn settle_batch<M: Inbound>(
        &self,
        batch: &[Received<M>],
        deliveries: &[(Delivery, String)],
        verdicts: Vec<Verdict>,
    ) -> Result<(), SessionError> {
        let mut verdicts = verdicts.into_iter();
        for ((delivery, sender), item) in deliveries.iter().zip(batch) {
            let verdict = verdicts
                .next()
                .unwrap_or_else(|| Verdict::Retry("the processor returned no verdict".into()));
            self.settle(item, delivery, sender, verdict).await?;
        }
        let tags: Vec<u64> = deliveries
            .iter()
            .map(|(delivery, _)| delivery.delivery_tag)
            .collect();
        self.acknowledger.settle(&tags).await?;
        Ok(())
    }

    /// Dead-letters a delivery that never reached a handler (see [`Self::dead_letter`]) and
    /// acknowledges it.
    pub(super) async fn refuse(
        &self,
        queue: &str,
        delivery: &Delivery,
        reason: &str,
    ) -> Result<(), SessionError> {
        self.dead_letter(queue, delivery, None, reason).await?;
        self.acknowledger.settle(&[delivery.delivery_tag]).await?;
        Ok(())
    }

    /// Settles one delivery by its verdict, short of acknowledging it; `sender` is the
    /// validated sender, kept in [`ORIGINAL_USER_ID`] when the message is republished for a
    /// retry.
    async fn settle<M: Inbound>(
        &self,
        item: &Received<M>,
        delivery: &Delivery,
        sender: &str,
        verdict: Verdict,
    ) -> Result<(), SessionError> {
        let correlation_id = item.message.correlation_id();
        match verdict {
            Verdict::Handled => {
                self.stats.record(&item.queue, Outcome::Handled);
                debug!(%correlation_id, queue = %item.queue, message_type = %item.message.message_type(), "handled");
            }
            Verdict::Duplicate => {
                self.stats.record(&item.queue, Outcome::Duplicate);
                debug!(%correlation_id, queue = %item.queue, message_id = %item.message.message_id(), "duplicate skipped");
            }
            Verdict::Retry(reason) => {
                let attempt = wire::attempt(&delivery.properties);
                if attempt >= self.max_attempts {
                    let reason = format!("gave up after {attempt} attempts: {reason}");
                    return self
                        .dead_letter(&item.queue, delivery, Some(correlation_id), &reason)
                        .await;
                }
                let properties = wire::with_headers(
                    &delivery.properties,
                    &[
                        (ATTEMPT, AMQPValue::LongLongInt(i64::from(attempt) + 1)),
                        (LAST_ERROR, wire::long_string(&reason)),
                        (ORIGINAL_QUEUE, wire::long_string(&item.queue)),
                        (ORIGINAL_USER_ID, wire::long_string(sender)),
                    ],
                )
                .with_user_id(wire::short_string(&self.own_user));
                let exchange = self.topology.retry_exchange(attempt);
                self.publish_confirmed(&exchange, &item.queue, &delivery.data, properties)
                    .await?;
                self.stats.record(&item.queue, Outcome::Retried);
                warn!(%correlation_id, queue = %item.queue, attempt, %reason, "handler failed; retry scheduled");
            }
            Verdict::DeadLetter(reason) => {
                return self
                    .dead_letter(&item.queue, delivery, Some(correlation_id), &reason)
                    .await;
            }
        }
        Ok(())
    }

    /// Moves a delivery to its queue's `.dlq` with the reason, confirmed by the broker (the
    /// caller acknowledges it). `correlation_id` is the decoded message's, when it could be
    /// decoded (for the log).
    async fn dead_letter(
        &self,
        queue: &str,
        delivery: &Delivery,
        correlation_id: Option<uuid::Uuid>,
        reason: &str,
    ) -> Result<(), SessionError> {
        let mut headers = vec![
            (DEAD_LETTER_REASON, wire::long_string(reason)),
            (ORIGINAL_QUEUE, wire::long_string(queue)),
            (
                DEAD_LETTERED_AT,
                wire::long_string(&format_occurred_at(chrono::Utc::now())),
            ),
        ];
        // Who sent it as far as the broker knows (unvalidated: it may be why it is here). A
        // message we republished before keeps the sender recorded then.
        let original_sender = match delivery.properties.user_id() {
            Some(user) if user.as_str() != &*self.own_user => Some(user.as_str().to_owned()),
            Some(_) | None => wire::header_text(&delivery.properties, ORIGINAL_USER_ID),
        };
        if let Some(sender) = original_sender {
            headers.push((ORIGINAL_USER_ID, wire::long_string(&sender)));
        }
        let properties = wire::with_headers(&delivery.properties, &headers)
            .with_user_id(wire::short_string(&self.own_user));
        self.publish_confirmed(DEAD_LETTER_EXCHANGE, queue, &delivery.data, properties)
            .await?;
        self.stats.record(queue, Outcome::DeadLettered);
        match correlation_id {
            Some(correlation_id) => {
                warn!(%correlation_id, %queue, %reason, "message dead-lettered")
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
        let publish = async {
            self.channel
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
                .await
        };
        let confirmation = match tokio::time::timeout(self.confirm_timeout, publish).await {
            Ok(confirmation) => confirmation?,
            Err(_elapsed) => {
                return Err(SessionError::Unconfirmed(format!(
                    "the broker did not confirm a message for {exchange}/{routing_key} within {:?}{}",
                    self.confirm_timeout,
                    blocked_hint(&self.connection_status)
                )));
            }
        };
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

/// Why a confirm may not come, when the broker said so: it blocks publishing connections during
/// a memory or disk alarm.
fn blocked_hint(connection: &lapin::ConnectionStatus) -> &'static str {
    match connection.blocked() {
        true => " (the broker blocks this connection: a memory or disk alarm)",
        false => "",
    }
}
