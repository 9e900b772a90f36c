//! `launch::ServiceBuilder` against the real PostgreSQL and RabbitMQ: a service with a database
//! and one without start, answer readiness with the checks of what they depend on, run the
//! producers they added, and stop those when shut down.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use outbox::runtime::{BrokerInfrastructure, Infrastructure};
use outbox::{HandlerError, Inbound, Incoming, Route, Topology};
use service_kit::entrypoint::RunError;
use service_kit::launch::ServiceBuilder;
use testkit::{TestDatabase, TestVhost};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use utoipa_axum::router::OpenApiRouter;

/// The one message type of the test service; none is ever sent.
#[derive(Clone, Debug)]
struct Ping;

impl Inbound for Ping {
    fn decode(_delivery: &Incoming<'_>) -> Result<Self, String> {
        Ok(Ping)
    }
    fn message_id(&self) -> uuid::Uuid {
        uuid::Uuid::nil()
    }
    fn message_type(&self) -> &str {
        "Ping"
    }
    fn correlation_id(&self) -> uuid::Uuid {
        uuid::Uuid::nil()
    }
}

struct PingHandler;

impl outbox::Handler<Ping> for PingHandler {
    async fn handle(
        &self,
        _transaction: &sea_orm::DatabaseTransaction,
        _message: &Ping,
    ) -> Result<(), HandlerError> {
        Ok(())
    }
}

impl outbox::StatelessHandler<Ping> for PingHandler {
    async fn handle(&self, _message: &Ping) -> Result<(), HandlerError> {
        Ok(())
    }
}

fn builder(vhost: &TestVhost) -> ServiceBuilder {
    let name = testkit::unique_name("launch");
    let queue = format!("{name}.Ping");
    ServiceBuilder {
        name: "launch-svc",
        queues: vec![queue.clone()],
        topology: Topology::new(format!("{name}.events"), vec![Route::new(queue, "Ping")]),
        producers: [("Ping", vhost.name())].into_iter().collect(),
        authenticator: testkit::auth::auth_config().authenticator,
    }
}

/// Serves the test service (with a database or without) on a port of its own, with `producer`
/// as its own background producer; returns its base URL, the token that stops it and its task.
async fn serve<F, Fut>(
    vhost: &TestVhost,
    database: &TestDatabase,
    with_database: bool,
    producer: F,
) -> (
    String,
    CancellationToken,
    tokio::task::JoinHandle<Result<(), RunError>>,
)
where
    F: FnOnce(CancellationToken) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let service = builder(vhost);
    let shutdown = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (amqp_url, database_url) = (vhost.url().to_owned(), database.url().to_owned());
    let stop = shutdown.clone();
    let running = tokio::spawn(async move {
        let started = if with_database {
            let infrastructure = Infrastructure {
                database_url: &database_url,
                amqp_url: &amqp_url,
                startup_timeout: Duration::from_secs(10),
                max_connections: 2,
                max_batch: 1,
                lanes: 1,
            };
            service
                .start_with_database::<outbox::OutboxMigrator, _>(
                    infrastructure,
                    PingHandler,
                    &stop,
                    |messaging| {
                        messaging.background.spawn_producer(producer);
                        OpenApiRouter::new()
                    },
                )
                .await?
        } else {
            let infrastructure = BrokerInfrastructure {
                amqp_url: &amqp_url,
                startup_timeout: Duration::from_secs(10),
                remembered_messages: 10,
            };
            service
                .start_without_database(infrastructure, PingHandler, &stop, |messaging| {
                    messaging.background.spawn_producer(producer);
                    OpenApiRouter::new()
                })
                .await?
        };
        started.serve_on(listener, stop).await
    });
    (base, shutdown, running)
}

/// Starts the test service (with a database or without), checks the readiness it answers, then
/// shuts it down and checks that the producer it added was running and was stopped.
async fn check(with_database: bool, expected_checks: serde_json::Value) {
    let vhost = TestVhost::create();
    let database = TestDatabase::create().await;
    let (started_sender, started) = oneshot::channel::<()>();
    let (stopped_sender, stopped) = oneshot::channel::<()>();
    // The service's own producer: says it runs, then waits for its stop.
    let producer = move |stop: CancellationToken| async move {
        let _ = started_sender.send(());
        stop.cancelled().await;
        let _ = stopped_sender.send(());
    };
    let (base, shutdown, running) = serve(&vhost, &database, with_database, producer).await;

    tokio::time::timeout(Duration::from_secs(20), started)
        .await
        .expect("the service's own producer starts")
        .unwrap();
    assert!(testkit::system::wait_until_ready(&base, Duration::from_secs(20)).await);
    let ready: serde_json::Value = reqwest::get(format!("{base}/health/ready"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["checks"], expected_checks, "{ready}");

    shutdown.cancel();
    let ended = tokio::time::timeout(Duration::from_secs(20), running)
        .await
        .expect("the service stops");
    ended.unwrap().unwrap();
    assert!(
        stopped.await.is_ok(),
        "the service's own producer was stopped"
    );
}

#[tokio::test]
async fn a_service_with_a_database_checks_its_pool_consumer_and_relay_and_stops_its_producers() {
    check(
        true,
        serde_json::json!({"database": "ok", "consumer": "ok", "relay": "ok"}),
    )
    .await;
}

#[tokio::test]
async fn a_service_without_a_database_checks_its_consumer_and_stops_its_producers() {
    check(false, serde_json::json!({"consumer": "ok"})).await;
}

/// `/health/ready`'s status and body.
async fn readiness(base: &str) -> (u16, serde_json::Value) {
    let response = reqwest::get(format!("{base}/health/ready")).await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

/// Polls readiness until `accept` holds; panics with the last answer after 60 s.
async fn readiness_until(
    base: &str,
    accept: impl Fn(u16, &serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = readiness(base).await;
        if accept(status, &body) {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "readiness never changed as expected; last {status}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn readiness_follows_the_services_own_consumer_and_relay_through_a_broker_outage() {
    let mut node = testkit::rabbit::RabbitNode::start();
    let vhost = TestVhost::create_on(&node);
    let database = TestDatabase::create().await;
    let idle = |stop: CancellationToken| async move { stop.cancelled().await };
    let (base, shutdown, running) = serve(&vhost, &database, true, idle).await;
    assert!(testkit::system::wait_until_ready(&base, Duration::from_secs(30)).await);

    // The broker goes away: no probe opens a connection of its own, yet readiness says that
    // the consumer and the relay lost theirs, and why.
    tokio::task::block_in_place(|| node.stop());
    let down = readiness_until(&base, |status, _| status == 503).await;
    let failing: Vec<&str> = down["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|error| error["field"].as_str().unwrap())
        .collect();
    assert!(failing.contains(&"consumer"), "{down}");
    assert!(!failing.contains(&"database"), "{down}");
    assert!(
        down["detail"].as_str().unwrap().starts_with("not ready: "),
        "{down}"
    );

    // It comes back by itself once the broker does.
    tokio::task::block_in_place(|| node.start_again());
    let up = readiness_until(&base, |status, _| status == 200).await;
    assert_eq!(
        up["checks"],
        serde_json::json!({"database": "ok", "consumer": "ok", "relay": "ok"})
    );
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(20), running)
        .await
        .expect("the service stops")
        .unwrap()
        .unwrap();
}
