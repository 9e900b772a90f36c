//! The service's database: orders and their lines (the business rows), the saga runtime's
//! instances, timeline and effects, and the outbox and inbox.
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
        migrations.extend(saga_runtime::migration::migrations());
        migrations.push(Box::new(OrdersOnTheSagaRuntime));
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

/// The saga runtime owns the order saga's state from here on: every order becomes a
/// `saga_instances` row (state, version, the data the saga keeps — customer, lines, prices,
/// total, reasons — and the deadline of a waiting order) with its timeline moved into
/// `saga_transitions`, and what the runtime now owns leaves `orders`, `order_lines` and
/// `order_transitions`. `orders` and `order_lines` keep the business facts: who ordered what,
/// when, with which `Idempotency-Key`.
///
/// The runtime's timeline starts with a start row (seq 1), so moved steps shift by one and the
/// version follows. A `Pending` order's reservation request and a `Paid` order's commit are
/// recorded as awaiting confirmation, due at once: the old saga never re-sent them, so one that
/// was lost is sent again now.
struct OrdersOnTheSagaRuntime;

impl MigrationName for OrdersOnTheSagaRuntime {
    fn name(&self) -> &str {
        "m20261202_300003_orders_on_the_saga_runtime"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for OrdersOnTheSagaRuntime {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "INSERT INTO saga_instances (saga, id, state, version, data, deadline_at, created_at, updated_at)
                SELECT 'OrderSaga', o.id, o.status, o.version + 1,
                    jsonb_build_object(
                        'customer_id', o.customer_id,
                        'lines', (SELECT COALESCE(jsonb_agg(jsonb_build_object(
                                      'product_id', l.product_id, 'quantity', l.quantity)
                                      ORDER BY l.line_no), '[]'::jsonb)
                                  FROM order_lines l WHERE l.order_id = o.id),
                        'priced', (SELECT CASE WHEN count(*) > 0 AND bool_and(l.unit_price IS NOT NULL)
                                      THEN jsonb_agg(jsonb_build_object(
                                          'product_id', l.product_id, 'quantity', l.quantity,
                                          'unit_price', l.unit_price) ORDER BY l.line_no)
                                      END
                                   FROM order_lines l WHERE l.order_id = o.id),
                        'total', o.total,
                        'cancellation_reason', o.cancellation_reason,
                        'reason', o.cancellation_reason),
                    CASE WHEN o.status IN ('Pending', 'Reserved') THEN o.deadline_at END,
                    o.created_at, o.updated_at
                FROM orders o;
                INSERT INTO saga_transitions (saga, instance_id, seq, from_state, to_state, event, effects, message_id, at)
                SELECT 'OrderSaga', o.id, 1, NULL, 'Pending', NULL, '[\"ReserveStock\"]'::jsonb, NULL, o.created_at
                FROM orders o;
                INSERT INTO saga_transitions (saga, instance_id, seq, from_state, to_state, event, effects, message_id, at)
                SELECT 'OrderSaga', t.order_id, t.seq + 1, t.from_state, t.to_state, t.event, t.effects, t.message_id, t.at
                FROM order_transitions t;
                INSERT INTO saga_effects (saga, instance_id, effect, attempts, first_sent_at, last_sent_at, next_attempt_at)
                SELECT 'OrderSaga', o.id,
                    CASE o.status WHEN 'Pending' THEN 'ReserveStock' ELSE 'CommitStock' END,
                    1, o.updated_at, o.updated_at, now()
                FROM orders o WHERE o.status IN ('Pending', 'Paid');
                DROP TABLE order_transitions;
                ALTER TABLE order_lines DROP COLUMN unit_price;
                ALTER TABLE orders
                    DROP COLUMN status, DROP COLUMN total, DROP COLUMN version,
                    DROP COLUMN cancellation_reason, DROP COLUMN deadline_at, DROP COLUMN updated_at;",
            )
            .await?;
        Ok(())
    }

    /// Puts the saga's state back into `orders`, `order_lines` and `order_transitions` (the
    /// start rows aside) and removes the order saga's rows from the runtime's tables, which the
    /// runtime's own migration drops when it is reverted in turn. A waiting order's deadline
    /// comes back as it was; a finished order, which has none any more, gets its creation time.
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "ALTER TABLE orders
                    ADD COLUMN status text CHECK (status IN ('Pending', 'Reserved', 'Paid', 'Completed', 'Cancelled')),
                    ADD COLUMN total bigint CHECK (total >= 0),
                    ADD COLUMN version integer NOT NULL DEFAULT 0,
                    ADD COLUMN cancellation_reason text,
                    ADD COLUMN deadline_at timestamptz,
                    ADD COLUMN updated_at timestamptz;
                UPDATE orders o SET
                    status = s.state,
                    total = (s.data->>'total')::bigint,
                    version = s.version - 1,
                    cancellation_reason = s.data->>'cancellation_reason',
                    deadline_at = COALESCE(s.deadline_at, o.created_at),
                    updated_at = s.updated_at
                FROM saga_instances s WHERE s.saga = 'OrderSaga' AND s.id = o.id;
                ALTER TABLE orders ALTER COLUMN status SET NOT NULL,
                    ALTER COLUMN deadline_at SET NOT NULL, ALTER COLUMN updated_at SET NOT NULL;
                CREATE INDEX orders_waiting_deadline ON orders (deadline_at)
                    WHERE status IN ('Pending', 'Reserved');
                CREATE INDEX orders_status ON orders (status, id DESC);
                ALTER TABLE order_lines ADD COLUMN unit_price bigint CHECK (unit_price >= 0);
                UPDATE order_lines l SET unit_price = (priced->>'unit_price')::bigint
                FROM saga_instances s, jsonb_array_elements(CASE jsonb_typeof(s.data->'priced')
                        WHEN 'array' THEN s.data->'priced' ELSE '[]'::jsonb END) AS priced
                WHERE s.saga = 'OrderSaga' AND s.id = l.order_id
                    AND priced->>'product_id' = l.product_id;
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
                );
                INSERT INTO order_transitions (order_id, seq, from_state, to_state, event, effects, message_id, at)
                SELECT instance_id, seq - 1, from_state, to_state, event, effects, message_id, at
                FROM saga_transitions
                WHERE saga = 'OrderSaga' AND from_state IS NOT NULL AND event IS NOT NULL;
                DELETE FROM saga_effects WHERE saga = 'OrderSaga';
                DELETE FROM saga_transitions WHERE saga = 'OrderSaga';
                DELETE FROM saga_instances WHERE saga = 'OrderSaga';",
            )
            .await?;
        Ok(())
    }
}
