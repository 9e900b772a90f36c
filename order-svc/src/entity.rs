//! SeaORM entities of the order database's business tables. The saga's state — status,
//! prices, total, reasons, deadline, timeline — is the saga runtime's (`saga_instances`,
//! `saga_transitions`, `saga_effects`), read through `saga_runtime::SagaRuntime`.

/// `orders`: one row per order placed.
pub mod order {
    use sea_orm::entity::prelude::*;

    /// An order as placed: who, when, and the `Idempotency-Key` it came with.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "orders")]
    pub struct Model {
        /// The order id (UUID v7, so ids sort by creation time); also the saga instance's id.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        /// Who placed it.
        pub customer_id: Uuid,
        /// The client's `Idempotency-Key`, if it sent one; unique per customer.
        pub idempotency_key: Option<String>,
        /// The canonical request that key was first used with.
        pub idempotency_request: Option<String>,
        /// When it was placed.
        pub created_at: DateTimeUtc,
    }

    /// Relations are read by id.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `order_lines`: what was ordered.
pub mod order_line {
    use sea_orm::entity::prelude::*;

    /// One line of an order, as placed (its price is the saga's, recorded at reservation).
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
    }

    /// Relations are read by id.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
