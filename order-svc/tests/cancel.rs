//! `POST /orders/{id}/cancel`: in every state, by whom, and racing the payment.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{
    PATIENCE, awaiting, cancel, expect_created, id_of, listen, next_types, paid, place, reserved,
    start, timeline, wait_status,
};
use contracts::{CustomerId, OrderId, StockCommitted, StockFailed};
use serde_json::Value;
use testkit::auth::{self, Identity};
use testkit::bus::TestBus;
use testkit::service::RunningService;
use uuid::Uuid;

/// The compensations and the announcement of cancelling a waiting order, in the order sent.
const PRE_EMPTIVE: [&str; 3] = ["ReleaseStock", "RefundPayment", "OrderCancelled"];

/// Places an order for `customer` and drives it into `state` with the participants' answers,
/// consuming every message it causes on the way.
async fn order_in(
    service: &RunningService,
    bus: &mut TestBus,
    customer: Uuid,
    state: &str,
) -> OrderId {
    let order_id = id_of(&place(service, customer, &[("widget", 1)]).await);
    expect_created(bus, order_id).await;
    let reservation = reserved(order_id, customer, &[("widget", 1, 400)]);
    match state {
        "Pending" => {}
        "Reserved" => {
            bus.publish_message(&reservation).await;
        }
        "Paid" | "Completed" => {
            bus.publish_message(&reservation).await;
            wait_status(service, order_id, "Reserved").await;
            bus.publish_message(&paid(order_id, customer, 400)).await;
            assert_eq!(next_types(bus, order_id, 1).await, ["CommitStock"]);
            if state == "Completed" {
                bus.publish_message(&StockCommitted { order_id }).await;
                assert_eq!(next_types(bus, order_id, 1).await, ["OrderCompleted"]);
            }
        }
        "Cancelled" => {
            bus.publish_message(&StockFailed {
                order_id,
                customer_id: CustomerId::from(customer),
                reason: "none left".into(),
            })
            .await;
            assert_eq!(next_types(bus, order_id, 1).await, ["OrderCancelled"]);
        }
        other => panic!("no way into {other}"),
    }
    wait_status(service, order_id, state).await;
    order_id
}

/// A cancellation: the order's state before, who asks, what they get (status code, the
/// order's status afterwards, the messages it sends, the cancellation reason shown).
struct Case {
    state: &'static str,
    by: Identity,
    code: u16,
    status: &'static str,
    sent: &'static [&'static str],
    reason: Option<&'static str>,
}

/// Cancels an order of `customer` in `case.state` as `case.by`, twice: the second request
/// gets the same answer and sends nothing.
async fn check(service: &RunningService, bus: &mut TestBus, customer: Uuid, case: Case) {
    let order_id = order_in(service, bus, customer, case.state).await;
    let what = format!("cancel a {} order as {:?}", case.state, case.by);
    for attempt in ["first", "repeated"] {
        let (code, body) = cancel(service, &case.by, order_id).await;
        assert_eq!(code, case.code, "{what} ({attempt}): {body}");
        match code {
            200 => {
                assert_eq!(body["status"], case.status, "{what}: {body}");
                assert_eq!(body["id"], order_id.to_string(), "{what}");
            }
            409 => {
                let detail = body["detail"].as_str().unwrap();
                assert!(
                    detail.contains(&format!("is {}", case.state)),
                    "{what}: the problem names the state: {body}"
                );
            }
            _ => assert_eq!(body["status"], code, "{what}: a problem: {body}"),
        }
        let sent = if attempt == "first" { case.sent } else { &[] };
        assert_eq!(
            next_types(bus, order_id, sent.len()).await,
            sent,
            "{what} ({attempt})"
        );
        bus.expect_silence(Duration::from_millis(300)).await;
    }
    let (_, order) = service.get_json(&format!("/orders/{order_id}")).await;
    assert_eq!(order["status"], case.status, "{what}: {order}");
    assert_eq!(
        order["cancellation_reason"].as_str(),
        case.reason,
        "{what}: {order}"
    );
    if case.sent == PRE_EMPTIVE {
        let last = timeline(&order).pop().unwrap();
        assert_eq!(
            (last.0.as_str(), last.1.as_str(), last.2.as_str()),
            (case.state, "CancelRequested", "Cancelled"),
            "{what}"
        );
        let mut awaited: Vec<String> = awaiting(&order).into_iter().map(|(e, _)| e).collect();
        awaited.sort();
        assert!(
            awaited.contains(&"ReleaseStock".to_owned())
                && awaited.contains(&"RefundPayment".to_owned()),
            "{what}: the compensations await their confirmations: {awaited:?}"
        );
    }
}

#[tokio::test]
async fn a_cancellation_is_decided_by_the_order_s_state_and_by_who_asks() {
    let service = start(Duration::from_secs(30)).await;
    let mut bus = listen(&service).await;
    let customer = auth::customer();
    let own = Identity::Customer(customer);
    let by_customer = Some("cancelled at the request of the customer");
    let case = |state, by: &Identity, code, status, sent, reason| Case {
        state,
        by: by.clone(),
        code,
        status,
        sent,
        reason,
    };
    let cases = [
        case("Pending", &own, 200, "Cancelled", &PRE_EMPTIVE, by_customer),
        case(
            "Reserved",
            &own,
            200,
            "Cancelled",
            &PRE_EMPTIVE,
            by_customer,
        ),
        case("Paid", &own, 409, "Paid", &[], None),
        case("Completed", &own, 409, "Completed", &[], None),
        // Already cancelled (stock failed): fine, nothing more to do, the first reason stays.
        case(
            "Cancelled",
            &own,
            200,
            "Cancelled",
            &[],
            Some("stock not reserved: none left"),
        ),
        // An operator may cancel anyone's order, and is named in the reason.
        case(
            "Reserved",
            &Identity::Operator,
            200,
            "Cancelled",
            &PRE_EMPTIVE,
            Some("cancelled at the request of operator testkit-operator"),
        ),
        // Another customer's order is as missing as an order that never was.
        case(
            "Reserved",
            &Identity::Customer(auth::customer()),
            404,
            "Reserved",
            &[],
            None,
        ),
        case("Pending", &Identity::Anonymous, 401, "Pending", &[], None),
    ];
    for case in cases {
        check(&service, &mut bus, customer, case).await;
    }
    let (code, _) = cancel(&service, &own, OrderId::generate()).await;
    assert_eq!(code, 404);
}

/// Waits until the order has settled after a cancellation raced its payment: paid (the
/// payment won), or cancelled with the late payment compensated (the cancellation won).
async fn settled_after_race(service: &RunningService, order_id: OrderId) -> Value {
    service
        .wait_for_json(&format!("/orders/{order_id}"), PATIENCE, |order| {
            order["status"] == "Paid"
                || (order["status"] == "Cancelled"
                    && timeline(order).last().is_some_and(|(from, event, to)| {
                        (from.as_str(), event.as_str(), to.as_str())
                            == ("Cancelled", "PaymentSucceeded", "Cancelled")
                    }))
        })
        .await
}

#[tokio::test]
async fn a_cancellation_racing_the_payment_never_leaves_a_charge_without_its_refund() {
    let service = start(Duration::from_secs(30)).await;
    let mut bus = listen(&service).await;
    let customer = auth::customer();
    let own = Identity::Customer(customer);
    // `Some(true)`: the cancellation arrives first; `Some(false)`: the payment does; `None`:
    // both at once, whichever wins.
    for cancel_first in [Some(true), Some(false), None, None, None] {
        let order_id = order_in(&service, &mut bus, customer, "Reserved").await;
        let payment = paid(order_id, customer, 400);
        let code = match cancel_first {
            Some(true) => {
                let (code, _) = cancel(&service, &own, order_id).await;
                bus.publish_message(&payment).await;
                code
            }
            Some(false) => {
                bus.publish_message(&payment).await;
                wait_status(&service, order_id, "Paid").await;
                cancel(&service, &own, order_id).await.0
            }
            None => {
                let (cancelled, _) = tokio::join!(
                    cancel(&service, &own, order_id),
                    bus.publish_message(&payment)
                );
                cancelled.0
            }
        };
        let order = settled_after_race(&service, order_id).await;
        let what = format!("cancel first: {cancel_first:?}: {order}");
        match order["status"].as_str().unwrap() {
            "Cancelled" => {
                assert_eq!(code, 200, "{what}");
                // The pre-emptive refund, and the late charge's own refund.
                let mut expected = PRE_EMPTIVE.to_vec();
                expected.push("RefundPayment");
                assert_eq!(next_types(&mut bus, order_id, 4).await, expected, "{what}");
            }
            "Paid" => {
                assert_eq!(code, 409, "{what}");
                assert_eq!(
                    next_types(&mut bus, order_id, 1).await,
                    ["CommitStock"],
                    "{what}"
                );
            }
            other => panic!("{other}: {what}"),
        }
        if cancel_first == Some(true) {
            assert_eq!(order["status"], "Cancelled", "{what}");
        }
        if cancel_first == Some(false) {
            assert_eq!(order["status"], "Paid", "{what}");
        }
        bus.expect_silence(Duration::from_millis(300)).await;
    }
}
