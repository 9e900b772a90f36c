//! SeaORM entities of the order database.

/// `orders`: one row per order, holding its saga state.
pub mod order {
    use sea_orm::entity::prelude::*;

    /// An order and its saga state. `version` grows with every step of the saga; a step is
    /// written only if the version it read is still current (optimistic concurrency).
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "orders")]
    pub struct Model {
        /// The order id (UUID v7, so ids sort by creation time).
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        /// Who placed it.
        pub customer_id: Uuid,
        /// The saga state's name (`saga_core::order::OrderState`).
        pub status: String,
        /// Σ quantity × unit price, in minor units; `None` until the stock is reserved (or the
        /// payment, which charges that total, is heard first).
        pub total: Option<i64>,
        /// Steps applied so far.
        pub version: i32,
        /// Why it was cancelled.
        pub cancellation_reason: Option<String>,
        /// When a waiting order is cancelled.
        pub deadline_at: DateTimeUtc,
        /// The client's `Idempotency-Key`, if it sent one; unique per customer.
        pub idempotency_key: Option<String>,
        /// The canonical request that key was first used with.
        pub idempotency_request: Option<String>,
        /// When it was placed.
        pub created_at: DateTimeUtc,
        /// Last change.
        pub updated_at: DateTimeUtc,
    }

    /// Relations are read by id.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `order_lines`: what was ordered.
pub mod order_line {
    use sea_orm::entity::prelude::*;

    /// One line of an order.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "order_lines")]
    pub struct Model {
        /// The order.
        #[sea_orm(primary_key, auto_increment = false)]
        pub order_id: Uuid,
        /// Position in the request.
        #[sea_orm(primary_key, auto_increment = false)]
        pub line_no: i32,
        /// The product.
        pub product_id: String,
        /// How many.
        pub quantity: i32,
        /// The catalog price of one unit when the stock was reserved, in minor units; `None`
        /// until then.
        pub unit_price: Option<i64>,
    }

    /// Relations are read by id.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `order_transitions`: the saga's timeline.
pub mod order_transition {
    use sea_orm::entity::prelude::*;

    /// One step of an order's saga: a row of the saga table that applied.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "order_transitions")]
    pub struct Model {
        /// The order.
        #[sea_orm(primary_key, auto_increment = false)]
        pub order_id: Uuid,
        /// The order's version after the step (1, 2, …).
        #[sea_orm(primary_key, auto_increment = false)]
        pub seq: i32,
        /// State before.
        pub from_state: String,
        /// State after (equal to `from_state` for a compensation of a late event).
        pub to_state: String,
        /// The event's name.
        pub event: String,
        /// The effects' names, as a JSON array.
        pub effects: Json,
        /// The message that carried the event (none for deadlines).
        pub message_id: Option<Uuid>,
        /// When the step was written.
        pub at: DateTimeUtc,
    }

    /// Relations are read by id.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
