//! The mapping between envelopes and AMQP messages — the only code that knows both the
//! contracts and lapin's property types.

use contracts::envelope::{
    CONTENT_TYPE, HEADER_ATTEMPT, HEADER_CAUSATION_ID, HEADER_OCCURRED_AT, HEADER_SCHEMA_VERSION,
    SCHEMA_VERSION, WireMessage, format_occurred_at,
};
use contracts::{AnyMessage, DecodeError, Envelope};
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};

use crate::entity::outbox_message;

/// AMQP delivery mode of messages that survive a broker restart.
const PERSISTENT: u8 = 2;

/// A message ready to publish: routing key, properties, body.
#[derive(Clone, Debug)]
pub struct Outgoing {
    /// The routing key: the message type name.
    pub routing_key: String,
    /// AMQP properties carrying the envelope's metadata.
    pub properties: BasicProperties,
    /// The payload JSON.
    pub body: Vec<u8>,
}

/// The AMQP form of an outbox row.
pub fn outgoing(row: &outbox_message::Model) -> Outgoing {
    let schema_version = row
        .headers
        .get("schema_version")
        .and_then(serde_json::Value::as_i64)
        .unwrap_or(i64::from(SCHEMA_VERSION));
    let metadata = Metadata {
        message_id: row.id,
        message_type: &row.message_type,
        correlation_id: row.correlation_id,
        causation_id: row.causation_id,
        occurred_at: row.occurred_at,
        schema_version,
    };
    // A jsonb value always serialises.
    build(
        metadata,
        serde_json::to_vec(&row.payload).unwrap_or_default(),
    )
}

/// The AMQP form of an envelope (for tools and tests that publish without an outbox).
pub fn outgoing_envelope(envelope: &Envelope) -> Outgoing {
    let metadata = Metadata {
        message_id: envelope.message_id.as_uuid(),
        message_type: envelope.message_type.name(),
        correlation_id: envelope.correlation_id.as_uuid(),
        causation_id: envelope.causation_id.map(|id| id.as_uuid()),
        occurred_at: envelope.occurred_at,
        schema_version: i64::from(envelope.schema_version),
    };
    build(
        metadata,
        serde_json::to_vec(&envelope.payload).unwrap_or_default(),
    )
}

struct Metadata<'a> {
    message_id: uuid::Uuid,
    message_type: &'a str,
    correlation_id: uuid::Uuid,
    causation_id: Option<uuid::Uuid>,
    occurred_at: chrono::DateTime<chrono::Utc>,
    schema_version: i64,
}

fn build(metadata: Metadata<'_>, body: Vec<u8>) -> Outgoing {
    let mut headers = FieldTable::default();
    if let Some(causation_id) = metadata.causation_id {
        headers.insert(
            HEADER_CAUSATION_ID.into(),
            long_string(&causation_id.to_string()),
        );
    }
    headers.insert(
        HEADER_OCCURRED_AT.into(),
        long_string(&format_occurred_at(metadata.occurred_at)),
    );
    headers.insert(
        HEADER_SCHEMA_VERSION.into(),
        AMQPValue::LongLongInt(metadata.schema_version),
    );
    let properties = BasicProperties::default()
        .with_delivery_mode(PERSISTENT)
        .with_content_type(CONTENT_TYPE.into())
        .with_message_id(metadata.message_id.to_string().into())
        .with_type(short_string(metadata.message_type))
        .with_correlation_id(metadata.correlation_id.to_string().into())
        .with_timestamp(u64::try_from(metadata.occurred_at.timestamp()).unwrap_or(0))
        .with_headers(headers);
    Outgoing {
        routing_key: metadata.message_type.to_owned(),
        properties,
        body,
    }
}

/// The envelope an outbox row stands for (used by tests and tools that read the outbox).
pub fn envelope_of(row: &outbox_message::Model) -> Result<Envelope<AnyMessage>, DecodeError> {
    let outgoing = outgoing(row);
    decode(&outgoing.properties, &outgoing.body)
}

/// Reads a delivery's properties and body as an envelope; every defect is a [`DecodeError`]
/// whose text is the dead-letter reason.
pub fn decode(
    properties: &BasicProperties,
    body: &[u8],
) -> Result<Envelope<AnyMessage>, DecodeError> {
    let headers = properties.headers().as_ref();
    let header_text = |name: &str| {
        headers
            .and_then(|table| table.inner().get(name))
            .and_then(value_text)
    };
    let causation_id = header_text(HEADER_CAUSATION_ID);
    let occurred_at = header_text(HEADER_OCCURRED_AT);
    let schema_version = headers
        .and_then(|table| table.inner().get(HEADER_SCHEMA_VERSION))
        .map(|value| value_integer(value).unwrap_or(-1));
    WireMessage {
        message_id: properties.message_id().as_ref().map(ShortString::as_str),
        message_type: properties.kind().as_ref().map(ShortString::as_str),
        correlation_id: properties
            .correlation_id()
            .as_ref()
            .map(ShortString::as_str),
        content_type: properties.content_type().as_ref().map(ShortString::as_str),
        causation_id: causation_id.as_deref(),
        occurred_at: occurred_at.as_deref(),
        schema_version,
        body,
    }
    .decode()
}

/// Which delivery attempt a message is on (1 unless a retry set [`HEADER_ATTEMPT`]).
pub fn attempt(properties: &BasicProperties) -> u32 {
    properties
        .headers()
        .as_ref()
        .and_then(|table| table.inner().get(HEADER_ATTEMPT))
        .and_then(value_integer)
        .and_then(|attempt| u32::try_from(attempt).ok())
        .filter(|&attempt| attempt >= 1)
        .unwrap_or(1)
}

/// The text of header `name`, if present and textual.
pub fn header_text(properties: &BasicProperties, name: &str) -> Option<String> {
    properties
        .headers()
        .as_ref()
        .and_then(|table| table.inner().get(name))
        .and_then(value_text)
}

/// `properties` with extra headers set (replacing any of the same name).
pub fn with_headers(properties: &BasicProperties, extra: &[(&str, AMQPValue)]) -> BasicProperties {
    let mut headers = properties.headers().clone().unwrap_or_default();
    for (name, value) in extra {
        headers.insert((*name).into(), value.clone());
    }
    properties.clone().with_headers(headers)
}

/// A header value holding text.
pub fn long_string(text: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(text.as_bytes().to_vec()))
}

/// A short string from text that may be too long for one (255 bytes): truncated, never a panic.
pub fn short_string(text: &str) -> ShortString {
    let mut end = text.len().min(255);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    ShortString::try_new(&text[..end]).unwrap_or_else(|_| ShortString::from(String::new()))
}

fn value_text(value: &AMQPValue) -> Option<String> {
    match value {
        AMQPValue::LongString(text) => Some(String::from_utf8_lossy(text.as_bytes()).into_owned()),
        AMQPValue::ShortString(text) => Some(text.as_str().to_owned()),
        _ => None,
    }
}

fn value_integer(value: &AMQPValue) -> Option<i64> {
    match *value {
        AMQPValue::ShortShortInt(number) => Some(number.into()),
        AMQPValue::ShortShortUInt(number) => Some(number.into()),
        AMQPValue::ShortInt(number) => Some(number.into()),
        AMQPValue::ShortUInt(number) => Some(number.into()),
        AMQPValue::LongInt(number) => Some(number.into()),
        AMQPValue::LongUInt(number) => Some(number.into()),
        AMQPValue::LongLongInt(number) => Some(number),
        _ => None,
    }
}
