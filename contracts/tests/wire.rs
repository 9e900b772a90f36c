//! The wire formats: JSON round trips of every message, the envelope's mapping onto broker
//! properties, a pinned golden payload, and rejection of invalid input.

// Test helpers outside `#[test]` functions may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use contracts::envelope::{WireMessage, format_occurred_at};
use contracts::*;
use proptest::prelude::*;
use uuid::Uuid;

fn any_uuid<T: From<Uuid> + std::fmt::Debug>() -> impl Strategy<Value = T> {
    any::<u128>().prop_map(|bits| T::from(Uuid::from_u128(bits)))
}

fn any_money() -> impl Strategy<Value = Money> {
    (0..=i64::MAX).prop_map(|units| Money::new(units).unwrap())
}

fn any_product_id() -> impl Strategy<Value = ProductId> {
    "[A-Za-z0-9_-]{1,64}".prop_map(|id| ProductId::new(id).unwrap())
}

fn any_reason() -> impl Strategy<Value = String> {
    any::<String>()
}

/// Orders whose total is right and fits: lines with small enough prices and quantities.
fn any_order_created() -> impl Strategy<Value = OrderCreated> {
    let line = (any_product_id(), 1..=10_000i64, 0..=1_000_000_000i64).prop_map(
        |(product_id, quantity, price)| OrderLine {
            product_id,
            quantity: Quantity::new(quantity).unwrap(),
            unit_price: Money::new(price).unwrap(),
        },
    );
    (
        any_uuid(),
        any_uuid(),
        proptest::collection::vec(line, 1..8),
    )
        .prop_filter_map("distinct products", |(order_id, customer_id, items)| {
            OrderCreated::new(order_id, customer_id, items).ok()
        })
}

fn any_message() -> impl Strategy<Value = AnyMessage> {
    prop_oneof![
        any_order_created().prop_map(AnyMessage::from),
        (any_uuid(), any_uuid(), any_money()).prop_map(|(order_id, customer_id, total)| {
            StockReserved {
                order_id,
                customer_id,
                total,
            }
            .into()
        }),
        (any_uuid(), any_reason())
            .prop_map(|(order_id, reason)| StockFailed { order_id, reason }.into()),
        (any_uuid(), any_uuid(), any_money()).prop_map(|(order_id, payment_id, amount)| {
            PaymentSucceeded {
                order_id,
                payment_id,
                amount,
            }
            .into()
        }),
        (any_uuid(), any_reason()).prop_map(|(order_id, reason)| PaymentFailed {
            order_id,
            reason
        }
        .into()),
        any_uuid().prop_map(|order_id| CommitStock { order_id }.into()),
        any_uuid().prop_map(|order_id| StockCommitted { order_id }.into()),
        (any_uuid(), any_reason())
            .prop_map(|(order_id, reason)| ReleaseStock { order_id, reason }.into()),
        any_uuid().prop_map(|order_id| StockReleased { order_id }.into()),
        (any_uuid(), any_reason()).prop_map(|(order_id, reason)| RefundPayment {
            order_id,
            reason
        }
        .into()),
        (any_uuid(), any_money()).prop_map(|(order_id, amount)| PaymentRefunded {
            order_id,
            amount
        }
        .into()),
        (any_uuid(), any_uuid(), any_money()).prop_map(|(order_id, customer_id, total)| {
            OrderCompleted {
                order_id,
                customer_id,
                total,
            }
            .into()
        }),
        (any_uuid(), any_uuid(), any_reason()).prop_map(|(order_id, customer_id, reason)| {
            OrderCancelled {
                order_id,
                customer_id,
                reason,
            }
            .into()
        }),
    ]
}

fn payload_of(message: &AnyMessage) -> serde_json::Value {
    macro_rules! to_value {
        ($($name:ident),+) => {
            match message { $( AnyMessage::$name(inner) => serde_json::to_value(inner).unwrap(), )+ }
        };
    }
    to_value!(
        OrderCreated,
        StockReserved,
        StockFailed,
        PaymentSucceeded,
        PaymentFailed,
        CommitStock,
        StockCommitted,
        ReleaseStock,
        StockReleased,
        RefundPayment,
        PaymentRefunded,
        OrderCompleted,
        OrderCancelled
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_message_survives_a_json_round_trip(message in any_message()) {
        let bytes = serde_json::to_vec(&payload_of(&message)).unwrap();
        let decoded = AnyMessage::decode(message.message_type(), &bytes).unwrap();
        prop_assert_eq!(decoded, message);
    }

    #[test]
    fn every_message_survives_the_broker_mapping(
        message in any_message(),
        message_id in any_uuid::<MessageId>(),
        causation in proptest::option::of(any_uuid::<MessageId>()),
    ) {
        let body = serde_json::to_vec(&payload_of(&message)).unwrap();
        let (id, order, cause) = (message_id.to_string(), message.order_id().to_string(), causation.map(|c| c.to_string()));
        let occurred_at = contracts::envelope::now();
        let occurred = format_occurred_at(occurred_at);
        let wire = WireMessage {
            message_id: Some(&id),
            message_type: Some(message.message_type().name()),
            correlation_id: Some(&order),
            content_type: Some(contracts::envelope::CONTENT_TYPE),
            causation_id: cause.as_deref(),
            occurred_at: Some(&occurred),
            schema_version: Some(1),
            body: &body,
        };
        let envelope = wire.decode().unwrap();
        prop_assert_eq!(envelope.message_id, message_id);
        prop_assert_eq!(envelope.causation_id, causation);
        prop_assert_eq!(envelope.occurred_at, occurred_at);
        prop_assert_eq!(envelope.correlation_id, message.order_id());
        prop_assert_eq!(envelope.payload, message);
    }

    #[test]
    fn envelopes_survive_a_json_round_trip(message in any_message()) {
        let envelope = Envelope {
            message_id: MessageId::generate(),
            message_type: message.message_type(),
            correlation_id: message.order_id(),
            causation_id: None,
            occurred_at: contracts::envelope::now(),
            schema_version: 1,
            payload: payload_of(&message),
        };
        let text = serde_json::to_string(&envelope).unwrap();
        prop_assert_eq!(serde_json::from_str::<Envelope>(&text).unwrap(), envelope);
    }
}

fn golden_order() -> OrderCreated {
    OrderCreated::new(
        "0199c3e1-0000-7000-8000-000000000001".parse().unwrap(),
        "0199c3e1-0000-7000-8000-0000000000c1".parse().unwrap(),
        vec![
            OrderLine {
                product_id: ProductId::new("widget-blue").unwrap(),
                quantity: Quantity::new(3).unwrap(),
                unit_price: Money::new(1_250).unwrap(),
            },
            OrderLine {
                product_id: ProductId::new("gadget_42").unwrap(),
                quantity: Quantity::new(1).unwrap(),
                unit_price: Money::new(9_999).unwrap(),
            },
        ],
    )
    .unwrap()
}

/// The exact bytes of an `OrderCreated` payload. A change here breaks every consumer already
/// deployed: bump the schema version instead.
#[test]
fn order_created_wire_json_is_pinned() {
    let golden = include_str!("golden/order_created.json");
    let written = serde_json::to_string_pretty(&golden_order()).unwrap() + "\n";
    assert_eq!(written, golden);
    assert_eq!(
        serde_json::from_str::<OrderCreated>(golden).unwrap(),
        golden_order()
    );
}

fn check_payload_rejected(message_type: MessageType, body: &str, expected: &str) {
    let error = AnyMessage::decode(message_type, body.as_bytes())
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(expected),
        "{message_type} {body}: {error:?} lacks {expected:?}"
    );
}

#[test]
fn invalid_payloads_are_rejected_with_a_reason() {
    let order = r#""order_id":"0199c3e1-0000-7000-8000-000000000001""#;
    let customer = r#""customer_id":"0199c3e1-0000-7000-8000-0000000000c1""#;
    let cases = [
        (
            MessageType::StockReserved,
            "{".to_owned(),
            "EOF while parsing",
        ),
        (
            MessageType::StockReserved,
            "[]".to_owned(),
            "expected struct StockReserved",
        ),
        (
            MessageType::StockReserved,
            "42".to_owned(),
            "invalid type: integer",
        ),
        (
            MessageType::StockReserved,
            format!("{{{order},{customer}}}"),
            "missing field `total`",
        ),
        (
            MessageType::StockReserved,
            format!(r#"{{{order},{customer},"total":-1}}"#),
            "at least 0",
        ),
        (
            MessageType::StockReserved,
            format!(r#"{{{order},{customer},"total":1.5}}"#),
            "invalid type: floating point",
        ),
        (
            MessageType::StockReserved,
            format!(r#"{{{order},{customer},"total":"7"}}"#),
            "invalid type: string",
        ),
        (
            MessageType::CommitStock,
            r#"{"order_id":"not-a-uuid"}"#.to_owned(),
            "UUID",
        ),
        (
            MessageType::OrderCreated,
            format!(r#"{{{order},{customer},"items":[],"total":0}}"#),
            "at least one line",
        ),
        (
            MessageType::OrderCreated,
            format!(
                r#"{{{order},{customer},"items":[{{"product_id":"a","quantity":0,"unit_price":1}}],"total":0}}"#
            ),
            "quantity must be between 1",
        ),
        (
            MessageType::OrderCreated,
            format!(
                r#"{{{order},{customer},"items":[{{"product_id":"a b","quantity":1,"unit_price":1}}],"total":1}}"#
            ),
            "product id must be",
        ),
        (
            MessageType::OrderCreated,
            format!(
                r#"{{{order},{customer},"items":[{{"product_id":"a","quantity":2,"unit_price":5}}],"total":9}}"#
            ),
            "total 9 differs from the sum of the lines, 10",
        ),
        (
            MessageType::OrderCreated,
            format!(
                r#"{{{order},{customer},"items":[{{"product_id":"a","quantity":1,"unit_price":1}},{{"product_id":"a","quantity":1,"unit_price":1}}],"total":2}}"#
            ),
            "product a appears on more than one line",
        ),
        (
            MessageType::OrderCreated,
            format!(
                r#"{{{order},{customer},"items":[{{"product_id":"a","quantity":2147483647,"unit_price":9223372036854775807}}],"total":1}}"#
            ),
            "overflows",
        ),
    ];
    for (message_type, body, expected) in cases {
        check_payload_rejected(message_type, &body, expected);
    }
}

fn check_wire_rejected(wire: WireMessage<'_>, expected: &str) {
    let error = wire.decode().unwrap_err().to_string();
    assert!(
        error.contains(expected),
        "{wire:?}: {error:?} lacks {expected:?}"
    );
}

#[test]
fn broken_broker_messages_are_rejected_with_a_reason() {
    let order = "0199c3e1-0000-7000-8000-000000000001";
    let body = format!(r#"{{"order_id":"{order}"}}"#);
    let valid = WireMessage {
        message_id: Some("0199c3e1-0000-7000-8000-0000000000aa"),
        message_type: Some("CommitStock"),
        correlation_id: Some(order),
        body: body.as_bytes(),
        ..WireMessage::default()
    };
    assert!(valid.decode().is_ok());
    let huge = vec![b'x'; 10 * 1024 * 1024];
    let cases = [
        (
            WireMessage {
                message_id: None,
                ..valid
            },
            "missing header `message_id`",
        ),
        (
            WireMessage {
                message_id: Some("7"),
                ..valid
            },
            "invalid header `message_id`",
        ),
        (
            WireMessage {
                message_type: None,
                ..valid
            },
            "missing header `type`",
        ),
        (
            WireMessage {
                message_type: Some("Launch"),
                ..valid
            },
            "unknown message type \"Launch\"",
        ),
        (
            WireMessage {
                correlation_id: None,
                ..valid
            },
            "missing header `correlation_id`",
        ),
        (
            WireMessage {
                correlation_id: Some("0199c3e1-0000-7000-8000-000000000002"),
                ..valid
            },
            "differs from correlation id",
        ),
        (
            WireMessage {
                content_type: Some("text/plain"),
                ..valid
            },
            "invalid header `content_type`",
        ),
        (
            WireMessage {
                schema_version: Some(2),
                ..valid
            },
            "version 2 is not supported",
        ),
        (
            WireMessage {
                occurred_at: Some("yesterday"),
                ..valid
            },
            "invalid header `x-occurred-at`",
        ),
        (
            WireMessage {
                causation_id: Some(""),
                ..valid
            },
            "invalid header `x-causation-id`",
        ),
        (
            WireMessage {
                body: b"not json",
                ..valid
            },
            "invalid CommitStock payload",
        ),
        (
            WireMessage {
                body: &huge,
                ..valid
            },
            "invalid CommitStock payload",
        ),
    ];
    for (wire, expected) in cases {
        check_wire_rejected(wire, expected);
    }
}

#[test]
fn values_enforce_their_ranges() {
    assert!(Money::new(-1).is_err());
    assert_eq!(Money::new(0).unwrap(), Money::ZERO);
    assert_eq!(
        Money::new(5).unwrap().checked_sub(Money::new(6).unwrap()),
        None
    );
    assert!(Quantity::new(0).is_err());
    assert!(Quantity::new(-3).is_err());
    assert!(Quantity::new(i64::from(Quantity::MAX) + 1).is_err());
    assert_eq!(Quantity::new(7).unwrap().get(), 7);
    assert!(ProductId::new("").is_err());
    assert!(ProductId::new("x".repeat(65)).is_err());
    assert!(ProductId::new("ünïcode").is_err());
    assert!(ProductId::new("x".repeat(64)).is_ok());
}

#[test]
fn every_message_type_has_a_subscriber_and_every_queue_is_distinct() {
    for &message_type in MessageType::ALL {
        assert!(
            SUBSCRIPTIONS
                .iter()
                .any(|subscription| subscription.message_type == message_type),
            "{message_type} would be published into the void"
        );
    }
    let mut queues: Vec<String> = SUBSCRIPTIONS.iter().map(Subscription::queue).collect();
    let count = queues.len();
    queues.sort();
    queues.dedup();
    assert_eq!(queues.len(), count);
    // The seed's trap: Payment and Order both need StockReserved, each from a queue of its own.
    assert!(queues.contains(&"payment-svc.StockReserved".to_owned()));
    assert!(queues.contains(&"order-svc.StockReserved".to_owned()));
    // And Order must hear StockFailed, or failed reservations stay Pending for ever.
    assert!(queues.contains(&"order-svc.StockFailed".to_owned()));
}
