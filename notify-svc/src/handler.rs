//! Notify's reaction to the messages it consumes: send (log) and keep a notification.

use contracts::envelope::now;
use contracts::{AnyMessage, Envelope};
use outbox::{HandlerError, StatelessHandler};
use tracing::info;

use crate::notification::notification_for;
use crate::store::NotificationStore;

/// Handles `StockFailed`, `PaymentFailed`, `PaymentSucceeded`, `OrderCompleted` and
/// `OrderCancelled`: "sends" the customer a notification, as one structured log line with the
/// target `notification`, and stores it — unless the order's customer was already sent one of
/// that kind, which makes the message a repeat of the same fact: it is then handled without
/// notifying anyone. Any other message is rejected (dead-lettered).
pub struct NotifyHandler {
    store: NotificationStore,
}

impl NotifyHandler {
    /// A handler keeping what it sends in `store`.
    pub fn new(store: NotificationStore) -> Self {
        NotifyHandler { store }
    }
}

impl StatelessHandler<Envelope<AnyMessage>> for NotifyHandler {
    async fn handle(&self, envelope: &Envelope<AnyMessage>) -> Result<(), HandlerError> {
        let Some(notification) = notification_for(envelope, now()) else {
            return Err(HandlerError::Rejected(format!(
                "notify-svc does not handle {}",
                envelope.message_type
            )));
        };
        // The store decides, under its lock, whether the customer was already told this: a
        // participant answers every re-sent command again under a new message id, so the
        // processor's deduplication by message id lets such repeats through. Stored first,
        // logged (sent) only if new; a repeat is handled, and acknowledged, without a word.
        if !self.store.push_if_new(notification.clone()) {
            tracing::debug!(
                order_id = %notification.order_id,
                kind = notification.kind.name(),
                message_id = %notification.message_id,
                "already notified of this, not sent again"
            );
            return Ok(());
        }
        info!(
            target: "notification",
            order_id = %notification.order_id,
            customer_id = %notification.customer_id,
            kind = notification.kind.name(),
            message = %notification.message,
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroUsize;

    use contracts::{
        CustomerId, MessageId, Money, OrderCancelled, OrderCompleted, OrderId, PaymentFailed,
        PaymentId, PaymentSucceeded, StockFailed,
    };

    use super::*;

    /// `message` under a message id of its own, as every copy of a participant's answer is.
    fn envelope(message: impl Into<AnyMessage>) -> Envelope<AnyMessage> {
        let payload: AnyMessage = message.into();
        Envelope {
            message_id: MessageId::generate(),
            message_type: payload.message_type(),
            correlation_id: payload.order_id(),
            causation_id: None,
            occurred_at: now(),
            schema_version: 1,
            payload,
        }
    }

    /// Handles `handled` in turn: every one is handled (a repeat too: it is acknowledged, not
    /// retried or dead-lettered); then each order of `expected` lists the notifications of
    /// exactly the messages at these indices of `handled`, in that order.
    async fn check(what: &str, handled: &[Envelope<AnyMessage>], expected: &[(OrderId, &[usize])]) {
        let store = NotificationStore::new(NonZeroUsize::new(100).unwrap());
        let handler = NotifyHandler::new(store.clone());
        for envelope in handled {
            let result = handler.handle(envelope).await;
            assert!(matches!(result, Ok(())), "{what}: {envelope:?}: {result:?}");
        }
        for (order_id, indices) in expected {
            let listed: Vec<MessageId> = store
                .for_order(*order_id)
                .iter()
                .map(|notification| notification.message_id)
                .collect();
            let expected_ids: Vec<MessageId> = indices
                .iter()
                .map(|index| handled[*index].message_id)
                .collect();
            assert_eq!(listed, expected_ids, "{what}: order {order_id}");
        }
    }

    #[tokio::test]
    async fn a_customer_is_told_each_fact_about_an_order_once() {
        let (order, other_order) = (OrderId::generate(), OrderId::generate());
        let customer_id = CustomerId::generate();
        let payment_id = PaymentId::generate();
        let money = |minor_units| Money::new(minor_units).unwrap();
        let paid = |order_id| PaymentSucceeded {
            order_id,
            customer_id,
            payment_id,
            amount: money(2_500),
        };
        let stock_failed = |reason: &str| StockFailed {
            order_id: order,
            customer_id,
            reason: reason.into(),
        };
        let payment_failed = PaymentFailed {
            order_id: order,
            customer_id,
            reason: "insufficient balance: 2500 needed, 0 available".into(),
        };
        let completed = OrderCompleted {
            order_id: order,
            customer_id,
            total: money(2_500),
        };
        let cancelled = OrderCancelled {
            order_id: order,
            customer_id,
            reason: "deadline passed".into(),
        };
        let redelivered = envelope(paid(order));
        // (what, the messages handled in turn, the indices each order then lists).
        type Case = (
            &'static str,
            Vec<Envelope<AnyMessage>>,
            Vec<(OrderId, &'static [usize])>,
        );
        let cases: Vec<Case> = vec![
            (
                "payment's answer to a re-sent StockReserved",
                vec![envelope(paid(order)), envelope(paid(order))],
                vec![(order, &[0])],
            ),
            (
                "inventory's answer to a re-sent OrderCreated, worded differently",
                vec![
                    envelope(stock_failed("insufficient stock for apple")),
                    envelope(stock_failed("insufficient stock for apple")),
                    envelope(stock_failed("the order was cancelled")),
                ],
                vec![(order, &[0])],
            ),
            (
                "payment's refusal, answered again",
                vec![
                    envelope(payment_failed.clone()),
                    envelope(payment_failed.clone()),
                ],
                vec![(order, &[0])],
            ),
            (
                "the saga's announcements, announced again",
                vec![
                    envelope(completed.clone()),
                    envelope(completed.clone()),
                    envelope(cancelled.clone()),
                    envelope(cancelled.clone()),
                ],
                vec![(order, &[0, 2])],
            ),
            (
                "one message redelivered past the processor's memory",
                vec![redelivered.clone(), redelivered],
                vec![(order, &[0])],
            ),
            (
                "a completed order's facts, each repeated",
                vec![
                    envelope(paid(order)),
                    envelope(paid(order)),
                    envelope(completed.clone()),
                    envelope(paid(order)),
                    envelope(completed.clone()),
                ],
                vec![(order, &[0, 2])],
            ),
            (
                "a failed order's facts",
                vec![
                    envelope(stock_failed("unknown product durian")),
                    envelope(cancelled.clone()),
                    envelope(payment_failed),
                ],
                vec![(order, &[0, 1, 2])],
            ),
            (
                "one fact about two orders",
                vec![
                    envelope(paid(order)),
                    envelope(paid(other_order)),
                    envelope(paid(order)),
                ],
                vec![(order, &[0]), (other_order, &[1])],
            ),
        ];
        for (what, handled, expected) in &cases {
            check(what, handled, expected).await;
        }
    }
}
