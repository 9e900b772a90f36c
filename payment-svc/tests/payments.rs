//! Charges and refunds through the broker: what is charged and when a charge fails, refunds
//! and their tombstones, concurrent orders and replicas.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{
    DEMO_BALANCE, Fixture, NO_DEMO_BALANCE, PATIENCE, money, refund, reserved, reserved_lines,
};
use contracts::{AnyMessage, CustomerId, Envelope, Money, OrderId, PaymentId, StockReserved};
use serde_json::{Value, json};

#[tokio::test]
async fn a_funded_customer_is_charged_the_reserved_total_once() {
    let service = Fixture::start(NO_DEMO_BALANCE).await;
    let mut bus = service.bus().await;
    let customer = CustomerId::generate();
    service.set_balance(customer, 1_000).await;

    // 2 × 150 + 1 × 100: payment charges the total inventory priced, nothing else.
    let request = reserved_lines(customer, &[("apple", 2, 150), ("pear", 1, 100)]);
    assert_eq!(request.total, money(400));
    let envelope = bus.publish_message(&request).await;
    let reply = bus.next(PATIENCE).await;
    let payment_id = match reply.payload {
        AnyMessage::PaymentSucceeded(succeeded) => {
            assert_eq!(
                (succeeded.order_id, succeeded.customer_id, succeeded.amount),
                (request.order_id, customer, request.total)
            );
            succeeded.payment_id
        }
        other => panic!("expected PaymentSucceeded, got {other:?}"),
    };
    assert_eq!(reply.causation_id, Some(envelope.message_id));
    assert_eq!(reply.correlation_id, request.order_id);
    assert_eq!(service.balance(customer).await, Some(600));
    let payment = service.payment(request.order_id).await;
    assert_eq!(payment["status"], "Charged");
    assert_eq!(payment["amount"], 400);
    assert_eq!(payment["payment_id"], payment_id.to_string());
    assert_eq!(payment["customer_id"], customer.to_string());
    assert_eq!(payment["reason"], Value::Null);

    // A redelivery of the same message changes nothing and is not answered (the inbox).
    bus.publish(&envelope).await;
    bus.expect_silence(Duration::from_millis(500)).await;
    // Another message about the same order (a different message id: the saga re-sent its
    // request) charges nothing and is answered with the same payment.
    let repeat = bus.publish_message(&request).await;
    let reply = bus.next(PATIENCE).await;
    assert_eq!(reply.causation_id, Some(repeat.message_id));
    match reply.payload {
        AnyMessage::PaymentSucceeded(succeeded) => assert_eq!(
            (succeeded.order_id, succeeded.payment_id, succeeded.amount),
            (request.order_id, payment_id, request.total)
        ),
        other => panic!("expected PaymentSucceeded, got {other:?}"),
    }
    assert_eq!(service.balance(customer).await, Some(600));
    assert_eq!(
        service.payment(request.order_id).await["payment_id"],
        payment_id.to_string()
    );
}

/// A charge case: the demo balance, the customer's balance before (`None`: no account), the
/// total, the reason it fails (`None`: charged; `{customer}` stands for the customer's id), and
/// the balance after.
type ChargeCase = (i64, Option<i64>, i64, Option<&'static str>, Option<i64>);

/// What a customer without an account gets, and what a demo balance changes: without one, no
/// money from nowhere — the order fails payment and no account is opened; with one, the
/// stranger's account opens with it (and an existing account is not topped up).
#[tokio::test]
async fn a_charge_is_decided_by_the_account_and_the_demo_balance() {
    let without_demo = Fixture::start(NO_DEMO_BALANCE).await;
    let with_demo = Fixture::start(DEMO_BALANCE).await;
    let mut buses = [without_demo.bus().await, with_demo.bus().await];
    let cases: &[ChargeCase] = &[
        (NO_DEMO_BALANCE, Some(300), 300, None, Some(0)),
        (
            NO_DEMO_BALANCE,
            Some(250),
            300,
            Some("insufficient balance: 300 needed, 250 available"),
            Some(250),
        ),
        (
            NO_DEMO_BALANCE,
            Some(0),
            1,
            Some("insufficient balance: 1 needed, 0 available"),
            Some(0),
        ),
        (
            NO_DEMO_BALANCE,
            None,
            1,
            Some("customer {customer} has no account; an operator must fund one"),
            None,
        ),
        (DEMO_BALANCE, None, 300, None, Some(DEMO_BALANCE - 300)),
        (
            DEMO_BALANCE,
            None,
            DEMO_BALANCE + 1,
            Some("insufficient balance: 1001 needed, 1000 available"),
            Some(DEMO_BALANCE),
        ),
        (
            DEMO_BALANCE,
            Some(50),
            100,
            Some("insufficient balance: 100 needed, 50 available"),
            Some(50),
        ),
    ];
    for &(demo_balance, before, total, failure, after) in cases {
        let (service, bus) = match demo_balance {
            NO_DEMO_BALANCE => (&without_demo, &mut buses[0]),
            _ => (&with_demo, &mut buses[1]),
        };
        let customer = CustomerId::generate();
        if let Some(balance) = before {
            service.set_balance(customer, balance).await;
        }
        let case = format!("demo {demo_balance}, balance {before:?}, total {total}");
        let request = reserved(customer, total);
        bus.publish_message(&request).await;
        let payment = match (bus.next(PATIENCE).await.payload, failure) {
            (AnyMessage::PaymentSucceeded(succeeded), None) => {
                assert_eq!(
                    (succeeded.order_id, succeeded.customer_id, succeeded.amount),
                    (request.order_id, customer, request.total),
                    "{case}"
                );
                json!({
                    "order_id": request.order_id,
                    "status": "Charged",
                    "amount": total,
                    "payment_id": succeeded.payment_id,
                    "customer_id": customer,
                    "reason": null,
                })
            }
            (AnyMessage::PaymentFailed(failed), Some(reason)) => {
                let reason = reason.replace("{customer}", &customer.to_string());
                assert_eq!(
                    (failed.order_id, failed.customer_id, failed.reason.as_str()),
                    (request.order_id, customer, reason.as_str()),
                    "{case}"
                );
                json!({
                    "order_id": request.order_id,
                    "status": "Failed",
                    "amount": total,
                    "payment_id": null,
                    "customer_id": customer,
                    "reason": reason,
                })
            }
            (other, _) => panic!("{case}: expected {failure:?}, got {other:?}"),
        };
        assert_eq!(service.balance(customer).await, after, "{case}");
        assert_eq!(service.payment(request.order_id).await, payment, "{case}");
    }
}

#[tokio::test]
async fn a_refund_gives_the_money_back_once_and_is_answered_every_time() {
    let service = Fixture::start(NO_DEMO_BALANCE).await;
    let mut bus = service.bus().await;
    let customer = CustomerId::generate();
    service.set_balance(customer, 1_000).await;

    let request = reserved(customer, 400);
    bus.publish_message(&request).await;
    assert!(matches!(
        bus.next(PATIENCE).await.payload,
        AnyMessage::PaymentSucceeded(_)
    ));
    assert_eq!(service.balance(customer).await, Some(600));

    for attempt in ["first refund", "second refund"] {
        let command = bus.publish_message(&refund(request.order_id)).await;
        let reply = bus.next(PATIENCE).await;
        match reply.payload {
            AnyMessage::PaymentRefunded(refunded) => assert_eq!(
                (refunded.order_id, refunded.amount),
                (request.order_id, request.total),
                "{attempt}"
            ),
            other => panic!("{attempt}: expected PaymentRefunded, got {other:?}"),
        }
        assert_eq!(reply.causation_id, Some(command.message_id));
        assert_eq!(service.balance(customer).await, Some(1_000), "{attempt}");
        let payment = service.payment(request.order_id).await;
        assert_eq!(payment["status"], "Refunded", "{attempt}");
        assert_eq!(payment["amount"], 400, "{attempt}");
        assert_eq!(payment["reason"], "order cancelled", "{attempt}");
    }

    // A failed charge is "refunded" with nothing, and stays failed.
    let too_much = reserved(customer, 1_001);
    bus.publish_message(&too_much).await;
    assert!(matches!(
        bus.next(PATIENCE).await.payload,
        AnyMessage::PaymentFailed(_)
    ));
    bus.publish_message(&refund(too_much.order_id)).await;
    match bus.next(PATIENCE).await.payload {
        AnyMessage::PaymentRefunded(refunded) => assert_eq!(refunded.amount, Money::ZERO),
        other => panic!("expected PaymentRefunded, got {other:?}"),
    }
    assert_eq!(service.payment(too_much.order_id).await["status"], "Failed");
    assert_eq!(service.balance(customer).await, Some(1_000));
}

#[tokio::test]
async fn a_refund_before_the_charge_leaves_a_tombstone() {
    // With a demo balance, so that a charge would open an account: the tombstone prevents it.
    let service = Fixture::start(DEMO_BALANCE).await;
    let mut bus = service.bus().await;
    let customer = CustomerId::generate();
    let late = reserved(customer, 100);

    bus.publish_message(&refund(late.order_id)).await;
    match bus.next(PATIENCE).await.payload {
        AnyMessage::PaymentRefunded(refunded) => {
            assert_eq!(
                (refunded.order_id, refunded.amount),
                (late.order_id, Money::ZERO)
            );
        }
        other => panic!("expected PaymentRefunded, got {other:?}"),
    }
    let tombstone = service.payment(late.order_id).await;
    assert_eq!(tombstone["status"], "Refunded");
    assert_eq!(tombstone["amount"], 0);
    assert_eq!(tombstone["customer_id"], Value::Null);
    assert_eq!(tombstone["payment_id"], Value::Null);

    // The saga refunded an order payment had not seen yet; its late StockReserved charges
    // nothing, is not answered, and does not even open the customer's account.
    bus.publish_message(&late).await;
    bus.expect_silence(Duration::from_millis(500)).await;
    assert_eq!(service.balance(customer).await, None);
    assert_eq!(service.payment(late.order_id).await, tombstone);

    // Refunding it again answers again, with nothing.
    bus.publish_message(&refund(late.order_id)).await;
    match bus.next(PATIENCE).await.payload {
        AnyMessage::PaymentRefunded(refunded) => assert_eq!(refunded.amount, Money::ZERO),
        other => panic!("expected PaymentRefunded, got {other:?}"),
    }
}

#[tokio::test]
async fn concurrent_orders_for_one_customer_never_overdraw() {
    let service = Fixture::start(NO_DEMO_BALANCE).await;
    let mut bus = service.bus().await;
    let customer = CustomerId::generate();
    service.set_balance(customer, 1_000).await;
    let orders: Vec<Envelope> = {
        let mut published = Vec::new();
        for _ in 0..30 {
            published.push(bus.publish_message(&reserved(customer, 100)).await);
        }
        published
    };
    let (mut succeeded, mut failed) = (0, 0);
    for _ in &orders {
        match bus.next(PATIENCE).await.payload {
            AnyMessage::PaymentSucceeded(_) => succeeded += 1,
            AnyMessage::PaymentFailed(failed_payment) => {
                assert!(
                    failed_payment
                        .reason
                        .starts_with("insufficient balance: 100 needed, "),
                    "{}",
                    failed_payment.reason
                );
                failed += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((succeeded, failed), (10, 20));
    assert_eq!(service.balance(customer).await, Some(0));
}

#[tokio::test]
async fn two_replicas_decide_each_order_once() {
    let service = Fixture::start(NO_DEMO_BALANCE).await;
    let _replica = service.spawn_replica().await.drop_guard();
    let mut bus = service.bus().await;
    let customer = CustomerId::generate();
    service.set_balance(customer, 100_000).await;

    // Two different messages about each order, racing across the replicas.
    let requests: Vec<StockReserved> = (0..20).map(|_| reserved(customer, 100)).collect();
    for request in &requests {
        bus.publish_message(request).await;
        bus.publish_message(request).await;
    }
    // Each message is answered, both with the one payment decided for the order.
    let mut payments: HashMap<OrderId, Vec<PaymentId>> = HashMap::new();
    for _ in 0..requests.len() * 2 {
        match bus.next(PATIENCE).await.payload {
            AnyMessage::PaymentSucceeded(succeeded) => payments
                .entry(succeeded.order_id)
                .or_default()
                .push(succeeded.payment_id),
            other => panic!("unexpected {other:?}"),
        }
    }
    bus.expect_silence(Duration::from_secs(1)).await;
    for request in &requests {
        let answered = &payments[&request.order_id];
        assert_eq!(answered.len(), 2, "{answered:?}");
        assert_eq!(answered[0], answered[1], "two payments for one order");
    }
    assert_eq!(service.balance(customer).await, Some(100_000 - 20 * 100));
}
