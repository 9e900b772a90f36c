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
use outbox::runtime::{BackgroundTasks, Infrastructure, Messaging};
use service_kit::entrypoint::{RunError, bind, serve_then, service_router};
use service_kit::health::Readiness;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// How often the deadline sweeper looks for overdue orders.
const SWEEP_INTERVAL: Duration = Duration::from_millis(500);

pub use config::{Config, ENVIRONMENT};

/// Runs the service until `shutdown` is cancelled: binds `HTTP_ADDR` once the database and the
/// broker are ready.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), RunError> {
    let (router, background) = start(&config, &shutdown).await?;
    let listener = bind(config.http_addr).await?;
    serve_then(listener, router, shutdown, background.shutdown()).await
}

/// Like [`run`], on a listener the caller bound (tests bind port 0).
pub async fn run_with_listener(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let (router, background) = start(&config, &shutdown).await?;
    serve_then(listener, router, shutdown, background.shutdown()).await
}

async fn start(
    config: &Config,
    shutdown: &CancellationToken,
) -> Result<(axum::Router, BackgroundTasks), RunError> {
    let infrastructure = Infrastructure {
        database_url: &config.database_url,
        amqp_url: &config.amqp_url,
        startup_timeout: config.startup_timeout,
        max_connections: config.database_max_connections,
        // Each message touches one order, and an order's messages share a lane: batches
        // save commits without contention.
        max_batch: 64,
        lanes: 2,
        producers: &config.producers,
    };
    let mut messaging = Messaging::start::<migration::Migrator, _>(
        Service::Order,
        infrastructure,
        handler::SagaHandler {
            saga_timeout: config.saga_timeout,
        },
        shutdown,
    )
    .await
    .map_err(RunError::startup)?;
    let (sweeper_db, sweeper_signal, saga_timeout) = (
        messaging.db.clone(),
        messaging.signal.clone(),
        config.saga_timeout,
    );
    messaging.background.spawn_producer(move |stop| {
        driver::run_sweeper(
            sweeper_db,
            sweeper_signal,
            saga_timeout,
            SWEEP_INTERVAL,
            stop,
        )
    });
    let readiness = messaging
        .probes()
        .into_iter()
        .fold(Readiness::new(), |readiness, (name, probe)| {
            readiness.with_check(name, move || probe())
        });
    let router = service_router(
        api::routes(api::AppState {
            db: messaging.db.clone(),
            signal: messaging.signal.clone(),
            saga_timeout: config.saga_timeout,
        }),
        readiness,
        "order-svc",
        config.auth.authenticator.clone(),
    )?;
    Ok((router, messaging.background))
}
