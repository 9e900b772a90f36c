//! Requests are re-sent with new message ids until they are answered: every copy is answered
//! with the one decision taken for its order, and money never moves twice.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Fixture, NO_DEMO_BALANCE, PATIENCE, money, refund, reserved};
use contracts::{AnyMessage, CustomerId, PaymentId, StockReserved};
use testkit::bus::TestBus;

/// Where an order's payment stands before a request is repeated.
#[derive(Clone, Copy, Debug)]
enum Prior {
    /// Payment never heard of the order.
    Nothing,
    Charged,
    /// The balance (1000) did not cover the total (1500).
    Failed,
    /// Charged, then refunded.
    Refunded,
    /// Refunded before the charge request came.
    Tombstone,
}

/// A request payment gets again and again: a charge (`StockReserved`, re-sent by inventory each
/// time the saga re-sends its reservation request) or a refund (`RefundPayment`, re-sent by the
/// saga until it hears `PaymentRefunded`).
#[derive(Clone, Copy, Debug)]
enum Request {
    Charge,
    Refund,
}

/// What each copy of a request must be answered with.
#[derive(Clone, Copy, Debug)]
enum Answer {
    /// `PaymentSucceeded` of the order's total, always with the same payment id.
    Succeeded,
    /// `PaymentFailed` with this reason.
    Failed(&'static str),
    /// `PaymentRefunded` of this amount.
    Refunded(i64),
    /// Nothing: a refunded order is cancelled, and nobody waits for the answer.
    Silence,
}

/// Sends `request` about `order` and checks the answer is `expected`, caused by it; a
/// `PaymentSucceeded` must name `payment` (the first one seen is recorded there).
async fn request_and_expect(
    bus: &mut TestBus,
    (order, request): (&StockReserved, Request),
    expected: Answer,
    payment: &mut Option<PaymentId>,
    case: &str,
) {
    let sent = match request {
        Request::Charge => bus.publish_message(order).await,
        Request::Refund => bus.publish_message(&refund(order.order_id)).await,
    };
    if let Answer::Silence = expected {
        bus.expect_silence(Duration::from_millis(500)).await;
        return;
    }
    let reply = bus.next(PATIENCE).await;
    assert_eq!(reply.causation_id, Some(sent.message_id), "{case}");
    match (reply.payload, expected) {
        (AnyMessage::PaymentSucceeded(succeeded), Answer::Succeeded) => {
            assert_eq!(
                (succeeded.order_id, succeeded.customer_id, succeeded.amount),
                (order.order_id, order.customer_id, order.total),
                "{case}"
            );
            let first = *payment.get_or_insert(succeeded.payment_id);
            assert_eq!(succeeded.payment_id, first, "{case}: another payment");
        }
        (AnyMessage::PaymentFailed(failed), Answer::Failed(reason)) => assert_eq!(
            (failed.order_id, failed.customer_id, failed.reason.as_str()),
            (order.order_id, order.customer_id, reason),
            "{case}"
        ),
        (AnyMessage::PaymentRefunded(refunded), Answer::Refunded(amount)) => assert_eq!(
            (refunded.order_id, refunded.amount),
            (order.order_id, money(amount)),
            "{case}"
        ),
        (other, _) => panic!("{case}: expected {expected:?}, got {other:?}"),
    }
}

/// Brings a fresh order (total 400, or 1500 for [`Prior::Failed`]) of a customer with 1000 to
/// `prior`, then sends `request` twice with different message ids, funding the account with
/// 1000 more after each copy (so that a second decision would now charge): both copies must get
/// `expected`, the customer must have paid `charged` in the end, and the payment must read
/// `status` with `amount`.
async fn check_repeat(
    (service, bus): (&Fixture, &mut TestBus),
    (prior, request): (Prior, Request),
    expected: Answer,
    (charged, status, amount): (i64, &str, i64),
) {
    let case = format!("{request:?} after {prior:?}");
    let customer = CustomerId::generate();
    service.set_balance(customer, 1_000).await;
    let total = if let Prior::Failed = prior {
        1_500
    } else {
        400
    };
    let order = reserved(customer, total);
    let setup: &[(Request, Answer)] = match prior {
        Prior::Nothing => &[],
        Prior::Charged => &[(Request::Charge, Answer::Succeeded)],
        Prior::Failed => &[(
            Request::Charge,
            Answer::Failed("insufficient balance: 1500 needed, 1000 available"),
        )],
        Prior::Refunded => &[
            (Request::Charge, Answer::Succeeded),
            (Request::Refund, Answer::Refunded(400)),
        ],
        Prior::Tombstone => &[(Request::Refund, Answer::Refunded(0))],
    };
    let mut payment = None;
    for &(step, answer) in setup {
        let what = format!("{case}: {step:?}");
        request_and_expect(bus, (&order, step), answer, &mut payment, &what).await;
    }
    for copy in ["first copy", "second copy"] {
        let what = format!("{case}, {copy}");
        request_and_expect(bus, (&order, request), expected, &mut payment, &what).await;
        let balance = service.balance(customer).await.unwrap();
        service.set_balance(customer, balance + 1_000).await;
    }
    assert_eq!(
        service.balance(customer).await,
        Some(3_000 - charged),
        "{case}: charged once at most"
    );
    let stored = service.payment(order.order_id).await;
    assert_eq!(
        (stored["status"].as_str(), stored["amount"].as_i64()),
        (Some(status), Some(amount)),
        "{case}: {stored}"
    );
    if let Some(payment_id) = payment {
        assert_eq!(stored["payment_id"], payment_id.to_string(), "{case}");
    }
}

/// Payment answers every copy of a request with the one decision taken for its order, and
/// never moves money twice: a repeated charge request answers the same payment or failure (a
/// refunded order none), a repeated refund `PaymentRefunded` every time. A refund before the
/// charge leaves a tombstone: the late charge request charges nothing.
#[tokio::test]
async fn every_copy_of_a_request_is_answered_with_the_decision_already_taken() {
    let service = Fixture::start(NO_DEMO_BALANCE).await;
    let mut bus = service.bus().await;
    const SHORT: &str = "insufficient balance: 1500 needed, 1000 available";
    // (prior state, request, answer to each copy, (charged in the end, status, amount)).
    type Case = (Prior, Request, Answer, (i64, &'static str, i64));
    let cases: &[Case] = &[
        (
            Prior::Nothing,
            Request::Charge,
            Answer::Succeeded,
            (400, "Charged", 400),
        ),
        (
            Prior::Charged,
            Request::Charge,
            Answer::Succeeded,
            (400, "Charged", 400),
        ),
        (
            Prior::Failed,
            Request::Charge,
            Answer::Failed(SHORT),
            (0, "Failed", 1_500),
        ),
        (
            Prior::Refunded,
            Request::Charge,
            Answer::Silence,
            (0, "Refunded", 400),
        ),
        (
            Prior::Tombstone,
            Request::Charge,
            Answer::Silence,
            (0, "Refunded", 0),
        ),
        (
            Prior::Nothing,
            Request::Refund,
            Answer::Refunded(0),
            (0, "Refunded", 0),
        ),
        (
            Prior::Charged,
            Request::Refund,
            Answer::Refunded(400),
            (0, "Refunded", 400),
        ),
        (
            Prior::Failed,
            Request::Refund,
            Answer::Refunded(0),
            (0, "Failed", 1_500),
        ),
        (
            Prior::Refunded,
            Request::Refund,
            Answer::Refunded(400),
            (0, "Refunded", 400),
        ),
        (
            Prior::Tombstone,
            Request::Refund,
            Answer::Refunded(0),
            (0, "Refunded", 0),
        ),
    ];
    for &(prior, request, answer, after) in cases {
        check_repeat((&service, &mut bus), (prior, request), answer, after).await;
    }
}
