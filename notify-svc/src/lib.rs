//! notify-svc: tells customers what happened to their orders.
//!
//! It consumes `StockFailed`, `PaymentFailed`, `PaymentSucceeded`, `OrderCompleted` and
//! `OrderCancelled` and, for each, "sends" the customer a notification: one structured log line
//! (target `notification`, fields `order_id`, `customer_id`, `kind`, `message`), also kept in
//! memory and listed by `GET /notifications?order_id=…` (operators see all of an order's
//! notifications, a customer only those sent to them). It has no database and publishes nothing:
//! its broker user may not write to `saga.events` at all.
//!
//! # Delivery guarantee
//!
//! At least once from the broker, deduplicated only in memory. A message is acknowledged only
//! after its notification was logged and stored, so none is lost while the broker keeps the
//! message. Duplicates are suppressed by message id within one process lifetime and among the
//! last `NOTIFY_MAX_NOTIFICATIONS` message ids only: after a restart, with two replicas, or
//! after that many other messages, a redelivered message produces a second notification. The
//! stored notifications live only as long as the process, the oldest dropped beyond
//! `NOTIFY_MAX_NOTIFICATIONS`.
//!
//! Layout: [`notification`] builds the texts (pure), [`store`] keeps what was sent,
//! [`handler`] reacts to messages, [`api`] is the HTTP API; [`run`] wires them.

pub mod api;
pub mod config;
pub mod handler;
pub mod notification;
pub mod store;

use contracts::Service;
use outbox::runtime::{BackgroundTasks, check_broker, connect_broker};
use outbox::{ConsumerConfig, ConsumerRunner, InMemoryProcessor, Topology};
use service_kit::entrypoint::{RunError, bind, serve_then, service_router};
use service_kit::health::Readiness;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::{Config, ENVIRONMENT};

/// Runs the service until `shutdown` is cancelled: binds `HTTP_ADDR` once the broker is ready.
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
    let broker = connect_broker(
        &config.amqp_url,
        Service::Notify,
        Topology::default(),
        config.startup_timeout,
        shutdown,
    )
    .await
    .map_err(RunError::startup)?;
    let notifications = store::NotificationStore::new(config.max_notifications);

    let mut background = BackgroundTasks::new();
    let processor = InMemoryProcessor::new(
        handler::NotifyHandler::new(notifications.clone()),
        config.max_notifications.get(),
    );
    let consumer_config = ConsumerConfig {
        connection_name: "notify-svc consumer".into(),
        producers: config.producers.clone(),
        ..ConsumerConfig::default()
    };
    let consumer = ConsumerRunner::new(broker.clone(), Service::Notify, processor, consumer_config);
    background.spawn_producer(|stop| consumer.run(stop));

    let readiness = Readiness::new().with_check("broker", move || {
        let broker = broker.clone();
        async move { check_broker(&broker).await }
    });
    let router = service_router(
        api::routes(notifications),
        readiness,
        "notify-svc",
        config.auth.authenticator.clone(),
    )?;
    Ok((router, background))
}
