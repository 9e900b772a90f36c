//! The store's races, decided by the real PostgreSQL: two decisions for one order wait for
//! each other and agree.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{DEMO_BALANCE, NO_DEMO_BALANCE, money, reserved};
use contracts::{CustomerId, StockReserved};
use payment_svc::store::{self, ChargeOutcome};
use sea_orm::{DatabaseConnection, TransactionTrait};
use testkit::TestDatabase;

/// A decision the store's race test runs.
#[derive(Clone, Copy, Debug)]
enum Op {
    Charge,
    Refund,
}

/// Runs `op` in `transaction` and describes what it came to.
async fn run_op(
    transaction: &sea_orm::DatabaseTransaction,
    op: Op,
    request: &StockReserved,
    demo_balance: i64,
) -> String {
    match op {
        Op::Charge => match store::charge(transaction, request, money(demo_balance))
            .await
            .unwrap()
        {
            ChargeOutcome::Charged(_) => "Charged".to_owned(),
            ChargeOutcome::AlreadyDecided(decision) => {
                format!("AlreadyDecided({:?})", decision.status())
            }
            other => format!("{other:?}"),
        },
        Op::Refund => format!(
            "{:?}",
            store::refund(transaction, request.order_id, "race")
                .await
                .unwrap()
        ),
    }
}

/// Runs `op` in a transaction of its own and describes what it came to.
async fn apply(
    db: &DatabaseConnection,
    op: Op,
    request: &StockReserved,
    demo_balance: i64,
) -> String {
    let transaction = db.begin().await.unwrap();
    let outcome = run_op(&transaction, op, request, demo_balance).await;
    transaction.commit().await.unwrap();
    outcome
}

async fn balance_in(db: &DatabaseConnection, customer_id: CustomerId) -> Option<i64> {
    store::account(db, customer_id)
        .await
        .unwrap()
        .map(|account| account.balance)
}

#[tokio::test]
async fn racing_decisions_for_one_order_wait_for_each_other_and_agree() {
    let database = TestDatabase::create().await;
    let db = database.connect().await;
    outbox::migrate::<payment_svc::migration::Migrator>(&db)
        .await
        .unwrap();
    // The demo balance, done before, done in a transaction held open, the racing decision, what
    // the racing one must come to, the balance afterwards (`None`: no account).
    type RaceCase = (i64, &'static [Op], Op, Op, &'static str, Option<i64>);
    let cases: &[RaceCase] = &[
        (
            DEMO_BALANCE,
            &[],
            Op::Charge,
            Op::Charge,
            "AlreadyDecided(Charged)",
            Some(DEMO_BALANCE - 300),
        ),
        (
            DEMO_BALANCE,
            &[],
            Op::Charge,
            Op::Refund,
            "Planned(GiveBack(Money(300)))",
            Some(DEMO_BALANCE),
        ),
        (
            DEMO_BALANCE,
            &[],
            Op::Refund,
            Op::Charge,
            "AlreadyDecided(Refunded)",
            None,
        ),
        (
            DEMO_BALANCE,
            &[],
            Op::Refund,
            Op::Refund,
            "Planned(AlreadyRefunded(Money(0)))",
            None,
        ),
        (
            DEMO_BALANCE,
            &[Op::Charge],
            Op::Refund,
            Op::Refund,
            "Planned(AlreadyRefunded(Money(300)))",
            Some(DEMO_BALANCE),
        ),
        // Without an account or a demo balance the held charge fails; the racer still waits
        // for its decision instead of taking one of its own.
        (
            NO_DEMO_BALANCE,
            &[],
            Op::Charge,
            Op::Charge,
            "AlreadyDecided(Failed)",
            None,
        ),
        (
            NO_DEMO_BALANCE,
            &[],
            Op::Charge,
            Op::Refund,
            "Planned(NothingCharged)",
            None,
        ),
    ];
    for &(demo_balance, before, held, racing, expected, balance) in cases {
        let request = reserved(CustomerId::generate(), 300);
        for &op in before {
            apply(&db, op, &request, demo_balance).await;
        }
        let holder = db.begin().await.unwrap();
        run_op(&holder, held, &request, demo_balance).await;
        let race = tokio::spawn({
            let (db, request) = (db.clone(), request.clone());
            async move { apply(&db, racing, &request, demo_balance).await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let case = format!("demo {demo_balance}: {before:?} then {held:?} racing {racing:?}");
        assert!(!race.is_finished(), "{case}: the racer did not wait");
        holder.commit().await.unwrap();
        assert_eq!(race.await.unwrap(), expected, "{case}");
        assert_eq!(
            balance_in(&db, request.customer_id).await,
            balance,
            "{case}"
        );
    }
    db.close().await.unwrap();
}
