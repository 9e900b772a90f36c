//! The service's database: products (stock and catalog price), reservations, and the outbox
//! and inbox.

use sea_orm_migration::prelude::*;

/// Every migration of the inventory database, applied at start.
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut migrations = outbox::migration::migrations();
        migrations.push(Box::new(CreateStock));
        migrations.push(Box::new(SeedDemoProducts));
        migrations.push(Box::new(CatalogPrices));
        migrations
    }
}

struct CreateStock;

impl MigrationName for CreateStock {
    fn name(&self) -> &str {
        "m20261124_100001_create_stock"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateStock {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // The CHECK constraints are the last line of defence: no code path can oversell or
        // hold a negative reservation, whatever it tries.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE TABLE products (
                    product_id text PRIMARY KEY CHECK (product_id ~ '^[A-Za-z0-9_-]{1,64}$'),
                    available bigint NOT NULL CHECK (available >= 0),
                    reserved bigint NOT NULL DEFAULT 0 CHECK (reserved >= 0),
                    committed bigint NOT NULL DEFAULT 0 CHECK (committed >= 0),
                    updated_at timestamptz NOT NULL DEFAULT now()
                );
                CREATE TABLE reservations (
                    order_id uuid PRIMARY KEY,
                    status text NOT NULL CHECK (status IN ('Held', 'Committed', 'Released', 'Failed')),
                    reason text,
                    created_at timestamptz NOT NULL DEFAULT now(),
                    updated_at timestamptz NOT NULL DEFAULT now()
                );
                CREATE TABLE reservation_lines (
                    order_id uuid NOT NULL REFERENCES reservations (order_id),
                    product_id text NOT NULL,
                    quantity bigint NOT NULL CHECK (quantity > 0),
                    PRIMARY KEY (order_id, product_id)
                );",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "DROP TABLE reservation_lines; DROP TABLE reservations; DROP TABLE products;",
            )
            .await?;
        Ok(())
    }
}

struct SeedDemoProducts;

impl MigrationName for SeedDemoProducts {
    fn name(&self) -> &str {
        "m20261124_100002_seed_demo_products"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for SeedDemoProducts {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "INSERT INTO products (product_id, available) VALUES
                    ('widget-blue', 1000), ('gadget_42', 500), ('gizmo-deluxe', 10), ('sold-out', 0)
                 ON CONFLICT DO NOTHING",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Ok(())
    }
}

/// Inventory owns the catalog price of each product, and every reservation line keeps the price
/// it was held at.
struct CatalogPrices;

impl MigrationName for CatalogPrices {
    fn name(&self) -> &str {
        "m20261201_100003_catalog_prices"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CatalogPrices {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Existing products start at 0 until an operator prices them, except the demo products
        // seeded above, which get demo prices so that a demo order costs something (every
        // price is still 0 here: this runs once, when the column appears). A reservation line's
        // `unit_price` is NULL for reservations held before inventory priced them (their orders
        // carried client prices).
        manager
            .get_connection()
            .execute_unprepared(
                "ALTER TABLE products ADD COLUMN price bigint NOT NULL DEFAULT 0 CHECK (price >= 0);
                 UPDATE products SET price = demo.price
                 FROM (VALUES ('widget-blue', 1999), ('gadget_42', 4950), ('gizmo-deluxe', 24900),
                              ('sold-out', 999)) AS demo (product_id, price)
                 WHERE products.product_id = demo.product_id;
                 ALTER TABLE reservation_lines
                     ADD COLUMN unit_price bigint CHECK (unit_price >= 0);",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "ALTER TABLE reservation_lines DROP COLUMN unit_price;
                 ALTER TABLE products DROP COLUMN price;",
            )
            .await?;
        Ok(())
    }
}
