//! Every message of the order system: one struct per event or command, each with a stable type
//! name that is also its RabbitMQ routing key.

use core::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::values::{CustomerId, Money, OrderId, PaymentId, ProductId, Quantity};

/// One of the system's messages.
pub trait Message: Serialize + DeserializeOwned + fmt::Debug + Clone + PartialEq + 'static {
    /// The message's type; its name is the routing key.
    const TYPE: MessageType;

    /// The order the message is about: the correlation id of every message.
    fn order_id(&self) -> OrderId;
}

/// Why a message could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The type name is not one of [`MessageType::ALL`].
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    /// A required header or property is absent.
    #[error("missing header `{0}`")]
    MissingHeader(&'static str),
    /// A header or property is present but unreadable.
    #[error("invalid header `{name}`: {reason}")]
    InvalidHeader {
        /// The header.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The payload is not valid JSON for the type, or holds an invalid value.
    #[error("invalid {message_type} payload: {source}")]
    Payload {
        /// The type the payload was read as.
        message_type: MessageType,
        /// The parser's explanation, with line and column.
        source: serde_json::Error,
    },
    /// The payload's order id differs from the envelope's correlation id.
    #[error("payload order id {payload} differs from correlation id {correlation}")]
    CorrelationMismatch {
        /// The correlation id of the envelope.
        correlation: OrderId,
        /// The order id in the payload.
        payload: OrderId,
    },
}

macro_rules! messages {
    ($( $(#[$meta:meta])* $name:ident by $producer:ident ),+ $(,)?) => {
        /// The type of a message. Its [`name`](MessageType::name) is the routing key and the
        /// `type` of the envelope.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum MessageType {
            $( $(#[$meta])* $name ),+
        }

        impl MessageType {
            /// Every message type.
            pub const ALL: &'static [MessageType] = &[$( MessageType::$name ),+];

            /// The stable name: routing key, envelope `type`, outbox `type` column.
            pub const fn name(self) -> &'static str {
                match self {
                    $( MessageType::$name => stringify!($name) ),+
                }
            }

            /// The one service that produces messages of this type. Consumers accept a message
            /// only from that service's broker user (see [`crate::topology::ProducerUsers`]).
            pub const fn producer(self) -> crate::topology::Service {
                match self {
                    $( MessageType::$name => crate::topology::Service::$producer ),+
                }
            }

            /// The type named `name`.
            pub fn from_name(name: &str) -> Result<MessageType, DecodeError> {
                MessageType::ALL
                    .iter()
                    .copied()
                    .find(|message_type| message_type.name() == name)
                    .ok_or_else(|| DecodeError::UnknownType(name.chars().take(256).collect()))
            }
        }

        /// Any message, decoded into its own type.
        #[derive(Clone, Debug, PartialEq)]
        pub enum AnyMessage {
            $( $(#[$meta])* $name($name) ),+
        }

        impl AnyMessage {
            /// Reads a payload of the given type.
            pub fn decode(message_type: MessageType, payload: &[u8]) -> Result<AnyMessage, DecodeError> {
                match message_type {
                    $( MessageType::$name => serde_json::from_slice(payload)
                        .map(AnyMessage::$name)
                        .map_err(|source| DecodeError::Payload { message_type, source }), )+
                }
            }

            /// The message's type.
            pub fn message_type(&self) -> MessageType {
                match self {
                    $( AnyMessage::$name(_) => MessageType::$name ),+
                }
            }

            /// The order the message is about.
            pub fn order_id(&self) -> OrderId {
                match self {
                    $( AnyMessage::$name(message) => message.order_id ),+
                }
            }

            /// The payload's JSON.
            pub fn to_json(&self) -> Result<serde_json::Value, serde_json::Error> {
                match self {
                    $( AnyMessage::$name(message) => serde_json::to_value(message) ),+
                }
            }
        }

        $(
            impl Message for $name {
                const TYPE: MessageType = MessageType::$name;
                fn order_id(&self) -> OrderId {
                    self.order_id
                }
            }

            impl From<$name> for AnyMessage {
                fn from(message: $name) -> AnyMessage {
                    AnyMessage::$name(message)
                }
            }

            impl outbox::Publish for $name {
                type Id = crate::values::MessageId;
                fn new_message(
                    &self,
                    causation_id: Option<crate::values::MessageId>,
                ) -> Result<outbox::NewMessage, serde_json::Error> {
                    crate::envelope::Envelope::new(self, causation_id)
                        .map(|envelope| outbox::NewMessage::from(&envelope))
                }
            }
        )+

        impl outbox::Publish for AnyMessage {
            type Id = crate::values::MessageId;
            fn new_message(
                &self,
                causation_id: Option<crate::values::MessageId>,
            ) -> Result<outbox::NewMessage, serde_json::Error> {
                crate::envelope::Envelope::from_any(self, causation_id)
                    .map(|envelope| outbox::NewMessage::from(&envelope))
            }
        }
    };
}

messages! {
    /// Event, order-svc → inventory-svc: an order was placed; reserve its lines.
    OrderCreated by Order,
    /// Event, inventory-svc → payment-svc and order-svc: every line is held.
    StockReserved by Inventory,
    /// Event, inventory-svc → order-svc and notify-svc: the lines could not be held.
    StockFailed by Inventory,
    /// Event, payment-svc → order-svc and notify-svc: the total was charged.
    PaymentSucceeded by Payment,
    /// Event, payment-svc → order-svc and notify-svc: the total could not be charged.
    PaymentFailed by Payment,
    /// Command, order-svc → inventory-svc: the order is paid; turn the reservation into a sale.
    CommitStock by Order,
    /// Event, inventory-svc → order-svc: the reservation is now a sale.
    StockCommitted by Inventory,
    /// Command (compensation), order-svc → inventory-svc: give the reserved goods back.
    ReleaseStock by Order,
    /// Event, inventory-svc → order-svc: the reservation was released (or never existed).
    StockReleased by Inventory,
    /// Command (compensation), order-svc → payment-svc: give the money back.
    RefundPayment by Order,
    /// Event, payment-svc → order-svc: the charge was refunded (or never existed).
    PaymentRefunded by Payment,
    /// Event, order-svc → notify-svc and anyone listening: the order completed.
    OrderCompleted by Order,
    /// Event, order-svc → notify-svc and anyone listening: the order was cancelled.
    OrderCancelled by Order,
}

impl fmt::Display for MessageType {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

impl Serialize for MessageType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for MessageType {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        MessageType::from_name(&name).map_err(serde::de::Error::custom)
    }
}

/// One line of an order as the customer placed it: a product and how many. Prices are not the
/// client's to set; inventory prices each line from its catalog when it reserves the stock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    /// The product.
    pub product_id: ProductId,
    /// How many.
    pub quantity: Quantity,
}

/// One line of an order priced from inventory's catalog at the moment of reservation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricedLine {
    /// The product.
    pub product_id: ProductId,
    /// How many.
    pub quantity: Quantity,
    /// The catalog price of one unit when the stock was reserved, in minor units.
    pub unit_price: Money,
}

/// An order was placed (the saga's start effect, `ReserveStock`).
///
/// Deserialisation checks the whole order: at least one line, no product twice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "UncheckedOrderCreated")]
pub struct OrderCreated {
    /// The order.
    pub order_id: OrderId,
    /// Who placed it; payment charges this customer.
    pub customer_id: CustomerId,
    /// What was ordered; never empty, each product at most once.
    pub items: Vec<OrderLine>,
}

#[derive(Deserialize)]
struct UncheckedOrderCreated {
    order_id: OrderId,
    customer_id: CustomerId,
    items: Vec<OrderLine>,
}

/// Why an order's lines do not make an order.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidOrder {
    /// No lines.
    #[error("an order needs at least one line")]
    NoLines,
    /// A product appears on two lines.
    #[error("product {0} appears on more than one line")]
    RepeatedProduct(ProductId),
    /// The total does not fit in the money type.
    #[error("the order total overflows")]
    TotalOverflows,
    /// The stated total is not the sum of the lines.
    #[error("total {stated} differs from the sum of the lines, {computed}")]
    WrongTotal {
        /// The total in the message.
        stated: Money,
        /// The sum of the lines.
        computed: Money,
    },
}

impl OrderCreated {
    /// An order of `items`; rejects empty orders and repeated products.
    pub fn new(
        order_id: OrderId,
        customer_id: CustomerId,
        items: Vec<OrderLine>,
    ) -> Result<OrderCreated, InvalidOrder> {
        check_lines(items.iter().map(|line| &line.product_id))?;
        Ok(OrderCreated {
            order_id,
            customer_id,
            items,
        })
    }
}

impl TryFrom<UncheckedOrderCreated> for OrderCreated {
    type Error = InvalidOrder;
    fn try_from(unchecked: UncheckedOrderCreated) -> Result<Self, Self::Error> {
        OrderCreated::new(unchecked.order_id, unchecked.customer_id, unchecked.items)
    }
}

/// Checks there is at least one line and no product twice.
fn check_lines<'a>(products: impl Iterator<Item = &'a ProductId>) -> Result<(), InvalidOrder> {
    let mut seen = std::collections::BTreeSet::new();
    for product_id in products {
        if !seen.insert(product_id) {
            return Err(InvalidOrder::RepeatedProduct(product_id.clone()));
        }
    }
    match seen.is_empty() {
        true => Err(InvalidOrder::NoLines),
        false => Ok(()),
    }
}

/// The total of priced `items`, checking there is at least one line, no product twice and no
/// overflow.
pub fn order_total(items: &[PricedLine]) -> Result<Money, InvalidOrder> {
    check_lines(items.iter().map(|line| &line.product_id))?;
    items.iter().try_fold(Money::ZERO, |total, line| {
        line.unit_price
            .checked_mul(line.quantity)
            .and_then(|amount| total.checked_add(amount))
            .ok_or(InvalidOrder::TotalOverflows)
    })
}

/// Every line of the order is held for it, priced from the catalog.
///
/// Deserialisation checks the lines (at least one, no product twice) and that `total` is the sum
/// of `quantity × unit_price` without overflow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "UncheckedStockReserved")]
pub struct StockReserved {
    /// The order.
    pub order_id: OrderId,
    /// Who pays (carried so that payment needs no lookup).
    pub customer_id: CustomerId,
    /// The lines with the catalog prices they were reserved at.
    pub items: Vec<PricedLine>,
    /// What to charge: Σ quantity × unit price.
    pub total: Money,
}

#[derive(Deserialize)]
struct UncheckedStockReserved {
    order_id: OrderId,
    customer_id: CustomerId,
    items: Vec<PricedLine>,
    total: Money,
}

impl StockReserved {
    /// A reservation of priced `items`, its total computed from them; rejects empty lists,
    /// repeated products and totals that overflow.
    pub fn new(
        order_id: OrderId,
        customer_id: CustomerId,
        items: Vec<PricedLine>,
    ) -> Result<StockReserved, InvalidOrder> {
        let total = order_total(&items)?;
        Ok(StockReserved {
            order_id,
            customer_id,
            items,
            total,
        })
    }
}

impl TryFrom<UncheckedStockReserved> for StockReserved {
    type Error = InvalidOrder;
    fn try_from(unchecked: UncheckedStockReserved) -> Result<Self, Self::Error> {
        let checked =
            StockReserved::new(unchecked.order_id, unchecked.customer_id, unchecked.items)?;
        if checked.total != unchecked.total {
            return Err(InvalidOrder::WrongTotal {
                stated: unchecked.total,
                computed: checked.total,
            });
        }
        Ok(checked)
    }
}

/// The order's lines could not be held; nothing is held.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockFailed {
    /// The order.
    pub order_id: OrderId,
    /// Who placed it (the notification's recipient).
    pub customer_id: CustomerId,
    /// Why, for people: `unknown product X`, `insufficient stock for X: 3 requested, 1 available`.
    pub reason: String,
}

/// The order's total was charged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentSucceeded {
    /// The order.
    pub order_id: OrderId,
    /// Who was charged (the notification's recipient).
    pub customer_id: CustomerId,
    /// The payment.
    pub payment_id: PaymentId,
    /// What was charged.
    pub amount: Money,
}

/// The order's total could not be charged; nothing was charged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentFailed {
    /// The order.
    pub order_id: OrderId,
    /// Who was to be charged (the notification's recipient).
    pub customer_id: CustomerId,
    /// Why, for people: `insufficient balance: 1500 needed, 900 available`.
    pub reason: String,
}

/// Turn the order's reservation into a sale.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitStock {
    /// The order.
    pub order_id: OrderId,
}

/// The order's reservation is now a sale.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockCommitted {
    /// The order.
    pub order_id: OrderId,
}

/// Release the order's reservation, if any (a compensation). Releasing an absent reservation
/// leaves a tombstone, so that a reservation request arriving later holds nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseStock {
    /// The order.
    pub order_id: OrderId,
    /// Why, for people.
    pub reason: String,
}

/// The order's reservation is released (or there was none to release).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockReleased {
    /// The order.
    pub order_id: OrderId,
}

/// Refund the order's charge, if any (a compensation).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundPayment {
    /// The order.
    pub order_id: OrderId,
    /// Why, for people.
    pub reason: String,
}

/// The order's charge is refunded (`amount` is zero when there was nothing to refund).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRefunded {
    /// The order.
    pub order_id: OrderId,
    /// What was given back.
    pub amount: Money,
}

/// The order completed: paid for and its goods committed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCompleted {
    /// The order.
    pub order_id: OrderId,
    /// Who placed it.
    pub customer_id: CustomerId,
    /// What was charged.
    pub total: Money,
}

/// The order was cancelled; its compensations are under way.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCancelled {
    /// The order.
    pub order_id: OrderId,
    /// Who placed it.
    pub customer_id: CustomerId,
    /// Why, for people.
    pub reason: String,
}
