//! What a customer is told about their order, built from a message: pure, no I/O.

use chrono::{DateTime, Utc};
use contracts::{AnyMessage, CustomerId, Envelope, MessageId, Money, OrderId};

/// What a notification is about: the name of the message that caused it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The order's goods could not be reserved.
    StockFailed,
    /// The order could not be paid for.
    PaymentFailed,
    /// The order was paid for.
    PaymentSucceeded,
    /// The order completed.
    OrderCompleted,
    /// The order was cancelled.
    OrderCancelled,
}

impl Kind {
    /// The name clients see, the same as the message type's: `StockFailed`, ….
    pub fn name(self) -> &'static str {
        match self {
            Kind::StockFailed => "StockFailed",
            Kind::PaymentFailed => "PaymentFailed",
            Kind::PaymentSucceeded => "PaymentSucceeded",
            Kind::OrderCompleted => "OrderCompleted",
            Kind::OrderCancelled => "OrderCancelled",
        }
    }
}

/// A notification sent to the customer of an order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    /// The order it is about.
    pub order_id: OrderId,
    /// Whom it was sent to: the customer the message names. Only they (and operators) may read
    /// it.
    pub customer_id: CustomerId,
    /// What happened.
    pub kind: Kind,
    /// The text the customer reads.
    pub message: String,
    /// When it was sent (UTC).
    pub sent_at: DateTime<Utc>,
    /// The message that caused it.
    pub message_id: MessageId,
}

/// The notification `envelope` calls for, sent at `sent_at`; `None` for a message that calls
/// for none.
pub fn notification_for(
    envelope: &Envelope<AnyMessage>,
    sent_at: DateTime<Utc>,
) -> Option<Notification> {
    let composed = compose(&envelope.payload)?;
    Some(Notification {
        order_id: envelope.payload.order_id(),
        customer_id: composed.customer_id,
        kind: composed.kind,
        message: composed.text,
        sent_at,
        message_id: envelope.message_id,
    })
}

/// What a message calls for: the notification's kind, recipient and text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Composed {
    /// What happened.
    pub kind: Kind,
    /// Whom to tell.
    pub customer_id: CustomerId,
    /// What to tell them.
    pub text: String,
}

/// The notification `message` calls for, or `None` if it calls for none.
pub fn compose(message: &AnyMessage) -> Option<Composed> {
    let order_id = message.order_id();
    // One match names kind, recipient and text together, so that no notified type can lack a
    // recipient.
    let (kind, customer_id, text) = match message {
        AnyMessage::StockFailed(failed) => (
            Kind::StockFailed,
            failed.customer_id,
            with_reason(
                format!("The items of your order {order_id} could not be reserved"),
                &failed.reason,
            ),
        ),
        AnyMessage::PaymentFailed(failed) => (
            Kind::PaymentFailed,
            failed.customer_id,
            with_reason(
                format!("Payment for your order {order_id} failed"),
                &failed.reason,
            ),
        ),
        AnyMessage::PaymentSucceeded(paid) => (
            Kind::PaymentSucceeded,
            paid.customer_id,
            format!(
                "Payment of {} received for order {order_id}",
                format_money(paid.amount)
            ),
        ),
        AnyMessage::OrderCompleted(completed) => (
            Kind::OrderCompleted,
            completed.customer_id,
            format!(
                "Your order {order_id} is complete; {} was charged",
                format_money(completed.total)
            ),
        ),
        AnyMessage::OrderCancelled(cancelled) => (
            Kind::OrderCancelled,
            cancelled.customer_id,
            with_reason(
                format!("Your order {order_id} was cancelled"),
                &cancelled.reason,
            ),
        ),
        _ => return None,
    };
    Some(Composed {
        kind,
        customer_id,
        text,
    })
}

/// `sentence: reason`, or the sentence alone when there is no reason.
fn with_reason(sentence: String, reason: &str) -> String {
    match reason.trim() {
        "" => sentence,
        reason => format!("{sentence}: {reason}"),
    }
}

/// Minor units as `units.cents`, without floats: 2500 → `25.00`, 5 → `0.05`.
pub fn format_money(amount: Money) -> String {
    let minor_units = amount.minor_units();
    format!("{}.{:02}", minor_units / 100, minor_units % 100)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use contracts::{
        CommitStock, MessageType, OrderCancelled, OrderCompleted, PaymentFailed, PaymentId,
        PaymentSucceeded, PricedLine, ProductId, Quantity, StockFailed, StockReserved,
    };

    use super::*;

    const ORDER: &str = "0199c3e1-0000-7000-8000-000000000001";

    fn order_id() -> OrderId {
        ORDER.parse().unwrap()
    }

    fn money(minor_units: i64) -> Money {
        Money::new(minor_units).unwrap()
    }

    /// `message` calls for `expected` (kind and text), sent to `recipient`, and the kind is
    /// named after the message.
    fn check(message: AnyMessage, recipient: CustomerId, expected: Option<(Kind, &str)>) {
        let composed = compose(&message);
        assert_eq!(
            composed
                .as_ref()
                .map(|composed| (composed.kind, composed.text.as_str())),
            expected,
            "{message:?}"
        );
        if let Some(composed) = composed {
            assert_eq!(composed.kind.name(), message.message_type().name());
            assert_eq!(composed.customer_id, recipient, "{message:?}");
        }
    }

    #[test]
    fn every_notified_message_gets_its_text() {
        let customer_id = CustomerId::generate();
        let cases = [
            (
                StockFailed {
                    order_id: order_id(),
                    customer_id,
                    reason: "unknown product durian".into(),
                }
                .into(),
                Some((
                    Kind::StockFailed,
                    "The items of your order 0199c3e1-0000-7000-8000-000000000001 could not be \
                     reserved: unknown product durian",
                )),
            ),
            (
                PaymentFailed {
                    order_id: order_id(),
                    customer_id,
                    reason: "insufficient balance: 1500 needed, 900 available".into(),
                }
                .into(),
                Some((
                    Kind::PaymentFailed,
                    "Payment for your order 0199c3e1-0000-7000-8000-000000000001 failed: \
                     insufficient balance: 1500 needed, 900 available",
                )),
            ),
            (
                PaymentSucceeded {
                    order_id: order_id(),
                    customer_id,
                    payment_id: PaymentId::generate(),
                    amount: money(2_500),
                }
                .into(),
                Some((
                    Kind::PaymentSucceeded,
                    "Payment of 25.00 received for order 0199c3e1-0000-7000-8000-000000000001",
                )),
            ),
            (
                OrderCompleted {
                    order_id: order_id(),
                    customer_id,
                    total: money(1_999),
                }
                .into(),
                Some((
                    Kind::OrderCompleted,
                    "Your order 0199c3e1-0000-7000-8000-000000000001 is complete; 19.99 was \
                     charged",
                )),
            ),
            (
                OrderCancelled {
                    order_id: order_id(),
                    customer_id,
                    reason: "insufficient balance: 1500 needed, 900 available".into(),
                }
                .into(),
                Some((
                    Kind::OrderCancelled,
                    "Your order 0199c3e1-0000-7000-8000-000000000001 was cancelled: \
                     insufficient balance: 1500 needed, 900 available",
                )),
            ),
            (
                OrderCancelled {
                    order_id: order_id(),
                    customer_id,
                    reason: "  ".into(),
                }
                .into(),
                Some((
                    Kind::OrderCancelled,
                    "Your order 0199c3e1-0000-7000-8000-000000000001 was cancelled",
                )),
            ),
            (
                StockReserved::new(
                    order_id(),
                    customer_id,
                    vec![PricedLine {
                        product_id: ProductId::new("apple").unwrap(),
                        quantity: Quantity::new(2).unwrap(),
                        unit_price: money(50),
                    }],
                )
                .unwrap()
                .into(),
                None,
            ),
            (
                CommitStock {
                    order_id: order_id(),
                }
                .into(),
                None,
            ),
        ];
        for (message, expected) in cases {
            check(message, customer_id, expected);
        }
    }

    #[test]
    fn money_reads_as_units_and_cents() {
        let cases = [
            (0, "0.00"),
            (5, "0.05"),
            (99, "0.99"),
            (100, "1.00"),
            (2_500, "25.00"),
            (123_456, "1234.56"),
            (i64::MAX, "92233720368547758.07"),
        ];
        for (minor_units, expected) in cases {
            assert_eq!(format_money(money(minor_units)), expected, "{minor_units}");
        }
    }

    #[test]
    fn a_notification_carries_the_order_its_customer_the_time_and_the_cause() {
        let customer_id = CustomerId::generate();
        let paid = PaymentSucceeded {
            order_id: order_id(),
            customer_id,
            payment_id: PaymentId::generate(),
            amount: money(1),
        };
        let envelope = Envelope {
            message_id: MessageId::generate(),
            message_type: MessageType::PaymentSucceeded,
            correlation_id: order_id(),
            causation_id: None,
            occurred_at: Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 0).unwrap(),
            schema_version: 1,
            payload: AnyMessage::from(paid),
        };
        let sent_at = Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(
            notification_for(&envelope, sent_at),
            Some(Notification {
                order_id: order_id(),
                customer_id,
                kind: Kind::PaymentSucceeded,
                message: format!("Payment of 0.01 received for order {ORDER}"),
                sent_at,
                message_id: envelope.message_id,
            })
        );
    }
}
