//! The notifications sent, kept in memory: listed per order, bounded globally, the oldest
//! dropped first. It is also the record of what an order's customer was already told: at most
//! one notification of each kind per order is kept, and a later one of that kind is refused as a
//! repeat of the same fact. Nothing survives a restart. Who may read which is the API's
//! decision: every notification names its customer.

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
    /// order) beyond the capacity, unless its order already has one of its kind kept: then it
    /// is a repeat of a fact the customer was already told (participants answer every re-sent
    /// command again, under a new message id), nothing changes, and the answer is `false`.
    /// Checking and storing under one lock keeps two concurrent repeats from both passing.
    #[must_use = "a refused repeat must not be sent"]
    pub fn push_if_new(&self, notification: Notification) -> bool {
        let mut inner = self.lock();
        let order_id = notification.order_id;
        let of_order = inner.by_order.entry(order_id).or_default();
        if of_order.iter().any(|kept| kept.kind == notification.kind) {
            return false;
        }
        of_order.push_back(notification);
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
        true
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
    use crate::notification::Kind::{
        OrderCancelled, OrderCompleted, PaymentFailed, PaymentSucceeded, StockFailed,
    };

    fn order(index: u128) -> OrderId {
        OrderId::from(uuid::Uuid::from_u128(index))
    }

    fn notification(index: u128, kind: Kind, text: &str) -> Notification {
        Notification {
            order_id: order(index),
            customer_id: CustomerId::generate(),
            kind,
            message: text.to_owned(),
            sent_at: contracts::envelope::now(),
            message_id: MessageId::generate(),
        }
    }

    /// Pushes `sent` (order, kind, text, whether the store takes it as new) into a store of
    /// `capacity`; then each order lists the texts `expected`.
    fn check(capacity: usize, sent: &[(u128, Kind, &str, bool)], expected: &[(u128, &[&str])]) {
        let store = NotificationStore::new(NonZeroUsize::new(capacity).unwrap());
        for (index, kind, text, new) in sent {
            assert_eq!(
                store.push_if_new(notification(*index, *kind, text)),
                *new,
                "order {index}, {kind:?} {text:?} in {sent:?}"
            );
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
            &[
                (1, PaymentSucceeded, "a", true),
                (2, PaymentSucceeded, "b", true),
                (1, OrderCompleted, "c", true),
            ],
            &[(1, &["a", "c"]), (2, &["b"])],
        );
        check(
            3,
            &[
                (1, PaymentSucceeded, "a", true),
                (1, OrderCompleted, "b", true),
                (2, PaymentFailed, "c", true),
                (2, OrderCancelled, "d", true),
            ],
            &[(1, &["b"]), (2, &["c", "d"])],
        );
        check(
            3,
            &[
                (1, PaymentSucceeded, "a", true),
                (1, OrderCompleted, "b", true),
                (2, StockFailed, "c", true),
                (2, OrderCancelled, "d", true),
                (3, OrderCancelled, "e", true),
            ],
            &[(1, &[]), (2, &["c", "d"]), (3, &["e"])],
        );
        check(
            1,
            &[
                (1, StockFailed, "a", true),
                (2, StockFailed, "b", true),
                (2, OrderCancelled, "c", true),
            ],
            &[(1, &[]), (2, &["c"])],
        );
        check(
            2,
            &[
                (1, PaymentSucceeded, "a", true),
                (2, PaymentFailed, "b", true),
                (1, OrderCompleted, "c", true),
                (2, OrderCancelled, "d", true),
                (1, OrderCancelled, "e", true),
            ],
            &[(1, &["e"]), (2, &["d"])],
        );
    }

    #[test]
    fn an_order_keeps_one_notification_of_each_kind_the_first() {
        // The same fact again, worded the same or not: the first stays, alone.
        check(
            3,
            &[
                (1, PaymentSucceeded, "a", true),
                (1, PaymentSucceeded, "a", false),
                (1, PaymentSucceeded, "b", false),
            ],
            &[(1, &["a"])],
        );
        // Every kind once for one order, each repeat refused in between.
        check(
            10,
            &[
                (1, StockFailed, "a", true),
                (1, StockFailed, "a", false),
                (1, PaymentFailed, "b", true),
                (1, PaymentSucceeded, "c", true),
                (1, PaymentFailed, "b", false),
                (1, OrderCompleted, "d", true),
                (1, OrderCancelled, "e", true),
                (1, OrderCompleted, "d", false),
            ],
            &[(1, &["a", "b", "c", "d", "e"])],
        );
        // One kind, two orders: one each.
        check(
            3,
            &[
                (1, OrderCancelled, "a", true),
                (2, OrderCancelled, "b", true),
                (1, OrderCancelled, "c", false),
            ],
            &[(1, &["a"]), (2, &["b"])],
        );
        // A refused repeat evicts nothing.
        check(
            2,
            &[
                (1, OrderCompleted, "a", true),
                (2, OrderCompleted, "b", true),
                (1, OrderCompleted, "c", false),
            ],
            &[(1, &["a"]), (2, &["b"])],
        );
        // Once evicted, the order's notification is forgotten: a repeat is sent again. This is
        // the bound the service documents.
        check(
            1,
            &[
                (1, OrderCompleted, "a", true),
                (2, OrderCompleted, "b", true),
                (1, OrderCompleted, "c", true),
            ],
            &[(1, &["c"]), (2, &[])],
        );
    }

    #[test]
    fn an_evicted_order_leaves_nothing_behind() {
        let store = NotificationStore::new(NonZeroUsize::MIN);
        for index in 0..100 {
            assert!(store.push_if_new(notification(index, Kind::OrderCancelled, "")));
        }
        assert_eq!(store.lock().by_order.len(), 1);
        assert_eq!(store.len(), 1);
        assert!(!store.is_empty());
    }
}
