//! payment-svc: charges customers for reserved orders and refunds them.
//!
//! It consumes `StockReserved` (charge the order's total to its customer, opening the account
//! with `PAYMENT_DEFAULT_BALANCE` the first time) and `RefundPayment` (give a charge back, or
//! leave a tombstone if nothing was charged yet), and publishes `PaymentSucceeded`,
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
    let handler = handler::PaymentHandler {
        default_balance: config.default_balance,
    };
    let processor = TransactionalProcessor::new(db.clone(), handler, signal.clone());
    let consumer_config = ConsumerConfig {
        connection_name: "payment-svc consumer".into(),
        ..ConsumerConfig::default()
    };
    let consumer =
        ConsumerRunner::new(broker.clone(), Service::Payment, processor, consumer_config);
    background.spawn_producer(|stop| consumer.run(stop));
    let retention_db = db.clone();
    background.spawn_producer(|stop| run_retention(retention_db, RetentionConfig::default(), stop));
    let publisher_config = PublisherConfig {
        connection_name: "payment-svc publisher".into(),
        ..PublisherConfig::default()
    };
    let publisher = OutboxPublisher::new(db.clone(), broker.clone(), signal, publisher_config);
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
    let router = service_router(api::routes(db), readiness, "payment-svc")?;
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
