//! The order saga in order-svc: the happy path with catalog prices, failures and their
//! compensations, the deadline, reordered answers, messages the saga cannot apply, and commands
//! re-sent until confirmed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{
    PATIENCE, awaiting, expect_created, id_of, listen, next_types, paid, place, prices, reserved,
    start, start_with, steps, timeline, wait_priced, wait_status,
};
use contracts::{
    AnyMessage, CustomerId, Envelope, Money, OrderId, PaymentFailed, StockCommitted, StockFailed,
};
use testkit::auth;
use uuid::Uuid;

#[tokio::test]
async fn an_order_for_a_named_customer_shows_catalog_prices_once_reserved_and_completes_with_them()
{
    let service = start(Duration::from_secs(30)).await;
    let mut bus = listen(&service).await;
    let customer = auth::customer();
    let order = place(&service, customer, &[("widget", 2), ("gadget", 1)]).await;
    let order_id = id_of(&order);
    assert_eq!(order["customer_id"], customer.to_string());
    assert_eq!(order["status"], "Pending");
    assert!(order["deadline_at"].is_string(), "{order}");
    assert_eq!(awaiting(&order), [("ReserveStock".to_owned(), 1)]);
    assert_eq!(order["timeline"], serde_json::json!([]));
    // Unknown until inventory prices the lines from its catalog.
    assert_eq!(
        prices(&order),
        (
            vec![("widget".into(), 2, None), ("gadget".into(), 1, None)],
            None
        )
    );
    assert!(order["total"].is_null() && order["items"][0]["unit_price"].is_null());
    let created = expect_created(&mut bus, order_id).await;
    assert_eq!(created.customer_id, CustomerId::from(customer));
    let ordered: Vec<(String, i64)> = created
        .items
        .iter()
        .map(|line| {
            (
                line.product_id.as_str().to_owned(),
                i64::from(line.quantity.get()),
            )
        })
        .collect();
    assert_eq!(ordered, vec![("widget".into(), 2), ("gadget".into(), 1)]);

    let reservation = reserved(
        order_id,
        customer,
        &[("widget", 2, 500), ("gadget", 1, 250)],
    );
    assert_eq!(reservation.total, Money::new(1_250).unwrap());
    bus.publish_message(&reservation).await;
    let reserved_order = wait_status(&service, order_id, "Reserved").await;
    // The reservation confirms the reservation request.
    assert_eq!(awaiting(&reserved_order), []);
    assert_eq!(
        prices(&reserved_order),
        (
            vec![
                ("widget".into(), 2, Some(500)),
                ("gadget".into(), 1, Some(250))
            ],
            Some(1_250)
        )
    );
    let payment = bus.publish_message(&paid(order_id, customer, 1_250)).await;
    let paid_order = wait_status(&service, order_id, "Paid").await;
    assert_eq!(awaiting(&paid_order), [("CommitStock".to_owned(), 1)]);
    assert!(paid_order["deadline_at"].is_null(), "{paid_order}");
    let commit = bus.next(PATIENCE).await;
    assert!(matches!(commit.payload, AnyMessage::CommitStock(_)));
    assert_eq!(commit.causation_id, Some(payment.message_id));
    // A redelivered payment changes nothing and asks for nothing.
    bus.publish(&payment).await;
    bus.publish_message(&StockCommitted { order_id }).await;
    let completed = wait_status(&service, order_id, "Completed").await;
    match bus.next(PATIENCE).await.payload {
        AnyMessage::OrderCompleted(announced) => {
            assert_eq!(announced.total, reservation.total);
            assert_eq!(announced.customer_id, CustomerId::from(customer));
        }
        other => panic!("expected OrderCompleted, got {other:?}"),
    }
    bus.expect_silence(Duration::from_millis(300)).await;
    assert_eq!(prices(&completed).1, Some(1_250));
    assert_eq!(awaiting(&completed), []);
    assert_eq!(
        timeline(&completed),
        steps(&[
            ("Pending", "StockReserved", "Reserved"),
            ("Reserved", "PaymentSucceeded", "Paid"),
            ("Paid", "StockCommitted", "Completed"),
        ])
    );
}

#[tokio::test]
async fn failures_cancel_with_their_reason_and_the_compensations_they_need() {
    let service = start(Duration::from_secs(30)).await;
    let mut bus = listen(&service).await;
    let customer = auth::customer();

    // Stock failure: nothing to compensate.
    let order_id = id_of(&place(&service, customer, &[("widget", 2)]).await);
    expect_created(&mut bus, order_id).await;
    bus.publish_message(&StockFailed {
        order_id,
        customer_id: CustomerId::from(customer),
        reason: "unknown product widget".into(),
    })
    .await;
    let cancelled = wait_status(&service, order_id, "Cancelled").await;
    assert_eq!(
        cancelled["cancellation_reason"],
        "stock not reserved: unknown product widget"
    );
    assert!(cancelled["total"].is_null());
    assert!(matches!(
        bus.next(PATIENCE).await.payload,
        AnyMessage::OrderCancelled(_)
    ));

    // Payment failure after the reservation: the reservation is released.
    let order_id = id_of(&place(&service, customer, &[("widget", 2)]).await);
    expect_created(&mut bus, order_id).await;
    bus.publish_message(&reserved(order_id, customer, &[("widget", 2, 500)]))
        .await;
    wait_status(&service, order_id, "Reserved").await;
    bus.publish_message(&PaymentFailed {
        order_id,
        customer_id: CustomerId::from(customer),
        reason: "insufficient balance".into(),
    })
    .await;
    let cancelled = wait_status(&service, order_id, "Cancelled").await;
    assert_eq!(
        cancelled["cancellation_reason"],
        "payment failed: insufficient balance"
    );
    match bus.next(PATIENCE).await.payload {
        AnyMessage::ReleaseStock(release) => {
            assert_eq!(release.reason, "payment failed: insufficient balance")
        }
        other => panic!("expected ReleaseStock, got {other:?}"),
    }
    assert!(matches!(
        bus.next(PATIENCE).await.payload,
        AnyMessage::OrderCancelled(_)
    ));
}

#[tokio::test]
async fn a_deadline_cancels_a_waiting_order_and_late_answers_are_compensated_and_priced() {
    let service = start(Duration::from_secs(1)).await;
    let mut bus = listen(&service).await;
    let customer = auth::customer();
    let order_id = id_of(&place(&service, customer, &[("widget", 1)]).await);
    expect_created(&mut bus, order_id).await;
    let cancelled = wait_status(&service, order_id, "Cancelled").await;
    assert_eq!(cancelled["cancellation_reason"], "not completed within 1 s");
    assert!(cancelled["deadline_at"].is_null(), "{cancelled}");
    // Pre-emptive: a reservation or a charge may be on its way, so both are undone.
    assert_eq!(
        next_types(&mut bus, order_id, 3).await,
        ["ReleaseStock", "RefundPayment", "OrderCancelled"]
    );
    let mut still_awaited = awaiting(&cancelled);
    still_awaited.sort();
    assert_eq!(
        still_awaited,
        [
            ("RefundPayment".to_owned(), 1),
            ("ReleaseStock".to_owned(), 1),
            ("ReserveStock".to_owned(), 1)
        ]
    );

    bus.publish_message(&reserved(order_id, customer, &[("widget", 1, 700)]))
        .await;
    assert!(matches!(
        bus.next(PATIENCE).await.payload,
        AnyMessage::ReleaseStock(_)
    ));
    // The late reservation still tells what the stock was reserved at.
    let priced = wait_priced(&service, order_id).await;
    assert_eq!(
        prices(&priced),
        (vec![("widget".into(), 1, Some(700))], Some(700))
    );
    bus.publish_message(&paid(order_id, customer, 700)).await;
    assert!(matches!(
        bus.next(PATIENCE).await.payload,
        AnyMessage::RefundPayment(_)
    ));
    let settled = service
        .wait_for_json(&format!("/orders/{order_id}"), PATIENCE, |order| {
            order["timeline"].as_array().is_some_and(|t| t.len() == 3)
        })
        .await;
    assert_eq!(
        timeline(&settled),
        steps(&[
            ("Pending", "DeadlinePassed", "Cancelled"),
            ("Cancelled", "StockReserved", "Cancelled"),
            ("Cancelled", "PaymentSucceeded", "Cancelled"),
        ])
    );
}

#[tokio::test]
async fn a_payment_that_overtakes_the_reservation_completes_the_order_with_the_reserved_prices() {
    let service = start(Duration::from_secs(30)).await;
    let mut bus = listen(&service).await;
    let customer = auth::customer();

    // The reservation arrives before the completion, or only after it: either way the order
    // ends priced, announcing the total charged.
    for reservation_first in [true, false] {
        let order_id = id_of(&place(&service, customer, &[("widget", 3)]).await);
        expect_created(&mut bus, order_id).await;
        bus.publish_message(&paid(order_id, customer, 900)).await;
        let paid_order = wait_status(&service, order_id, "Paid").await;
        // The charge tells the total before the lines' prices are known.
        assert_eq!(
            prices(&paid_order),
            (vec![("widget".into(), 3, None)], Some(900))
        );
        assert!(matches!(
            bus.next(PATIENCE).await.payload,
            AnyMessage::CommitStock(_)
        ));
        let reservation = reserved(order_id, customer, &[("widget", 3, 300)]);
        if reservation_first {
            bus.publish_message(&reservation).await;
            wait_priced(&service, order_id).await;
        }
        bus.publish_message(&StockCommitted { order_id }).await;
        wait_status(&service, order_id, "Completed").await;
        match bus.next(PATIENCE).await.payload {
            AnyMessage::OrderCompleted(announced) => {
                assert_eq!(announced.total, Money::new(900).unwrap())
            }
            other => panic!("expected OrderCompleted, got {other:?}"),
        }
        if !reservation_first {
            bus.publish_message(&reservation).await;
        }
        let completed = wait_priced(&service, order_id).await;
        assert_eq!(
            prices(&completed),
            (vec![("widget".into(), 3, Some(300))], Some(900)),
            "reservation first: {reservation_first}"
        );
        assert_eq!(
            timeline(&completed),
            steps(&[
                ("Pending", "PaymentSucceeded", "Paid"),
                ("Paid", "StockCommitted", "Completed")
            ])
        );
    }
    bus.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_message_the_saga_cannot_apply_is_dead_lettered_and_the_order_does_not_move() {
    let service = start(Duration::from_secs(30)).await;
    let customer = auth::customer();
    let bus = listen(&service).await;
    // Each message is for a fresh `Pending` order, named by the queue it arrives on.
    type Build = fn(OrderId, Uuid) -> Envelope;
    let cases: [(&str, Build); 3] = [
        // The saga has no decision for it.
        ("order-svc.StockCommitted", |order_id, _| {
            Envelope::new(&StockCommitted { order_id }, None).unwrap()
        }),
        // A reservation of other quantities than were ordered cannot price the order.
        ("order-svc.StockReserved", |order_id, customer| {
            Envelope::new(&reserved(order_id, customer, &[("widget", 2, 100)]), None).unwrap()
        }),
        // Nor one for another customer.
        ("order-svc.StockReserved", |order_id, _| {
            Envelope::new(
                &reserved(order_id, auth::customer(), &[("widget", 1, 100)]),
                None,
            )
            .unwrap()
        }),
    ];
    let mut dead = std::collections::HashMap::<&str, u64>::new();
    for (queue, build) in cases {
        let order_id = id_of(&place(&service, customer, &[("widget", 1)]).await);
        bus.publish(&build(order_id, customer)).await;
        let depth = dead.entry(queue).or_default();
        *depth += 1;
        let dlq = outbox::dead_letter_queue(queue);
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while service.vhost.queue_depth(&dlq) < *depth {
            assert!(
                tokio::time::Instant::now() < deadline,
                "nothing dead-lettered on {dlq}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (_, unchanged) = service.get_json(&format!("/orders/{order_id}")).await;
        assert_eq!(unchanged["status"], "Pending", "{queue}");
        assert_eq!(prices(&unchanged), (vec![("widget".into(), 1, None)], None));
    }
}

/// The next message of type `wanted` about `order_id`, passing over others (re-sent
/// reservation requests, with a pacing this short).
async fn next_of(
    bus: &mut testkit::bus::TestBus,
    order_id: OrderId,
    wanted: contracts::MessageType,
) -> Envelope<AnyMessage> {
    loop {
        let envelope = bus.next(PATIENCE).await;
        if envelope.message_type == wanted && envelope.payload.order_id() == order_id {
            return envelope;
        }
    }
}

#[tokio::test]
async fn a_commit_whose_confirmation_never_comes_is_sent_again_until_it_is_confirmed() {
    let service = start_with(Duration::from_secs(30), Duration::from_millis(300)).await;
    let mut bus = listen(&service).await;
    let customer = auth::customer();
    let order_id = id_of(&place(&service, customer, &[("widget", 1)]).await);
    expect_created(&mut bus, order_id).await;
    bus.publish_message(&reserved(order_id, customer, &[("widget", 1, 100)]))
        .await;
    wait_status(&service, order_id, "Reserved").await;
    bus.publish_message(&paid(order_id, customer, 100)).await;
    use contracts::MessageType::{CommitStock, OrderCompleted};
    let first = next_of(&mut bus, order_id, CommitStock).await;
    // Inventory never answers this one: it is sent again, as a new message.
    let second = next_of(&mut bus, order_id, CommitStock).await;
    assert_ne!(first.message_id, second.message_id);
    let waiting = service
        .wait_for_json(&format!("/orders/{order_id}"), PATIENCE, |order| {
            awaiting(order)
                .iter()
                .any(|(effect, attempts)| effect == "CommitStock" && *attempts >= 2)
        })
        .await;
    assert_eq!(waiting["status"], "Paid");
    let commit = &waiting["awaiting_confirmation"][0];
    assert_eq!(commit["effect"], "CommitStock", "{waiting}");
    let sent = |field: &str| {
        commit[field]
            .as_str()
            .unwrap()
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
    };
    assert!(
        sent("first_sent_at") < sent("last_sent_at")
            && sent("last_sent_at") < sent("next_attempt_at"),
        "{commit}"
    );

    bus.publish_message(&StockCommitted { order_id }).await;
    let completed = wait_status(&service, order_id, "Completed").await;
    assert_eq!(awaiting(&completed), []);
    // Copies enqueued before the confirmation are published before the announcement (one
    // relay, in order); after it, nothing more is sent.
    next_of(&mut bus, order_id, OrderCompleted).await;
    bus.expect_silence(Duration::from_millis(1_500)).await;
}
