//! order-svc: the REST order API and the orchestrator of the order saga.
//!
//! The order saga runs on `saga_runtime`: [`definition::OrderSaga`] is its definition
//! (`saga_core::order::ORDER_SAGA`, the system's messages as its events, the messages of its
//! effects built from the instance's data). `POST /orders` stores the business rows and starts
//! the saga (`Pending`, `OrderCreated` in the outbox, the deadline armed) in one transaction.
//! Every message the service consumes is an event of the saga, applied by the runtime's
//! handler: state (by version: optimistic concurrency), timeline, inbox row and effects
//! (commit, release, refund, announcements) in one transaction. `POST /orders/{id}/cancel`
//! applies `CancelRequested` the same way. The runtime's sweeper fires the deadline of orders
//! left waiting past `ORDER_SAGA_TIMEOUT_SECS` and re-sends the effects still awaiting their
//! confirmation.
//!
//! Layout: [`validation`] and [`saga`] are pure; [`definition`] plugs them into the runtime;
//! [`store`] and [`cancel`] touch the database; the consumer and [`api`] are the two doors in;
//! [`run`] wires them.

pub mod api;
pub mod cancel;
pub mod config;
pub mod definition;
pub mod entity;
pub mod migration;
pub mod representation;
pub mod saga;
pub mod store;
pub mod validation;

use std::sync::Arc;
use std::time::Duration;

use contracts::Service;
use outbox::runtime::Infrastructure;
use saga_runtime::{SagaHandler, SagaRuntime, Settings, Sweeper};
use service_kit::entrypoint::RunError;
use service_kit::launch::{ServiceBuilder, StartedService};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// How often the saga sweeper looks for overdue orders and effects due for a re-send.
const SWEEP_INTERVAL: Duration = Duration::from_millis(500);

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

/// The service's own parts of the common start: its subscriptions, migrator, the saga runtime
/// as handler, batching, the saga sweeper and the API.
async fn start(config: &Config, shutdown: &CancellationToken) -> Result<StartedService, RunError> {
    let settings = Settings {
        resend_after: config.resend_after,
        ..Settings::default()
    };
    let runtime = Arc::new(
        SagaRuntime::new(definition::OrderSaga {
            saga_timeout: config.saga_timeout,
        })
        .map_err(RunError::startup)?
        .with_settings(settings),
    );
    let service = ServiceBuilder {
        name: Service::Order.name(),
        queues: Service::Order.queues(),
        topology: contracts::topology(),
        producers: config.producers.producers(),
        authenticator: config.auth.authenticator.clone(),
    };
    let infrastructure = Infrastructure {
        database_url: &config.database_url,
        amqp_url: &config.amqp_url,
        startup_timeout: config.startup_timeout,
        max_connections: config.database_max_connections,
        // Each message touches one order, and an order's messages share a lane: batches
        // save commits without contention.
        max_batch: 64,
        lanes: 2,
    };
    service
        .start_with_database::<migration::Migrator, _>(
            infrastructure,
            SagaHandler::new(Arc::clone(&runtime)),
            shutdown,
            |messaging| {
                let sweeper = Sweeper::new(messaging.db.clone(), messaging.signal.clone())
                    .with_saga(Arc::clone(&runtime))
                    .interval(SWEEP_INTERVAL);
                messaging
                    .background
                    .spawn_producer(move |stop| sweeper.run(stop));
                api::routes(api::AppState {
                    db: messaging.db.clone(),
                    signal: messaging.signal.clone(),
                    runtime,
                })
            },
        )
        .await
}
