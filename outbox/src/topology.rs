//! The whole broker layout, from a [`Topology`]: the exchange every message is published to,
//! every [`Route`] (queue, message type) of the system, and the retry and dead-letter machinery.
//! One description ([`Topology::exchanges`], [`Topology::queues`], [`Topology::bindings`])
//! serves both the declarations a process makes at start ([`Topology::declare`]) and the
//! definitions the provisioning generates ([`crate::provision`]), so the two cannot drift.
//!
//! ```text
//!                        routing key = type name
//! publisher ─▶ <exchange>   (topic) ──────────────▶ <service>.<Type>  (quorum) ─▶ consumer
//!                                                    ▲          │
//!        saga.requeue (direct, key = queue) ─────────┘          │ handler failed: republish
//!              ▲                                                ▼ with x-attempt + 1
//!              └── TTL expires ── saga.retry.<delay> (quorum) ◀─ saga.retry.<delay> (fanout)
//!
//! undecodable, or out of attempts ─▶ saga.dead-letter (direct, key = queue) ─▶ <queue>.dlq
//! ```
//!
//! Every queue is a quorum queue — replicated in a cluster, durable, fsync'd — the retry
//! queues included, so a pending retry survives the loss of a node like any other message.
//! Dead-lettering (a retry's delay expiring into `saga.requeue`, a main queue's delivery limit
//! into the `.dlq`) is **at least once** (`x-dead-letter-strategy: at-least-once`, which needs
//! `x-overflow: reject-publish`): the broker keeps the message in the source queue until the
//! target queue confirmed it. RabbitMQ's default is at most once: a retry whose target was
//! unavailable when its delay expired would be gone, its original already acknowledged.
//!
//! Main queues have a delivery limit: a message that keeps killing its consumer process
//! (redelivered without ever being settled) is dead-lettered by the broker into the same `.dlq`.
//! Before RabbitMQ 4.3 every return counts toward it — a consumer crashing with prefetched,
//! innocent messages counts them too — so the limit is high ([`Topology::new`]): the consumer
//! catches panics and handles redelivered messages alone ([`crate::ConsumerRunner`]), and the
//! limit is only the backstop for a message that kills the process outright.

use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, Connection, ExchangeKind};

/// Exchange through which retries return to their queue (routing key = queue name).
pub const REQUEUE_EXCHANGE: &str = "saga.requeue";
/// Exchange of dead letters (routing key = the queue they came from).
pub const DEAD_LETTER_EXCHANGE: &str = "saga.dead-letter";

/// One subscriber's interest in one message type: a queue of its own, bound to the exchange by
/// the type name. A queue carries that one type only.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Route {
    /// The queue (by convention `<service>.<Type>`).
    pub queue: String,
    /// The message type it carries: the routing key it is bound with.
    pub message_type: String,
}

impl Route {
    /// The route of `message_type` into `queue`.
    pub fn new(queue: impl Into<String>, message_type: impl Into<String>) -> Route {
        Route {
            queue: queue.into(),
            message_type: message_type.into(),
        }
    }
}

/// The broker layout: the exchange, every route, and the shape of the retry and dead-letter
/// machinery. Every process using one vhost must use the same values (queue arguments cannot
/// change once declared; retry queues are named after their delay, so new delays add queues
/// instead of conflicting).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    /// The durable topic exchange every message is published to, routed by type name.
    pub exchange: String,
    /// Every queue of the system and the type it carries, in declaration order.
    pub routes: Vec<Route>,
    /// Delay before each retry: attempt 2 waits `retry_delays[0]`, attempt 3 `retry_delays[1]`, …;
    /// later attempts reuse the last delay. Must not be empty.
    pub retry_delays: Vec<Duration>,
    /// Deliveries without an acknowledgement (consumer crashes, lost connections) after which
    /// the broker itself dead-letters a message.
    pub delivery_limit: u32,
}

impl Topology {
    /// The topology of `routes` through `exchange`, with the default retry delays (1 s, 5 s,
    /// 30 s) and delivery limit (100: high, because before RabbitMQ 4.3 every return of an
    /// unsettled delivery counts, so a consumer in a crash loop spends the limit of every
    /// message it had prefetched, not only of the one that killed it).
    pub fn new(exchange: impl Into<String>, routes: Vec<Route>) -> Topology {
        Topology {
            exchange: exchange.into(),
            routes,
            retry_delays: vec![
                Duration::from_secs(1),
                Duration::from_secs(5),
                Duration::from_secs(30),
            ],
            delivery_limit: 100,
        }
    }

    /// The type `queue` carries, if it is one of the routes.
    pub fn message_type_of(&self, queue: &str) -> Option<&str> {
        self.routes
            .iter()
            .find(|route| route.queue == queue)
            .map(|route| route.message_type.as_str())
    }

    /// The retry exchange (and queue) that delays a message failing its `attempt`-th delivery.
    pub fn retry_exchange(&self, attempt: u32) -> String {
        let index = usize::try_from(attempt.saturating_sub(1)).unwrap_or(usize::MAX);
        let delay = self
            .retry_delays
            .get(index)
            .or(self.retry_delays.last())
            .copied()
            .unwrap_or(Duration::from_secs(1));
        format!("saga.retry.{}ms", delay.as_millis())
    }

    /// The exchanges: the topology's own (topic), the requeue and dead-letter exchanges
    /// (direct, keyed by queue) and one fanout per retry delay.
    pub fn exchanges(&self) -> Vec<ExchangeSpec> {
        let mut exchanges = vec![
            ExchangeSpec::new(&self.exchange, ExchangeType::Topic),
            ExchangeSpec::new(REQUEUE_EXCHANGE, ExchangeType::Direct),
            ExchangeSpec::new(DEAD_LETTER_EXCHANGE, ExchangeType::Direct),
        ];
        for (name, _) in self.retry_tiers() {
            exchanges.push(ExchangeSpec::new(&name, ExchangeType::Fanout));
        }
        exchanges
    }

    /// The queues with their arguments: one delay queue per retry tier, then per route its
    /// `.dlq` and the queue itself. All quorum queues; every one that dead-letters does so at
    /// least once.
    pub fn queues(&self) -> Vec<QueueSpec> {
        let mut queues = Vec::new();
        for (name, delay) in self.retry_tiers() {
            let delay_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
            queues.push(QueueSpec {
                name,
                arguments: vec![
                    ("x-queue-type", Argument::text("quorum")),
                    ("x-message-ttl", Argument::Integer(delay_ms)),
                    ("x-dead-letter-exchange", Argument::text(REQUEUE_EXCHANGE)),
                    ("x-dead-letter-strategy", Argument::text("at-least-once")),
                    ("x-overflow", Argument::text("reject-publish")),
                ],
            });
        }
        for route in &self.routes {
            queues.push(QueueSpec {
                name: dead_letter_queue(&route.queue),
                arguments: vec![("x-queue-type", Argument::text("quorum"))],
            });
            queues.push(QueueSpec {
                name: route.queue.clone(),
                arguments: vec![
                    ("x-queue-type", Argument::text("quorum")),
                    (
                        "x-dead-letter-exchange",
                        Argument::text(DEAD_LETTER_EXCHANGE),
                    ),
                    ("x-dead-letter-routing-key", Argument::text(&route.queue)),
                    ("x-dead-letter-strategy", Argument::text("at-least-once")),
                    ("x-overflow", Argument::text("reject-publish")),
                    (
                        "x-delivery-limit",
                        Argument::Integer(i64::from(self.delivery_limit)),
                    ),
                ],
            });
        }
        queues
    }

    /// The bindings: each retry fanout to its delay queue; per route, the dead-letter
    /// exchange to the `.dlq` and the topology's exchange (by type) and the requeue exchange
    /// (by queue name) to the queue.
    pub fn bindings(&self) -> Vec<BindingSpec> {
        let mut bindings = Vec::new();
        for (name, _) in self.retry_tiers() {
            bindings.push(BindingSpec::new(&name, &name, ""));
        }
        for route in &self.routes {
            let queue = &route.queue;
            bindings.push(BindingSpec::new(
                DEAD_LETTER_EXCHANGE,
                &dead_letter_queue(queue),
                queue,
            ));
            bindings.push(BindingSpec::new(&self.exchange, queue, &route.message_type));
            bindings.push(BindingSpec::new(REQUEUE_EXCHANGE, queue, queue));
        }
        bindings
    }

    /// `(name, delay)` of every retry tier.
    fn retry_tiers(&self) -> Vec<(String, Duration)> {
        (1..=u32::try_from(self.retry_delays.len()).unwrap_or(u32::MAX))
            .zip(&self.retry_delays)
            .map(|(attempt, delay)| (self.retry_exchange(attempt), *delay))
            .collect()
    }

    /// Declares every exchange, queue and binding. Idempotent; safe to run from every process
    /// at every start (as long as every process uses the same topology: RabbitMQ refuses to
    /// redeclare a queue with other arguments).
    pub async fn declare(&self, channel: &Channel) -> Result<(), lapin::Error> {
        for exchange in self.exchanges() {
            channel
                .exchange_declare(
                    exchange.name.as_str().into(),
                    exchange.kind.to_lapin(),
                    ExchangeDeclareOptions {
                        durable: true,
                        ..ExchangeDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await?;
        }
        for queue in self.queues() {
            channel
                .queue_declare(
                    queue.name.as_str().into(),
                    QueueDeclareOptions {
                        durable: true,
                        ..QueueDeclareOptions::default()
                    },
                    queue.field_table(),
                )
                .await?;
        }
        for binding in self.bindings() {
            channel
                .queue_bind(
                    binding.queue.as_str().into(),
                    binding.exchange.as_str().into(),
                    binding.routing_key.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        Ok(())
    }

    /// Checks, without declaring anything (passive declarations need no permission), that the
    /// exchanges and the given queues exist. The first one missing ends the check with the
    /// broker's 404, which names it.
    pub async fn verify(
        &self,
        connection: &Connection,
        queues: &[String],
    ) -> Result<(), lapin::Error> {
        let passive_exchange = ExchangeDeclareOptions {
            passive: true,
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        // One channel: a failed passive declaration closes it, and ends the check anyway.
        let channel = connection.create_channel().await?;
        for exchange in self.exchanges() {
            channel
                .exchange_declare(
                    exchange.name.as_str().into(),
                    exchange.kind.to_lapin(),
                    passive_exchange,
                    FieldTable::default(),
                )
                .await?;
        }
        for queue in queues {
            channel
                .queue_declare(
                    queue.as_str().into(),
                    QueueDeclareOptions {
                        passive: true,
                        durable: true,
                        ..QueueDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await?;
        }
        let _ = channel.close(200, "verified".into()).await;
        Ok(())
    }
}

/// The kind of an exchange of the layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExchangeType {
    /// Routes by pattern on the routing key (the message type).
    Topic,
    /// Routes by exact routing key (a queue name).
    Direct,
    /// Routes to every bound queue.
    Fanout,
}

impl ExchangeType {
    /// RabbitMQ's name of the kind.
    pub fn name(self) -> &'static str {
        match self {
            ExchangeType::Topic => "topic",
            ExchangeType::Direct => "direct",
            ExchangeType::Fanout => "fanout",
        }
    }

    fn to_lapin(self) -> ExchangeKind {
        match self {
            ExchangeType::Topic => ExchangeKind::Topic,
            ExchangeType::Direct => ExchangeKind::Direct,
            ExchangeType::Fanout => ExchangeKind::Fanout,
        }
    }
}

/// A durable exchange of the layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExchangeSpec {
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: ExchangeType,
}

impl ExchangeSpec {
    fn new(name: &str, kind: ExchangeType) -> ExchangeSpec {
        ExchangeSpec {
            name: name.to_owned(),
            kind,
        }
    }
}

/// The value of one queue argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Argument {
    /// Text, such as a queue type or an exchange name.
    Text(String),
    /// A whole number, such as a TTL in milliseconds.
    Integer(i64),
}

impl Argument {
    fn text(text: &str) -> Argument {
        Argument::Text(text.to_owned())
    }
}

/// A durable queue of the layout with its arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueSpec {
    /// Its name.
    pub name: String,
    /// Its `x-…` arguments, in declaration order.
    pub arguments: Vec<(&'static str, Argument)>,
}

impl QueueSpec {
    /// The arguments as AMQP declares them.
    fn field_table(&self) -> FieldTable {
        let mut table = FieldTable::default();
        for (name, value) in &self.arguments {
            let value = match value {
                Argument::Text(text) => {
                    AMQPValue::LongString(LongString::from(text.as_bytes().to_vec()))
                }
                Argument::Integer(number) => AMQPValue::LongLongInt(*number),
            };
            table.insert((*name).into(), value);
        }
        table
    }
}

/// A binding of a queue to an exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindingSpec {
    /// The exchange (the binding's source).
    pub exchange: String,
    /// The queue (its destination).
    pub queue: String,
    /// The routing key it matches.
    pub routing_key: String,
}

impl BindingSpec {
    fn new(exchange: &str, queue: &str, routing_key: &str) -> BindingSpec {
        BindingSpec {
            exchange: exchange.to_owned(),
            queue: queue.to_owned(),
            routing_key: routing_key.to_owned(),
        }
    }
}

/// The dead-letter queue of `queue`.
pub fn dead_letter_queue(queue: &str) -> String {
    format!("{queue}.dlq")
}
