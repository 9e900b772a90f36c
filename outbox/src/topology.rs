//! Declares the whole broker topology, idempotently, from a [`Topology`]: the exchange every
//! message is published to and every [`Route`] (queue, message type) of the system.
//!
//! ```text
//!                        routing key = type name
//! publisher ─▶ <exchange>   (topic) ──────────────▶ <service>.<Type>  (quorum) ─▶ consumer
//!                                                    ▲          │
//!        saga.requeue (direct, key = queue) ─────────┘          │ handler failed: republish
//!              ▲                                                ▼ with x-attempt + 1
//!              └── TTL expires ── saga.retry.<delay> (queue) ◀─ saga.retry.<delay> (fanout)
//!
//! undecodable, or out of attempts ─▶ saga.dead-letter (direct, key = queue) ─▶ <queue>.dlq
//! ```
//!
//! Main queues are quorum queues with a delivery limit; a message that keeps crashing its
//! consumer (redelivered without ever being acknowledged) is dead-lettered by the broker into the
//! same `.dlq`.

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
    /// Deliveries without an acknowledgement (consumer crashes) after which the broker itself
    /// dead-letters a message.
    pub delivery_limit: u32,
}

impl Topology {
    /// The topology of `routes` through `exchange`, with the default retry delays (1 s, 5 s,
    /// 30 s) and delivery limit (20).
    pub fn new(exchange: impl Into<String>, routes: Vec<Route>) -> Topology {
        Topology {
            exchange: exchange.into(),
            routes,
            retry_delays: vec![
                Duration::from_secs(1),
                Duration::from_secs(5),
                Duration::from_secs(30),
            ],
            delivery_limit: 20,
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

    /// Declares every exchange, queue and binding. Idempotent; safe to run from every process
    /// at every start.
    pub async fn declare(&self, channel: &Channel) -> Result<(), lapin::Error> {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        channel
            .exchange_declare(
                self.exchange.as_str().into(),
                ExchangeKind::Topic,
                durable,
                FieldTable::default(),
            )
            .await?;
        channel
            .exchange_declare(
                REQUEUE_EXCHANGE.into(),
                ExchangeKind::Direct,
                durable,
                FieldTable::default(),
            )
            .await?;
        channel
            .exchange_declare(
                DEAD_LETTER_EXCHANGE.into(),
                ExchangeKind::Direct,
                durable,
                FieldTable::default(),
            )
            .await?;
        for attempt in 1..=u32::try_from(self.retry_delays.len()).unwrap_or(u32::MAX) {
            self.declare_retry_tier(channel, attempt).await?;
        }
        for route in &self.routes {
            self.declare_route(channel, route).await?;
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
        let mut exchanges = vec![
            (self.exchange.clone(), ExchangeKind::Topic),
            (REQUEUE_EXCHANGE.to_owned(), ExchangeKind::Direct),
            (DEAD_LETTER_EXCHANGE.to_owned(), ExchangeKind::Direct),
        ];
        for attempt in 1..=u32::try_from(self.retry_delays.len()).unwrap_or(u32::MAX) {
            exchanges.push((self.retry_exchange(attempt), ExchangeKind::Fanout));
        }
        // One channel: a failed passive declaration closes it, and ends the check anyway.
        let channel = connection.create_channel().await?;
        for (exchange, kind) in exchanges {
            channel
                .exchange_declare(
                    exchange.as_str().into(),
                    kind,
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

    async fn declare_retry_tier(
        &self,
        channel: &Channel,
        attempt: u32,
    ) -> Result<(), lapin::Error> {
        let name = self.retry_exchange(attempt);
        let delay = self.retry_delays[usize::try_from(attempt - 1).unwrap_or(0)];
        channel
            .exchange_declare(
                name.as_str().into(),
                ExchangeKind::Fanout,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        // A classic queue: it only holds messages until their TTL expires, and per-queue TTL
        // with dead-lettering is what classic queues do best.
        let mut arguments = FieldTable::default();
        arguments.insert(
            "x-message-ttl".into(),
            AMQPValue::LongLongInt(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX)),
        );
        arguments.insert("x-dead-letter-exchange".into(), text(REQUEUE_EXCHANGE));
        channel
            .queue_declare(name.as_str().into(), durable_queue(), arguments)
            .await?;
        channel
            .queue_bind(
                name.as_str().into(),
                name.as_str().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok(())
    }

    async fn declare_route(&self, channel: &Channel, route: &Route) -> Result<(), lapin::Error> {
        let queue = &route.queue;
        let dead_letter_queue = dead_letter_queue(queue);

        let mut quorum = FieldTable::default();
        quorum.insert("x-queue-type".into(), text("quorum"));
        channel
            .queue_declare(
                dead_letter_queue.as_str().into(),
                durable_queue(),
                quorum.clone(),
            )
            .await?;
        channel
            .queue_bind(
                dead_letter_queue.as_str().into(),
                DEAD_LETTER_EXCHANGE.into(),
                queue.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;

        let mut arguments = quorum;
        arguments.insert("x-dead-letter-exchange".into(), text(DEAD_LETTER_EXCHANGE));
        arguments.insert("x-dead-letter-routing-key".into(), text(queue));
        arguments.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongLongInt(i64::from(self.delivery_limit)),
        );
        channel
            .queue_declare(queue.as_str().into(), durable_queue(), arguments)
            .await?;
        channel
            .queue_bind(
                queue.as_str().into(),
                self.exchange.as_str().into(),
                route.message_type.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        channel
            .queue_bind(
                queue.as_str().into(),
                REQUEUE_EXCHANGE.into(),
                queue.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok(())
    }
}

/// The dead-letter queue of `queue`.
pub fn dead_letter_queue(queue: &str) -> String {
    format!("{queue}.dlq")
}

fn durable_queue() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

fn text(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value.as_bytes().to_vec()))
}
