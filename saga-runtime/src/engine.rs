//! [`SagaRuntime`]: starts and steps instances of one [`Saga`] in the caller's transaction.

use std::time::Duration;

use outbox::trace::TraceContext;
use outbox::{Inbound, NewMessage};
use saga_core::{Label, Outcome, TimerChange};
use sea_orm::ConnectionTrait;
use tracing::Instrument;
use tracing::info;
use uuid::Uuid;

use crate::definition::{Cause, EffectContext, Saga, Step};
use crate::error::RuntimeError;
use crate::store::{self, NewInstance, StepWrite, TimerWrite};

/// How the runtime paces what it does on its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// How long an effect that needs a confirmation waits for it before its first re-send;
    /// each further re-send waits twice as long as the one before, up to `resend_max`.
    pub resend_after: Duration,
    /// The longest wait between two re-sends.
    pub resend_max: Duration,
    /// How long a timer or a re-send that failed on the instance's own account (the
    /// definition refused it) waits before it is tried again.
    pub retry_failed_after: Duration,
    /// Timers and re-sends claimed per sweep transaction.
    pub sweep_batch: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            resend_after: Duration::from_secs(5),
            resend_max: Duration::from_secs(60),
            retry_failed_after: Duration::from_secs(30),
            sweep_batch: 100,
        }
    }
}

impl Settings {
    /// The wait after the `attempt`-th send of an effect before the next one.
    pub fn resend_wait(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(20);
        self.resend_after
            .saturating_mul(1 << doublings)
            .min(self.resend_max)
    }
}

/// A saga definition whose table failed validation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidDefinition(String);

/// What applying an event did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied<S: 'static, F: 'static> {
    /// A row of the table applied: a transition, or a compensation that stays (`from == to`).
    Step {
        /// The state before.
        from: S,
        /// The state after.
        to: S,
        /// The effects emitted.
        effects: &'static [F],
    },
    /// The event was already reflected in the state (or the table ignores it here); nothing
    /// but its facts and the confirmations it carries was written.
    Duplicate {
        /// The state, unchanged.
        state: S,
    },
}

/// Persists and drives the instances of one saga.
pub struct SagaRuntime<D: Saga> {
    definition: D,
    settings: Settings,
}

impl<D: Saga> SagaRuntime<D> {
    /// A runtime for `definition`, whose table must validate.
    pub fn new(definition: D) -> Result<Self, InvalidDefinition> {
        definition
            .table()
            .validate()
            .map_err(|invalid| InvalidDefinition(invalid.to_string()))?;
        Ok(SagaRuntime {
            definition,
            settings: Settings::default(),
        })
    }

    /// The same runtime with other pacing.
    pub fn with_settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    /// The definition.
    pub fn definition(&self) -> &D {
        &self.definition
    }

    /// The pacing.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The saga's stored name.
    pub fn name(&self) -> &'static str {
        self.definition.name()
    }

    /// Starts an instance in the caller's transaction: the initial state, the first timeline
    /// row, the start effects in the outbox (recorded as outstanding where they need a
    /// confirmation) and the initial state's timer. `cause` is the id of the message being
    /// handled, if any.
    pub async fn start<C: ConnectionTrait>(
        &self,
        db: &C,
        instance_id: Uuid,
        data: D::Data,
        cause: Option<Uuid>,
    ) -> Result<(), RuntimeError> {
        let table = self.definition.table();
        let effects = table.start_effects;
        let names = names(effects);
        let inserted = store::insert(
            db,
            NewInstance {
                saga: self.name(),
                instance_id,
                state: table.initial.name(),
                data: serde_json::to_value(&data)?,
                effects: &names,
                timer: self.timer(None, table.initial),
                cause,
                traceparent: TraceContext::current().map(|context| context.traceparent()),
            },
        )
        .await?;
        if !inserted {
            return Err(RuntimeError::AlreadyStarted {
                saga: self.name(),
                instance_id,
            });
        }
        let context = EffectContext {
            instance_id,
            state: table.initial,
            data: &data,
            cause,
            attempt: 1,
        };
        self.emit(db, effects, &context).await?;
        info!(saga = self.name(), %instance_id, state = table.initial.name(), effects = ?names, "saga started");
        Ok(())
    }

    /// Applies a consumed message to the instance it is about.
    pub async fn handle<C: ConnectionTrait>(
        &self,
        db: &C,
        message: &D::Message,
    ) -> Result<Applied<D::State, D::Effect>, RuntimeError> {
        let Some(correlated) = self.definition.event_of(message) else {
            return Err(RuntimeError::NotAnEvent {
                saga: self.name(),
                message_type: message.message_type().to_owned(),
            });
        };
        self.apply(
            db,
            correlated.instance_id,
            correlated.event,
            Cause::Message(message),
        )
        .await
    }

    /// Applies `event` to the instance in the caller's transaction: one step of the table,
    /// written with optimistic concurrency ([`RuntimeError::Conflict`] if another transaction
    /// stepped it since it was read: apply again on fresh state). Confirmations the event
    /// carries are recorded whatever the table decides, except for an invalid event.
    pub async fn apply<C: ConnectionTrait>(
        &self,
        db: &C,
        instance_id: Uuid,
        event: D::Event,
        cause: Cause<'_, D::Message>,
    ) -> Result<Applied<D::State, D::Effect>, RuntimeError> {
        let saga = self.name();
        // What MassTransit's saga spans carry too: which saga, which instance, the state
        // before and after, the event and the effects.
        let span = tracing::info_span!(
            "saga step",
            otel.name = %format!("saga {saga} {}", event.name()),
            saga.name = saga,
            saga.instance_id = %instance_id,
            saga.event = event.name(),
            saga.state.before = tracing::field::Empty,
            saga.state.after = tracing::field::Empty,
            saga.effects = tracing::field::Empty,
        );
        self.apply_in_span(db, instance_id, event, cause, &span)
            .instrument(span.clone())
            .await
    }

    async fn apply_in_span<C: ConnectionTrait>(
        &self,
        db: &C,
        instance_id: Uuid,
        event: D::Event,
        cause: Cause<'_, D::Message>,
        span: &tracing::Span,
    ) -> Result<Applied<D::State, D::Effect>, RuntimeError> {
        let saga = self.name();
        let table = self.definition.table();
        let row = store::load(db, saga, instance_id)
            .await?
            .ok_or(RuntimeError::UnknownInstance { saga, instance_id })?;
        let before = self.state_named(instance_id, &row.state)?;
        span.record("saga.state.before", before.name());
        let mut data: D::Data =
            serde_json::from_value(row.data.clone()).map_err(|error| RuntimeError::Corrupt {
                saga,
                instance_id,
                detail: format!("its data does not decode: {error}"),
            })?;
        let outcome = table.step(before, event);
        if let Outcome::Invalid { state } = outcome {
            return Err(RuntimeError::Invalid {
                saga,
                state: state.name(),
                event: event.name(),
            });
        }
        let step = Step {
            instance_id,
            before,
            event,
            outcome,
            cause,
        };
        self.definition.record(&mut data, &step)?;
        let data_json = serde_json::to_value(&data)?;
        let (after, effects, timer) = match outcome {
            Outcome::Transition { to, effects, .. } => (to, effects, self.timer(Some(before), to)),
            Outcome::Compensate { state, effects } => (state, effects, TimerWrite::Keep),
            Outcome::Duplicate { state } | Outcome::Invalid { state } => {
                if data_json != row.data
                    && !store::write_data(db, saga, instance_id, row.version, data_json).await?
                {
                    return Err(RuntimeError::Conflict);
                }
                self.confirm(db, instance_id, event).await?;
                return Ok(Applied::Duplicate { state });
            }
        };
        let effect_names = names(effects);
        span.record("saga.state.after", after.name());
        span.record("saga.effects", effect_names.join(",").as_str());
        let cause = cause.message_id();
        let written = store::write_step(
            db,
            StepWrite {
                saga,
                instance_id,
                read_version: row.version,
                from_state: before.name(),
                to_state: after.name(),
                event: event.name(),
                effects: &effect_names,
                message_id: cause,
                data: data_json,
                timer,
                confirmed: self.confirmed_by(event),
            },
        )
        .await?;
        if !written {
            return Err(RuntimeError::Conflict);
        }
        let context = EffectContext {
            instance_id,
            state: after,
            data: &data,
            cause,
            attempt: 1,
        };
        self.emit(db, effects, &context).await?;
        metrics::counter!("saga_transitions_total", "saga" => saga, "from" => before.name(), "to" => after.name())
            .increment(1);
        info!(saga, %instance_id, from = before.name(), to = after.name(), event = event.name(), effects = ?effect_names, "saga step");
        Ok(Applied::Step {
            from: before,
            to: after,
            effects,
        })
    }

    /// The names of the effects that `event` confirms.
    fn confirmed_by(&self, event: D::Event) -> Vec<String> {
        self.definition
            .table()
            .confirmed_by(event)
            .iter()
            .map(|effect| effect.name().to_owned())
            .collect()
    }

    /// Marks the outstanding effects that `event` confirms, for an event that decides no step
    /// (a step confirms them in the statement that writes it, [`store::write_step`]).
    async fn confirm<C: ConnectionTrait>(
        &self,
        db: &C,
        instance_id: Uuid,
        event: D::Event,
    ) -> Result<(), RuntimeError> {
        let confirmed = self.confirmed_by(event);
        if !confirmed.is_empty() {
            store::confirm(db, self.name(), instance_id, confirmed, event.name()).await?;
        }
        Ok(())
    }

    /// Writes the messages of `effects` into the outbox and records those that need a
    /// confirmation as outstanding.
    pub(crate) async fn emit<C: ConnectionTrait>(
        &self,
        db: &C,
        effects: &[D::Effect],
        context: &EffectContext<'_, D>,
    ) -> Result<(), RuntimeError> {
        if effects.is_empty() {
            return Ok(());
        }
        let mut messages: Vec<NewMessage> = Vec::new();
        for &effect in effects {
            messages.extend(self.definition.messages(effect, context)?);
        }
        outbox::enqueue_all(db, &messages).await?;
        let table = self.definition.table();
        let mut awaiting: Vec<String> = Vec::new();
        for &effect in effects {
            let name = effect.name().to_owned();
            if table.confirmation_of(effect).is_some() && !awaiting.contains(&name) {
                awaiting.push(name);
            }
        }
        store::record_sent(
            db,
            self.name(),
            context.instance_id,
            awaiting,
            self.settings.resend_wait(1),
        )
        .await?;
        Ok(())
    }

    /// The timer write for a step from `from` (`None`: the start) to `to`.
    fn timer(&self, from: Option<D::State>, to: D::State) -> TimerWrite {
        match self.definition.table().timer_after(from, to) {
            TimerChange::Keep => TimerWrite::Keep,
            TimerChange::Clear => TimerWrite::Clear,
            TimerChange::Arm(deadline) => TimerWrite::Arm(self.definition.deadline_after(deadline)),
        }
    }

    pub(crate) fn state_named(
        &self,
        instance_id: Uuid,
        name: &str,
    ) -> Result<D::State, RuntimeError> {
        D::State::from_name(name).ok_or_else(|| RuntimeError::Corrupt {
            saga: self.name(),
            instance_id,
            detail: format!("unknown state {name:?}"),
        })
    }
}

fn names<L: Label>(labels: &[L]) -> Vec<&'static str> {
    labels.iter().map(|label| label.name()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resends_back_off_doubling_up_to_the_cap() {
        let settings = Settings {
            resend_after: Duration::from_secs(2),
            resend_max: Duration::from_secs(30),
            ..Settings::default()
        };
        let waits: Vec<u64> = (1..=7)
            .map(|attempt| settings.resend_wait(attempt).as_secs())
            .collect();
        assert_eq!(waits, [2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(settings.resend_wait(u32::MAX), Duration::from_secs(30));
    }
}
