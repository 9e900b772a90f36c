//! SeaORM entities of the payment database.

/// `accounts`: one balance per customer.
pub mod account {
    use sea_orm::entity::prelude::*;

    /// A customer's money, in minor units; never negative (a `CHECK` makes sure).
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "accounts")]
    pub struct Model {
        /// The customer.
        #[sea_orm(primary_key, auto_increment = false)]
        pub customer_id: Uuid,
        /// What the customer can spend, in minor units.
        pub balance: i64,
        /// When the account was opened: by an operator (`PUT /accounts/{customer_id}`), or, in
        /// demos with `PAYMENT_DEMO_BALANCE` set, by the customer's first charge.
        pub created_at: DateTimeUtc,
        /// Last change.
        pub updated_at: DateTimeUtc,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `payments`: one decision per order.
pub mod payment {
    use sea_orm::entity::prelude::*;

    /// What payment decided for an order, and where the money stands.
    ///
    /// A *tombstone* — a refund that arrived before any charge — is a `Refunded` row with no
    /// customer, no payment id and amount 0; a charge request arriving later finds it and
    /// charges nothing.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "payments")]
    pub struct Model {
        /// The order.
        #[sea_orm(primary_key, auto_increment = false)]
        pub order_id: Uuid,
        /// The charge's id; set exactly when money was taken (`Charged`, or `Refunded` after a
        /// charge).
        pub payment_id: Option<Uuid>,
        /// Who was (or was to be) charged; `None` only for a tombstone.
        pub customer_id: Option<Uuid>,
        /// The order's total in minor units: what was charged (and refunded), or what could
        /// not be charged; 0 for a tombstone.
        pub amount: i64,
        /// `Charged`, `Failed` or `Refunded`.
        pub status: String,
        /// Why the charge failed, or why it was refunded.
        pub reason: Option<String>,
        /// When payment first heard of the order.
        pub created_at: DateTimeUtc,
        /// Last change.
        pub updated_at: DateTimeUtc,
    }

    /// No relations declared (accounts are read by customer id).
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
