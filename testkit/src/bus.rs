//! A test's own view of the message bus: publish envelopes as a service would, and listen to
//! the messages services publish, on a private queue.

use std::time::Duration;

use contracts::{AnyMessage, EXCHANGE, Envelope, Message, MessageType};
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, Consumer};
use outbox::{Broker, Topology, wire};

/// A connection to a test vhost with a private queue bound to some message types.
pub struct TestBus {
    _connection: Connection,
    channel: Channel,
    consumer: Consumer,
}

impl TestBus {
    /// Connects to `amqp_url`, declares the system's topology, and listens to `types`.
    pub async fn connect(amqp_url: &str, types: &[MessageType]) -> TestBus {
        let connection = Broker::new(amqp_url, Topology::default())
            .connect("test bus")
            .await
            .expect("connect the test bus");
        let channel = Broker::confirm_channel(&connection).await.expect("channel");
        let queue = channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("declare the listening queue");
        for message_type in types {
            channel
                .queue_bind(
                    queue.name().clone(),
                    EXCHANGE.into(),
                    message_type.name().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .expect("bind the listening queue");
        }
        let consumer = channel
            .basic_consume(
                queue.name().clone(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("consume");
        TestBus {
            _connection: connection,
            channel,
            consumer,
        }
    }

    /// Publishes `envelope` as a service's relay would.
    pub async fn publish(&self, envelope: &Envelope) {
        let outgoing = wire::outgoing_envelope(envelope);
        self.publish_raw(
            EXCHANGE,
            &outgoing.routing_key,
            outgoing.properties,
            &outgoing.body,
        )
        .await;
    }

    /// Wraps `message` in a new envelope, publishes it, and returns the envelope.
    pub async fn publish_message<M: Message>(&self, message: &M) -> Envelope {
        let envelope = Envelope::new(message, None).expect("encode");
        self.publish(&envelope).await;
        envelope
    }

    /// Publishes anything, anywhere (malformed messages straight onto a queue: exchange `""`,
    /// routing key = queue name).
    pub async fn publish_raw(
        &self,
        exchange: &str,
        routing_key: &str,
        properties: lapin::BasicProperties,
        body: &[u8],
    ) {
        let confirmation = self
            .channel
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                body,
                properties,
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
        assert!(confirmation.is_ack(), "the broker refused a test message");
    }

    /// The next message on the private queue; panics after `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Envelope<AnyMessage> {
        let delivery = tokio::time::timeout(timeout, self.consumer.next())
            .await
            .expect("a message within the timeout")
            .expect("the consumer is open")
            .expect("a delivery");
        delivery.ack(BasicAckOptions::default()).await.expect("ack");
        wire::decode(&delivery.properties, &delivery.data).expect("a well-formed message")
    }

    /// Asserts that nothing arrives for `wait`.
    pub async fn expect_silence(&mut self, wait: Duration) {
        if let Ok(Some(Ok(delivery))) = tokio::time::timeout(wait, self.consumer.next()).await {
            let message = wire::decode(&delivery.properties, &delivery.data);
            panic!("expected no message, got {message:?}");
        }
    }
}
