//! The one background task every saga of a service shares: it fires due timers and re-sends
//! effects still awaiting confirmation.
//!
//! Each sweep claims due rows with `FOR UPDATE SKIP LOCKED` (replicas sweep disjoint rows) and
//! applies each instance in a savepoint of its own: an instance the definition refuses is
//! rolled back alone, postponed, and reported, and never commits half a step. A database failure
//! ends the sweep (rolled back as a whole) and the next one tries again.
//!
//! Re-sends draw on a budget ([`Sweeper::resend_budget`]): a token bucket, 20 re-sends a second
//! with bursts of 100 by default. A command is re-sent because its confirmation is late, and
//! late is what every confirmation is while a participant works through a backlog (after an
//! outage, say): re-sending all of them at once would add a copy of every command to that very
//! backlog, whose answers come back late in turn, and the system would never catch up (the
//! chaos harness's long run with a 40 s database outage at 40 orders/s did exactly that before
//! the budget). A command that was really lost is still re-sent within seconds: the budget only
//! stops a flood.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use outbox::OutboxSignal;
use outbox::trace::TraceContext;
use saga_core::Label;
use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr, TransactionTrait};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, warn};
use uuid::Uuid;

use crate::definition::{Cause, EffectContext, Saga};
use crate::engine::{Applied, SagaRuntime};
use crate::error::RuntimeError;
use crate::store::{self, DueEffect};

/// What one sweep did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Timers that fired and moved their instance.
    pub deadlines_fired: usize,
    /// Effects re-sent.
    pub resent: usize,
    /// Timers or re-sends that failed on their own account and were postponed.
    pub postponed: usize,
    /// Whether a claim came back full (more may be due: sweep again at once).
    pub more: bool,
}

impl SweepReport {
    fn add(&mut self, other: SweepReport) {
        self.deadlines_fired += other.deadlines_fired;
        self.resent += other.resent;
        self.postponed += other.postponed;
        self.more |= other.more;
    }

    /// Whether the sweep wrote messages into the outbox.
    pub fn enqueued(&self) -> bool {
        self.deadlines_fired + self.resent > 0
    }
}

/// A boxed future, so that sagas of different types share one sweeper.
pub type SweepFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, DbErr>> + Send + 'a>>;

/// One saga as the sweeper sees it. Implemented by every [`SagaRuntime`].
pub trait Sweep: Send + Sync {
    /// The saga's stored name.
    fn saga(&self) -> &'static str;
    /// Fires due timers and re-sends due effects (at most `resends` of them), each in a
    /// transaction of its own.
    fn sweep<'a>(
        &'a self,
        db: &'a DatabaseConnection,
        resends: u64,
    ) -> SweepFuture<'a, SweepReport>;
    /// Sets the `saga_effects_outstanding` and `saga_effect_oldest_outstanding_seconds` gauges.
    fn report_outstanding<'a>(&'a self, db: &'a DatabaseConnection) -> SweepFuture<'a, ()>;
}

impl<D: Saga> Sweep for SagaRuntime<D> {
    fn saga(&self) -> &'static str {
        self.name()
    }

    fn sweep<'a>(
        &'a self,
        db: &'a DatabaseConnection,
        resends: u64,
    ) -> SweepFuture<'a, SweepReport> {
        Box::pin(async move {
            let mut report = SweepReport::default();
            let transaction = db.begin().await?;
            report.add(self.fire_due_timers(&transaction).await?);
            transaction.commit().await?;
            if resends == 0 {
                return Ok(report);
            }
            let transaction = db.begin().await?;
            report.add(self.resend_due_effects(&transaction, resends).await?);
            transaction.commit().await?;
            Ok(report)
        })
    }

    fn report_outstanding<'a>(&'a self, db: &'a DatabaseConnection) -> SweepFuture<'a, ()> {
        Box::pin(async move {
            let summary = store::outstanding_summary(db, self.name()).await?;
            for &effect in D::Effect::ALL {
                if self.definition().table().confirmation_of(effect).is_none() {
                    continue;
                }
                let (count, oldest) = summary
                    .iter()
                    .find(|(name, _, _)| name == effect.name())
                    .map_or((0, 0.0), |&(_, count, oldest)| (count, oldest));
                let labels = [("saga", self.name()), ("effect", effect.name())];
                metrics::gauge!("saga_effects_outstanding", &labels).set(count as f64);
                metrics::gauge!("saga_effect_oldest_outstanding_seconds", &labels).set(oldest);
            }
            Ok(())
        })
    }
}

impl<D: Saga> SagaRuntime<D> {
    /// Applies the deadline event of every instance whose timer is due, each in a savepoint.
    pub(crate) async fn fire_due_timers(
        &self,
        transaction: &DatabaseTransaction,
    ) -> Result<SweepReport, DbErr> {
        let saga = self.name();
        let batch = self.settings().sweep_batch;
        let due = store::claim_due_timers(transaction, saga, batch).await?;
        let mut report = SweepReport {
            more: due.len() as u64 >= batch,
            ..SweepReport::default()
        };
        for timer in due {
            let (instance_id, state_name) = (timer.instance_id, timer.state.as_str());
            let deadline = D::State::from_name(state_name)
                .and_then(|state| self.definition().table().deadline_of(state));
            let Some(deadline) = deadline else {
                // The table no longer times this state out (or the row is corrupt): nothing
                // to fire, and nothing to fire at every sweep either.
                warn!(saga, %instance_id, state = %state_name, "a timer no deadline explains; cleared");
                store::clear_timer(transaction, saga, instance_id).await?;
                continue;
            };
            let savepoint = transaction.begin().await?;
            let span = sweep_span("deadline", saga, instance_id, timer.traceparent.as_deref());
            match self
                .apply(&savepoint, instance_id, deadline.event, Cause::Deadline)
                .instrument(span)
                .await
            {
                Ok(Applied::Step { .. }) => {
                    savepoint.commit().await?;
                    report.deadlines_fired += 1;
                    metrics::counter!("saga_deadlines_fired_total", "saga" => saga).increment(1);
                }
                Ok(Applied::Duplicate { .. }) => {
                    // `validate` makes every deadline event leave its group, so this means the
                    // timer outlived its state: clear it.
                    savepoint.commit().await?;
                    store::clear_timer(transaction, saga, instance_id).await?;
                }
                Err(RuntimeError::Database(cause)) => return Err(cause),
                Err(refused) => {
                    savepoint.rollback().await?;
                    self.postpone_timer(transaction, instance_id, &refused)
                        .await?;
                    report.postponed += 1;
                }
            }
        }
        Ok(report)
    }

    async fn postpone_timer(
        &self,
        transaction: &DatabaseTransaction,
        instance_id: Uuid,
        refused: &RuntimeError,
    ) -> Result<(), DbErr> {
        let after = self.settings().retry_failed_after;
        warn!(saga = self.name(), %instance_id, error = %refused, retry_in_s = after.as_secs(), "deadline not applied; postponed");
        store::postpone_timer(transaction, self.name(), instance_id, after).await
    }

    /// Re-sends effects due again (at most `limit`, oldest due first), each in a savepoint.
    pub(crate) async fn resend_due_effects(
        &self,
        transaction: &DatabaseTransaction,
        limit: u64,
    ) -> Result<SweepReport, DbErr> {
        let saga = self.name();
        let batch = self.settings().sweep_batch.min(limit);
        let due = store::claim_due_effects(transaction, saga, batch).await?;
        let mut report = SweepReport {
            more: due.len() as u64 >= batch,
            ..SweepReport::default()
        };
        for item in due {
            let savepoint = transaction.begin().await?;
            let span = sweep_span(
                "re-send",
                saga,
                item.instance_id,
                item.traceparent.as_deref(),
            );
            match self.resend(&savepoint, &item).instrument(span).await {
                Ok(()) => {
                    savepoint.commit().await?;
                    report.resent += 1;
                    metrics::counter!("saga_effect_resends_total", "saga" => saga, "effect" => item.effect.clone())
                        .increment(1);
                }
                Err(RuntimeError::Database(cause)) => return Err(cause),
                Err(refused) => {
                    savepoint.rollback().await?;
                    let after = self.settings().retry_failed_after;
                    warn!(saga, instance_id = %item.instance_id, effect = %item.effect, error = %refused, "effect not re-sent; postponed");
                    store::postpone_effect(
                        transaction,
                        saga,
                        item.instance_id,
                        &item.effect,
                        after,
                    )
                    .await?;
                    report.postponed += 1;
                }
            }
        }
        Ok(report)
    }

    async fn resend(
        &self,
        transaction: &DatabaseTransaction,
        item: &DueEffect,
    ) -> Result<(), RuntimeError> {
        let saga = self.name();
        let instance_id = item.instance_id;
        let corrupt = |detail: String| RuntimeError::Corrupt {
            saga,
            instance_id,
            detail,
        };
        let effect = D::Effect::from_name(&item.effect)
            .ok_or_else(|| corrupt(format!("unknown effect {:?}", item.effect)))?;
        let row = store::load(transaction, saga, instance_id)
            .await?
            .ok_or(RuntimeError::UnknownInstance { saga, instance_id })?;
        let state = self.state_named(instance_id, &row.state)?;
        let data: D::Data = serde_json::from_value(row.data)
            .map_err(|error| corrupt(format!("its data does not decode: {error}")))?;
        let attempt = u32::try_from(item.attempts)
            .unwrap_or(u32::MAX)
            .saturating_add(1);
        let context = EffectContext {
            instance_id,
            state,
            data: &data,
            cause: None,
            attempt,
        };
        let messages = self.definition().messages(effect, &context)?;
        outbox::enqueue_all(transaction, &messages).await?;
        store::record_resent(
            transaction,
            saga,
            instance_id,
            &item.effect,
            self.settings().resend_wait(attempt),
        )
        .await?;
        info!(saga, %instance_id, effect = effect.name(), attempt, "effect re-sent: no confirmation yet");
        Ok(())
    }
}

/// The span of what the sweeper does for one instance (`what`: a deadline, a re-send), in the
/// trace the instance was started in: an order's deadline and its re-sent commands belong to
/// the order's trace.
fn sweep_span(
    what: &'static str,
    saga: &'static str,
    instance_id: Uuid,
    traceparent: Option<&str>,
) -> tracing::Span {
    let span = tracing::info_span!(
        "saga sweep",
        otel.name = %format!("saga {saga} {what}"),
        saga.name = saga,
        saga.instance_id = %instance_id,
        correlation_id = %instance_id,
    );
    let started_in = TraceContext::parse(traceparent, None);
    outbox::trace::adopt(&span, started_in.as_ref());
    span
}

/// How many re-sends the sweeper may make: a token bucket.
#[derive(Debug)]
struct ResendBudget {
    per_second: f64,
    burst: f64,
    tokens: f64,
    refilled_at: Instant,
}

impl ResendBudget {
    fn new(per_second: f64, burst: u64) -> ResendBudget {
        ResendBudget {
            per_second: per_second.max(0.0),
            burst: burst as f64,
            tokens: burst as f64,
            refilled_at: Instant::now(),
        }
    }

    /// The whole re-sends available now.
    fn available(&mut self) -> u64 {
        let now = Instant::now();
        let earned = now.duration_since(self.refilled_at).as_secs_f64() * self.per_second;
        self.tokens = (self.tokens + earned).min(self.burst);
        self.refilled_at = now;
        self.tokens.floor() as u64
    }

    fn spend(&mut self, resends: usize) {
        self.tokens = (self.tokens - resends as f64).max(0.0);
    }
}

/// Runs the sweeps of every saga of a service.
pub struct Sweeper {
    db: DatabaseConnection,
    signal: OutboxSignal,
    sagas: Vec<Arc<dyn Sweep>>,
    interval: Duration,
    gauge_interval: Duration,
    budget: std::sync::Mutex<ResendBudget>,
}

impl Sweeper {
    /// A sweeper over `db` that wakes the relay through `signal` when it enqueued messages.
    pub fn new(db: DatabaseConnection, signal: OutboxSignal) -> Sweeper {
        Sweeper {
            db,
            signal,
            sagas: Vec::new(),
            interval: Duration::from_millis(500),
            gauge_interval: Duration::from_secs(5),
            budget: std::sync::Mutex::new(ResendBudget::new(20.0, 100)),
        }
    }

    /// At most `per_second` re-sends a second on average, with bursts of up to `burst` (20 and
    /// 100 by default; see the module's documentation for why there is a budget at all).
    pub fn resend_budget(self, per_second: f64, burst: u64) -> Sweeper {
        Sweeper {
            budget: std::sync::Mutex::new(ResendBudget::new(per_second, burst)),
            ..self
        }
    }

    /// Adds a saga.
    pub fn with_saga<S: Sweep + 'static>(mut self, saga: Arc<S>) -> Sweeper {
        self.sagas.push(saga);
        self
    }

    /// How long to wait between sweeps that found nothing more due (500 ms by default).
    pub fn interval(mut self, interval: Duration) -> Sweeper {
        self.interval = interval;
        self
    }

    /// One sweep of every saga, re-sending what the budget allows.
    pub async fn sweep_once(&self) -> Result<SweepReport, DbErr> {
        let mut report = SweepReport::default();
        for saga in &self.sagas {
            let resends = self.with_budget(ResendBudget::available);
            let swept = saga.sweep(&self.db, resends).await?;
            self.with_budget(|budget| budget.spend(swept.resent));
            report.add(swept);
        }
        // More is due, but the budget is spent: wait for the next sweep.
        if self.with_budget(ResendBudget::available) == 0 {
            report.more &= report.deadlines_fired > 0;
        }
        Ok(report)
    }

    fn with_budget<T>(&self, use_budget: impl FnOnce(&mut ResendBudget) -> T) -> T {
        let mut budget = self
            .budget
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        use_budget(&mut budget)
    }

    /// Sweeps until `stop` is cancelled.
    pub async fn run(self, stop: CancellationToken) {
        let mut gauges_due = Instant::now();
        while !stop.is_cancelled() {
            let more = match self.sweep_once().await {
                Ok(report) => {
                    if report.enqueued() {
                        self.signal.wake();
                        info!(
                            deadlines_fired = report.deadlines_fired,
                            resent = report.resent,
                            "saga sweep"
                        );
                    }
                    report.more
                }
                Err(cause) => {
                    warn!(%cause, "saga sweep failed; will try again");
                    false
                }
            };
            if Instant::now() >= gauges_due {
                gauges_due = Instant::now() + self.gauge_interval;
                for saga in &self.sagas {
                    if let Err(cause) = saga.report_outstanding(&self.db).await {
                        warn!(saga = saga.saga(), %cause, "cannot count outstanding effects");
                    }
                }
            }
            if more {
                continue;
            }
            tokio::select! {
                () = tokio::time::sleep(self.interval) => {}
                () = stop.cancelled() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resend_budget_allows_bursts_then_its_rate() {
        let mut budget = ResendBudget::new(20.0, 100);
        assert_eq!(budget.available(), 100, "a full burst at first");
        budget.spend(100);
        assert_eq!(budget.available(), 0, "spent");
        // Half a second later: half a second's worth, never more than the burst.
        budget.refilled_at -= Duration::from_millis(500);
        assert_eq!(budget.available(), 10);
        budget.refilled_at -= Duration::from_secs(3_600);
        assert_eq!(budget.available(), 100);
        budget.spend(1_000);
        assert_eq!(budget.available(), 0, "never below nothing");
    }
}
