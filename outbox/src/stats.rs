//! Counters of what the relay and the consumers did, both as Prometheus metrics (through the
//! `metrics` facade: a service installs an exporter and serves them) and as in-process
//! snapshots for tests and tools.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Metric: messages published and confirmed by the broker (counter).
pub const OUTBOX_PUBLISHED: &str = "outbox_published_total";
/// Metric: publication failures — nacks and unroutable returns (counter).
pub const OUTBOX_FAILED: &str = "outbox_publish_failures_total";
/// Metric: unprocessed outbox rows (gauge).
pub const OUTBOX_BACKLOG: &str = "outbox_backlog_messages";
/// Metric: age of the oldest unprocessed outbox row in seconds, 0 when none (gauge).
pub const OUTBOX_OLDEST_AGE: &str = "outbox_oldest_unprocessed_age_seconds";
/// Metric: 1 while the broker blocks the relay's publishing (a memory or disk alarm), else 0
/// (gauge).
pub const OUTBOX_BLOCKED: &str = "outbox_relay_blocked";
/// Metric: messages in each dead-letter queue, by the queue they came from (gauge).
pub const DEAD_LETTERS: &str = "dead_letters";
/// Metric: deliveries by queue and outcome (`handled`, `duplicate`, `retried`,
/// `dead_lettered`) (counter).
pub const CONSUMER_MESSAGES: &str = "consumer_messages_total";

/// Totals of one relay.
#[derive(Debug, Default)]
pub struct PublisherStats {
    published: AtomicU64,
    failed: AtomicU64,
}

impl PublisherStats {
    /// Messages published and confirmed.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    /// Publication failures.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    pub(crate) fn record(&self, published: u64, failed: u64) {
        self.published.fetch_add(published, Ordering::Relaxed);
        self.failed.fetch_add(failed, Ordering::Relaxed);
        metrics::counter!(OUTBOX_PUBLISHED).increment(published);
        metrics::counter!(OUTBOX_FAILED).increment(failed);
    }
}

/// What happened to one delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Handled and committed.
    Handled,
    /// Already handled before (inbox hit); acknowledged without effect.
    Duplicate,
    /// Handler failed; scheduled for another attempt.
    Retried,
    /// Undecodable, rejected by the handler, or out of attempts; moved to the `.dlq`.
    DeadLettered,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Handled => "handled",
            Outcome::Duplicate => "duplicate",
            Outcome::Retried => "retried",
            Outcome::DeadLettered => "dead_lettered",
        }
    }
}

/// Totals of one consumer runner, over all its queues.
#[derive(Debug, Default)]
pub struct ConsumerStats {
    handled: AtomicU64,
    duplicate: AtomicU64,
    retried: AtomicU64,
    dead_lettered: AtomicU64,
}

impl ConsumerStats {
    /// Deliveries handled and committed.
    pub fn handled(&self) -> u64 {
        self.handled.load(Ordering::Relaxed)
    }

    /// Duplicates acknowledged without effect.
    pub fn duplicate(&self) -> u64 {
        self.duplicate.load(Ordering::Relaxed)
    }

    /// Deliveries scheduled for another attempt.
    pub fn retried(&self) -> u64 {
        self.retried.load(Ordering::Relaxed)
    }

    /// Deliveries moved to a dead-letter queue.
    pub fn dead_lettered(&self) -> u64 {
        self.dead_lettered.load(Ordering::Relaxed)
    }

    pub(crate) fn record(&self, queue: &str, outcome: Outcome) {
        let counter = match outcome {
            Outcome::Handled => &self.handled,
            Outcome::Duplicate => &self.duplicate,
            Outcome::Retried => &self.retried,
            Outcome::DeadLettered => &self.dead_lettered,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(CONSUMER_MESSAGES, "queue" => queue.to_owned(), "outcome" => outcome.label()).increment(1);
    }
}

/// Shared handle to stats.
pub type SharedStats<T> = Arc<T>;
