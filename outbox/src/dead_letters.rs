//! Dead letters as an operator's tool: list what sits in a service's dead-letter queues, with
//! the reason, the attempts, the headers and the payload; move some or all of it back to the
//! queue it came from once the cause is fixed (redrive); or throw it away (discard).
//!
//! Every dead letter of queue `q` sits in `q.dlq` ([`crate::dead_letter_queue`]), put there by
//! the consumer runner (undecodable, refused, out of attempts: header
//! [`DEAD_LETTER_REASON`]) or by the broker (a message that exceeded the queue's delivery
//! limit: header `x-death`). A queue is read by consuming it without acknowledging: what is
//! kept goes back to the queue when the browsing channel closes. So a listing shows the queue
//! as it is, in its order, and leaves it so.
//!
//! Redriving is safe because every consumer is idempotent: a redriven message that was in fact
//! applied before is recognised by the inbox (same message id) and changes nothing. It goes back
//! the way a retry does — through the first retry delay into its own queue only, not to the
//! other subscribers of its type — under this service's broker user, with the sender validated
//! when it first arrived kept in [`ORIGINAL_USER_ID`] (a forged message redriven is refused
//! again), and with a fresh set of attempts.
//!
//! Operations of one [`DeadLetterQueues`] run one at a time. Two processes browsing the same
//! dead-letter queue at once each see only what the other does not hold at that moment.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation, Connection};
use serde_json::{Map, Value};
use tokio::sync::Mutex;

use crate::broker::Broker;
use crate::headers::{
    ATTEMPT, DEAD_LETTER_REASON, DEAD_LETTERED_AT, LAST_ERROR, ORIGINAL_USER_ID, REDRIVEN,
};
use crate::stats::DEAD_LETTERS;
use crate::topology::dead_letter_queue;
use crate::wire;

/// How long a browse waits for the next message before it concludes the queue has no more.
const QUIET_PERIOD: Duration = Duration::from_secs(1);

/// The most messages one browse holds unacknowledged (AMQP's prefetch is 16 bits).
const MOST_HELD: u32 = 65_535;

/// Headers the broker adds when it dead-letters, and ours that describe one dead-lettering:
/// removed when a message is redriven, so that its next life starts clean.
const DEATH_HEADERS: &[&str] = &[
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
    "x-delivery-count",
    DEAD_LETTER_REASON,
    DEAD_LETTERED_AT,
    ATTEMPT,
    LAST_ERROR,
];

/// Why an operation on dead letters failed.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    /// The broker failed or refused (its reason names what).
    #[error("broker: {0}")]
    Broker(#[from] lapin::Error),
    /// The queue is not one of this service's.
    #[error("{0} is not a queue of this service")]
    UnknownQueue(String),
    /// The broker did not confirm a redriven message.
    #[error("the broker did not take a redriven message back: {0}")]
    Unconfirmed(String),
}

/// One dead letter, as an operator sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct DeadLetter {
    /// The queue it was dead-lettered from (its dead-letter queue is `queue.dlq`).
    pub queue: String,
    /// What identifies it in its queue: the AMQP `message_id`, or, for a message without one
    /// (injected by hand, say), `sha256:` and the start of its body's digest.
    pub id: String,
    /// The AMQP `type` property.
    pub message_type: Option<String>,
    /// The AMQP `correlation_id` property (the order id in the order system).
    pub correlation_id: Option<String>,
    /// Why it was dead-lettered.
    pub reason: String,
    /// When it was dead-lettered, RFC 3339 (when known).
    pub dead_lettered_at: Option<String>,
    /// The attempts its handler made (`x-attempt`; 1 for a message that never was retried).
    pub attempts: u32,
    /// How many times it was redriven before.
    pub redriven: u32,
    /// Who sent it, as far as the broker and the consumer knew (unvalidated: it may be why it
    /// is here).
    pub sender: Option<String>,
    /// Every header, as JSON.
    pub headers: Map<String, Value>,
    /// The body: its JSON, or its text when it is not JSON.
    pub payload: Value,
}

/// Which dead letters an operation applies to: those matching every criterion given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only from this queue.
    pub queue: Option<String>,
    /// Only of this message type.
    pub message_type: Option<String>,
    /// Only those whose reason contains this text (ignoring case).
    pub reason: Option<String>,
    /// Only these ids ([`DeadLetter::id`]); all when empty.
    pub ids: Vec<String>,
}

impl Filter {
    /// Whether the filter names anything at all (an empty one matches every dead letter).
    pub fn is_empty(&self) -> bool {
        self.queue.is_none()
            && self.message_type.is_none()
            && self.reason.is_none()
            && self.ids.is_empty()
    }

    fn matches(&self, dead_letter: &DeadLetter) -> bool {
        let reason_matches = self.reason.as_ref().is_none_or(|wanted| {
            dead_letter
                .reason
                .to_lowercase()
                .contains(&wanted.to_lowercase())
        });
        self.message_type
            .as_ref()
            .is_none_or(|wanted| dead_letter.message_type.as_ref() == Some(wanted))
            && reason_matches
            && (self.ids.is_empty() || self.ids.contains(&dead_letter.id))
    }
}

/// A listing: how many dead letters each queue holds, and the first matches.
#[derive(Clone, Debug, PartialEq)]
pub struct Listing {
    /// Every queue asked about, with the number of messages in its dead-letter queue.
    pub depths: Vec<(String, u32)>,
    /// The dead letters that matched, in queue order, at most the limit asked for.
    pub dead_letters: Vec<DeadLetter>,
    /// Whether more matched than the limit.
    pub truncated: bool,
}

/// What an operator does with dead letters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposal {
    /// Send them back to their queue, with fresh attempts.
    Redrive,
    /// Delete them.
    Discard,
}

/// What to do with a matching dead letter while browsing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Keep,
    Redrive,
    Discard,
}

/// The dead-letter queues of a service's queues, and what an operator can do with them.
pub struct DeadLetterQueues {
    broker: Broker,
    queues: Vec<String>,
    /// One operation at a time: two browses in one process would hide messages from each other.
    busy: Mutex<()>,
}

impl DeadLetterQueues {
    /// The dead-letter queues of `queues` (those the service consumes) on `broker`. The
    /// broker user needs `read` on the `.dlq` queues and `write` on the first retry exchange
    /// (which the generated provisioning gives every consumer).
    pub fn new(broker: Broker, queues: Vec<String>) -> DeadLetterQueues {
        DeadLetterQueues {
            broker,
            queues,
            busy: Mutex::new(()),
        }
    }

    /// The queues whose dead letters this covers.
    pub fn queues(&self) -> &[String] {
        &self.queues
    }

    /// How many messages each queue's dead-letter queue holds (ready ones: a browse in progress
    /// elsewhere holds some back for a moment).
    pub async fn depths(&self) -> Result<Vec<(String, u32)>, DeadLetterError> {
        let connection = self.broker.connect("dead letters").await?;
        let depths = self.depths_on(&connection, &self.queues).await;
        close(&connection).await;
        depths
    }

    /// Sets the `dead_letters{queue}` gauge of every queue.
    pub async fn refresh_gauges(&self) -> Result<(), DeadLetterError> {
        set_gauges(&self.depths().await?);
        Ok(())
    }

    /// Up to `limit` dead letters matching `filter`, in queue order, and every queue's depth.
    pub async fn list(&self, filter: &Filter, limit: usize) -> Result<Listing, DeadLetterError> {
        let _busy = self.busy.lock().await;
        let queues = self.selected(filter)?;
        let connection = self.broker.connect("dead letters").await?;
        let listed = async {
            let depths = self.depths_on(&connection, &queues).await?;
            set_gauges(&depths);
            let mut dead_letters = Vec::new();
            let mut truncated = false;
            for (queue, depth) in &depths {
                let found = self
                    .browse(&connection, queue, *depth, filter, Action::Keep)
                    .await?;
                for dead_letter in found {
                    match dead_letters.len() < limit {
                        true => dead_letters.push(dead_letter),
                        false => truncated = true,
                    }
                }
            }
            Ok(Listing {
                depths,
                dead_letters,
                truncated,
            })
        }
        .await;
        close(&connection).await;
        listed
    }

    /// Sends every dead letter matching `filter` back to its queue; returns how many.
    pub async fn redrive(&self, filter: &Filter) -> Result<usize, DeadLetterError> {
        self.dispose(filter, Disposal::Redrive).await
    }

    /// Deletes every dead letter matching `filter`; returns how many.
    pub async fn discard(&self, filter: &Filter) -> Result<usize, DeadLetterError> {
        self.dispose(filter, Disposal::Discard).await
    }

    /// Redrives or discards every dead letter matching `filter`; returns how many.
    pub async fn dispose(
        &self,
        filter: &Filter,
        disposal: Disposal,
    ) -> Result<usize, DeadLetterError> {
        let action = match disposal {
            Disposal::Redrive => Action::Redrive,
            Disposal::Discard => Action::Discard,
        };
        self.act(filter, action).await
    }

    async fn act(&self, filter: &Filter, action: Action) -> Result<usize, DeadLetterError> {
        let _busy = self.busy.lock().await;
        let queues = self.selected(filter)?;
        let connection = self.broker.connect("dead letters").await?;
        let acted = async {
            let mut count = 0;
            for (queue, depth) in self.depths_on(&connection, &queues).await? {
                count += self
                    .browse(&connection, &queue, depth, filter, action)
                    .await?
                    .len();
            }
            Ok(count)
        }
        .await;
        close(&connection).await;
        if let Ok(count) = &acted
            && *count > 0
        {
            let _ = self.refresh_gauges().await;
        }
        acted
    }

    /// The queues `filter` selects: one of ours, or all.
    fn selected(&self, filter: &Filter) -> Result<Vec<String>, DeadLetterError> {
        match &filter.queue {
            None => Ok(self.queues.clone()),
            Some(queue) if self.queues.contains(queue) => Ok(vec![queue.clone()]),
            Some(queue) => Err(DeadLetterError::UnknownQueue(queue.clone())),
        }
    }

    async fn depths_on(
        &self,
        connection: &Connection,
        queues: &[String],
    ) -> Result<Vec<(String, u32)>, DeadLetterError> {
        let channel = connection.create_channel().await?;
        let mut depths = Vec::with_capacity(queues.len());
        for queue in queues {
            let declared = channel
                .queue_declare(
                    dead_letter_queue(queue).as_str().into(),
                    QueueDeclareOptions {
                        passive: true,
                        durable: true,
                        ..QueueDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await?;
            depths.push((queue.clone(), declared.message_count()));
        }
        let _ = channel.close(200, "counted".into()).await;
        Ok(depths)
    }

    /// Reads `queue`'s dead-letter queue (about `depth` messages) on a channel of its own,
    /// applies `action` to the messages matching `filter` and returns them. Everything not
    /// acted on goes back when the channel closes.
    async fn browse(
        &self,
        connection: &Connection,
        queue: &str,
        depth: u32,
        filter: &Filter,
        action: Action,
    ) -> Result<Vec<DeadLetter>, DeadLetterError> {
        if depth == 0 {
            return Ok(Vec::new());
        }
        let channel = connection.create_channel().await?;
        let browsed = self.browse_on(&channel, queue, depth, filter, action).await;
        let _ = channel.close(200, "browsed".into()).await;
        browsed
    }

    async fn browse_on(
        &self,
        channel: &Channel,
        queue: &str,
        depth: u32,
        filter: &Filter,
        action: Action,
    ) -> Result<Vec<DeadLetter>, DeadLetterError> {
        let held = u16::try_from(depth.min(MOST_HELD)).unwrap_or(u16::MAX);
        channel.basic_qos(held, BasicQosOptions::default()).await?;
        if action == Action::Redrive {
            // Redriven messages are published on the browsing channel, confirmed.
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
        }
        let mut consumer = channel
            .basic_consume(
                dead_letter_queue(queue).as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let mut matched = Vec::new();
        // What was there when the browse began; anything arriving meanwhile waits for the next.
        for _ in 0..depth {
            let delivery = match tokio::time::timeout(QUIET_PERIOD, consumer.next()).await {
                Ok(Some(delivery)) => delivery?,
                Ok(None) | Err(_) => break,
            };
            let dead_letter = describe(queue, &delivery);
            if !filter.matches(&dead_letter) {
                continue;
            }
            match action {
                Action::Redrive => {
                    self.send_back(channel, queue, &delivery).await?;
                    delivery.ack(BasicAckOptions::default()).await?;
                }
                Action::Discard => {
                    delivery.ack(BasicAckOptions::default()).await?;
                }
                Action::Keep => {}
            }
            matched.push(dead_letter);
        }
        Ok(matched)
    }

    /// Publishes a dead letter back to `queue` through the first retry delay, confirmed.
    async fn send_back(
        &self,
        channel: &Channel,
        queue: &str,
        delivery: &Delivery,
    ) -> Result<(), DeadLetterError> {
        let properties = redriven_properties(&delivery.properties, self.broker.user());
        let exchange = self.broker.topology().retry_exchange(1);
        let confirmation = channel
            .basic_publish(
                wire::short_string(&exchange),
                wire::short_string(queue),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &delivery.data,
                properties,
            )
            .await?
            .await?;
        match confirmation {
            Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
            Confirmation::Ack(Some(returned)) => Err(DeadLetterError::Unconfirmed(format!(
                "{exchange} returned it: {}",
                returned.reply_text
            ))),
            Confirmation::Nack(_) => Err(DeadLetterError::Unconfirmed(format!(
                "{exchange} nacked it"
            ))),
        }
    }
}

/// The properties of a dead letter sent back: its death headers removed (a fresh set of
/// attempts), the count of redrives raised, published under our own user with the sender it
/// was first validated as (or claimed to be) kept in [`ORIGINAL_USER_ID`].
fn redriven_properties(properties: &BasicProperties, own_user: &str) -> BasicProperties {
    let mut headers = properties.headers().clone().unwrap_or_default();
    let sender = wire::header_text(properties, ORIGINAL_USER_ID).or_else(|| {
        properties
            .user_id()
            .as_ref()
            .map(|user| user.as_str().to_owned())
    });
    let redriven = wire::header_integer(properties, REDRIVEN).unwrap_or(0);
    let mut kept = FieldTable::default();
    for (name, value) in headers.inner() {
        if !DEATH_HEADERS.contains(&name.as_str()) {
            kept.insert(name.clone(), value.clone());
        }
    }
    headers = kept;
    headers.insert(REDRIVEN.into(), AMQPValue::LongLongInt(redriven + 1));
    if let Some(sender) = sender {
        headers.insert(ORIGINAL_USER_ID.into(), wire::long_string(&sender));
    }
    properties
        .clone()
        .with_headers(headers)
        .with_user_id(wire::short_string(own_user))
}

/// What an operator needs to know of a delivery from `queue`'s dead-letter queue.
fn describe(queue: &str, delivery: &Delivery) -> DeadLetter {
    let properties = &delivery.properties;
    let headers: Map<String, Value> = properties
        .headers()
        .as_ref()
        .map(|table| {
            table
                .inner()
                .iter()
                .map(|(name, value)| (name.as_str().to_owned(), json_of(value)))
                .collect()
        })
        .unwrap_or_default();
    let last_death = headers
        .get("x-death")
        .and_then(Value::as_array)
        .and_then(|deaths| deaths.first());
    let reason = match wire::header_text(properties, DEAD_LETTER_REASON) {
        Some(reason) => reason,
        None => match last_death
            .and_then(|death| death.get("reason"))
            .and_then(Value::as_str)
        {
            Some("delivery_limit") => format!(
                "the broker dead-lettered it after its delivery limit: it was handed out again \
                 and again without being settled ({queue})"
            ),
            Some(other) => format!("the broker dead-lettered it: {other}"),
            None => "unknown (no reason recorded)".to_owned(),
        },
    };
    let dead_lettered_at = wire::header_text(properties, DEAD_LETTERED_AT).or_else(|| {
        last_death
            .and_then(|death| death.get("time"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    let id = match properties.message_id() {
        Some(id) if !id.as_str().is_empty() => id.as_str().to_owned(),
        _ => {
            use sha2::Digest;
            let digest = sha2::Sha256::digest(&delivery.data);
            let hex: String = digest[..8]
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect();
            format!("sha256:{hex}")
        }
    };
    DeadLetter {
        queue: queue.to_owned(),
        id,
        message_type: properties
            .kind()
            .as_ref()
            .map(|kind| kind.as_str().to_owned()),
        correlation_id: properties
            .correlation_id()
            .as_ref()
            .map(|id| id.as_str().to_owned()),
        reason,
        dead_lettered_at,
        attempts: wire::attempt(properties),
        redriven: wire::header_integer(properties, REDRIVEN)
            .and_then(|count| u32::try_from(count).ok())
            .unwrap_or(0),
        sender: wire::header_text(properties, ORIGINAL_USER_ID).or_else(|| {
            properties
                .user_id()
                .as_ref()
                .map(|user| user.as_str().to_owned())
        }),
        headers,
        payload: serde_json::from_slice(&delivery.data).unwrap_or_else(|_| {
            Value::String(String::from_utf8_lossy(&delivery.data).into_owned())
        }),
    }
}

/// An AMQP header value as JSON (tables as objects, arrays as arrays, timestamps as RFC 3339).
fn json_of(value: &AMQPValue) -> Value {
    match value {
        AMQPValue::Boolean(flag) => Value::Bool(*flag),
        AMQPValue::ShortShortInt(number) => (*number).into(),
        AMQPValue::ShortShortUInt(number) => (*number).into(),
        AMQPValue::ShortInt(number) => (*number).into(),
        AMQPValue::ShortUInt(number) => (*number).into(),
        AMQPValue::LongInt(number) => (*number).into(),
        AMQPValue::LongUInt(number) => (*number).into(),
        AMQPValue::LongLongInt(number) => (*number).into(),
        AMQPValue::Float(number) => {
            serde_json::Number::from_f64(f64::from(*number)).map_or(Value::Null, Value::Number)
        }
        AMQPValue::Double(number) => {
            serde_json::Number::from_f64(*number).map_or(Value::Null, Value::Number)
        }
        AMQPValue::DecimalValue(decimal) => Value::String(format!("{decimal:?}")),
        AMQPValue::ShortString(text) => Value::String(text.as_str().to_owned()),
        AMQPValue::LongString(text) => {
            Value::String(String::from_utf8_lossy(text.as_bytes()).into_owned())
        }
        AMQPValue::ByteArray(bytes) => {
            Value::String(String::from_utf8_lossy(bytes.as_slice()).into_owned())
        }
        AMQPValue::FieldArray(items) => {
            Value::Array(items.as_slice().iter().map(json_of).collect())
        }
        AMQPValue::Timestamp(seconds) => i64::try_from(*seconds)
            .ok()
            .and_then(|seconds| chrono::DateTime::from_timestamp(seconds, 0))
            .map_or(Value::Null, |time| {
                Value::String(crate::headers::format_occurred_at(time))
            }),
        AMQPValue::FieldTable(table) => Value::Object(
            table
                .inner()
                .iter()
                .map(|(name, value)| (name.as_str().to_owned(), json_of(value)))
                .collect::<BTreeMap<_, _>>()
                .into_iter()
                .collect(),
        ),
        AMQPValue::Void => Value::Null,
    }
}

/// Sets the `dead_letters{queue}` gauge of each queue to its depth.
fn set_gauges(depths: &[(String, u32)]) {
    for (queue, depth) in depths {
        metrics::gauge!(DEAD_LETTERS, "queue" => queue.clone()).set(f64::from(*depth));
    }
}

/// Refreshes the `dead_letters{queue}` gauges every `interval` until `shutdown`.
pub async fn run_gauges(
    queues: std::sync::Arc<DeadLetterQueues>,
    interval: Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        if let Err(cause) = queues.refresh_gauges().await {
            tracing::debug!(%cause, "could not count the dead letters; will try again");
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

async fn close(connection: &Connection) {
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        connection.close(200, "dead letters done".into()),
    )
    .await;
}
