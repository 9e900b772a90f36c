//! The move onto the saga runtime: orders stored by the old schema (state, prices and timeline
//! in `orders`, `order_lines` and `order_transitions`) come out of the migration as saga
//! instances the runtime reads and drives, and the migration reverts.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use contracts::{CustomerId, Money, OrderId, OrderLine, PricedLine, ProductId, Quantity};
use order_svc::definition::{OrderData, OrderSaga};
use order_svc::migration::Migrator;
use order_svc::store;
use saga_core::Label;
use saga_core::order::OrderEffect;
use saga_runtime::SagaRuntime;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, Value};
use sea_orm_migration::MigratorTrait;
use uuid::Uuid;

/// An order as the old schema stored it.
struct OldOrder {
    status: &'static str,
    /// `(product, quantity, unit price)`.
    lines: &'static [(&'static str, i64, Option<i64>)],
    total: Option<i64>,
    cancellation_reason: Option<&'static str>,
    /// `(from, event, to, effects)`, in order.
    steps: &'static [(
        &'static str,
        &'static str,
        &'static str,
        &'static [&'static str],
    )],
}

/// What the runtime must see after the migration.
struct Moved {
    /// Outstanding effects, in name order.
    awaiting: &'static [OrderEffect],
    /// Whether a deadline still runs.
    deadline: bool,
}

async fn execute(db: &DatabaseConnection, sql: &str, values: Vec<Value>) {
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        sql,
        values,
    ))
    .await
    .unwrap();
}

/// Stores `old` as the schema before the move did; returns its id and customer.
async fn store_old(db: &DatabaseConnection, old: &OldOrder) -> (Uuid, Uuid) {
    let (order_id, customer_id) = (Uuid::now_v7(), Uuid::now_v7());
    execute(
        db,
        "INSERT INTO orders (id, customer_id, status, total, version, cancellation_reason,
             deadline_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, now() + interval '30 s', now(), now())",
        vec![
            order_id.into(),
            customer_id.into(),
            old.status.into(),
            old.total.into(),
            i32::try_from(old.steps.len()).unwrap().into(),
            old.cancellation_reason.map(str::to_owned).into(),
        ],
    )
    .await;
    for (line_no, (product, quantity, price)) in old.lines.iter().enumerate() {
        execute(
            db,
            "INSERT INTO order_lines (order_id, line_no, product_id, quantity, unit_price)
             VALUES ($1, $2, $3, $4, $5)",
            vec![
                order_id.into(),
                i32::try_from(line_no).unwrap().into(),
                (*product).into(),
                i32::try_from(*quantity).unwrap().into(),
                (*price).into(),
            ],
        )
        .await;
    }
    for (seq, (from, event, to, effects)) in old.steps.iter().enumerate() {
        execute(
            db,
            "INSERT INTO order_transitions (order_id, seq, from_state, to_state, event, effects, at)
             VALUES ($1, $2, $3, $4, $5, $6, now())",
            vec![
                order_id.into(),
                i32::try_from(seq + 1).unwrap().into(),
                (*from).into(),
                (*to).into(),
                (*event).into(),
                serde_json::json!(effects).into(),
            ],
        )
        .await;
    }
    (order_id, customer_id)
}

/// Checks what the runtime reads of a moved order against what the old schema held.
async fn check(
    db: &DatabaseConnection,
    runtime: &SagaRuntime<OrderSaga>,
    (order_id, customer_id): (Uuid, Uuid),
    old: &OldOrder,
    moved: &Moved,
) {
    let what = format!("a {} order", old.status);
    let instance = runtime.instance(db, order_id).await.unwrap().unwrap();
    assert_eq!(instance.state.name(), old.status, "{what}");
    let lines = old
        .lines
        .iter()
        .map(|(product, quantity, _)| OrderLine {
            product_id: ProductId::new((*product).to_owned()).unwrap(),
            quantity: Quantity::new(*quantity).unwrap(),
        })
        .collect();
    let priced: Option<Vec<PricedLine>> = old
        .lines
        .iter()
        .map(|(product, quantity, price)| {
            Some(PricedLine {
                product_id: ProductId::new((*product).to_owned()).unwrap(),
                quantity: Quantity::new(*quantity).unwrap(),
                unit_price: Money::new((*price)?).unwrap(),
            })
        })
        .collect();
    let expected = OrderData {
        customer_id: CustomerId::from(customer_id),
        lines,
        priced,
        total: old.total.map(|total| Money::new(total).unwrap()),
        cancellation_reason: old.cancellation_reason.map(str::to_owned),
        reason: old.cancellation_reason.map(str::to_owned),
    };
    assert_eq!(instance.data, expected, "{what}");
    assert_eq!(instance.deadline_at.is_some(), moved.deadline, "{what}");

    let timeline = runtime.timeline(db, order_id).await.unwrap();
    assert_eq!(runtime.check_timeline(&timeline).unwrap(), instance.state);
    let told: Vec<(String, String, String, Vec<String>)> = timeline
        .iter()
        .skip(1)
        .map(|entry| {
            (
                entry.from.unwrap().name().to_owned(),
                entry.event.unwrap().name().to_owned(),
                entry.to.name().to_owned(),
                entry.effects.iter().map(|e| e.name().to_owned()).collect(),
            )
        })
        .collect();
    let stored: Vec<(String, String, String, Vec<String>)> = old
        .steps
        .iter()
        .map(|(from, event, to, effects)| {
            let effects = effects.iter().map(|e| (*e).to_owned()).collect();
            ((*from).into(), (*event).into(), (*to).into(), effects)
        })
        .collect();
    assert_eq!(told, stored, "{what}");
    assert_eq!(timeline[0].from, None, "{what}: the start row comes first");
    assert_eq!(instance.version, timeline.last().unwrap().seq, "{what}");

    let mut awaiting: Vec<OrderEffect> = runtime
        .effects(db, order_id)
        .await
        .unwrap()
        .iter()
        .filter(|effect| effect.is_outstanding())
        .map(|effect| effect.effect)
        .collect();
    awaiting.sort_by_key(|effect| effect.name());
    assert_eq!(awaiting, moved.awaiting, "{what}");

    let record = store::find(db, runtime, OrderId::from(order_id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.customer_id, customer_id, "{what}");
}

const CASES: [(OldOrder, Moved); 3] = [
    (
        OldOrder {
            status: "Pending",
            lines: &[("widget", 2, None), ("gadget", 1, None)],
            total: None,
            cancellation_reason: None,
            steps: &[],
        },
        Moved {
            awaiting: &[OrderEffect::ReserveStock],
            deadline: true,
        },
    ),
    (
        OldOrder {
            status: "Paid",
            lines: &[("widget", 2, Some(300)), ("gadget", 1, Some(100))],
            total: Some(700),
            cancellation_reason: None,
            steps: &[
                ("Pending", "StockReserved", "Reserved", &[]),
                ("Reserved", "PaymentSucceeded", "Paid", &["CommitStock"]),
            ],
        },
        // The old saga never re-sent a commit: a lost one is sent again after the move.
        Moved {
            awaiting: &[OrderEffect::CommitStock],
            deadline: false,
        },
    ),
    (
        OldOrder {
            status: "Cancelled",
            lines: &[("widget", 1, Some(300))],
            total: Some(300),
            cancellation_reason: Some("not completed within 30 s"),
            steps: &[
                ("Pending", "StockReserved", "Reserved", &[]),
                (
                    "Reserved",
                    "DeadlinePassed",
                    "Cancelled",
                    &["ReleaseStock", "AnnounceCancelled"],
                ),
            ],
        },
        Moved {
            awaiting: &[],
            deadline: false,
        },
    ),
];

#[tokio::test]
async fn orders_of_the_old_schema_become_saga_instances_and_the_move_reverts() {
    let database = testkit::TestDatabase::create().await;
    let db = sea_orm::Database::connect(database.url()).await.unwrap();
    let before_the_move = u32::try_from(outbox::migration::migrations().len() + 2).unwrap();
    Migrator::up(&db, Some(before_the_move)).await.unwrap();
    let mut stored = Vec::new();
    for (old, _) in &CASES {
        stored.push(store_old(&db, old).await);
    }
    Migrator::up(&db, None).await.unwrap();
    let runtime = SagaRuntime::new(OrderSaga {
        saga_timeout: Duration::from_secs(30),
    })
    .unwrap();
    for (ids, (old, moved)) in stored.iter().zip(&CASES) {
        check(&db, &runtime, *ids, old, moved).await;
    }

    // Back to the old schema, the state where it was; and forward again.
    Migrator::down(&db, Some(1)).await.unwrap();
    for ((order_id, _), (old, _)) in stored.iter().zip(&CASES) {
        let row = db
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT status, total, version,
                     (SELECT count(*) FROM order_transitions WHERE order_id = $1)
                 FROM orders WHERE id = $1",
                [(*order_id).into()],
            ))
            .await
            .unwrap()
            .unwrap();
        let status: String = row.try_get_by_index(0).unwrap();
        let total: Option<i64> = row.try_get_by_index(1).unwrap();
        let version: i32 = row.try_get_by_index(2).unwrap();
        let steps: i64 = row.try_get_by_index(3).unwrap();
        let expected_steps = i64::try_from(old.steps.len()).unwrap();
        assert_eq!(
            (status.as_str(), total, i64::from(version), steps),
            (old.status, old.total, expected_steps, expected_steps)
        );
    }
    Migrator::up(&db, None).await.unwrap();
    for (ids, (old, moved)) in stored.iter().zip(&CASES) {
        check(&db, &runtime, *ids, old, moved).await;
    }
}
