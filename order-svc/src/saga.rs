//! What the order saga hears and says, in the system's messages. Pure: the translation between
//! `contracts` messages and `saga_core::order`'s events and effects.

use std::time::Duration;

use contracts::{
    AnyMessage, CommitStock, CustomerId, Money, OrderCancelled, OrderCompleted, OrderCreated,
    OrderId, OrderLine, RefundPayment, ReleaseStock,
};
use saga_core::order::{OrderEffect, OrderEvent, OrderState};

/// An event the saga heard, with the reason a failure carried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heard {
    /// The saga event.
    pub event: OrderEvent,
    /// The participant's explanation, for failures.
    pub reason: Option<String>,
}

/// The saga event a message stands for; `None` for messages the saga does not hear.
pub fn heard(message: &AnyMessage) -> Option<Heard> {
    let (event, reason) = match message {
        AnyMessage::StockReserved(_) => (OrderEvent::StockReserved, None),
        AnyMessage::StockFailed(failed) => (OrderEvent::StockFailed, Some(failed.reason.clone())),
        AnyMessage::PaymentSucceeded(_) => (OrderEvent::PaymentSucceeded, None),
        AnyMessage::PaymentFailed(failed) => {
            (OrderEvent::PaymentFailed, Some(failed.reason.clone()))
        }
        AnyMessage::StockCommitted(_) => (OrderEvent::StockCommitted, None),
        AnyMessage::StockReleased(_) => (OrderEvent::StockReleased, None),
        AnyMessage::PaymentRefunded(_) => (OrderEvent::PaymentRefunded, None),
        _ => return None,
    };
    Some(Heard { event, reason })
}

/// Why the saga does what it does, in words for people: the cancellation reason, and the reason
/// carried by compensations.
pub fn reason(before: OrderState, heard: &Heard, saga_timeout: Duration) -> String {
    let carried = heard.reason.as_deref().unwrap_or("no reason given");
    match (before, heard.event) {
        (_, OrderEvent::StockFailed) => format!("stock not reserved: {carried}"),
        (_, OrderEvent::PaymentFailed) => format!("payment failed: {carried}"),
        (_, OrderEvent::DeadlinePassed) => {
            format!("not completed within {} s", saga_timeout.as_secs())
        }
        (OrderState::Cancelled, OrderEvent::StockReserved) => {
            "stock was reserved after the order was cancelled".into()
        }
        (OrderState::Cancelled, OrderEvent::PaymentSucceeded) => {
            "payment arrived after the order was cancelled".into()
        }
        (_, event) => format!("{event:?}"),
    }
}

/// What the saga knows about an order when it emits effects.
#[derive(Clone, Debug)]
pub struct OrderFacts {
    /// The order.
    pub order_id: OrderId,
    /// Its customer.
    pub customer_id: CustomerId,
    /// Its total.
    pub total: Money,
    /// Its lines (needed only to ask for the reservation).
    pub lines: Vec<OrderLine>,
}

/// The message that carries out `effect`.
pub fn effect_message(effect: OrderEffect, facts: &OrderFacts, reason: &str) -> AnyMessage {
    let order_id = facts.order_id;
    match effect {
        OrderEffect::ReserveStock => AnyMessage::OrderCreated(OrderCreated {
            order_id,
            customer_id: facts.customer_id,
            items: facts.lines.clone(),
            total: facts.total,
        }),
        OrderEffect::CommitStock => AnyMessage::CommitStock(CommitStock { order_id }),
        OrderEffect::ReleaseStock => AnyMessage::ReleaseStock(ReleaseStock {
            order_id,
            reason: reason.to_owned(),
        }),
        OrderEffect::RefundPayment => AnyMessage::RefundPayment(RefundPayment {
            order_id,
            reason: reason.to_owned(),
        }),
        OrderEffect::AnnounceCompleted => AnyMessage::OrderCompleted(OrderCompleted {
            order_id,
            customer_id: facts.customer_id,
            total: facts.total,
        }),
        OrderEffect::AnnounceCancelled => AnyMessage::OrderCancelled(OrderCancelled {
            order_id,
            customer_id: facts.customer_id,
            reason: reason.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::{MessageType, PaymentFailed, StockFailed, StockReserved};
    use saga_core::Label;

    #[test]
    fn every_message_the_saga_subscribes_to_is_an_event_it_hears() {
        let subscribed: Vec<MessageType> = contracts::Service::Order.subscriptions().collect();
        for message_type in subscribed {
            // The event is named after the message for everything order-svc consumes.
            assert!(
                OrderEvent::from_name(message_type.name()).is_some(),
                "{message_type}"
            );
        }
    }

    #[test]
    fn failures_carry_their_reason_into_the_cancellation() {
        let order_id = OrderId::generate();
        let cases = [
            (
                AnyMessage::StockFailed(StockFailed {
                    order_id,
                    reason: "unknown product x".into(),
                }),
                OrderState::Pending,
                "stock not reserved: unknown product x",
            ),
            (
                AnyMessage::PaymentFailed(PaymentFailed {
                    order_id,
                    reason: "insufficient balance".into(),
                }),
                OrderState::Reserved,
                "payment failed: insufficient balance",
            ),
            (
                AnyMessage::StockReserved(StockReserved {
                    order_id,
                    customer_id: CustomerId::generate(),
                    total: Money::ZERO,
                }),
                OrderState::Cancelled,
                "stock was reserved after the order was cancelled",
            ),
        ];
        for (message, before, expected) in cases {
            let heard = heard(&message).unwrap();
            assert_eq!(reason(before, &heard, Duration::from_secs(30)), expected);
        }
        let deadline = Heard {
            event: OrderEvent::DeadlinePassed,
            reason: None,
        };
        assert_eq!(
            reason(OrderState::Pending, &deadline, Duration::from_secs(30)),
            "not completed within 30 s"
        );
    }
}
