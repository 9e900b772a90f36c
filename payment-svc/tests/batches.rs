//! Batches handled at once, one transaction each, as the consumer's lanes handle them: two
//! batches whose customers cross (one charges `a` then `b`, the other `b` then `a`; refunds the
//! same) queue behind each other instead of deadlocking, because the handler locks a batch's
//! accounts up front.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use common::{refund, reserved};
use contracts::{CustomerId, Money, StockReserved};
use outbox::{OutboxSignal, TransactionalProcessor};
use payment_svc::handler::PaymentHandler;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use sea_orm_migration::MigratorTrait;
use testkit::{handle_together, received};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crossing_batches_queue_instead_of_deadlocking() {
    let database = testkit::TestDatabase::create().await;
    let db = database.connect().await;
    payment_svc::migration::Migrator::up(&db, None)
        .await
        .unwrap();
    let (a, b) = (CustomerId::generate(), CustomerId::generate());
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "INSERT INTO accounts (customer_id, balance) VALUES ($1, 100000), ($2, 100000)",
        [a.as_uuid().into(), b.as_uuid().into()],
    ))
    .await
    .unwrap();
    let processor = Arc::new(TransactionalProcessor::new(
        db.clone(),
        PaymentHandler {
            default_balance: Money::ZERO,
        },
        OutboxSignal::new(),
    ));
    let queue = "payment.requests";
    let rounds: i64 = 20;
    let mut charged: Vec<[StockReserved; 4]> = Vec::new();
    for _ in 0..rounds {
        let charges = [
            reserved(b, 100),
            reserved(a, 100),
            reserved(a, 100),
            reserved(b, 100),
        ];
        let batch = |range: std::ops::Range<usize>| {
            charges[range]
                .iter()
                .map(|charge| received(queue, charge))
                .collect()
        };
        handle_together(&processor, vec![batch(0..2), batch(2..4)]).await;
        charged.push(charges);
    }
    // Refunds cross the same way: their accounts are found through the payments.
    for charges in charged.iter().skip(rounds as usize / 2) {
        let batch = |range: std::ops::Range<usize>| {
            charges[range]
                .iter()
                .map(|charge| received(queue, &refund(charge.order_id)))
                .collect()
        };
        handle_together(&processor, vec![batch(0..2), batch(2..4)]).await;
    }
    // Each customer paid twice a round and got half the rounds back.
    let kept = 100000 - rounds * 2 * 100 + rounds / 2 * 2 * 100;
    for customer in [a, b] {
        let row = db
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT balance FROM accounts WHERE customer_id = $1",
                [customer.as_uuid().into()],
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.try_get_by_index::<i64>(0).unwrap(), kept, "{customer}");
    }
    db.close().await.unwrap();
    assert_eq!(database.deadlocks().await, 0, "batches deadlocked");
}
