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
//! At least once from the broker; at most once per order and kind, but remembered only in
//! memory. A message is acknowledged only after its notification was stored and logged, so
//! none is lost while the broker keeps the message.
//!
//! A customer is told each kind of fact about an order (`StockFailed`, `PaymentSucceeded`, …)
//! once: participants answer every command the saga re-sends, each answer under a new message
//! id, so the message id alone cannot tell a repeat. A message whose order already has a
//! notification of its kind is taken as a repeat of the same fact (an order is charged,
//! refused, completed or cancelled once) and handled without notifying; the first notification
//! stands, even if a repeat words its reason differently. Redeliveries of one message id are
//! also dropped earlier, among the last `NOTIFY_MAX_NOTIFICATIONS` message ids.
//!
//! What holds after a restart: nothing. With no database, what was sent is known only to the
//! process that sent it, and only while the order's notification is among the last
//! `NOTIFY_MAX_NOTIFICATIONS` kept (the oldest are dropped first). After a restart, on another
//! replica (replicas share queues, not memory), or once the notification was dropped, a repeat
//! or a redelivery notifies the customer a second time.
//!
//! Layout: [`notification`] builds the texts (pure), [`store`] keeps what was sent,
//! [`handler`] reacts to messages, [`api`] is the HTTP API; [`run`] wires them.

pub mod api;
pub mod config;
pub mod handler;
pub mod notification;
pub mod store;

use contracts::Service;
use outbox::runtime::BrokerInfrastructure;
use service_kit::entrypoint::RunError;
use service_kit::launch::{ServiceBuilder, StartedService};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::{Config, ENVIRONMENT};

/// Runs the service until `shutdown` is cancelled: binds `HTTP_ADDR` once the broker is ready.
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

/// The service's own parts of the common start: its subscriptions, handler, what it remembers
/// and API. The handler and the API share one store of what was sent.
async fn start(config: &Config, shutdown: &CancellationToken) -> Result<StartedService, RunError> {
    let service = ServiceBuilder {
        name: Service::Notify.name(),
        queues: Service::Notify.queues(),
        topology: contracts::topology(),
        producers: config.producers.producers(),
        authenticator: config.auth.authenticator.clone(),
    };
    let infrastructure = BrokerInfrastructure {
        amqp_url: &config.amqp_url,
        startup_timeout: config.startup_timeout,
        remembered_messages: config.max_notifications.get(),
    };
    let notifications = store::NotificationStore::new(config.max_notifications);
    service
        .start_without_database(
            infrastructure,
            handler::NotifyHandler::new(notifications.clone()),
            shutdown,
            |_messaging| api::routes(notifications),
        )
        .await
}
