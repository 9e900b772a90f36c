//! `processed_messages`: the inbox, one row per message a consumer has handled.

use sea_orm::entity::prelude::*;

/// A message some consumer (a queue) has handled, recorded in the handler's own transaction.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "processed_messages")]
pub struct Model {
    /// The consumer: the queue the message came from.
    #[sea_orm(primary_key, auto_increment = false)]
    pub consumer: String,
    /// The message id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub message_id: Uuid,
    /// The message type name.
    #[sea_orm(column_name = "type")]
    pub message_type: String,
    /// What the message was about (its correlation id).
    pub correlation_id: Uuid,
    /// When it was handled; retention deletes old rows.
    pub processed_at: DateTimeUtc,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
