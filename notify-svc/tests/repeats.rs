//! Participants answer every re-sent command again, each answer under a new message id, and the
//! broker redelivers: a customer is still told each fact about their order once. Each kind of
//! notification (`PaymentSucceeded`, `OrderCancelled`, …) is sent at most once per order, the
//! first message of that kind being the one notified; different kinds each notify.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{await_drained, bus, envelope, money, notifications, start};
use contracts::{
    CustomerId, Envelope, OrderCancelled, OrderCompleted, OrderId, PaymentFailed, PaymentId,
    PaymentSucceeded, StockFailed,
};
use testkit::service::RunningService;

/// The messages of one case, all about `order_id`, and the indices of those notified.
struct Case {
    what: &'static str,
    order_id: OrderId,
    published: Vec<Envelope>,
    notified: &'static [usize],
}

/// The order of `case` lists exactly the notifications of the messages at its `notified`
/// indices. Different kinds come through different queues and may be handled in any order, so
/// the comparison ignores the listing's order (the sending order is another test's).
async fn check(service: &RunningService, case: &Case) {
    let mut listed: Vec<String> = notifications(service, case.order_id)
        .await
        .iter()
        .map(|notification| notification["message_id"].as_str().unwrap().to_owned())
        .collect();
    let mut expected: Vec<String> = case
        .notified
        .iter()
        .map(|index| case.published[*index].message_id.to_string())
        .collect();
    listed.sort();
    expected.sort();
    assert_eq!(listed, expected, "{}", case.what);
}

/// The facts one order goes through, each copy of one under a message id of its own, as a
/// participant answering a re-sent command sends them.
struct Facts {
    order_id: OrderId,
    customer_id: CustomerId,
    payment_id: PaymentId,
}

impl Facts {
    fn new() -> Facts {
        Facts {
            order_id: OrderId::generate(),
            customer_id: CustomerId::generate(),
            payment_id: PaymentId::generate(),
        }
    }

    /// The one payment of the order: every copy names the same payment and amount.
    fn paid(&self) -> Envelope {
        envelope(&PaymentSucceeded {
            order_id: self.order_id,
            customer_id: self.customer_id,
            payment_id: self.payment_id,
            amount: money(2_500),
        })
    }

    fn payment_failed(&self) -> Envelope {
        envelope(&PaymentFailed {
            order_id: self.order_id,
            customer_id: self.customer_id,
            reason: "insufficient balance: 2500 needed, 0 available".into(),
        })
    }

    fn stock_failed(&self, reason: &str) -> Envelope {
        envelope(&StockFailed {
            order_id: self.order_id,
            customer_id: self.customer_id,
            reason: reason.into(),
        })
    }

    fn completed(&self) -> Envelope {
        envelope(&OrderCompleted {
            order_id: self.order_id,
            customer_id: self.customer_id,
            total: money(2_500),
        })
    }

    fn cancelled(&self) -> Envelope {
        envelope(&OrderCancelled {
            order_id: self.order_id,
            customer_id: self.customer_id,
            reason: "deadline passed".into(),
        })
    }

    fn case(
        &self,
        what: &'static str,
        published: Vec<Envelope>,
        notified: &'static [usize],
    ) -> Case {
        Case {
            what,
            order_id: self.order_id,
            published,
            notified,
        }
    }
}

/// Every case's messages are published (one queue per type, each in order), notify takes them
/// all off its queues, and then each order lists one notification per kind it was sent: the
/// first copy's, whatever the message ids of the others.
#[tokio::test]
async fn each_fact_about_an_order_is_notified_once_whatever_its_message_id() {
    let service = start().await;
    let bus = bus(&service).await;
    let cases: Vec<Case> = [
        {
            let facts = Facts::new();
            facts.case(
                "payment's answer to a re-sent StockReserved, twice",
                vec![facts.paid(), facts.paid()],
                &[0],
            )
        },
        {
            let facts = Facts::new();
            facts.case(
                "inventory's answer to a re-sent OrderCreated, three times, the last worded \
                 differently",
                vec![
                    facts.stock_failed("insufficient stock for apple: 2 requested, 1 available"),
                    facts.stock_failed("insufficient stock for apple: 2 requested, 1 available"),
                    facts.stock_failed("the order was cancelled before its stock was reserved"),
                ],
                &[0],
            )
        },
        {
            let facts = Facts::new();
            facts.case(
                "payment's refusal, answered twice",
                vec![facts.payment_failed(), facts.payment_failed()],
                &[0],
            )
        },
        {
            let facts = Facts::new();
            facts.case(
                "the saga's completion, announced twice",
                vec![facts.completed(), facts.completed()],
                &[0],
            )
        },
        {
            let facts = Facts::new();
            facts.case(
                "the saga's cancellation, announced twice",
                vec![facts.cancelled(), facts.cancelled()],
                &[0],
            )
        },
        {
            let facts = Facts::new();
            let once = facts.paid();
            facts.case(
                "one message, redelivered under its own message id",
                vec![once.clone(), once],
                &[0],
            )
        },
        {
            let facts = Facts::new();
            facts.case(
                "a completed order: paid and completed, each twice",
                vec![
                    facts.paid(),
                    facts.completed(),
                    facts.paid(),
                    facts.completed(),
                ],
                &[0, 1],
            )
        },
        {
            let facts = Facts::new();
            facts.case(
                "an order out of stock: failed and cancelled, the failure twice",
                vec![
                    facts.stock_failed("unknown product durian"),
                    facts.cancelled(),
                    facts.stock_failed("unknown product durian"),
                ],
                &[0, 1],
            )
        },
        {
            let facts = Facts::new();
            facts.case(
                "an order its customer could not pay: refused and cancelled, each twice",
                vec![
                    facts.payment_failed(),
                    facts.payment_failed(),
                    facts.cancelled(),
                    facts.cancelled(),
                ],
                &[0, 2],
            )
        },
    ]
    .into();
    for case in &cases {
        for published in &case.published {
            bus.publish(published).await;
        }
    }
    await_drained(&service).await;
    for case in &cases {
        check(&service, case).await;
    }
}
