//! Who may send what, against the real RabbitMQ (and PostgreSQL): a consumer hands a message to
//! its handler only if the message's AMQP `user_id` is the broker user of its type's producer;
//! it keeps the sender through its own retries; relays publish as their service's own
//! least-privilege user; and a consumer that may not configure the broker only checks that
//! the provisioned topology is there.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use common::{Behaviour, Fixture, Recorder, Who, eventually, fast_topology, publish, with_headers};
use contracts::envelope::HEADER_ORIGINAL_USER_ID;
use contracts::{
    AnyMessage, CommitStock, CustomerId, EXCHANGE, Envelope, Money, OrderId, PaymentId,
    PaymentSucceeded, PricedLine, ProducerUsers, ProductId, Quantity, Service, StockReserved,
};
use lapin::options::{
    BasicGetOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use outbox::topology::{DEAD_LETTER_EXCHANGE, REQUEUE_EXCHANGE};
use outbox::{
    Broker, ConsumerConfig, ConsumerRunner, HandlerError, InMemoryProcessor, PublisherConfig,
    StatelessHandler, Topology, wire,
};
use sea_orm::TransactionTrait;

const PATIENCE: Duration = Duration::from_secs(30);

/// The way a message travels to its queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    /// `saga.events` by type name, as a relay publishes.
    Events,
    /// The first retry exchange, routing key = the queue, as a consumer republishes a failed
    /// message. Every service user may write there (and past the topic permissions of
    /// `saga.events`), so it is how another service's user can reach the queue at all.
    Retry,
}

/// Who publishes a `PaymentSucceeded` for order-svc, how, and whether order-svc's handler may
/// see it (`None`) or it is dead-lettered naming the expected sender (`Some(reason)`, where
/// `{payment}` stands for payment-svc's user and `{sender}` for the publisher's).
struct SenderCase {
    who: Who,
    route: Route,
    /// Whether the message carries the `user_id` property (the broker checks it is the
    /// connection's user; without it, the broker lets the message through unchecked).
    user_id: bool,
    /// An `x-original-user-id` header naming payment-svc's user, as a consumer's retry does.
    claims_producer: bool,
    refusal: Option<&'static str>,
}

#[tokio::test]
async fn only_the_producers_user_gets_a_message_to_the_handler() {
    const NO_USER_ID: &str = "PaymentSucceeded has no user_id; only {payment} may send it";
    const WRONG_USER: &str =
        "PaymentSucceeded may be sent by {payment} only, not by user_id {sender}";
    let case = |who, route, user_id, claims_producer, refusal| SenderCase {
        who,
        route,
        user_id,
        claims_producer,
        refusal,
    };
    let (admin, inventory, payment) = (
        Who::Admin,
        Who::User(Service::Inventory),
        Who::User(Service::Payment),
    );
    let cases = [
        case(admin, Route::Events, false, false, Some(NO_USER_ID)),
        // The producer's own connection, but no user_id: nothing vouches for the sender.
        case(payment, Route::Events, false, false, Some(NO_USER_ID)),
        case(payment, Route::Events, false, true, Some(NO_USER_ID)),
        // Inventory's user may not publish PaymentSucceeded on saga.events (the broker refuses
        // the routing key), but it may write to the retry exchanges.
        case(inventory, Route::Retry, true, false, Some(WRONG_USER)),
        case(inventory, Route::Retry, true, true, Some(WRONG_USER)),
        // The administrator may publish anything, under its own user_id only.
        case(admin, Route::Events, true, false, Some(WRONG_USER)),
        case(admin, Route::Events, true, true, Some(WRONG_USER)),
        case(admin, Route::Retry, true, true, Some(WRONG_USER)),
        // The producer, whichever way its message comes.
        case(payment, Route::Events, true, false, None),
        case(payment, Route::Retry, true, false, None),
    ];
    let fixture = Fixture::new().await;
    let consumed = fixture.consumer_of(
        Service::Order,
        Recorder::new(Behaviour::Succeed),
        fixture.consumer_config(),
    );
    let queue = "order-svc.PaymentSucceeded";
    let payment_user = fixture.user(payment);
    let mut expected = HashMap::new();
    for case in &cases {
        let envelope = Envelope::from_any(&charge(), None).unwrap();
        let sender = fixture.user(case.who);
        let outgoing = wire::outgoing(&outbox::NewMessage::from(&envelope));
        let mut properties = outgoing.properties;
        if case.user_id {
            properties = properties.with_user_id(sender.as_str().into());
        }
        if case.claims_producer {
            properties = with_headers(properties, &[(HEADER_ORIGINAL_USER_ID, &payment_user)]);
        }
        let (exchange, routing_key) = match case.route {
            Route::Events => (EXCHANGE.to_owned(), outgoing.routing_key),
            Route::Retry => (fast_topology().retry_exchange(1), queue.to_owned()),
        };
        let (connection, channel) = fixture.channel_as(case.who).await;
        publish(
            &channel,
            &exchange,
            &routing_key,
            properties,
            &outgoing.body,
        )
        .await;
        connection.close(200, "published".into()).await.unwrap();
        let refusal = case.refusal.map(|reason| {
            reason
                .replace("{payment}", &payment_user)
                .replace("{sender}", &sender)
        });
        expected.insert(envelope.message_id.to_string(), refusal);
    }

    let total = u64::try_from(cases.len()).unwrap();
    eventually("every message is settled", PATIENCE, || async {
        consumed.handled() + consumed.dead_lettered() == total
    })
    .await;
    let mut accepted: Vec<String> = expected
        .iter()
        .filter(|(_, refusal)| refusal.is_none())
        .map(|(message_id, _)| message_id.clone())
        .collect();
    accepted.sort();
    let mut handled: Vec<String> = fixture
        .handled_ids()
        .await
        .iter()
        .map(ToString::to_string)
        .collect();
    handled.sort();
    assert_eq!(
        handled, accepted,
        "the handler saw exactly the producer's messages"
    );
    assert_eq!(consumed.retried(), 0);

    let letters = fixture.dead_letters(queue).await;
    assert_eq!(letters.len(), cases.len() - accepted.len());
    let order_user = fixture.user(Who::User(Service::Order));
    for letter in letters {
        let message_id = letter.message_id.clone().expect("a message id");
        let refusal = expected[&message_id]
            .as_deref()
            .unwrap_or_else(|| panic!("{message_id} was accepted, yet dead-lettered: {letter:?}"));
        assert_eq!(letter.reason, refusal, "{message_id}");
        assert_eq!(
            letter.user_id.as_deref(),
            Some(order_user.as_str()),
            "{letter:?}"
        );
    }
}

/// What a retry republished, read from a private queue bound to the (fanout) retry exchange.
async fn spy_on_retries(channel: &Channel) -> String {
    let spy = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_bind(
            spy.name().clone(),
            fast_topology().retry_exchange(1).as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    spy.name().to_string()
}

#[tokio::test]
async fn a_retry_keeps_the_sender_and_comes_back_under_the_consumers_own_user() {
    // (behaviour, (handled, retried, dead-lettered)) with two attempts at most.
    let cases = [
        (Behaviour::FailTimes(1), (1, 1, 0)),
        (Behaviour::AlwaysFail, (0, 1, 1)),
    ];
    for (behaviour, outcome) in cases {
        let fixture = Fixture::new().await;
        let (_admin, spy_channel) = fixture.channel_as(Who::Admin).await;
        let spy = spy_on_retries(&spy_channel).await;
        let config = ConsumerConfig {
            max_attempts: 2,
            ..fixture.consumer_config()
        };
        let consumed = fixture.consumer(Recorder::new(behaviour), config);
        fixture.publisher(PublisherConfig::default());
        let message_id = fixture.enqueue_commit(OrderId::generate()).await;
        eventually("the message is settled", PATIENCE, || async {
            consumed.handled() + consumed.dead_lettered() == 1
        })
        .await;
        let settled = (
            consumed.handled(),
            consumed.retried(),
            consumed.dead_lettered(),
        );
        assert_eq!(settled, outcome, "{behaviour:?}");

        let (order_user, inventory_user) = (
            fixture.user(Who::User(Service::Order)),
            fixture.user(Who::User(Service::Inventory)),
        );
        let retry = spy_channel
            .basic_get(spy.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
            .expect("the retry was republished");
        let properties = &retry.delivery.properties;
        assert_eq!(
            properties.message_id().as_ref().map(|id| id.to_string()),
            Some(message_id.to_string())
        );
        assert_eq!(
            properties.user_id().as_ref().map(|user| user.to_string()),
            Some(inventory_user.clone()),
            "republished under the consumer's own user"
        );
        assert_eq!(
            wire::header_text(properties, HEADER_ORIGINAL_USER_ID),
            Some(order_user.clone()),
            "naming the producer it validated"
        );
        assert_eq!(wire::attempt(properties), 2);

        let handled = fixture.handled_ids().await;
        let letters = fixture.dead_letters("inventory-svc.CommitStock").await;
        match outcome.2 {
            0 => {
                assert_eq!(
                    handled,
                    vec![message_id],
                    "the retry was accepted and handled"
                );
                assert!(letters.is_empty(), "{letters:?}");
            }
            _ => {
                assert!(handled.is_empty());
                let [letter] = &letters[..] else {
                    panic!("one dead letter expected: {letters:?}");
                };
                assert!(
                    letter.reason.contains("gave up after 2 attempts"),
                    "{letter:?}"
                );
                assert_eq!(letter.user_id.as_deref(), Some(inventory_user.as_str()));
                assert_eq!(
                    letter.original_user_id.as_deref(),
                    Some(order_user.as_str()),
                    "the dead letter still names the producer"
                );
            }
        }
    }
}

fn reservation() -> AnyMessage {
    StockReserved::new(
        OrderId::generate(),
        CustomerId::generate(),
        vec![PricedLine {
            product_id: ProductId::new("sku-1").unwrap(),
            quantity: Quantity::new(2).unwrap(),
            unit_price: Money::new(1_250).unwrap(),
        }],
    )
    .unwrap()
    .into()
}

fn commit() -> AnyMessage {
    CommitStock {
        order_id: OrderId::generate(),
    }
    .into()
}

fn charge() -> AnyMessage {
    PaymentSucceeded {
        order_id: OrderId::generate(),
        customer_id: CustomerId::generate(),
        payment_id: PaymentId::generate(),
        amount: Money::new(2_500).unwrap(),
    }
    .into()
}

/// The relay's service, what it publishes, the service that consumes it.
type RelayCase = (Service, fn() -> AnyMessage, Service);

#[tokio::test]
async fn a_relay_publishes_as_its_own_service_user_and_other_services_accept_it() {
    let cases: [RelayCase; 4] = [
        (Service::Order, commit, Service::Inventory),
        (Service::Inventory, reservation, Service::Payment),
        (Service::Inventory, reservation, Service::Order),
        (Service::Payment, charge, Service::Notify),
    ];
    for (producer, message, subscriber) in cases {
        let fixture = Fixture::new().await;
        let message = message();
        let message_type = message.message_type();
        // Listen to what the relay puts on saga.events, with its properties.
        let (_admin, listener) = fixture.channel_as(Who::Admin).await;
        let listening = listener
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        listener
            .queue_bind(
                listening.name().clone(),
                EXCHANGE.into(),
                message_type.name().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let consumed = fixture.consumer_of(
            subscriber,
            Recorder::new(Behaviour::Succeed),
            fixture.consumer_config(),
        );
        let published = fixture.publisher_as(producer, PublisherConfig::default());
        let envelope = Envelope::from_any(&message, None).unwrap();
        let transaction = fixture.db.begin().await.unwrap();
        outbox::enqueue(&transaction, &envelope).await.unwrap();
        transaction.commit().await.unwrap();
        fixture.signal.wake();

        let case = format!("{message_type} from {producer} to {subscriber}");
        eventually(&format!("{case} is handled"), PATIENCE, || async {
            consumed.handled() == 1
        })
        .await;
        assert_eq!(published.published(), 1, "{case}");
        assert_eq!(consumed.dead_lettered(), 0, "{case}");
        assert_eq!(
            fixture.handled_ids().await,
            vec![envelope.message_id],
            "{case}"
        );
        let copy = listener
            .basic_get(listening.name().clone(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
            .expect("the relay's message");
        assert_eq!(
            copy.delivery
                .properties
                .user_id()
                .as_ref()
                .map(|user| user.to_string()),
            Some(fixture.user(Who::User(producer))),
            "{case}"
        );
        let decoded: Envelope<AnyMessage> =
            wire::decode(&copy.delivery.properties, &copy.delivery.data).unwrap();
        assert_eq!(decoded.payload, message, "{case}");
    }
}

/// A vhost of its own without any topology, an administrator with every right on it, and a
/// user that may read and write anything but configure nothing (like a service user);
/// deleted, with the user, when dropped.
struct BareVhost {
    name: String,
    user: String,
    password: String,
}

fn rabbitmqctl(args: &[&str]) {
    let output = Command::new("rabbitmqctl")
        .arg("-q")
        .args(args)
        .output()
        .expect("run rabbitmqctl");
    assert!(
        output.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `TESTKIT_AMQP_URL` (the administrator's server URL) as `(user:password, host:port)`.
fn amqp_server() -> (String, String) {
    let base = std::env::var("TESTKIT_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672".into());
    let rest = base
        .split_once("://")
        .map_or(base.as_str(), |(_, rest)| rest);
    let (credentials, host) = rest
        .rsplit_once('@')
        .expect("credentials in TESTKIT_AMQP_URL");
    (credentials.to_owned(), host.to_owned())
}

impl BareVhost {
    fn create() -> BareVhost {
        let name = testkit::unique_name("bare");
        let bare = BareVhost {
            user: format!("{name}-user"),
            password: uuid::Uuid::new_v4().simple().to_string(),
            name,
        };
        let (credentials, _) = amqp_server();
        let admin = credentials.split(':').next().unwrap_or("guest").to_owned();
        rabbitmqctl(&["add_vhost", &bare.name]);
        rabbitmqctl(&["add_user", &bare.user, &bare.password]);
        rabbitmqctl(&[
            "set_permissions",
            "-p",
            &bare.name,
            &bare.user,
            "^$",
            ".*",
            ".*",
        ]);
        rabbitmqctl(&[
            "set_permissions",
            "-p",
            &bare.name,
            &admin,
            ".*",
            ".*",
            ".*",
        ]);
        bare
    }

    fn user_url(&self) -> String {
        let (_, host) = amqp_server();
        format!(
            "amqp://{}:{}@{host}/{}",
            self.user, self.password, self.name
        )
    }

    fn admin_url(&self) -> String {
        let (credentials, host) = amqp_server();
        format!("amqp://{credentials}@{host}/{}", self.name)
    }
}

impl Drop for BareVhost {
    fn drop(&mut self) {
        for args in [
            ["delete_vhost", self.name.as_str()],
            ["delete_user", self.user.as_str()],
        ] {
            let deleted = Command::new("rabbitmqctl").arg("-q").args(args).output();
            if !matches!(&deleted, Ok(output) if output.status.success()) {
                eprintln!("could not {args:?}: {deleted:?}");
            }
        }
    }
}

/// How much of the topology the administrator has declared.
#[derive(Clone, Copy, Debug)]
enum Provisioned {
    Nothing,
    ExchangesOnly,
    Everything,
}

async fn provision(admin: &Connection, stage: Provisioned, topology: &Topology) {
    match stage {
        Provisioned::Nothing => {}
        Provisioned::ExchangesOnly => {
            let channel = admin.create_channel().await.unwrap();
            let mut exchanges = vec![
                (EXCHANGE.to_owned(), ExchangeKind::Topic),
                (REQUEUE_EXCHANGE.to_owned(), ExchangeKind::Direct),
                (DEAD_LETTER_EXCHANGE.to_owned(), ExchangeKind::Direct),
            ];
            for attempt in 1..=u32::try_from(topology.retry_delays.len()).unwrap() {
                exchanges.push((topology.retry_exchange(attempt), ExchangeKind::Fanout));
            }
            for (name, kind) in exchanges {
                channel
                    .exchange_declare(
                        name.as_str().into(),
                        kind,
                        ExchangeDeclareOptions {
                            durable: true,
                            ..ExchangeDeclareOptions::default()
                        },
                        FieldTable::default(),
                    )
                    .await
                    .unwrap();
            }
        }
        Provisioned::Everything => {
            let channel = admin.create_channel().await.unwrap();
            topology.declare(&channel).await.unwrap();
        }
    }
}

/// Tells the test which order ids the consumer handled.
struct Forward(tokio::sync::mpsc::UnboundedSender<OrderId>);

impl StatelessHandler<Envelope<AnyMessage>> for Forward {
    async fn handle(&self, envelope: &Envelope<AnyMessage>) -> Result<(), HandlerError> {
        let _ = self.0.send(envelope.correlation_id);
        Ok(())
    }
}

/// A user without the `configure` right declares nothing: its connection only checks,
/// passively, that the exchanges and its queues exist, and fails naming the first missing one.
/// A consumer started before the provisioning keeps retrying and consumes once it is done.
#[tokio::test]
async fn a_consumer_that_may_not_configure_checks_the_topology_and_waits_for_it() {
    let bare = BareVhost::create();
    let topology = contracts::topology();
    let queues: Vec<String> = Service::Inventory
        .subscriptions()
        .map(|message_type| format!("inventory-svc.{message_type}"))
        .collect();
    let user_broker = Broker::new(bare.user_url(), topology.clone()).consuming(queues.clone());
    // The consumer is started first, on the empty vhost. Its own user sends the test message,
    // so it is named CommitStock's producer here.
    let (handled, mut handled_orders) = tokio::sync::mpsc::unbounded_channel();
    let producers = ProducerUsers::parse(&format!("order-svc={}", bare.user))
        .unwrap()
        .producers();
    let runner = ConsumerRunner::new(
        user_broker.clone(),
        queues.clone(),
        InMemoryProcessor::new(Forward(handled), 100),
        ConsumerConfig {
            producers,
            ..ConsumerConfig::default()
        },
    );
    let shutdown = tokio_util::sync::CancellationToken::new();
    let consumer = tokio::spawn(runner.run(shutdown.clone()));

    let admin = Connection::connect(&bare.admin_url(), ConnectionProperties::default())
        .await
        .unwrap();
    // (what is declared, the fragment of the error naming what is missing, or None: connects)
    let cases = [
        (
            Provisioned::Nothing,
            Some(format!("no exchange '{EXCHANGE}'")),
        ),
        (
            Provisioned::ExchangesOnly,
            Some(format!("no queue '{}'", queues[0])),
        ),
        (Provisioned::Everything, None),
    ];
    for (stage, missing) in cases {
        provision(&admin, stage, &topology).await;
        let connected = user_broker.connect("test").await;
        match (connected, missing) {
            (Ok(connection), None) => connection.close(200, "done".into()).await.unwrap(),
            (Err(error), Some(fragment)) => {
                assert!(
                    !outbox::broker::is_access_refused(&error),
                    "{stage:?}: {error}"
                );
                assert!(
                    error.to_string().contains(&fragment),
                    "{stage:?}: {error} lacks {fragment:?}"
                );
            }
            (connected, missing) => panic!("{stage:?}: {connected:?}, expected {missing:?}"),
        }
    }
    assert!(!consumer.is_finished(), "the consumer keeps retrying");

    let order_id = OrderId::generate();
    let envelope = Envelope::new(&CommitStock { order_id }, None).unwrap();
    let outgoing = wire::outgoing(&outbox::NewMessage::from(&envelope));
    let sender = Connection::connect(&bare.user_url(), ConnectionProperties::default())
        .await
        .unwrap();
    let channel = Broker::confirm_channel(&sender).await.unwrap();
    publish(
        &channel,
        EXCHANGE,
        &outgoing.routing_key,
        outgoing.properties.with_user_id(bare.user.as_str().into()),
        &outgoing.body,
    )
    .await;
    let received = tokio::time::timeout(PATIENCE, handled_orders.recv()).await;
    assert_eq!(
        received,
        Ok(Some(order_id)),
        "the consumer started once provisioned"
    );
    shutdown.cancel();
    consumer.await.unwrap();
    sender.close(200, "done".into()).await.unwrap();
    admin.close(200, "done".into()).await.unwrap();
}
