//! `outbox_messages`: messages written in a business transaction, waiting to be published.

use sea_orm::entity::prelude::*;

/// One outbox row. The seed's columns (`id`, `type`, `payload`, `occurred_at`, `processed_at`)
/// plus what a relay needs: publication order, correlation and causation, headers, and the
/// bookkeeping of failed attempts.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "outbox_messages")]
pub struct Model {
    /// The message id (UUID v7), also the AMQP `message_id`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Insertion order; the relay publishes in this order. Assigned by the database.
    pub seq: i64,
    /// The message type name, also the routing key.
    #[sea_orm(column_name = "type")]
    pub message_type: String,
    /// The payload JSON, published as the body.
    #[sea_orm(column_type = "JsonBinary")]
    pub payload: Json,
    /// What the message is about (its correlation id).
    pub correlation_id: Uuid,
    /// The message whose handling produced this one.
    pub causation_id: Option<Uuid>,
    /// Extra AMQP headers of the message (`{"x-schema-version": 1}`; rows written before the
    /// outbox was generic say `{"schema_version": 1}`, published as `x-schema-version` too).
    #[sea_orm(column_type = "JsonBinary")]
    pub headers: Json,
    /// When the message was produced.
    pub occurred_at: DateTimeUtc,
    /// When the broker confirmed it; `NULL` while unpublished.
    pub processed_at: Option<DateTimeUtc>,
    /// Failed publication attempts (a nack or an unroutable return).
    pub attempts: i32,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// Not before this time after a failure.
    pub next_attempt_at: Option<DateTimeUtc>,
}

/// No relations: the outbox is written by any business transaction.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
