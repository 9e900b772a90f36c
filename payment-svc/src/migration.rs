//! The service's database: accounts, payments, and the outbox and inbox.

use sea_orm_migration::prelude::*;

/// Every migration of the payment database, applied at start.
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut migrations = outbox::migration::migrations();
        migrations.push(Box::new(CreatePayments));
        migrations
    }
}

struct CreatePayments;

impl MigrationName for CreatePayments {
    fn name(&self) -> &str {
        "m20261124_200001_create_payments"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreatePayments {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // The CHECK constraints are the last line of defence: no code path can overdraw an
        // account, charge without a payment id, or leave a customer-less row that is anything
        // but a tombstone, whatever it tries. The primary key on `order_id` is what makes a
        // charge happen at most once per order, across messages, threads and replicas.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE TABLE accounts (
                    customer_id uuid PRIMARY KEY,
                    balance bigint NOT NULL CHECK (balance >= 0),
                    created_at timestamptz NOT NULL DEFAULT now(),
                    updated_at timestamptz NOT NULL DEFAULT now()
                );
                CREATE TABLE payments (
                    order_id uuid PRIMARY KEY,
                    payment_id uuid UNIQUE,
                    customer_id uuid,
                    amount bigint NOT NULL CHECK (amount >= 0),
                    status text NOT NULL CHECK (status IN ('Charged', 'Failed', 'Refunded')),
                    reason text,
                    created_at timestamptz NOT NULL DEFAULT now(),
                    updated_at timestamptz NOT NULL DEFAULT now(),
                    CONSTRAINT payments_charged_has_id
                        CHECK (status <> 'Charged' OR payment_id IS NOT NULL),
                    CONSTRAINT payments_failed_has_no_id
                        CHECK (status <> 'Failed' OR payment_id IS NULL),
                    CONSTRAINT payments_only_tombstones_lack_a_customer
                        CHECK (customer_id IS NOT NULL
                               OR (status = 'Refunded' AND amount = 0 AND payment_id IS NULL))
                );
                CREATE INDEX payments_customer_id ON payments (customer_id);",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP TABLE payments; DROP TABLE accounts;")
            .await?;
        Ok(())
    }
}
