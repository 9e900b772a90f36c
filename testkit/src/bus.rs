//! A test's own view of the message bus: publish envelopes as a service would (each with the
//! broker user of the service that produces its type, so that consumers accept it), put them
//! into a dead-letter queue as the consuming service would, and listen to the messages services
//! publish, on a private queue.

use std::time::Duration;

use contracts::envelope::{HEADER_DEAD_LETTER_REASON, HEADER_ORIGINAL_USER_ID};
use contracts::{AnyMessage, EXCHANGE, Envelope, Message, MessageType, Service};
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, Consumer};
use outbox::topology::DEAD_LETTER_EXCHANGE;
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
        let (user, channel) = self.publisher(service);
        let outgoing = wire::outgoing(&NewMessage::from(envelope));
        let properties = outgoing.properties.with_user_id(user.into());
        publish_mandatory(
            channel,
            EXCHANGE,
            &outgoing.routing_key,
            &outgoing.body,
            properties,
        )
        .await
    }

    /// Puts `envelope` into `queue`'s dead-letter queue as `consumer`, the service whose queue
    /// it is, would have after giving up on it: published as `consumer`'s broker user to
    /// [`DEAD_LETTER_EXCHANGE`] with routing key `queue`, with `reason` and the validated sender
    /// (the broker user of the service that produces its type, [`TestBus::user_of`]) in its
    /// headers (not the original queue and time a consumer adds too). Asserts the broker took
    /// it.
    pub async fn dead_letter(
        &self,
        consumer: Service,
        queue: &str,
        envelope: &Envelope,
        reason: &str,
    ) {
        let (user, channel) = self.publisher(consumer);
        let producer = self.user_of(envelope.message_type.producer());
        let outgoing = wire::outgoing(&NewMessage::from(envelope));
        let headers = [
            (HEADER_DEAD_LETTER_REASON, wire::long_string(reason)),
            (HEADER_ORIGINAL_USER_ID, wire::long_string(producer)),
        ];
        let properties =
            wire::with_headers(&outgoing.properties, &headers).with_user_id(user.into());
        let confirmation = publish_mandatory(
            channel,
            DEAD_LETTER_EXCHANGE,
            queue,
            &outgoing.body,
            properties,
        )
        .await;
        assert!(
            matches!(confirmation, Ok(lapin::Confirmation::Ack(None))),
            "the broker refused a dead letter from {consumer}: {confirmation:?}"
        );
    }

    /// Puts poison into `queue`'s dead-letter queue: the body `not json` with `message_id` and
    /// `reason`, published as the administrator (without a `user_id`, nor a sender header) to
    /// [`DEAD_LETTER_EXCHANGE`] with routing key `queue`.
    pub async fn dead_letter_poison(&self, queue: &str, message_id: &str, reason: &str) {
        let properties = wire::with_headers(
            &lapin::BasicProperties::default().with_message_id(message_id.into()),
            &[(HEADER_DEAD_LETTER_REASON, wire::long_string(reason))],
        );
        self.publish_raw(DEAD_LETTER_EXCHANGE, queue, properties, b"not json")
            .await;
    }

    /// The broker user of `service` on the bus's vhost.
    pub fn user_of(&self, service: Service) -> &str {
        self.publisher(service).0
    }

    /// `service`'s broker user and its publishing channel.
    fn publisher(&self, service: Service) -> (&str, &Channel) {
        self.publishers
            .iter()
            .find(|(candidate, ..)| *candidate == service)
            .map(|(_, user, _, channel)| (user.as_str(), channel))
            .expect("a publisher per service")
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

/// Publishes `body` on `channel`, mandatory (a message no queue takes comes back, and the
/// confirmation says so), and waits for the broker's confirmation.
pub async fn publish_mandatory(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    properties: lapin::BasicProperties,
) -> Result<lapin::Confirmation, lapin::Error> {
    channel
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            body,
            properties,
        )
        .await?
        .await
}
