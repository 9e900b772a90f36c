//! A test's own view of the message bus: publish envelopes as a service would (each with the
//! broker user of the service that produces its type, so that consumers accept it), and listen
//! to the messages services publish, on a private queue.

use std::time::Duration;

use contracts::{AnyMessage, EXCHANGE, Envelope, Message, MessageType, Service};
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, Consumer};
use outbox::{Broker, NewMessage, wire};

use crate::TestVhost;

/// A connection to a test vhost with a private queue bound to some message types, and one
/// publishing channel per service user.
pub struct TestBus {
    _connection: Connection,
    channel: Channel,
    consumer: Consumer,
    publishers: Vec<(Service, String, Connection, Channel)>,
}

impl TestBus {
    /// Connects to `vhost` as its administrator (declaring the topology) and as each service's
    /// user, and listens to `types`.
    pub async fn connect(vhost: &TestVhost, types: &[MessageType]) -> TestBus {
        let mut publishers = Vec::new();
        for &service in Service::ALL {
            let broker = Broker::new(vhost.service_url(service), contracts::topology());
            let connection = broker
                .connect("test bus publisher")
                .await
                .expect("connect as a service user");
            let channel = Broker::confirm_channel(&connection).await.expect("channel");
            publishers.push((service, broker.user().to_owned(), connection, channel));
        }
        let connection = Broker::new(vhost.url(), contracts::topology())
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
            publishers,
        }
    }

    /// Publishes `envelope` as the relay of the service that produces its type would.
    pub async fn publish(&self, envelope: &Envelope) {
        self.publish_as(envelope.message_type.producer(), envelope)
            .await;
    }

    /// Publishes `envelope` with `service`'s broker user (and its `user_id`): the broker
    /// checks the user's write and topic permissions, consumers check the sender.
    pub async fn publish_as(&self, service: Service, envelope: &Envelope) {
        let confirmation = self.try_publish_as(service, envelope).await;
        assert!(
            matches!(confirmation, Ok(lapin::Confirmation::Ack(None))),
            "the broker refused a test message from {service}: {confirmation:?}"
        );
    }

    /// Like [`TestBus::publish_as`], returning what the broker said (a permission refusal
    /// closes the channel: use a fresh bus afterwards).
    pub async fn try_publish_as(
        &self,
        service: Service,
        envelope: &Envelope,
    ) -> Result<lapin::Confirmation, lapin::Error> {
        let (_, user, _, channel) = self
            .publishers
            .iter()
            .find(|(candidate, ..)| *candidate == service)
            .expect("a publisher per service");
        let outgoing = wire::outgoing(&NewMessage::from(envelope));
        channel
            .basic_publish(
                EXCHANGE.into(),
                outgoing.routing_key.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &outgoing.body,
                outgoing.properties.with_user_id(user.as_str().into()),
            )
            .await?
            .await
    }

    /// Wraps `message` in a new envelope, publishes it, and returns the envelope.
    pub async fn publish_message<M: Message>(&self, message: &M) -> Envelope {
        let envelope = Envelope::new(message, None).expect("encode");
        self.publish(&envelope).await;
        envelope
    }

    /// Publishes anything, anywhere, as the administrator (malformed messages straight onto a
    /// queue: exchange `""`, routing key = queue name). The properties are sent as given: no
    /// `user_id` unless they carry one.
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
        wire::decode::<Envelope<AnyMessage>>(&delivery.properties, &delivery.data)
            .expect("a well-formed message")
    }

    /// Asserts that nothing arrives for `wait`.
    pub async fn expect_silence(&mut self, wait: Duration) {
        if let Ok(Some(Ok(delivery))) = tokio::time::timeout(wait, self.consumer.next()).await {
            let message =
                wire::decode::<Envelope<AnyMessage>>(&delivery.properties, &delivery.data);
            panic!("expected no message, got {message:?}");
        }
    }
}
