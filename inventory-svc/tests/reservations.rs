//! Holding, committing, failing and releasing stock through the broker, alone and under
//! concurrency.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{
    PATIENCE, bus, expect_reserved, lines, order, reservation_lines, set_product, start, stock,
};
use contracts::{AnyMessage, CommitStock, ReleaseStock};
use sea_orm::ConnectionTrait;

#[tokio::test]
async fn a_reservation_is_held_committed_and_answered_once() {
    let service = start().await;
    let mut bus = bus(&service).await;
    set_product(&service, "apple", 10, 250).await;
    set_product(&service, "pear", 4, 1000).await;

    let placed = order(&[("pear", 4), ("apple", 3)]);
    let envelope = bus.publish_message(&placed).await;
    let reply = expect_reserved(
        &mut bus,
        &placed,
        &[("pear", 4, 1000), ("apple", 3, 250)],
        4750,
    )
    .await;
    assert_eq!(reply.causation_id, Some(envelope.message_id));
    assert_eq!(stock(&service, "apple").await, (7, 3, 0));
    assert_eq!(stock(&service, "pear").await, (0, 4, 0));

    // A redelivery of the same message changes nothing and is not answered.
    bus.publish(&envelope).await;
    bus.expect_silence(Duration::from_millis(500)).await;
    assert_eq!(stock(&service, "apple").await, (7, 3, 0));

    bus.publish_message(&CommitStock {
        order_id: placed.order_id,
    })
    .await;
    assert!(matches!(
        bus.next(PATIENCE).await.payload,
        AnyMessage::StockCommitted(_)
    ));
    assert_eq!(stock(&service, "apple").await, (7, 0, 3));
    assert_eq!(stock(&service, "pear").await, (0, 0, 4));
    let (_, reservation) = service
        .get_json(&format!("/reservations/{}", placed.order_id))
        .await;
    assert_eq!(reservation["status"], "Committed");
    assert_eq!(
        reservation_lines(&service, placed.order_id).await,
        lines(&[("apple", 3, 250), ("pear", 4, 1000)])
    );
}

#[tokio::test]
async fn failures_hold_nothing_and_say_why() {
    let service = start().await;
    let mut bus = bus(&service).await;
    set_product(&service, "apple", 2, 250).await;
    // The largest price there is: two of it do not fit in the money type.
    set_product(&service, "priceless", 5, i64::MAX).await;
    let cases = [
        (
            order(&[("apple", 3)]),
            "insufficient stock for apple: 3 requested, 2 available",
        ),
        (
            order(&[("apple", 1), ("durian", 1)]),
            "unknown product durian",
        ),
        (
            order(&[("apple", 1), ("priceless", 2)]),
            "the order total overflows",
        ),
    ];
    for (placed, reason) in cases {
        bus.publish_message(&placed).await;
        match bus.next(PATIENCE).await.payload {
            AnyMessage::StockFailed(failed) => {
                assert_eq!(
                    (failed.order_id, failed.customer_id, failed.reason.as_str()),
                    (placed.order_id, placed.customer_id, reason)
                );
            }
            other => panic!("expected StockFailed, got {other:?}"),
        }
        for product_id in ["apple", "priceless"] {
            let (available, reserved, _) = stock(&service, product_id).await;
            assert_eq!(
                reserved, 0,
                "{product_id}: nothing held after {reason} ({available} available)"
            );
        }
    }
    assert_eq!(stock(&service, "apple").await, (2, 0, 0));
}

#[tokio::test]
async fn a_release_returns_stock_and_a_release_before_the_reservation_leaves_a_tombstone() {
    let service = start().await;
    let mut bus = bus(&service).await;
    set_product(&service, "apple", 5, 250).await;

    let placed = order(&[("apple", 2)]);
    bus.publish_message(&placed).await;
    expect_reserved(&mut bus, &placed, &[("apple", 2, 250)], 500).await;
    let release = ReleaseStock {
        order_id: placed.order_id,
        reason: "payment failed".into(),
    };
    bus.publish_message(&release).await;
    assert!(matches!(
        bus.next(PATIENCE).await.payload,
        AnyMessage::StockReleased(_)
    ));
    assert_eq!(stock(&service, "apple").await, (5, 0, 0));

    // The saga released an order inventory had not seen yet; its late OrderCreated holds nothing.
    let late = order(&[("apple", 1)]);
    bus.publish_message(&ReleaseStock {
        order_id: late.order_id,
        reason: "deadline".into(),
    })
    .await;
    assert!(matches!(
        bus.next(PATIENCE).await.payload,
        AnyMessage::StockReleased(_)
    ));
    bus.publish_message(&late).await;
    match bus.next(PATIENCE).await.payload {
        AnyMessage::StockFailed(failed) => assert_eq!(
            (failed.order_id, failed.reason.as_str()),
            (
                late.order_id,
                "the order was cancelled before its stock was reserved: deadline"
            )
        ),
        other => panic!("expected StockFailed, got {other:?}"),
    }
    assert_eq!(stock(&service, "apple").await, (5, 0, 0));
}

#[tokio::test]
async fn concurrent_orders_for_the_last_units_never_oversell() {
    let service = start().await;
    let mut bus = bus(&service).await;
    set_product(&service, "last-units", 5, 100).await;
    let mut orders = Vec::new();
    for _ in 0..40 {
        orders.push(bus.publish_message(&order(&[("last-units", 1)])).await);
    }
    let (mut reserved, mut failed) = (0, 0);
    for _ in &orders {
        match bus.next(PATIENCE).await.payload {
            AnyMessage::StockReserved(_) => reserved += 1,
            AnyMessage::StockFailed(_) => failed += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((reserved, failed), (5, 35));
    assert_eq!(stock(&service, "last-units").await, (0, 5, 0));
}

/// Regression: with several messages per transaction, reservations took hot product rows out of
/// order across messages and deadlocked each other under load (each deadlock stalls a second).
/// Concurrent multi-line orders over shared products must not cause a single deadlock.
#[tokio::test]
async fn concurrent_multi_product_orders_never_deadlock() {
    let service = start().await;
    let mut bus = bus(&service).await;
    let products = ["hot-a", "hot-b", "hot-c", "hot-d"];
    for product in products {
        set_product(&service, product, 1_000_000, 100).await;
    }
    let mut orders = 0;
    for index in 0..240usize {
        // Every order takes two or three products, in rotating order.
        let lines: Vec<(&str, i64)> = (0..2 + index % 2)
            .map(|offset| (products[(index + offset * 3) % 4], 1))
            .collect();
        bus.publish_message(&order(&lines)).await;
        orders += 1;
    }
    for _ in 0..orders {
        assert!(matches!(
            bus.next(PATIENCE).await.payload,
            AnyMessage::StockReserved(_)
        ));
    }
    let database = service.database.as_ref().unwrap().connect().await;
    let deadlocks = database
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<i64>(0)
        .unwrap();
    assert_eq!(deadlocks, 0, "reservations deadlocked");
}
