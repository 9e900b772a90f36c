//! payment-svc: charges customers for reserved orders and refunds them.
//!
//! It consumes `StockReserved` (charge the order's total to its customer; a customer without an
//! account fails payment, since only an operator funds accounts — unless a demo balance,
//! `PAYMENT_DEMO_BALANCE`, opens one) and `RefundPayment` (give a charge back, or leave a
//! tombstone if nothing was charged yet), and publishes `PaymentSucceeded`,
//! `PaymentFailed` and `PaymentRefunded` through its outbox. Every order is decided at most
//! once, whatever the duplicates, races and replicas; no balance ever goes negative.
//!
//! Layout: [`ledger`] holds the pure rules, [`store`] the database operations, [`handler`] the
//! reactions to messages, [`api`] the HTTP API; [`run`] wires them.

pub mod api;
pub mod config;
pub mod entity;
pub mod handler;
pub mod ledger;
pub mod migration;
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
        name: Service::Payment.name(),
        queues: Service::Payment.queues(),
        topology: contracts::topology(),
        producers: config.producers.producers(),
        authenticator: config.auth.authenticator.clone(),
    };
    let infrastructure = Infrastructure {
        database_url: &config.database_url,
        amqp_url: &config.amqp_url,
        startup_timeout: config.startup_timeout,
        max_connections: config.database_max_connections,
        // Batches lock their account rows up front, in key order (`Handler::lock_batch`), so
        // they queue instead of deadlocking; BENCHMARKS.md measures the sizes.
        max_batch: 32,
        lanes: 2,
    };
    service
        .start_with_database::<migration::Migrator, _>(
            infrastructure,
            handler::PaymentHandler {
                default_balance: config.default_balance,
            },
            shutdown,
            |messaging| api::routes(messaging.db.clone()),
        )
        .await
}
