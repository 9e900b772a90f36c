//! The mapping between outbox messages and AMQP messages — the only code that knows lapin's
//! property types. It writes the outbox's own metadata (`message_id`, `type`,
//! `correlation_id`, `content_type`, `timestamp`, [`CAUSATION_ID`], [`OCCURRED_AT`],
//! persistence) and a message's extra headers; message crates read deliveries through
//! [`Incoming`].

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};

use crate::entity::outbox_message;
use crate::headers::{ATTEMPT, CAUSATION_ID, CONTENT_TYPE, OCCURRED_AT, format_occurred_at};
use crate::message::{Inbound, Incoming, NewMessage};

/// AMQP delivery mode of messages that survive a broker restart.
const PERSISTENT: u8 = 2;

/// Header keys that rows written by earlier versions store under another name: before the
/// outbox became generic it wrote `{"schema_version": N}` and published it as
/// `x-schema-version`. Rows still in flight keep their meaning.
const LEGACY_HEADER_KEYS: &[(&str, &str)] = &[("schema_version", "x-schema-version")];

/// A message ready to publish: routing key, properties, body.
#[derive(Clone, Debug)]
pub struct Outgoing {
    /// The routing key: the message type name.
    pub routing_key: String,
    /// AMQP properties carrying the message's metadata.
    pub properties: BasicProperties,
    /// The payload JSON.
    pub body: Vec<u8>,
}

impl From<&outbox_message::Model> for NewMessage {
    /// The message an outbox row stands for (legacy header keys renamed).
    fn from(row: &outbox_message::Model) -> NewMessage {
        let mut headers = row.headers.as_object().cloned().unwrap_or_default();
        for (legacy, current) in LEGACY_HEADER_KEYS {
            if let Some(value) = headers.remove(*legacy) {
                headers.entry(*current).or_insert(value);
            }
        }
        NewMessage {
            id: row.id,
            message_type: row.message_type.clone(),
            correlation_id: row.correlation_id,
            causation_id: row.causation_id,
            occurred_at: row.occurred_at,
            headers,
            payload: row.payload.clone(),
        }
    }
}

/// The AMQP form of a message (the relay publishes rows this way; tools and tests that publish
/// without an outbox do too).
pub fn outgoing(message: &NewMessage) -> Outgoing {
    let mut headers = FieldTable::default();
    for (name, value) in &message.headers {
        headers.insert(name.as_str().into(), header_value(value));
    }
    if let Some(causation_id) = message.causation_id {
        headers.insert(CAUSATION_ID.into(), long_string(&causation_id.to_string()));
    }
    headers.insert(
        OCCURRED_AT.into(),
        long_string(&format_occurred_at(message.occurred_at)),
    );
    let properties = BasicProperties::default()
        .with_delivery_mode(PERSISTENT)
        .with_content_type(CONTENT_TYPE.into())
        .with_message_id(message.id.to_string().into())
        .with_type(short_string(&message.message_type))
        .with_correlation_id(message.correlation_id.to_string().into())
        .with_timestamp(u64::try_from(message.occurred_at.timestamp()).unwrap_or(0))
        .with_headers(headers);
    Outgoing {
        routing_key: message.message_type.clone(),
        properties,
        // A JSON value always serialises.
        body: serde_json::to_vec(&message.payload).unwrap_or_default(),
    }
}

/// Reads a delivery's properties and body as an `M`; the error is the dead-letter reason.
pub fn decode<M: Inbound>(properties: &BasicProperties, body: &[u8]) -> Result<M, String> {
    M::decode(&Incoming::new(properties, body))
}

/// Which delivery attempt a message is on (1 unless a retry set [`ATTEMPT`]).
pub fn attempt(properties: &BasicProperties) -> u32 {
    header_integer(properties, ATTEMPT)
        .and_then(|attempt| u32::try_from(attempt).ok())
        .filter(|&attempt| attempt >= 1)
        .unwrap_or(1)
}

/// How many times a quorum queue handed the message out before without it being acknowledged
/// (RabbitMQ's `x-delivery-count`; 0 when absent).
pub const DELIVERY_COUNT: &str = "x-delivery-count";

/// Whether the broker handed `delivery` out before, to a consumer that did not settle it (it
/// died, or lost its connection or channel).
pub fn redelivered(delivery: &lapin::message::Delivery) -> bool {
    delivery.redelivered
        || header_integer(&delivery.properties, DELIVERY_COUNT).is_some_and(|count| count > 0)
}

/// The text of header `name`, if present and textual.
pub fn header_text(properties: &BasicProperties, name: &str) -> Option<String> {
    properties
        .headers()
        .as_ref()
        .and_then(|table| table.inner().get(name))
        .and_then(value_text)
}

/// The value of header `name`, if present and an integer.
pub fn header_integer(properties: &BasicProperties, name: &str) -> Option<i64> {
    properties
        .headers()
        .as_ref()
        .and_then(|table| table.inner().get(name))
        .and_then(value_integer)
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

/// The AMQP form of an extra header: text and integers as such, anything else as its JSON text.
fn header_value(value: &serde_json::Value) -> AMQPValue {
    match value {
        serde_json::Value::String(text) => long_string(text),
        serde_json::Value::Number(number) => match number.as_i64() {
            Some(integer) => AMQPValue::LongLongInt(integer),
            None => long_string(&number.to_string()),
        },
        serde_json::Value::Bool(flag) => AMQPValue::Boolean(*flag),
        other => long_string(&other.to_string()),
    }
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn row(headers: serde_json::Value) -> outbox_message::Model {
        outbox_message::Model {
            id: uuid::Uuid::now_v7(),
            seq: 1,
            message_type: "Example".into(),
            payload: serde_json::json!({ "a": 1 }),
            correlation_id: uuid::Uuid::now_v7(),
            causation_id: None,
            headers,
            occurred_at: chrono::Utc::now(),
            processed_at: None,
            attempts: 0,
            last_error: None,
            next_attempt_at: None,
        }
    }

    /// The stored headers of a row, and the integer header `x-schema-version` published.
    fn check(stored: serde_json::Value, published: Option<i64>) {
        let outgoing = outgoing(&NewMessage::from(&row(stored.clone())));
        assert_eq!(
            header_integer(&outgoing.properties, "x-schema-version"),
            published,
            "{stored}"
        );
        assert!(
            header_text(&outgoing.properties, "schema_version").is_none()
                && header_integer(&outgoing.properties, "schema_version").is_none(),
            "{stored}: the legacy key is not published"
        );
    }

    #[test]
    fn rows_written_before_the_outbox_was_generic_keep_their_schema_version() {
        check(serde_json::json!({ "schema_version": 1 }), Some(1));
        check(serde_json::json!({ "x-schema-version": 2 }), Some(2));
        // The current key wins over a legacy one.
        check(
            serde_json::json!({ "schema_version": 1, "x-schema-version": 3 }),
            Some(3),
        );
        check(serde_json::json!({}), None);
    }

    #[test]
    fn extra_headers_are_published_as_text_or_integers() {
        let mut message = NewMessage::from(&row(serde_json::json!({})));
        message.headers.insert("x-text".into(), "value".into());
        message.headers.insert("x-number".into(), 7.into());
        let outgoing = outgoing(&message);
        assert_eq!(
            header_text(&outgoing.properties, "x-text").as_deref(),
            Some("value")
        );
        assert_eq!(header_integer(&outgoing.properties, "x-number"), Some(7));
        assert!(header_text(&outgoing.properties, OCCURRED_AT).is_some());
    }
}
