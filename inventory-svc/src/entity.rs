//! SeaORM entities of the inventory database.

/// `products`: stock and catalog price per product.
pub mod product {
    use sea_orm::entity::prelude::*;

    /// One product's stock. For every product, the stock it was given equals
    /// `available + reserved + committed`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "products")]
    pub struct Model {
        /// The product.
        #[sea_orm(primary_key, auto_increment = false)]
        pub product_id: String,
        /// Units free to reserve.
        pub available: i64,
        /// Units held for orders not yet paid.
        pub reserved: i64,
        /// Units sold.
        pub committed: i64,
        /// The catalog price of one unit, in minor units (at least 0); reservations are priced
        /// with it.
        pub price: i64,
        /// Last change.
        pub updated_at: DateTimeUtc,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `reservations`: one decision per order.
pub mod reservation {
    use sea_orm::entity::prelude::*;

    /// What inventory decided for an order, and where the reservation stands.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "reservations")]
    pub struct Model {
        /// The order.
        #[sea_orm(primary_key, auto_increment = false)]
        pub order_id: Uuid,
        /// `Held`, `Committed`, `Released` or `Failed`.
        pub status: String,
        /// Why it failed or was released.
        pub reason: Option<String>,
        /// When inventory first heard of the order.
        pub created_at: DateTimeUtc,
        /// Last change.
        pub updated_at: DateTimeUtc,
    }

    /// No relations declared (lines are read by order id).
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `reservation_lines`: what a reservation holds.
pub mod reservation_line {
    use sea_orm::entity::prelude::*;

    /// Units of one product held for one order.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "reservation_lines")]
    pub struct Model {
        /// The order.
        #[sea_orm(primary_key, auto_increment = false)]
        pub order_id: Uuid,
        /// The product.
        #[sea_orm(primary_key, auto_increment = false)]
        pub product_id: String,
        /// Units held.
        pub quantity: i64,
        /// The catalog price of one unit when the stock was held, in minor units; `None` for
        /// reservations held before inventory priced them.
        pub unit_price: Option<i64>,
    }

    /// No relations declared.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
