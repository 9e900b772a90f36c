//! The envelope every message travels in, and how it maps onto a broker message.
//!
//! On the wire the body is the payload's JSON alone (the seed's `Payload` column, published as
//! stored); the envelope's other fields travel as AMQP properties (`message_id`, `type`,
//! `correlation_id`, `content_type`, `timestamp`) and headers ([`HEADER_CAUSATION_ID`],
//! [`HEADER_OCCURRED_AT`], [`HEADER_SCHEMA_VERSION`]). [`WireMessage::decode`] reads them back and
//! rejects anything missing or malformed with a reason fit for a dead-letter header.

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use serde::{Deserialize, Serialize};

use crate::messages::{AnyMessage, DecodeError, Message, MessageType};
use crate::values::{MessageId, OrderId};

/// The schema version this build writes and the newest it reads.
pub const SCHEMA_VERSION: u16 = 1;
/// The content type of every body.
pub const CONTENT_TYPE: &str = "application/json";
/// Header: the id of the message whose handling produced this one.
pub const HEADER_CAUSATION_ID: &str = "x-causation-id";
/// Header: when the message was produced, RFC 3339 UTC with microseconds (AMQP's own
/// `timestamp` property has only seconds).
pub const HEADER_OCCURRED_AT: &str = "x-occurred-at";
/// Header: the payload's schema version.
pub const HEADER_SCHEMA_VERSION: &str = "x-schema-version";
/// Header: which delivery attempt this is (absent means 1). Set by the consumer runner when it
/// schedules a retry.
pub const HEADER_ATTEMPT: &str = "x-attempt";
/// Header: why the previous attempt failed (on retried messages).
pub const HEADER_LAST_ERROR: &str = "x-last-error";
/// Header: why a message was dead-lettered (on messages in a `.dlq` queue).
pub const HEADER_DEAD_LETTER_REASON: &str = "x-dead-letter-reason";
/// Header: the AMQP `user_id` of the message's original sender, on a message a consumer
/// republished (a retry, a dead letter) under its own `user_id`.
pub const HEADER_ORIGINAL_USER_ID: &str = "x-original-user-id";
/// Header: the queue a dead-lettered or retried message came from.
pub const HEADER_ORIGINAL_QUEUE: &str = "x-original-queue";

/// A message with its metadata.
///
/// `P` is the payload: raw JSON (`serde_json::Value`, the default) on the way into the outbox,
/// [`AnyMessage`] after decoding.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope<P = serde_json::Value> {
    /// Unique id (UUID v7); consumers deduplicate on it.
    pub message_id: MessageId,
    /// The payload's type; its name is the routing key.
    #[serde(rename = "type")]
    pub message_type: MessageType,
    /// The order the message is about.
    pub correlation_id: OrderId,
    /// The message whose handling produced this one, if any.
    pub causation_id: Option<MessageId>,
    /// When the message was produced (UTC).
    pub occurred_at: DateTime<Utc>,
    /// Schema version of the payload.
    pub schema_version: u16,
    /// The message itself.
    pub payload: P,
}

impl Envelope {
    /// Wraps `message` in a new envelope with a fresh id, produced now, caused by `causation_id`.
    pub fn new<M: Message>(
        message: &M,
        causation_id: Option<MessageId>,
    ) -> Result<Envelope, serde_json::Error> {
        Ok(Envelope {
            message_id: MessageId::generate(),
            message_type: M::TYPE,
            correlation_id: message.order_id(),
            causation_id,
            occurred_at: now(),
            schema_version: SCHEMA_VERSION,
            payload: serde_json::to_value(message)?,
        })
    }
}

/// The current time at the precision every store here keeps (PostgreSQL: microseconds), so
/// that a time survives a round trip through a database or a header unchanged.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

impl Envelope {
    /// Wraps any message in a new envelope (see [`Envelope::new`]).
    pub fn from_any(
        message: &AnyMessage,
        causation_id: Option<MessageId>,
    ) -> Result<Envelope, serde_json::Error> {
        Ok(Envelope {
            message_id: MessageId::generate(),
            message_type: message.message_type(),
            correlation_id: message.order_id(),
            causation_id,
            occurred_at: now(),
            schema_version: SCHEMA_VERSION,
            payload: message.to_json()?,
        })
    }
}

/// `occurred_at` as written in [`HEADER_OCCURRED_AT`].
pub fn format_occurred_at(occurred_at: DateTime<Utc>) -> String {
    occurred_at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// What a broker delivery carries, read off its properties and headers by the transport
/// (which is the only code that knows the AMQP library).
#[derive(Clone, Copy, Debug, Default)]
pub struct WireMessage<'a> {
    /// The `message_id` property.
    pub message_id: Option<&'a str>,
    /// The `type` property.
    pub message_type: Option<&'a str>,
    /// The `correlation_id` property.
    pub correlation_id: Option<&'a str>,
    /// The `content_type` property.
    pub content_type: Option<&'a str>,
    /// The [`HEADER_CAUSATION_ID`] header.
    pub causation_id: Option<&'a str>,
    /// The [`HEADER_OCCURRED_AT`] header.
    pub occurred_at: Option<&'a str>,
    /// The [`HEADER_SCHEMA_VERSION`] header.
    pub schema_version: Option<i64>,
    /// The body.
    pub body: &'a [u8],
}

impl WireMessage<'_> {
    /// Reads the delivery as an envelope holding a decoded message.
    ///
    /// Required: `message_id`, `type`, `correlation_id` (UUIDs and a known type), a JSON body
    /// of that type whose order id is the correlation id. Optional, checked when present:
    /// content type, causation id, occurred-at (defaults to now), schema version (defaults to
    /// 1; newer than [`SCHEMA_VERSION`] is rejected).
    pub fn decode(&self) -> Result<Envelope<AnyMessage>, DecodeError> {
        let message_id: MessageId = parse_uuid("message_id", self.message_id)?;
        let type_name = self
            .message_type
            .ok_or(DecodeError::MissingHeader("type"))?;
        let message_type = MessageType::from_name(type_name)?;
        let correlation_id: OrderId = parse_uuid("correlation_id", self.correlation_id)?;
        if let Some(content_type) = self.content_type
            && content_type != CONTENT_TYPE
        {
            return Err(invalid(
                "content_type",
                format!("expected {CONTENT_TYPE}, got {content_type:?}"),
            ));
        }
        let causation_id = match self.causation_id {
            None => None,
            Some(text) => Some(parse_uuid(HEADER_CAUSATION_ID, Some(text))?),
        };
        let occurred_at = match self.occurred_at {
            None => now(),
            Some(text) => DateTime::parse_from_rfc3339(text)
                .map_err(|error| invalid(HEADER_OCCURRED_AT, error.to_string()))?
                .with_timezone(&Utc),
        };
        let schema_version = match self.schema_version {
            None => SCHEMA_VERSION,
            Some(version) => u16::try_from(version)
                .ok()
                .filter(|&version| (1..=SCHEMA_VERSION).contains(&version))
                .ok_or_else(|| {
                    invalid(
                        HEADER_SCHEMA_VERSION,
                        format!("version {version} is not supported (1..={SCHEMA_VERSION})"),
                    )
                })?,
        };
        let payload = AnyMessage::decode(message_type, self.body)?;
        if payload.order_id() != correlation_id {
            return Err(DecodeError::CorrelationMismatch {
                correlation: correlation_id,
                payload: payload.order_id(),
            });
        }
        Ok(Envelope {
            message_id,
            message_type,
            correlation_id,
            causation_id,
            occurred_at,
            schema_version,
            payload,
        })
    }
}

fn invalid(name: &'static str, reason: String) -> DecodeError {
    DecodeError::InvalidHeader { name, reason }
}

fn parse_uuid<T: From<uuid::Uuid>>(
    name: &'static str,
    text: Option<&str>,
) -> Result<T, DecodeError> {
    let text = text.ok_or(DecodeError::MissingHeader(name))?;
    uuid::Uuid::parse_str(text)
        .map(T::from)
        .map_err(|error| invalid(name, error.to_string()))
}
