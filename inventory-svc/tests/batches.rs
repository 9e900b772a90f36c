//! Batches handled at once, one transaction each, as the consumer's lanes handle them: two
//! batches whose products cross (one takes `a` then `b`, the other `b` then `a`) queue behind
//! each other instead of deadlocking, because the handler locks a batch's products up front.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use common::order;
use contracts::{CommitStock, OrderCreated};
use inventory_svc::handler::InventoryHandler;
use outbox::{OutboxSignal, TransactionalProcessor};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use sea_orm_migration::MigratorTrait;
use testkit::received;

async fn available_reserved_committed(db: &DatabaseConnection, product: &str) -> (i64, i64, i64) {
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT available, reserved, committed FROM products WHERE product_id = $1",
            [product.into()],
        ))
        .await
        .unwrap()
        .unwrap();
    (
        row.try_get_by_index(0).unwrap(),
        row.try_get_by_index(1).unwrap(),
        row.try_get_by_index(2).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crossing_batches_queue_instead_of_deadlocking() {
    let database = testkit::TestDatabase::create().await;
    let db = database.connect().await;
    inventory_svc::migration::Migrator::up(&db, None)
        .await
        .unwrap();
    db.execute_unprepared(
        "INSERT INTO products (product_id, available, price) VALUES ('a', 1000, 100), ('b', 1000, 100)",
    )
    .await
    .unwrap();
    let processor = Arc::new(TransactionalProcessor::new(
        db.clone(),
        InventoryHandler,
        OutboxSignal::new(),
    ));
    let queue = "inventory.orders";
    let rounds: i64 = 20;
    let mut placed: Vec<[OrderCreated; 4]> = Vec::new();
    for _ in 0..rounds {
        let orders = [
            order(&[("b", 1)]),
            order(&[("a", 1)]),
            order(&[("a", 1)]),
            order(&[("b", 1)]),
        ];
        let batch = |range: std::ops::Range<usize>| {
            orders[range]
                .iter()
                .map(|order| received(queue, order))
                .collect()
        };
        testkit::handle_together(&processor, vec![batch(0..2), batch(2..4)]).await;
        placed.push(orders);
    }
    // Commits cross the same way: their products are found through the reservations' lines.
    for orders in &placed {
        let batch = |range: std::ops::Range<usize>| {
            orders[range]
                .iter()
                .map(|order| {
                    let order_id = order.order_id;
                    received(queue, &CommitStock { order_id })
                })
                .collect()
        };
        testkit::handle_together(&processor, vec![batch(0..2), batch(2..4)]).await;
    }
    let sold = rounds * 2;
    for product in ["a", "b"] {
        assert_eq!(
            available_reserved_committed(&db, product).await,
            (1000 - sold, 0, sold),
            "{product}"
        );
    }
    db.close().await.unwrap();
    assert_eq!(database.deadlocks().await, 0, "batches deadlocked");
}
