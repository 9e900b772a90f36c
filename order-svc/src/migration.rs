//! The service's database: orders, their lines, their saga timeline, and the outbox and inbox.
//!
//! Applied migrations are never edited: a change of schema is a new migration.

use sea_orm_migration::prelude::*;

/// Every migration of the order database, applied at start.
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut migrations = outbox::migration::migrations();
        migrations.push(Box::new(CreateOrders));
        migrations.push(Box::new(CatalogPricesAndCustomerKeys));
        migrations
    }
}

struct CreateOrders;

impl MigrationName for CreateOrders {
    fn name(&self) -> &str {
        "m20261124_300001_create_orders"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateOrders {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE TABLE orders (
                    id uuid PRIMARY KEY,
                    customer_id uuid NOT NULL,
                    status text NOT NULL
                        CHECK (status IN ('Pending', 'Reserved', 'Paid', 'Completed', 'Cancelled')),
                    total bigint NOT NULL CHECK (total >= 0),
                    version integer NOT NULL DEFAULT 0,
                    cancellation_reason text,
                    deadline_at timestamptz NOT NULL,
                    idempotency_key text UNIQUE,
                    idempotency_request text,
                    created_at timestamptz NOT NULL,
                    updated_at timestamptz NOT NULL
                );
                -- The deadline sweeper's scan: only waiting orders, oldest deadline first.
                CREATE INDEX orders_waiting_deadline ON orders (deadline_at)
                    WHERE status IN ('Pending', 'Reserved');
                CREATE INDEX orders_customer ON orders (customer_id, id DESC);
                CREATE INDEX orders_status ON orders (status, id DESC);
                CREATE TABLE order_lines (
                    order_id uuid NOT NULL REFERENCES orders (id),
                    line_no integer NOT NULL,
                    product_id text NOT NULL,
                    quantity integer NOT NULL CHECK (quantity > 0),
                    unit_price bigint NOT NULL CHECK (unit_price >= 0),
                    PRIMARY KEY (order_id, line_no),
                    UNIQUE (order_id, product_id)
                );
                CREATE TABLE order_transitions (
                    order_id uuid NOT NULL REFERENCES orders (id),
                    seq integer NOT NULL,
                    from_state text NOT NULL,
                    to_state text NOT NULL,
                    event text NOT NULL,
                    effects jsonb NOT NULL,
                    message_id uuid,
                    at timestamptz NOT NULL,
                    PRIMARY KEY (order_id, seq)
                );",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "DROP TABLE order_transitions; DROP TABLE order_lines; DROP TABLE orders;",
            )
            .await?;
        Ok(())
    }
}

/// Prices come from the catalog: an order's line prices and total are unknown until inventory
/// reserves its stock (`StockReserved`), so they become nullable. Idempotency keys become the
/// customer's own: the same key sent by two customers names two orders.
struct CatalogPricesAndCustomerKeys;

impl MigrationName for CatalogPricesAndCustomerKeys {
    fn name(&self) -> &str {
        "m20261201_300002_catalog_prices_and_customer_keys"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CatalogPricesAndCustomerKeys {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "ALTER TABLE order_lines ALTER COLUMN unit_price DROP NOT NULL;
                ALTER TABLE orders ALTER COLUMN total DROP NOT NULL;
                ALTER TABLE orders DROP CONSTRAINT orders_idempotency_key_key;
                -- NULL keys are distinct, so orders placed without a key never collide.
                ALTER TABLE orders ADD CONSTRAINT orders_customer_idempotency_key
                    UNIQUE (customer_id, idempotency_key);",
            )
            .await?;
        Ok(())
    }

    /// Fails, leaving everything as it was, if an order has no price yet or two customers used
    /// one key: the old schema cannot hold them.
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "ALTER TABLE orders DROP CONSTRAINT orders_customer_idempotency_key;
                ALTER TABLE orders ADD CONSTRAINT orders_idempotency_key_key UNIQUE (idempotency_key);
                ALTER TABLE orders ALTER COLUMN total SET NOT NULL;
                ALTER TABLE order_lines ALTER COLUMN unit_price SET NOT NULL;",
            )
            .await?;
        Ok(())
    }
}
