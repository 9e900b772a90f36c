//! The notifications sent, kept in memory: listed per order, bounded globally, the oldest
//! dropped first. Nothing survives a restart. Who may read which is the API's decision: every
//! notification names its customer.

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use contracts::OrderId;

use crate::notification::Notification;

/// At most `capacity` notifications across all orders; cheap to clone (clones share them).
#[derive(Clone)]
pub struct NotificationStore {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    capacity: NonZeroUsize,
    by_order: HashMap<OrderId, VecDeque<Notification>>,
    /// The order of every stored notification, oldest first: the eviction queue.
    sent: VecDeque<OrderId>,
}

impl NotificationStore {
    /// An empty store keeping at most `capacity` notifications.
    pub fn new(capacity: NonZeroUsize) -> Self {
        NotificationStore {
            inner: Arc::new(Mutex::new(Inner {
                capacity,
                by_order: HashMap::new(),
                sent: VecDeque::new(),
            })),
        }
    }

    // Every update leaves the maps consistent before it can panic, so a poisoned lock still
    // guards valid data.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores `notification` as its order's newest, dropping the oldest notifications (of any
    /// order) beyond the capacity.
    pub fn push(&self, notification: Notification) {
        let mut inner = self.lock();
        let order_id = notification.order_id;
        inner
            .by_order
            .entry(order_id)
            .or_default()
            .push_back(notification);
        inner.sent.push_back(order_id);
        while inner.sent.len() > inner.capacity.get() {
            let Some(oldest) = inner.sent.pop_front() else {
                break;
            };
            // The globally oldest notification is the oldest of its order.
            if let Some(of_order) = inner.by_order.get_mut(&oldest) {
                of_order.pop_front();
                if of_order.is_empty() {
                    inner.by_order.remove(&oldest);
                }
            }
        }
    }

    /// The notifications kept for `order_id`, in the order they were sent.
    pub fn for_order(&self, order_id: OrderId) -> Vec<Notification> {
        self.lock()
            .by_order
            .get(&order_id)
            .map(|of_order| of_order.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// How many notifications are kept.
    pub fn len(&self) -> usize {
        self.lock().sent.len()
    }

    /// Whether none are kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use contracts::{CustomerId, MessageId};

    use super::*;
    use crate::notification::Kind;

    fn order(index: u128) -> OrderId {
        OrderId::from(uuid::Uuid::from_u128(index))
    }

    /// Pushes `sent` (order, text) into a store of `capacity`; then each order lists `expected`.
    fn check(capacity: usize, sent: &[(u128, &str)], expected: &[(u128, &[&str])]) {
        let store = NotificationStore::new(NonZeroUsize::new(capacity).unwrap());
        for (index, text) in sent {
            store.push(Notification {
                order_id: order(*index),
                customer_id: CustomerId::generate(),
                kind: Kind::OrderCompleted,
                message: (*text).to_owned(),
                sent_at: contracts::envelope::now(),
                message_id: MessageId::generate(),
            });
        }
        let mut kept = 0;
        for (index, texts) in expected {
            let listed: Vec<String> = store
                .for_order(order(*index))
                .into_iter()
                .map(|notification| notification.message)
                .collect();
            assert_eq!(listed, *texts, "order {index} after {sent:?}");
            kept += texts.len();
        }
        assert_eq!(store.len(), kept, "everything kept is listed");
        assert!(store.len() <= capacity);
    }

    #[test]
    fn keeps_each_order_in_sending_order_and_evicts_the_oldest_beyond_capacity() {
        check(3, &[], &[(1, &[])]);
        check(
            3,
            &[(1, "a"), (2, "b"), (1, "c")],
            &[(1, &["a", "c"]), (2, &["b"])],
        );
        check(
            3,
            &[(1, "a"), (1, "b"), (2, "c"), (2, "d")],
            &[(1, &["b"]), (2, &["c", "d"])],
        );
        check(
            3,
            &[(1, "a"), (1, "b"), (2, "c"), (2, "d"), (3, "e")],
            &[(1, &[]), (2, &["c", "d"]), (3, &["e"])],
        );
        check(1, &[(1, "a"), (2, "b"), (2, "c")], &[(1, &[]), (2, &["c"])]);
        check(
            2,
            &[(1, "a"), (2, "b"), (1, "c"), (2, "d"), (1, "e")],
            &[(1, &["e"]), (2, &["d"])],
        );
    }

    #[test]
    fn an_evicted_order_leaves_nothing_behind() {
        let store = NotificationStore::new(NonZeroUsize::MIN);
        for index in 0..100 {
            store.push(Notification {
                order_id: order(index),
                customer_id: CustomerId::generate(),
                kind: Kind::OrderCancelled,
                message: String::new(),
                sent_at: contracts::envelope::now(),
                message_id: MessageId::generate(),
            });
        }
        assert_eq!(store.lock().by_order.len(), 1);
        assert_eq!(store.len(), 1);
        assert!(!store.is_empty());
    }
}
