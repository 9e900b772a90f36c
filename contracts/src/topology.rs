//! Who listens to what: the whole broker topology as one definition.
//!
//! Every service declares all of it at start-up (not only its own queues), so a message
//! published before its subscriber's first start is queued, never dropped as unroutable.

use core::fmt;

use crate::messages::MessageType;

/// The durable topic exchange every message is published to, routed by type name.
pub const EXCHANGE: &str = "saga.events";

/// A service of the order system.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    /// The order API and saga orchestrator.
    Order,
    /// Stock reservations.
    Inventory,
    /// Charges and refunds.
    Payment,
    /// Notifications to customers.
    Notify,
}

impl Service {
    /// Every service.
    pub const ALL: &'static [Service] = &[
        Service::Order,
        Service::Inventory,
        Service::Payment,
        Service::Notify,
    ];

    /// The service's name, the prefix of its queues: `order-svc`, ….
    pub const fn name(self) -> &'static str {
        match self {
            Service::Order => "order-svc",
            Service::Inventory => "inventory-svc",
            Service::Payment => "payment-svc",
            Service::Notify => "notify-svc",
        }
    }

    /// The message types the service consumes.
    pub fn subscriptions(self) -> impl Iterator<Item = MessageType> {
        SUBSCRIPTIONS
            .iter()
            .filter(move |subscription| subscription.service == self)
            .map(|subscription| subscription.message_type)
    }
}

impl fmt::Display for Service {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

/// One service's interest in one message type: a queue of its own, bound by the type name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Subscription {
    /// The subscriber.
    pub service: Service,
    /// What it consumes.
    pub message_type: MessageType,
}

impl Subscription {
    /// The subscription's queue: `<service>.<MessageType>`, e.g. `payment-svc.StockReserved`.
    pub fn queue(&self) -> String {
        format!("{}.{}", self.service.name(), self.message_type.name())
    }
}

const fn subscribe(service: Service, message_type: MessageType) -> Subscription {
    Subscription {
        service,
        message_type,
    }
}

/// Every subscription of the system. Two services that consume one type each get their own
/// queue, so both see every message (no competing between services).
pub const SUBSCRIPTIONS: &[Subscription] = {
    use MessageType::*;
    use Service::*;
    &[
        subscribe(Inventory, OrderCreated),
        subscribe(Inventory, CommitStock),
        subscribe(Inventory, ReleaseStock),
        subscribe(Payment, StockReserved),
        subscribe(Payment, RefundPayment),
        subscribe(Order, StockReserved),
        subscribe(Order, StockFailed),
        subscribe(Order, PaymentSucceeded),
        subscribe(Order, PaymentFailed),
        subscribe(Order, StockCommitted),
        subscribe(Order, StockReleased),
        subscribe(Order, PaymentRefunded),
        subscribe(Notify, StockFailed),
        subscribe(Notify, PaymentFailed),
        subscribe(Notify, PaymentSucceeded),
        subscribe(Notify, OrderCompleted),
        subscribe(Notify, OrderCancelled),
    ]
};
