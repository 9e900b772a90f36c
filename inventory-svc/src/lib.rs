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
use outbox::runtime::Infrastructure;
use service_kit::entrypoint::RunError;
use service_kit::launch::{ServiceBuilder, StartedService};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::{Config, ENVIRONMENT};

/// Runs the service until `shutdown` is cancelled: binds `HTTP_ADDR` once the database and the
/// broker are ready.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), RunError> {
    let started = start(&config, &shutdown).await?;
    started.serve(config.http_addr, shutdown).await
}

/// Like [`run`], on a listener the caller bound (tests bind port 0).
pub async fn run_with_listener(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let started = start(&config, &shutdown).await?;
    started.serve_on(listener, shutdown).await
}

/// The service's own parts of the common start: its subscriptions, migrator, handler, batching
/// and API.
async fn start(config: &Config, shutdown: &CancellationToken) -> Result<StartedService, RunError> {
    let service = ServiceBuilder {
        name: Service::Inventory.name(),
        queues: Service::Inventory.queues(),
        topology: contracts::topology(),
        producers: config.producers.producers(),
        authenticator: config.auth.authenticator.clone(),
    };
    let infrastructure = Infrastructure {
        database_url: &config.database_url,
        amqp_url: &config.amqp_url,
        startup_timeout: config.startup_timeout,
        max_connections: config.database_max_connections,
        // Batches lock their product rows up front, in key order (`Handler::lock_batch`), so
        // they queue instead of deadlocking; BENCHMARKS.md measures the sizes.
        max_batch: 32,
        lanes: 2,
    };
    service
        .start_with_database::<migration::Migrator, _>(
            infrastructure,
            handler::InventoryHandler,
            shutdown,
            |messaging| api::routes(messaging.db.clone()),
        )
        .await
}
