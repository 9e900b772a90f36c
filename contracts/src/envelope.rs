//! The envelope every message travels in, and how it maps onto a broker message.
//!
//! On the wire the body is the payload's JSON alone (the seed's `Payload` column, published as
//! stored); the envelope's other fields travel as AMQP properties (`message_id`, `type`,
//! `correlation_id`, `content_type`, `timestamp`) and headers ([`HEADER_CAUSATION_ID`],
//! [`HEADER_OCCURRED_AT`], [`HEADER_SCHEMA_VERSION`]). [`WireMessage::decode`] reads them back and
//! rejects anything missing or malformed with a reason fit for a dead-letter header.
//!
//! The outbox does the transport: an [`Envelope`] is an [`outbox::Outbound`] (its schema version
//! one extra header), and a decoded `Envelope<AnyMessage>` an [`outbox::Inbound`], read through
//! [`WireMessage`].

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};

use crate::messages::{AnyMessage, DecodeError, Message, MessageType};
use crate::values::{MessageId, OrderId};

/// The schema version this build writes and the newest it reads.
pub const SCHEMA_VERSION: u16 = 1;
/// Header: the payload's schema version (contracts' own header; the outbox carries it as one
/// of a message's extra headers).
pub const HEADER_SCHEMA_VERSION: &str = "x-schema-version";

// The transport's own names, defined by the outbox, under the names this crate always gave them.
pub use outbox::headers::{
    ATTEMPT as HEADER_ATTEMPT, CAUSATION_ID as HEADER_CAUSATION_ID, CONTENT_TYPE,
    DEAD_LETTER_REASON as HEADER_DEAD_LETTER_REASON, LAST_ERROR as HEADER_LAST_ERROR,
    OCCURRED_AT as HEADER_OCCURRED_AT, ORIGINAL_QUEUE as HEADER_ORIGINAL_QUEUE,
    ORIGINAL_USER_ID as HEADER_ORIGINAL_USER_ID, format_occurred_at,
};

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

impl From<&Envelope> for outbox::NewMessage {
    /// The outbox message of an envelope: its metadata, the schema version as
    /// [`HEADER_SCHEMA_VERSION`], the payload as the body.
    fn from(envelope: &Envelope) -> outbox::NewMessage {
        let mut headers = serde_json::Map::new();
        headers.insert(
            HEADER_SCHEMA_VERSION.to_owned(),
            serde_json::Value::from(envelope.schema_version),
        );
        outbox::NewMessage {
            id: envelope.message_id.as_uuid(),
            message_type: envelope.message_type.name().to_owned(),
            correlation_id: envelope.correlation_id.as_uuid(),
            causation_id: envelope.causation_id.map(|id| id.as_uuid()),
            occurred_at: envelope.occurred_at,
            headers,
            payload: envelope.payload.clone(),
        }
    }
}

impl outbox::Outbound for Envelope {
    fn to_new_message(&self) -> Result<outbox::NewMessage, serde_json::Error> {
        Ok(outbox::NewMessage::from(self))
    }
}

impl outbox::Inbound for Envelope<AnyMessage> {
    /// Reads the delivery through [`WireMessage::decode`]; its error is the dead-letter reason.
    fn decode(delivery: &outbox::Incoming<'_>) -> Result<Self, String> {
        let causation_id = delivery.header_text(HEADER_CAUSATION_ID);
        let occurred_at = delivery.header_text(HEADER_OCCURRED_AT);
        // Present but not an integer is a defect, reported as an unsupported version.
        let schema_version = delivery
            .has_header(HEADER_SCHEMA_VERSION)
            .then(|| delivery.header_integer(HEADER_SCHEMA_VERSION).unwrap_or(-1));
        WireMessage {
            message_id: delivery.message_id(),
            message_type: delivery.message_type(),
            correlation_id: delivery.correlation_id(),
            content_type: delivery.content_type(),
            causation_id: causation_id.as_deref(),
            occurred_at: occurred_at.as_deref(),
            schema_version,
            body: delivery.body(),
        }
        .decode()
        .map_err(|error| error.to_string())
    }

    fn message_id(&self) -> uuid::Uuid {
        self.message_id.as_uuid()
    }

    fn message_type(&self) -> &str {
        self.message_type.name()
    }

    fn correlation_id(&self) -> uuid::Uuid {
        self.correlation_id.as_uuid()
    }
}
