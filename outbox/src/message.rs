//! What the outbox needs to know of the messages it carries, whatever their type: a message
//! crate implements [`Inbound`] for what it consumes and [`Outbound`] (or [`Publish`]) for what
//! it publishes, and the relay, the inbox and the consumer runner do the rest.

use lapin::BasicProperties;
use lapin::types::ShortString;

use crate::wire;

/// What the outbox must know of a consumed message, whatever the message type.
pub trait Inbound: Clone + std::fmt::Debug + Send + Sync + 'static {
    /// Reads a delivery; `Err(reason)` sends it to the dead-letter queue with that reason.
    fn decode(delivery: &Incoming<'_>) -> Result<Self, String>;
    /// The message's unique id (the AMQP `message_id`): the inbox deduplicates on it.
    fn message_id(&self) -> uuid::Uuid;
    /// The message's type name: the routing key and the AMQP `type`.
    fn message_type(&self) -> &str;
    /// What the message is about: one correlation's messages share a lane (and so are handled
    /// in queue order), and logs name it.
    fn correlation_id(&self) -> uuid::Uuid;
}

/// A delivery's properties and body, read without lapin types leaking into implementors of
/// [`Inbound`].
#[derive(Clone, Copy, Debug)]
pub struct Incoming<'a> {
    properties: &'a BasicProperties,
    body: &'a [u8],
}

impl<'a> Incoming<'a> {
    /// A delivery with these properties and body (the consumer runner builds one per delivery;
    /// tools and tests that read messages off a queue do the same).
    pub fn new(properties: &'a BasicProperties, body: &'a [u8]) -> Incoming<'a> {
        Incoming { properties, body }
    }

    /// The AMQP `message_id` property.
    pub fn message_id(&self) -> Option<&str> {
        self.properties
            .message_id()
            .as_ref()
            .map(ShortString::as_str)
    }

    /// The AMQP `type` property.
    pub fn message_type(&self) -> Option<&str> {
        self.properties.kind().as_ref().map(ShortString::as_str)
    }

    /// The AMQP `correlation_id` property.
    pub fn correlation_id(&self) -> Option<&str> {
        self.properties
            .correlation_id()
            .as_ref()
            .map(ShortString::as_str)
    }

    /// The AMQP `content_type` property.
    pub fn content_type(&self) -> Option<&str> {
        self.properties
            .content_type()
            .as_ref()
            .map(ShortString::as_str)
    }

    /// Whether header `name` is present, whatever its value (a header that is present but
    /// unreadable is a defect to report, not an absence to default).
    pub fn has_header(&self, name: &str) -> bool {
        self.properties
            .headers()
            .as_ref()
            .is_some_and(|table| table.inner().contains_key(name))
    }

    /// The text of header `name`, if present and textual.
    pub fn header_text(&self, name: &str) -> Option<String> {
        wire::header_text(self.properties, name)
    }

    /// The value of header `name`, if present and an integer.
    pub fn header_integer(&self, name: &str) -> Option<i64> {
        wire::header_integer(self.properties, name)
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        self.body
    }
}

/// A message to publish, as the outbox stores it (one row of `outbox_messages`).
#[derive(Clone, Debug, PartialEq)]
pub struct NewMessage {
    /// The AMQP `message_id`; consumers deduplicate on it.
    pub id: uuid::Uuid,
    /// The AMQP `type` and routing key.
    pub message_type: String,
    /// The AMQP `correlation_id`: what the message is about.
    pub correlation_id: uuid::Uuid,
    /// The message whose handling produced this one ([`crate::headers::CAUSATION_ID`]).
    pub causation_id: Option<uuid::Uuid>,
    /// When the message was produced ([`crate::headers::OCCURRED_AT`], and the AMQP
    /// `timestamp` in seconds).
    pub occurred_at: chrono::DateTime<chrono::Utc>,
    /// Extra AMQP headers, each a JSON string (published as text) or integer (published as a
    /// 64-bit integer), e.g. a schema version.
    pub headers: serde_json::Map<String, serde_json::Value>,
    /// The body, as JSON.
    pub payload: serde_json::Value,
}

/// Anything that can be written to the outbox.
pub trait Outbound {
    /// The outbox row this stands for.
    fn to_new_message(&self) -> Result<NewMessage, serde_json::Error>;
}

impl Outbound for NewMessage {
    fn to_new_message(&self) -> Result<NewMessage, serde_json::Error> {
        Ok(self.clone())
    }
}

/// A message type that can wrap a value of itself into a new outbox message (fresh id,
/// produced now) caused by another message: what [`crate::enqueue_message`] needs. A message
/// crate implements it for each of its types.
pub trait Publish {
    /// The message crate's id type (a UUID newtype): the causation id taken, the id returned.
    type Id: From<uuid::Uuid>;

    /// A new message carrying `self`, caused by `causation_id`.
    fn new_message(&self, causation_id: Option<Self::Id>) -> Result<NewMessage, serde_json::Error>;
}
