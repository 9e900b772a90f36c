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

/// Starts the test service (with a database or without), checks the readiness it answers, then
/// shuts it down and checks that the producer it added was running and was stopped.
async fn check(with_database: bool, expected_checks: serde_json::Value) {
    let vhost = TestVhost::create();
    let database = TestDatabase::create().await;
    let service = builder(&vhost);
    let shutdown = CancellationToken::new();
    let (started_sender, started) = oneshot::channel::<()>();
    let (stopped_sender, stopped) = oneshot::channel::<()>();
    // The service's own producer: says it runs, then waits for its stop.
    let producer = move |stop: CancellationToken| async move {
        let _ = started_sender.send(());
        stop.cancelled().await;
        let _ = stopped_sender.send(());
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let running = {
        let (shutdown, amqp_url, database_url) = (
            shutdown.clone(),
            vhost.url().to_owned(),
            database.url().to_owned(),
        );
        tokio::spawn(async move {
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
                        &shutdown,
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
                    .start_without_database(infrastructure, PingHandler, &shutdown, |messaging| {
                        messaging.background.spawn_producer(producer);
                        OpenApiRouter::new()
                    })
                    .await?
            };
            started.serve_on(listener, shutdown).await?;
            Ok::<(), RunError>(())
        })
    };

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
async fn a_service_with_a_database_checks_both_and_stops_its_producers() {
    check(true, serde_json::json!({"database": "ok", "broker": "ok"})).await;
}

#[tokio::test]
async fn a_service_without_a_database_checks_the_broker_and_stops_its_producers() {
    check(false, serde_json::json!({"broker": "ok"})).await;
}
