//! Who listens to what: the whole broker topology as one definition, and who may send what.
//!
//! Every service declares all of it at start-up (not only its own queues), so a message
//! published before its subscriber's first start is queued, never dropped as unroutable.
//! [`topology`], [`Service::queues`], [`Service::account`] and [`ProducerUsers::producers`]
//! give the outbox this system's layout, queues, broker accounts and trusted senders.

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

    /// The service named `name` (`order-svc`, …).
    pub fn from_name(name: &str) -> Option<Service> {
        Service::ALL
            .iter()
            .copied()
            .find(|service| service.name() == name)
    }

    /// The message types the service produces (and alone may send).
    pub fn produces(self) -> impl Iterator<Item = MessageType> {
        MessageType::ALL
            .iter()
            .copied()
            .filter(move |message_type| message_type.producer() == self)
    }

    /// The message types the service consumes.
    pub fn subscriptions(self) -> impl Iterator<Item = MessageType> {
        SUBSCRIPTIONS
            .iter()
            .filter(move |subscription| subscription.service == self)
            .map(|subscription| subscription.message_type)
    }

    /// The queues the service consumes, in [`SUBSCRIPTIONS`] order.
    pub fn queues(self) -> Vec<String> {
        SUBSCRIPTIONS
            .iter()
            .filter(|subscription| subscription.service == self)
            .map(Subscription::queue)
            .collect()
    }

    /// The service's broker account for provisioning: `credentials`, the types it produces,
    /// the queues it consumes.
    pub fn account(
        self,
        credentials: outbox::provision::Credentials,
    ) -> outbox::provision::Account {
        outbox::provision::Account {
            credentials,
            produces: self
                .produces()
                .map(|message_type| message_type.name().to_owned())
                .collect(),
            queues: self.queues(),
        }
    }
}

/// The system's broker topology: [`EXCHANGE`] and a route per subscription, in
/// [`SUBSCRIPTIONS`] order, with the outbox's default retry delays and delivery limit.
pub fn topology() -> outbox::Topology {
    let routes = SUBSCRIPTIONS
        .iter()
        .map(|subscription| {
            outbox::Route::new(subscription.queue(), subscription.message_type.name())
        })
        .collect();
    outbox::Topology::new(EXCHANGE, routes)
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
///
/// A service consumes its queues in this order, and after a restart the broker delivers the
/// backlog of the first queue subscribed first: compensations come before the requests they
/// pre-empt (a release before a reservation request, a refund before a charge request), so a
/// participant that was down past a deadline leaves a tombstone instead of acting and then
/// being undone.
pub const SUBSCRIPTIONS: &[Subscription] = {
    use MessageType::*;
    use Service::*;
    &[
        subscribe(Inventory, ReleaseStock),
        subscribe(Inventory, OrderCreated),
        subscribe(Inventory, CommitStock),
        subscribe(Payment, RefundPayment),
        subscribe(Payment, StockReserved),
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

/// The broker user each service connects as: by default the service's own name
/// (`order-svc`, …). A consumer accepts a message only if its AMQP `user_id` (which RabbitMQ
/// validates against the connection's user) names the user of the service that produces the
/// message's type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerUsers {
    users: std::collections::BTreeMap<Service, String>,
}

/// A `service=user` list that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidProducerUsers(String);

impl Default for ProducerUsers {
    fn default() -> Self {
        ProducerUsers {
            users: Service::ALL
                .iter()
                .map(|&service| (service, service.name().to_owned()))
                .collect(),
        }
    }
}

impl ProducerUsers {
    /// Every service's user named after the service, except those `overrides` renames.
    ///
    /// The text form (environment variable `AMQP_PRODUCER_USERS`) is a comma-separated list of
    /// `service=user`, e.g. `payment-svc=payments-prod,inventory-svc=stock-prod`; the empty
    /// list keeps the defaults.
    pub fn parse(overrides: &str) -> Result<ProducerUsers, InvalidProducerUsers> {
        let mut users = ProducerUsers::default();
        let mut renamed = std::collections::BTreeSet::new();
        for entry in overrides
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
        {
            let Some((service, user)) = entry.split_once('=') else {
                return Err(InvalidProducerUsers(format!(
                    "`{entry}` is not service=user"
                )));
            };
            let Some(service) = Service::from_name(service.trim()) else {
                let names: Vec<&str> = Service::ALL.iter().map(|service| service.name()).collect();
                return Err(InvalidProducerUsers(format!(
                    "unknown service `{}` (one of {})",
                    service.trim(),
                    names.join(", ")
                )));
            };
            let user = user.trim();
            if user.is_empty() {
                return Err(InvalidProducerUsers(format!("`{entry}` names no user")));
            }
            if !renamed.insert(service) {
                return Err(InvalidProducerUsers(format!("{service} is named twice")));
            }
            users.users.insert(service, user.to_owned());
        }
        Ok(users)
    }

    /// The broker user of `service`.
    pub fn user(&self, service: Service) -> &str {
        self.users
            .get(&service)
            .map(String::as_str)
            .unwrap_or(service.name())
    }

    /// The only broker user allowed to send messages of `message_type`.
    pub fn expected_sender(&self, message_type: MessageType) -> &str {
        self.user(message_type.producer())
    }

    /// Every message type's one allowed sender, as the outbox's consumers check it.
    pub fn producers(&self) -> outbox::Producers {
        MessageType::ALL
            .iter()
            .map(|&message_type| (message_type.name(), self.expected_sender(message_type)))
            .collect()
    }
}

impl core::str::FromStr for ProducerUsers {
    type Err = InvalidProducerUsers;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        ProducerUsers::parse(text)
    }
}
