//! order-svc: the REST order API and the orchestrator of the order saga.
//!
//! `POST /orders` stores a `Pending` order and its `OrderCreated` message in one transaction.
//! Every message the service consumes is an event of `saga_core::order::ORDER_SAGA`; the
//! [`driver`] applies it to the stored order through the table and writes the new state (by
//! version: optimistic concurrency), a timeline row, the inbox row and the effects (commit,
//! release, refund, announcements) in one transaction. A sweeper sends `DeadlinePassed` to
//! orders left waiting past `ORDER_SAGA_TIMEOUT_SECS`.
//!
//! Layout: [`validation`] and [`saga`] are pure; [`store`] and [`driver`] touch the database;
//! [`handler`] and [`api`] are the two doors in; [`run`] wires them.

pub mod api;
pub mod config;
pub mod driver;
pub mod entity;
pub mod handler;
pub mod migration;
pub mod saga;
pub mod store;
pub mod validation;

use std::time::Duration;

use contracts::Service;
use outbox::runtime::{
    BackgroundTasks, check_broker, check_database, connect_broker, connect_database,
};
use outbox::{
    ConsumerConfig, ConsumerRunner, OutboxPublisher, OutboxSignal, PoolOptions, PublisherConfig,
    RetentionConfig, Topology, TransactionalProcessor, run_retention,
};
use service_kit::entrypoint::{RunError, bind, service_router};
use service_kit::health::Readiness;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::{Config, ENVIRONMENT};

/// How often the deadline sweeper looks for overdue orders.
const SWEEP_INTERVAL: Duration = Duration::from_millis(500);

/// Runs the service until `shutdown` is cancelled: binds `HTTP_ADDR` once the database and the
/// broker are ready.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), RunError> {
    let parts = start(&config, &shutdown).await?;
    let listener = bind(config.http_addr).await?;
    parts.serve(listener, shutdown).await
}

/// Like [`run`], on a listener the caller bound (tests bind port 0).
pub async fn run_with_listener(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let parts = start(&config, &shutdown).await?;
    parts.serve(listener, shutdown).await
}

struct Started {
    router: axum::Router,
    background: BackgroundTasks,
}

async fn start(config: &Config, shutdown: &CancellationToken) -> Result<Started, RunError> {
    let db = connect_database::<migration::Migrator>(
        &config.database_url,
        &PoolOptions::default(),
        config.startup_timeout,
        shutdown,
    )
    .await
    .map_err(RunError::startup)?;
    let broker = connect_broker(
        &config.amqp_url,
        Topology::default(),
        config.startup_timeout,
        shutdown,
    )
    .await
    .map_err(RunError::startup)?;
    let signal = OutboxSignal::new();

    let mut background = BackgroundTasks::new();
    let handler = handler::SagaHandler {
        saga_timeout: config.saga_timeout,
    };
    let processor = TransactionalProcessor::new(db.clone(), handler, signal.clone());
    let consumer_config = ConsumerConfig {
        connection_name: "order-svc consumer".into(),
        ..ConsumerConfig::default()
    };
    let consumer = ConsumerRunner::new(broker.clone(), Service::Order, processor, consumer_config);
    background.spawn_producer(|stop| consumer.run(stop));
    let (sweeper_db, sweeper_signal, saga_timeout) =
        (db.clone(), signal.clone(), config.saga_timeout);
    background.spawn_producer(move |stop| {
        driver::run_sweeper(
            sweeper_db,
            sweeper_signal,
            saga_timeout,
            SWEEP_INTERVAL,
            stop,
        )
    });
    let retention_db = db.clone();
    background.spawn_producer(|stop| run_retention(retention_db, RetentionConfig::default(), stop));
    let publisher_config = PublisherConfig {
        connection_name: "order-svc publisher".into(),
        ..PublisherConfig::default()
    };
    let publisher =
        OutboxPublisher::new(db.clone(), broker.clone(), signal.clone(), publisher_config);
    background.spawn_relay(|stop| publisher.run(stop));

    let (ready_db, ready_broker) = (db.clone(), broker);
    let readiness = Readiness::new()
        .with_check("database", move || {
            let db = ready_db.clone();
            async move { check_database(&db).await }
        })
        .with_check("broker", move || {
            let broker = ready_broker.clone();
            async move { check_broker(&broker).await }
        });
    let state = api::AppState {
        db,
        signal,
        saga_timeout: config.saga_timeout,
    };
    let router = service_router(api::routes(state), readiness, "order-svc")?;
    Ok(Started { router, background })
}

impl Started {
    async fn serve(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> Result<(), RunError> {
        let served = service_kit::http::serve(listener, self.router, shutdown).await;
        self.background.shutdown().await;
        served.map_err(RunError::Serve)
    }
}
