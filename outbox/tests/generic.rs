//! The outbox knows no message crate: a message type of the test's own, on a topology of its
//! own, is consumed, checked and dead-lettered like the system's messages, each dead letter
//! carrying the reason of the check that refused it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use lapin::options::{BasicGetOptions, BasicPublishOptions};
use lapin::{Channel, Connection, ConnectionProperties};
use outbox::headers::DEAD_LETTER_REASON;
use outbox::{
    Broker, ConsumerConfig, ConsumerRunner, HandlerError, InMemoryProcessor, Inbound, Incoming,
    NewMessage, Outbound, Producers, Route, StatelessHandler, Topology, wire,
};
use testkit::TestVhost;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const EXCHANGE: &str = "generic.events";
const PING_QUEUE: &str = "pinger.Ping";
const PONG_QUEUE: &str = "pinger.Pong";

/// The test's message: a type name (`Ping` or `Pong`) and a number, about a session.
#[derive(Clone, Debug, PartialEq)]
struct Signal {
    id: Uuid,
    session: Uuid,
    kind: String,
    number: i64,
}

impl Signal {
    fn new(kind: &str) -> Signal {
        Signal {
            id: Uuid::now_v7(),
            session: Uuid::now_v7(),
            kind: kind.to_owned(),
            number: 7,
        }
    }
}

impl Outbound for Signal {
    fn to_new_message(&self) -> Result<NewMessage, serde_json::Error> {
        Ok(NewMessage {
            id: self.id,
            message_type: self.kind.clone(),
            correlation_id: self.session,
            causation_id: None,
            occurred_at: chrono::Utc::now(),
            headers: serde_json::Map::new(),
            payload: serde_json::json!({ "number": self.number }),
        })
    }
}

impl Inbound for Signal {
    fn decode(delivery: &Incoming<'_>) -> Result<Self, String> {
        let uuid = |text: Option<&str>| text.and_then(|text| text.parse().ok());
        let body: serde_json::Value = serde_json::from_slice(delivery.body())
            .map_err(|error| format!("not a signal: {error}"))?;
        Ok(Signal {
            id: uuid(delivery.message_id()).ok_or("not a signal: no message_id")?,
            session: uuid(delivery.correlation_id()).ok_or("not a signal: no session")?,
            kind: delivery
                .message_type()
                .ok_or("not a signal: no type")?
                .to_owned(),
            number: body["number"].as_i64().ok_or("not a signal: no number")?,
        })
    }

    fn message_id(&self) -> Uuid {
        self.id
    }

    fn message_type(&self) -> &str {
        &self.kind
    }

    fn correlation_id(&self) -> Uuid {
        self.session
    }
}

/// Tells the test what the consumer handled.
struct Forward(tokio::sync::mpsc::UnboundedSender<Signal>);

impl StatelessHandler<Signal> for Forward {
    async fn handle(&self, signal: &Signal) -> Result<(), HandlerError> {
        let _ = self.0.send(signal.clone());
        Ok(())
    }
}

/// How a case publishes its signal: to the exchange, or straight onto a queue (as someone who
/// may write to the retry or dead-letter exchanges could route it).
#[derive(Clone, Copy, Debug)]
enum Via {
    Exchange,
    Queue(&'static str),
}

/// A signal, how it travels, whether its body is broken, and the queue whose `.dlq` must
/// receive it with a reason containing the text (`None`: handled).
type Case = (
    &'static str,
    Via,
    bool,
    Option<(&'static str, &'static str)>,
);

async fn publish(channel: &Channel, user: &str, signal: &Signal, via: Via, broken_body: bool) {
    let outgoing = wire::outgoing(&signal.to_new_message().unwrap());
    let body = match broken_body {
        true => b"{ not json".to_vec(),
        false => outgoing.body,
    };
    let (exchange, routing_key) = match via {
        Via::Exchange => (EXCHANGE, outgoing.routing_key.as_str()),
        Via::Queue(queue) => ("", queue),
    };
    let confirmation = channel
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            &body,
            outgoing.properties.with_user_id(user.into()),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(
        matches!(confirmation, lapin::Confirmation::Ack(None)),
        "{confirmation:?}"
    );
}

/// The reason of the next dead letter of `queue`, waiting up to ten seconds.
async fn next_dead_letter(channel: &Channel, queue: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let letter = channel
            .basic_get(
                outbox::dead_letter_queue(queue).as_str().into(),
                BasicGetOptions { no_ack: true },
            )
            .await
            .unwrap();
        if let Some(letter) = letter {
            return wire::header_text(&letter.delivery.properties, DEAD_LETTER_REASON)
                .expect("a dead letter has a reason");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no dead letter in {queue}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn a_message_type_of_its_own_is_consumed_checked_and_dead_lettered_with_reasons() {
    let vhost = TestVhost::create();
    let topology = Topology::new(
        EXCHANGE,
        vec![
            Route::new(PING_QUEUE, "Ping"),
            Route::new(PONG_QUEUE, "Pong"),
        ],
    );
    // The administrator may configure: its first connection declares the topology.
    let broker = Broker::new(vhost.url(), topology);
    let user = broker.user().to_owned();
    let (handled, mut handled_signals) = tokio::sync::mpsc::unbounded_channel();
    // Only Ping has a producer; Pong has none, so nobody may send it.
    let config = ConsumerConfig {
        producers: Producers::new().with("Ping", &user),
        ..ConsumerConfig::default()
    };
    let runner = ConsumerRunner::new(
        broker.clone(),
        vec![PING_QUEUE.to_owned(), PONG_QUEUE.to_owned()],
        InMemoryProcessor::new(Forward(handled), 100),
        config,
    );
    let shutdown = CancellationToken::new();
    tokio::spawn(runner.run(shutdown.clone()));
    let connection = Connection::connect(vhost.url(), ConnectionProperties::default())
        .await
        .unwrap();
    let channel = Broker::confirm_channel(&connection).await.unwrap();
    // Declared here, bindings included, before the first publish: `Broker::connect` would find
    // the exchange and queues the runner may be declaring at this moment and return before
    // the runner has bound them (the first publish then came back unroutable).
    broker.topology().declare(&channel).await.unwrap();

    let cases: &[Case] = &[
        ("Ping", Via::Exchange, false, None),
        (
            "Ping",
            Via::Exchange,
            true,
            Some((PING_QUEUE, "not a signal: ")),
        ),
        (
            "Pong",
            Via::Exchange,
            false,
            Some((PONG_QUEUE, "Pong has no known producer")),
        ),
        (
            "Pong",
            Via::Queue(PING_QUEUE),
            false,
            Some((
                PING_QUEUE,
                "Pong does not belong on pinger.Ping, which carries Ping only",
            )),
        ),
    ];
    for &(kind, via, broken_body, dead_letter) in cases {
        let signal = Signal::new(kind);
        publish(&channel, &user, &signal, via, broken_body).await;
        let case = format!("{kind} via {via:?}, broken body {broken_body}");
        match dead_letter {
            None => {
                let got = tokio::time::timeout(Duration::from_secs(10), handled_signals.recv())
                    .await
                    .expect("handled in time");
                assert_eq!(got, Some(signal), "{case}");
            }
            Some((queue, fragment)) => {
                let reason = next_dead_letter(&channel, queue).await;
                assert!(reason.contains(fragment), "{case}: {reason}");
            }
        }
    }
    assert!(
        handled_signals.try_recv().is_err(),
        "nothing refused reached the handler"
    );
    shutdown.cancel();
    connection.close(200, "done".into()).await.unwrap();
}
