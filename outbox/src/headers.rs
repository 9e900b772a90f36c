//! The AMQP headers the outbox itself reads and writes, whatever the message type: metadata of
//! every published message, and the bookkeeping of retries and dead letters.
//!
//! A message crate adds headers of its own through [`NewMessage::headers`] (for example a
//! schema version); these names are reserved for the transport.
//!
//! [`NewMessage::headers`]: crate::NewMessage::headers

use chrono::{DateTime, SecondsFormat, Utc};

/// The content type of every body the outbox publishes: the payload's JSON.
pub const CONTENT_TYPE: &str = "application/json";
/// Header: the id of the message whose handling produced this one.
pub const CAUSATION_ID: &str = "x-causation-id";
/// Header: when the message was produced, RFC 3339 UTC with microseconds (AMQP's own
/// `timestamp` property has only seconds; see [`format_occurred_at`]).
pub const OCCURRED_AT: &str = "x-occurred-at";
/// Header: which delivery attempt this is (absent means 1). Set by the consumer runner when it
/// schedules a retry.
pub const ATTEMPT: &str = "x-attempt";
/// Header: why the previous attempt failed (on retried messages).
pub const LAST_ERROR: &str = "x-last-error";
/// Header: why a message was dead-lettered (on messages in a `.dlq` queue).
pub const DEAD_LETTER_REASON: &str = "x-dead-letter-reason";
/// Header: the AMQP `user_id` of the message's original sender, on a message a consumer
/// republished (a retry, a dead letter) under its own `user_id`.
pub const ORIGINAL_USER_ID: &str = "x-original-user-id";
/// Header: the queue a dead-lettered or retried message came from.
pub const ORIGINAL_QUEUE: &str = "x-original-queue";
/// Header: when the consumer runner dead-lettered the message, RFC 3339 UTC.
pub const DEAD_LETTERED_AT: &str = "x-dead-lettered-at";
/// Header: how many times an operator sent the message back from its dead-letter queue.
pub const REDRIVEN: &str = "x-redriven";

/// `occurred_at` as written in [`OCCURRED_AT`]: RFC 3339, UTC, microseconds.
pub fn format_occurred_at(occurred_at: DateTime<Utc>) -> String {
    occurred_at.to_rfc3339_opts(SecondsFormat::Micros, true)
}
