//! What happened to every order of the run, shared by the drivers (POST results), the observer
//! (terminal events) and the progress bar (counters).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::oneshot;
use uuid::Uuid;

use crate::{Intent, Status};

/// How long a terminal event for an order not (yet) known is kept, waiting for its POST's
/// response. The race it covers lasts milliseconds; events of other clients' orders on the
/// same system are forgotten after this.
const EARLY_EVENT_RETENTION: Duration = Duration::from_secs(60);

/// How the terminal status of an order became known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Via {
    /// Its `OrderCompleted`/`OrderCancelled` event arrived.
    Event,
    /// `GET /orders/{id}` after the settle timeout.
    Lookup,
}

/// An order's terminal state as observed.
#[derive(Clone, Debug)]
pub(crate) struct Terminal {
    pub(crate) status: Status,
    /// When it was seen, since the run's start (an event's arrival; the lookup's answer).
    pub(crate) at: Duration,
    pub(crate) via: Via,
    pub(crate) reason: Option<String>,
    /// What a completed order was charged (its `OrderCompleted` total, or the order's total).
    pub(crate) total: Option<i64>,
}

/// One order the run tried to place.
#[derive(Clone, Debug)]
pub(crate) struct Attempt {
    pub(crate) index: u64,
    pub(crate) intent: Intent,
    /// What the order's lines cost at the run's catalog prices.
    pub(crate) catalog_total: i64,
    /// Open loop: when the schedule meant the order to be sent, since the run's start; `None`
    /// in the closed loop, which has no schedule.
    pub(crate) intended_at: Option<Duration>,
    /// When the POST was actually sent (or dropped), since the run's start.
    pub(crate) sent_at: Duration,
    /// When the POST's answer (or its failure) came, since the run's start; `None` when the
    /// order was dropped before sending.
    pub(crate) answered_at: Option<Duration>,
    /// The created order's id, or why there is none.
    pub(crate) result: Result<Uuid, PostError>,
    pub(crate) terminal: Option<Terminal>,
    /// Why the final lookup could not tell the order's state, if it failed.
    pub(crate) lookup_error: Option<String>,
}

impl Attempt {
    /// The instant the order's latencies are measured from: its intended send time when it has
    /// one (open loop: a generator or a server that falls behind cannot hide latency, no
    /// coordinated omission), else its actual send.
    pub(crate) fn origin(&self) -> Duration {
        self.intended_at.unwrap_or(self.sent_at)
    }
}

/// Why an order was not created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PostError {
    /// Open loop: the in-flight bound was reached, the order was never sent.
    Dropped,
    /// The POST failed: transport error, timeout, non-success status, unreadable answer.
    Failed(String),
}

/// Live counters for the progress bar.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) sent: AtomicU64,
    pub(crate) created: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) in_flight: AtomicU64,
    pub(crate) completed: AtomicU64,
    pub(crate) cancelled: AtomicU64,
}

impl Counters {
    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Debug, Default)]
struct Inner {
    attempts: Vec<Attempt>,
    by_order: HashMap<Uuid, usize>,
    early: HashMap<Uuid, Terminal>,
    /// Closed-loop clients waiting for their order's terminal state.
    waiters: HashMap<Uuid, oneshot::Sender<()>>,
    undecodable: u64,
    duplicates: u64,
    foreign: u64,
    observer_error: Option<String>,
}

impl Inner {
    /// Wakes the closed-loop client waiting for `order_id`, if any (it may have stopped waiting).
    fn wake_waiter(&mut self, order_id: Uuid) {
        if let Some(waiter) = self.waiters.remove(&order_id) {
            let _ = waiter.send(());
        }
    }
}

/// The run's record. Cheap operations under a short lock; nothing awaits while holding it.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    inner: Mutex<Inner>,
    pub(crate) counters: Counters,
    observer_stopped: AtomicBool,
}

/// A copy of the ledger at the end of the run.
#[derive(Clone, Debug, Default)]
pub(crate) struct Snapshot {
    pub(crate) attempts: Vec<Attempt>,
    pub(crate) undecodable: u64,
    pub(crate) duplicates: u64,
    pub(crate) foreign: u64,
    pub(crate) observer_error: Option<String>,
}

impl Ledger {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere cannot leave the maps half-updated in a way that matters here.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A POST is about to be sent.
    pub(crate) fn sending(&self) {
        Counters::bump(&self.counters.sent);
        Counters::bump(&self.counters.in_flight);
    }

    /// A POST came back (or failed); `attempt.result` says which.
    pub(crate) fn sent(&self, mut attempt: Attempt) {
        self.counters.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.record(&mut attempt);
    }

    /// An order that was never sent because the in-flight bound was reached: it was due at
    /// `intended_at` and dropped at `sent_at`.
    pub(crate) fn dropped(
        &self,
        index: u64,
        intent: Intent,
        intended_at: Option<Duration>,
        sent_at: Duration,
    ) {
        Counters::bump(&self.counters.sent);
        let mut attempt = Attempt {
            index,
            intent,
            catalog_total: 0,
            intended_at,
            sent_at,
            answered_at: None,
            result: Err(PostError::Dropped),
            terminal: None,
            lookup_error: None,
        };
        self.record(&mut attempt);
    }

    fn record(&self, attempt: &mut Attempt) {
        let mut inner = self.lock();
        match attempt.result {
            Ok(order_id) => {
                Counters::bump(&self.counters.created);
                if let Some(terminal) = inner.early.remove(&order_id) {
                    self.count_terminal(terminal.status);
                    attempt.terminal = Some(terminal);
                }
                let position = inner.attempts.len();
                inner.by_order.insert(order_id, position);
            }
            Err(_) => Counters::bump(&self.counters.errors),
        }
        inner.attempts.push(attempt.clone());
    }

    fn count_terminal(&self, status: Status) {
        match status {
            Status::Completed => Counters::bump(&self.counters.completed),
            Status::Cancelled => Counters::bump(&self.counters.cancelled),
        }
    }

    /// A terminal event for `order_id` arrived. The first one counts; redeliveries are
    /// counted as duplicates; events for orders this run did not (yet) create are kept for a
    /// while in case their POST's response is still on its way.
    pub(crate) fn terminal_event(&self, order_id: Uuid, terminal: Terminal) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let position = inner.by_order.get(&order_id).copied();
        match position.and_then(|position| inner.attempts.get_mut(position)) {
            Some(attempt) if attempt.terminal.is_some() => inner.duplicates += 1,
            Some(attempt) => {
                let status = terminal.status;
                attempt.terminal = Some(terminal);
                inner.wake_waiter(order_id);
                drop(guard);
                self.count_terminal(status);
            }
            None => {
                let now = terminal.at;
                if inner.early.len() >= 10_000 {
                    let before = inner.early.len();
                    inner
                        .early
                        .retain(|_, kept| now.saturating_sub(kept.at) < EARLY_EVENT_RETENTION);
                    inner.foreign += u64::try_from(before - inner.early.len()).unwrap_or(0);
                }
                if inner.early.insert(order_id, terminal).is_some() {
                    inner.duplicates += 1;
                }
            }
        }
    }

    /// A signal that fires when `order_id` (created by this run) becomes terminal; `None` when it
    /// already is, or is not an order of this run.
    pub(crate) fn terminal_signal(&self, order_id: Uuid) -> Option<oneshot::Receiver<()>> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let position = inner.by_order.get(&order_id).copied()?;
        if inner.attempts.get(position)?.terminal.is_some() {
            return None;
        }
        let (sender, receiver) = oneshot::channel();
        inner.waiters.insert(order_id, sender);
        Some(receiver)
    }

    /// The outcome of the final `GET /orders/{id}` of an order whose event was not seen.
    pub(crate) fn looked_up(&self, order_id: Uuid, outcome: Result<Option<Terminal>, String>) {
        let mut inner = self.lock();
        let Some(position) = inner.by_order.get(&order_id).copied() else {
            return;
        };
        let mut counted = None;
        if let Some(attempt) = inner.attempts.get_mut(position)
            && attempt.terminal.is_none()
        {
            match outcome {
                Ok(Some(terminal)) => {
                    counted = Some(terminal.status);
                    attempt.terminal = Some(terminal);
                    inner.wake_waiter(order_id);
                }
                Ok(None) => {}
                Err(reason) => attempt.lookup_error = Some(reason),
            }
        }
        drop(inner);
        if let Some(status) = counted {
            self.count_terminal(status);
        }
    }

    /// A delivery that was not a readable terminal event.
    pub(crate) fn undecodable(&self) {
        self.lock().undecodable += 1;
    }

    /// The observer's consumer ended; `error` says why when it was not asked to.
    pub(crate) fn observer_stopped(&self, error: Option<String>) {
        if let Some(error) = error {
            self.lock().observer_error = Some(error);
        }
        self.observer_stopped.store(true, Ordering::Relaxed);
    }

    /// Whether the observer's consumer has ended.
    pub(crate) fn is_observer_stopped(&self) -> bool {
        self.observer_stopped.load(Ordering::Relaxed)
    }

    /// Created orders with no terminal state yet.
    pub(crate) fn pending(&self) -> Vec<Uuid> {
        self.lock()
            .attempts
            .iter()
            .filter(|attempt| attempt.terminal.is_none())
            .filter_map(|attempt| attempt.result.as_ref().ok().copied())
            .collect()
    }

    /// How many created orders have no terminal state yet.
    pub(crate) fn pending_count(&self) -> u64 {
        let created = Counters::get(&self.counters.created);
        let terminal =
            Counters::get(&self.counters.completed) + Counters::get(&self.counters.cancelled);
        created.saturating_sub(terminal)
    }

    /// Everything recorded, attempts in index order.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let inner = self.lock();
        let mut attempts = inner.attempts.clone();
        attempts.sort_by_key(|attempt| attempt.index);
        Snapshot {
            attempts,
            undecodable: inner.undecodable,
            duplicates: inner.duplicates,
            foreign: inner.foreign + u64::try_from(inner.early.len()).unwrap_or(0),
            observer_error: inner.observer_error.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn created(index: u64, order_id: Uuid) -> Attempt {
        Attempt {
            index,
            intent: Intent::Complete,
            catalog_total: 1_000,
            intended_at: None,
            sent_at: Duration::from_millis(index),
            answered_at: Some(Duration::from_millis(index + 3)),
            result: Ok(order_id),
            terminal: None,
            lookup_error: None,
        }
    }

    fn event(status: Status, at_ms: u64) -> Terminal {
        Terminal {
            status,
            at: Duration::from_millis(at_ms),
            via: Via::Event,
            reason: None,
            total: None,
        }
    }

    #[test]
    fn an_event_before_the_post_response_is_matched_later() {
        let ledger = Ledger::default();
        let (early, late) = (Uuid::now_v7(), Uuid::now_v7());
        ledger.terminal_event(early, event(Status::Completed, 5));
        ledger.sending();
        ledger.sent(created(0, early));
        ledger.sending();
        ledger.sent(created(1, late));
        assert_eq!(ledger.pending(), vec![late]);
        ledger.terminal_event(late, event(Status::Cancelled, 9));
        ledger.terminal_event(late, event(Status::Cancelled, 10));
        let snapshot = ledger.snapshot();
        assert_eq!(snapshot.duplicates, 1);
        assert_eq!(snapshot.foreign, 0);
        assert_eq!(ledger.pending_count(), 0);
        assert_eq!(Counters::get(&ledger.counters.completed), 1);
        assert_eq!(Counters::get(&ledger.counters.cancelled), 1);
        assert_eq!(Counters::get(&ledger.counters.in_flight), 0);
        let at: Vec<_> = snapshot
            .attempts
            .iter()
            .map(|attempt| attempt.terminal.as_ref().unwrap().at)
            .collect();
        assert_eq!(at, vec![Duration::from_millis(5), Duration::from_millis(9)]);
    }

    #[test]
    fn a_waiting_client_is_woken_by_its_orders_terminal_state_only() {
        let ledger = Ledger::default();
        let (early, waited, other, looked) = (
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
        );
        assert!(
            ledger.terminal_signal(early).is_none(),
            "not an order of the run"
        );
        ledger.terminal_event(early, event(Status::Completed, 1));
        for (index, id) in [early, waited, other, looked].into_iter().enumerate() {
            ledger.sending();
            ledger.sent(created(index as u64, id));
        }
        assert!(ledger.terminal_signal(early).is_none(), "already terminal");
        let mut waiting = ledger.terminal_signal(waited).unwrap();
        let mut looking = ledger.terminal_signal(looked).unwrap();
        ledger.terminal_event(other, event(Status::Completed, 2));
        assert!(waiting.try_recv().is_err(), "woken by another order");
        ledger.terminal_event(waited, event(Status::Cancelled, 3));
        assert!(waiting.try_recv().is_ok());
        ledger.looked_up(looked, Ok(Some(event(Status::Completed, 4))));
        assert!(looking.try_recv().is_ok());
    }

    #[test]
    fn lookups_fill_in_only_what_events_did_not() {
        let ledger = Ledger::default();
        let (seen, looked, lost) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        for (index, id) in [seen, looked, lost].into_iter().enumerate() {
            ledger.sending();
            ledger.sent(created(index as u64, id));
        }
        ledger.dropped(
            3,
            Intent::FailStock,
            Some(Duration::from_millis(2)),
            Duration::from_millis(3),
        );
        ledger.terminal_event(seen, event(Status::Completed, 7));
        ledger.terminal_event(Uuid::now_v7(), event(Status::Completed, 8));
        ledger.looked_up(seen, Ok(None));
        ledger.looked_up(
            looked,
            Ok(Some(Terminal {
                status: Status::Cancelled,
                at: Duration::from_secs(1),
                via: Via::Lookup,
                reason: Some("payment failed".into()),
                total: None,
            })),
        );
        ledger.looked_up(lost, Err("connection refused".into()));
        let snapshot = ledger.snapshot();
        assert_eq!(snapshot.attempts.len(), 4);
        assert_eq!(snapshot.foreign, 1);
        assert_eq!(
            snapshot.attempts[0].terminal.as_ref().unwrap().via,
            Via::Event
        );
        assert_eq!(
            snapshot.attempts[1].terminal.as_ref().unwrap().via,
            Via::Lookup
        );
        assert!(snapshot.attempts[2].terminal.is_none());
        assert_eq!(
            snapshot.attempts[2].lookup_error.as_deref(),
            Some("connection refused")
        );
        assert_eq!(snapshot.attempts[3].result, Err(PostError::Dropped));
        assert_eq!(Counters::get(&ledger.counters.errors), 1);
        assert_eq!(Counters::get(&ledger.counters.sent), 4);
        assert_eq!(ledger.pending(), vec![lost]);
    }
}
