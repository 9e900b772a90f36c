//! What the order saga hears and says, in the system's messages. Pure: the translation between
//! `contracts` messages and `saga_core::order`'s events and effects.

use std::time::Duration;

use contracts::{
    AnyMessage, CommitStock, CustomerId, InvalidOrder, Money, OrderCancelled, OrderCompleted,
    OrderCreated, OrderId, OrderLine, PricedLine, RefundPayment, ReleaseStock,
};
use saga_core::order::{OrderEffect, OrderEvent, OrderState};

/// An event the saga heard, with the reason a failure carried and what it tells about prices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heard {
    /// The saga event.
    pub event: OrderEvent,
    /// The participant's explanation, for failures.
    pub reason: Option<String>,
    /// What the message tells about the order's prices, recorded whatever the saga decides.
    pub learned: Option<Learned>,
}

/// What a participant tells order-svc about an order's prices. Prices come from inventory's
/// catalog at reservation; order-svc only records them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Learned {
    /// `StockReserved`: the lines priced from the catalog and their total, which payment
    /// charges.
    Reservation {
        /// Whom inventory reserved for (must be the order's customer).
        customer_id: CustomerId,
        /// The priced lines (must be the order's lines).
        items: Vec<PricedLine>,
        /// Σ quantity × unit price.
        total: Money,
    },
    /// `PaymentSucceeded`: what was charged, which is the reservation's total. It gives the
    /// order its total when the payment overtook the reservation.
    Charge {
        /// The amount charged.
        amount: Money,
    },
}

/// The saga event a message stands for; `None` for messages the saga does not hear.
pub fn heard(message: &AnyMessage) -> Option<Heard> {
    let (event, reason, learned) = match message {
        AnyMessage::StockReserved(reserved) => (
            OrderEvent::StockReserved,
            None,
            Some(Learned::Reservation {
                customer_id: reserved.customer_id,
                items: reserved.items.clone(),
                total: reserved.total,
            }),
        ),
        AnyMessage::StockFailed(failed) => {
            (OrderEvent::StockFailed, Some(failed.reason.clone()), None)
        }
        AnyMessage::PaymentSucceeded(paid) => (
            OrderEvent::PaymentSucceeded,
            None,
            Some(Learned::Charge {
                amount: paid.amount,
            }),
        ),
        AnyMessage::PaymentFailed(failed) => {
            (OrderEvent::PaymentFailed, Some(failed.reason.clone()), None)
        }
        AnyMessage::StockCommitted(_) => (OrderEvent::StockCommitted, None, None),
        AnyMessage::StockReleased(_) => (OrderEvent::StockReleased, None, None),
        AnyMessage::PaymentRefunded(_) => (OrderEvent::PaymentRefunded, None, None),
        _ => return None,
    };
    Some(Heard {
        event,
        reason,
        learned,
    })
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
        // The reason of a request names who asked ("the customer", "operator …").
        (_, OrderEvent::CancelRequested) => format!("cancelled at the request of {carried}"),
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
    /// What was charged (the reservation's total); `None` while unknown.
    pub total: Option<Money>,
    /// Its lines (needed only to ask for the reservation).
    pub lines: Vec<OrderLine>,
}

/// Why an effect's message cannot be built from the facts.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EffectError {
    /// The announcement of a completed order needs the total charged, and none is recorded.
    #[error("order {0} completed without a known total")]
    UnknownTotal(OrderId),
    /// The lines do not make an order.
    #[error("order {order_id}: {cause}")]
    InvalidOrder {
        /// The order.
        order_id: OrderId,
        /// What is wrong.
        cause: InvalidOrder,
    },
}

/// The message that carries out `effect`.
pub fn effect_message(
    effect: OrderEffect,
    facts: &OrderFacts,
    reason: &str,
) -> Result<AnyMessage, EffectError> {
    let order_id = facts.order_id;
    let message = match effect {
        OrderEffect::ReserveStock => AnyMessage::OrderCreated(
            OrderCreated::new(order_id, facts.customer_id, facts.lines.clone())
                .map_err(|cause| EffectError::InvalidOrder { order_id, cause })?,
        ),
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
            total: facts.total.ok_or(EffectError::UnknownTotal(order_id))?,
        }),
        OrderEffect::AnnounceCancelled => AnyMessage::OrderCancelled(OrderCancelled {
            order_id,
            customer_id: facts.customer_id,
            reason: reason.to_owned(),
        }),
    };
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::{
        MessageType, PaymentFailed, PaymentId, PaymentSucceeded, ProductId, Quantity, StockFailed,
        StockReserved,
    };
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

    fn priced_line(product_id: &str, quantity: i64, unit_price: i64) -> PricedLine {
        PricedLine {
            product_id: ProductId::new(product_id.to_owned()).unwrap(),
            quantity: Quantity::new(quantity).unwrap(),
            unit_price: Money::new(unit_price).unwrap(),
        }
    }

    #[test]
    fn failures_carry_their_reason_into_the_cancellation() {
        let order_id = OrderId::generate();
        let customer_id = CustomerId::generate();
        let cases = [
            (
                AnyMessage::StockFailed(StockFailed {
                    order_id,
                    customer_id,
                    reason: "unknown product x".into(),
                }),
                OrderState::Pending,
                "stock not reserved: unknown product x",
            ),
            (
                AnyMessage::PaymentFailed(PaymentFailed {
                    order_id,
                    customer_id,
                    reason: "insufficient balance".into(),
                }),
                OrderState::Reserved,
                "payment failed: insufficient balance",
            ),
            (
                AnyMessage::StockReserved(
                    StockReserved::new(order_id, customer_id, vec![priced_line("a", 1, 0)])
                        .unwrap(),
                ),
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
            learned: None,
        };
        assert_eq!(
            reason(OrderState::Pending, &deadline, Duration::from_secs(30)),
            "not completed within 30 s"
        );
        let request = Heard {
            event: OrderEvent::CancelRequested,
            reason: Some("the customer".into()),
            learned: None,
        };
        assert_eq!(
            reason(OrderState::Reserved, &request, Duration::from_secs(30)),
            "cancelled at the request of the customer"
        );
    }

    #[test]
    fn the_reservation_and_the_charge_tell_the_prices() {
        let order_id = OrderId::generate();
        let customer_id = CustomerId::generate();
        let items = vec![priced_line("a", 2, 150), priced_line("b", 1, 7)];
        let reserved = StockReserved::new(order_id, customer_id, items.clone()).unwrap();
        let paid = PaymentSucceeded {
            order_id,
            customer_id,
            payment_id: PaymentId::generate(),
            amount: Money::new(307).unwrap(),
        };
        let cases = [
            (
                AnyMessage::StockReserved(reserved),
                Some(Learned::Reservation {
                    customer_id,
                    items,
                    total: Money::new(307).unwrap(),
                }),
            ),
            (
                AnyMessage::PaymentSucceeded(paid),
                Some(Learned::Charge {
                    amount: Money::new(307).unwrap(),
                }),
            ),
            (
                AnyMessage::StockFailed(StockFailed {
                    order_id,
                    customer_id,
                    reason: "none left".into(),
                }),
                None,
            ),
        ];
        for (message, expected) in cases {
            assert_eq!(heard(&message).unwrap().learned, expected, "{message:?}");
        }
    }

    #[test]
    fn the_completion_announces_the_total_charged_and_needs_one() {
        let order_id = OrderId::generate();
        let facts = |total: Option<i64>| OrderFacts {
            order_id,
            customer_id: CustomerId::generate(),
            total: total.map(|minor| Money::new(minor).unwrap()),
            lines: Vec::new(),
        };
        let announced = effect_message(OrderEffect::AnnounceCompleted, &facts(Some(307)), "done");
        match announced {
            Ok(AnyMessage::OrderCompleted(completed)) => {
                assert_eq!(completed.total, Money::new(307).unwrap())
            }
            other => panic!("expected OrderCompleted, got {other:?}"),
        }
        assert_eq!(
            effect_message(OrderEffect::AnnounceCompleted, &facts(None), "done"),
            Err(EffectError::UnknownTotal(order_id))
        );
        // The reservation request is checked like any OrderCreated: no empty orders.
        assert!(matches!(
            effect_message(OrderEffect::ReserveStock, &facts(None), "placed"),
            Err(EffectError::InvalidOrder { .. })
        ));
    }
}
