//! Reservations are priced from the catalog when they hold the stock, and keep that price.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{
    Lines, PATIENCE, PricedLines, bus, expect_reserved, lines, order, reservation_lines,
    set_product, start, stock,
};
use contracts::{AnyMessage, CommitStock, ReleaseStock};
use sea_orm::{ConnectionTrait, TransactionTrait};

/// Orders of `lines` against products priced `catalog` (product, available, price): what the
/// reservation published and what the reservation keeps are the catalog's prices.
#[tokio::test]
async fn reservations_price_every_line_from_the_catalog() {
    let service = start().await;
    let mut bus = bus(&service).await;
    set_product(&service, "apple", 10, 250).await;
    set_product(&service, "pear", 4, 1000).await;
    set_product(&service, "free-sample", 5, 0).await;
    // (order lines, published lines, total).
    let cases: &[(Lines, PricedLines, i64)] = &[
        // Lines keep the order's order, each at its own product's price.
        (
            &[("pear", 4), ("apple", 3)],
            &[("pear", 4, 1000), ("apple", 3, 250)],
            4750,
        ),
        (&[("apple", 1)], &[("apple", 1, 250)], 250),
        // An operator may give a product away.
        (
            &[("free-sample", 2), ("apple", 1)],
            &[("free-sample", 2, 0), ("apple", 1, 250)],
            250,
        ),
        // The demo products come priced.
        (&[("widget-blue", 2)], &[("widget-blue", 2, 1999)], 3998),
    ];
    for &(order_lines, expected, total) in cases {
        let placed = order(order_lines);
        let envelope = bus.publish_message(&placed).await;
        let reply = expect_reserved(&mut bus, &placed, expected, total).await;
        assert_eq!(reply.causation_id, Some(envelope.message_id));
        let mut kept = lines(expected);
        kept.sort();
        assert_eq!(reservation_lines(&service, placed.order_id).await, kept);
    }
}

/// A price set after a reservation does not touch it: neither what was published nor what the
/// reservation keeps, through redelivery, commit and release; the next order pays the new price.
#[tokio::test]
async fn a_price_change_applies_to_later_reservations_only() {
    let service = start().await;
    let mut bus = bus(&service).await;
    set_product(&service, "apple", 10, 250).await;
    let committed = order(&[("apple", 2)]);
    let committed_envelope = bus.publish_message(&committed).await;
    expect_reserved(&mut bus, &committed, &[("apple", 2, 250)], 500).await;
    let released = order(&[("apple", 1)]);
    bus.publish_message(&released).await;
    expect_reserved(&mut bus, &released, &[("apple", 1, 250)], 250).await;

    set_product(&service, "apple", 7, 999).await;
    // A redelivered OrderCreated is not priced again, nor answered.
    bus.publish(&committed_envelope).await;
    bus.expect_silence(Duration::from_millis(500)).await;
    bus.publish_message(&CommitStock {
        order_id: committed.order_id,
    })
    .await;
    assert!(matches!(
        bus.next(PATIENCE).await.payload,
        AnyMessage::StockCommitted(_)
    ));
    bus.publish_message(&ReleaseStock {
        order_id: released.order_id,
        reason: "payment failed".into(),
    })
    .await;
    assert!(matches!(
        bus.next(PATIENCE).await.payload,
        AnyMessage::StockReleased(_)
    ));
    for (placed, kept) in [
        (&committed, ("apple", 2, 250)),
        (&released, ("apple", 1, 250)),
    ] {
        assert_eq!(
            reservation_lines(&service, placed.order_id).await,
            lines(&[kept])
        );
    }

    let later = order(&[("apple", 3)]);
    bus.publish_message(&later).await;
    expect_reserved(&mut bus, &later, &[("apple", 3, 999)], 2997).await;
    assert_eq!(stock(&service, "apple").await, (5, 3, 2));
}

/// A price change in flight when an order arrives holds the product's row: the reservation
/// waits for it and pays the price in force when it takes the stock, not the one before.
#[tokio::test]
async fn a_reservation_pays_the_price_in_force_when_it_holds_the_stock() {
    let service = start().await;
    let mut bus = bus(&service).await;
    set_product(&service, "apple", 10, 250).await;
    let database = service.database.as_ref().unwrap().connect().await;
    let price_change = database.begin().await.unwrap();
    price_change
        .execute_unprepared("UPDATE products SET price = 777 WHERE product_id = 'apple'")
        .await
        .unwrap();
    let placed = order(&[("apple", 2)]);
    bus.publish_message(&placed).await;
    // The reservation queues on the row lock while the change is uncommitted.
    bus.expect_silence(Duration::from_millis(500)).await;
    price_change.commit().await.unwrap();
    expect_reserved(&mut bus, &placed, &[("apple", 2, 777)], 1554).await;
    assert_eq!(stock(&service, "apple").await, (8, 2, 0));
}
