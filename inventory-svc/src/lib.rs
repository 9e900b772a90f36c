//! inventory-svc: holds stock for orders.
//!
//! It consumes `OrderCreated` (reserve every line or none), `CommitStock` (sell what is held)
//! and `ReleaseStock` (give it back, or leave a tombstone if nothing is held yet), and publishes
//! `StockReserved`, `StockFailed`, `StockCommitted` and `StockReleased` through its outbox.
//! It owns the catalog: `StockReserved` carries each line priced from the catalog in the
//! transaction that holds the stock, so an order pays the price in force at its reservation.
//! For every product, the stock it was given equals `available + reserved + committed`.
//!
//! Layout: [`stock`] holds the pure rules, [`store`] the database operations, [`handler`] the
//! reactions to messages, [`api`] the HTTP API; [`run`] wires them.

pub mod api;
pub mod config;
pub mod entity;
pub mod handler;
pub mod migration;
pub mod stock;
pub mod store;

use contracts::Service;
use outbox::runtime::{BackgroundTasks, Infrastructure, Messaging};
use service_kit::entrypoint::{RunError, bind, serve_then, service_router};
use service_kit::health::Readiness;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

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
        // Reservations contend for a few product rows: one message per transaction keeps
        // row locks short and deadlock-free; lanes give the concurrency instead.
        max_batch: 1,
        lanes: 4,
        producers: &config.producers,
    };
    let messaging = Messaging::start::<migration::Migrator, _>(
        Service::Inventory,
        infrastructure,
        handler::InventoryHandler,
        shutdown,
    )
    .await
    .map_err(RunError::startup)?;
    let readiness = messaging
        .probes()
        .into_iter()
        .fold(Readiness::new(), |readiness, (name, probe)| {
            readiness.with_check(name, move || probe())
        });
    let router = service_router(
        api::routes(messaging.db.clone()),
        readiness,
        "inventory-svc",
        config.auth.authenticator.clone(),
    )?;
    Ok((router, messaging.background))
}
