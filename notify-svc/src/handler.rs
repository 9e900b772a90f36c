//! Notify's reaction to the messages it consumes: send (log) and keep a notification.

use contracts::envelope::now;
use contracts::{AnyMessage, Envelope};
use outbox::{HandlerError, StatelessHandler};
use tracing::info;

use crate::notification::notification_for;
use crate::store::NotificationStore;

/// Handles `StockFailed`, `PaymentFailed`, `PaymentSucceeded`, `OrderCompleted` and
/// `OrderCancelled`: "sends" the customer a notification, as one structured log line with the
/// target `notification`, and stores it. Any other message is rejected (dead-lettered).
pub struct NotifyHandler {
    store: NotificationStore,
}

impl NotifyHandler {
    /// A handler keeping what it sends in `store`.
    pub fn new(store: NotificationStore) -> Self {
        NotifyHandler { store }
    }
}

impl StatelessHandler for NotifyHandler {
    async fn handle(&self, envelope: &Envelope<AnyMessage>) -> Result<(), HandlerError> {
        let Some(notification) = notification_for(envelope, now()) else {
            return Err(HandlerError::Rejected(format!(
                "notify-svc does not handle {}",
                envelope.message_type
            )));
        };
        info!(
            target: "notification",
            order_id = %notification.order_id,
            customer_id = %notification.customer_id,
            kind = notification.kind.name(),
            message = %notification.message,
        );
        self.store.push(notification);
        Ok(())
    }
}
