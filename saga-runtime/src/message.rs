//! A ready-made message type for sagas that need nothing but a type name, the instance a message
//! is about, and a JSON body — so a new saga can run before it has a contracts crate of its own.

use outbox::{Inbound, Incoming, NewMessage, Outbound, headers};
use uuid::Uuid;

/// A message: its type name (the routing key), the instance it is about (the correlation id),
/// and a JSON body.
#[derive(Clone, Debug, PartialEq)]
pub struct JsonMessage {
    /// Unique id; consumers deduplicate on it.
    pub id: Uuid,
    /// The type name, also the routing key.
    pub message_type: String,
    /// The saga instance (or any other thing) the message is about.
    pub correlation_id: Uuid,
    /// The message whose handling produced this one.
    pub causation_id: Option<Uuid>,
    /// The body.
    pub body: serde_json::Value,
}

impl JsonMessage {
    /// A new message (fresh UUID v7 id) of `message_type` about `correlation_id`.
    pub fn new(
        message_type: impl Into<String>,
        correlation_id: Uuid,
        body: serde_json::Value,
    ) -> JsonMessage {
        JsonMessage {
            id: Uuid::now_v7(),
            message_type: message_type.into(),
            correlation_id,
            causation_id: None,
            body,
        }
    }

    /// The same message, caused by the message `causation_id` (if any).
    pub fn caused_by(mut self, causation_id: Option<Uuid>) -> JsonMessage {
        self.causation_id = causation_id;
        self
    }

    /// The outbox row that publishes it (the body is JSON already, so this cannot fail).
    pub fn into_new_message(self) -> NewMessage {
        NewMessage {
            id: self.id,
            message_type: self.message_type,
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            occurred_at: chrono::Utc::now(),
            headers: serde_json::Map::new(),
            payload: self.body,
        }
    }
}

impl Inbound for JsonMessage {
    fn decode(delivery: &Incoming<'_>) -> Result<Self, String> {
        let uuid = |name: &str, text: Option<&str>| match text {
            Some(text) => Uuid::parse_str(text).map_err(|error| format!("{name}: {error}")),
            None => Err(format!("{name} is missing")),
        };
        let causation_id = delivery
            .header_text(headers::CAUSATION_ID)
            .map(|text| uuid(headers::CAUSATION_ID, Some(&text)))
            .transpose()?;
        Ok(JsonMessage {
            id: uuid("message_id", delivery.message_id())?,
            message_type: delivery.message_type().ok_or("type is missing")?.to_owned(),
            correlation_id: uuid("correlation_id", delivery.correlation_id())?,
            causation_id,
            body: serde_json::from_slice(delivery.body())
                .map_err(|error| format!("the body is not JSON: {error}"))?,
        })
    }

    fn message_id(&self) -> Uuid {
        self.id
    }

    fn message_type(&self) -> &str {
        &self.message_type
    }

    fn correlation_id(&self) -> Uuid {
        self.correlation_id
    }
}

impl Outbound for JsonMessage {
    fn to_new_message(&self) -> Result<NewMessage, serde_json::Error> {
        Ok(self.clone().into_new_message())
    }
}
