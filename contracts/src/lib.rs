//! The order system's wire formats — the only crate that defines them.
//!
//! - [`values`]: validated newtypes ([`Money`] in integer minor units, [`Quantity`] that cannot
//!   be zero, [`ProductId`], UUID ids). Deserialising an invalid value fails with a clear error.
//! - [`messages`]: one struct per event and command, each a [`Message`] with a stable
//!   [`MessageType`] name that is also its routing key; [`AnyMessage`] holds any of them.
//! - [`envelope`]: the [`Envelope`] (message id, type, correlation id = order id, causation id,
//!   occurred-at, schema version, payload) and its mapping onto broker properties.
//! - [`topology`](mod@topology): every subscriber's queue, as one definition that each service
//!   declares, and the broker user of each producer.
//!
//! The crate implements the `outbox` crate's traits for its messages ([`outbox::Inbound`] for
//! `Envelope<AnyMessage>`, [`outbox::Outbound`] for [`Envelope`], [`outbox::Publish`] for every
//! message) and gives it the system's [`topology()`].
//!
//! # Example
//!
//! ```
//! use contracts::{
//!     AnyMessage, Envelope, Message, MessageType, Money, OrderId, PricedLine, ProductId, Quantity,
//!     StockReserved,
//! };
//! use contracts::envelope::{WireMessage, format_occurred_at};
//!
//! let event = StockReserved::new(
//!     OrderId::generate(),
//!     "0199c3e1-7a4e-7cc0-8a4e-6c1e2f3a4b5c".parse().unwrap(),
//!     vec![PricedLine {
//!         product_id: ProductId::new("sku-1").unwrap(),
//!         quantity: Quantity::new(2).unwrap(),
//!         unit_price: Money::new(1_250).unwrap(),
//!     }],
//! )
//! .unwrap();
//! assert_eq!(event.total, Money::new(2_500).unwrap());
//! let envelope = Envelope::new(&event, None).unwrap();
//! assert_eq!(envelope.message_type.name(), "StockReserved");
//! assert_eq!(envelope.correlation_id, event.order_id());
//!
//! // What a transport publishes, and what a consumer reads back.
//! let body = serde_json::to_vec(&envelope.payload).unwrap();
//! let (message_id, order_id) = (envelope.message_id.to_string(), event.order_id.to_string());
//! let occurred_at = format_occurred_at(envelope.occurred_at);
//! let wire = WireMessage {
//!     message_id: Some(&message_id),
//!     message_type: Some(MessageType::StockReserved.name()),
//!     correlation_id: Some(&order_id),
//!     occurred_at: Some(&occurred_at),
//!     body: &body,
//!     ..WireMessage::default()
//! };
//! let received = wire.decode().unwrap();
//! assert_eq!(received.payload, AnyMessage::StockReserved(event));
//! assert_eq!(received.occurred_at, envelope.occurred_at);
//! ```

#![deny(missing_docs)]

pub mod envelope;
pub mod messages;
pub mod topology;
pub mod values;

pub use envelope::Envelope;
pub use messages::{
    AnyMessage, CommitStock, DecodeError, InvalidOrder, Message, MessageType, OrderCancelled,
    OrderCompleted, OrderCreated, OrderLine, PaymentFailed, PaymentRefunded, PaymentSucceeded,
    PricedLine, RefundPayment, ReleaseStock, StockCommitted, StockFailed, StockReleased,
    StockReserved, order_total,
};
pub use topology::{
    EXCHANGE, InvalidProducerUsers, ProducerUsers, SUBSCRIPTIONS, Service, Subscription, topology,
};
pub use values::{
    CustomerId, InvalidValue, MessageId, Money, OrderId, PaymentId, ProductId, Quantity,
};
