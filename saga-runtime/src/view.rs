//! The read side: an instance, its timeline and its effects, typed, for APIs and consoles.

use chrono::{DateTime, Utc};
use saga_core::{Label, PathError};
use sea_orm::ConnectionTrait;
use uuid::Uuid;

use crate::definition::Saga;
use crate::engine::SagaRuntime;
use crate::error::RuntimeError;
use crate::store;

/// A stored instance.
#[derive(Clone, Debug, PartialEq)]
pub struct Instance<S, Data> {
    /// Its id.
    pub id: Uuid,
    /// Its state.
    pub state: S,
    /// Incremented by every write.
    pub version: i64,
    /// Its data.
    pub data: Data,
    /// When its timer fires, if one runs.
    pub deadline_at: Option<DateTime<Utc>>,
    /// When it started.
    pub created_at: DateTime<Utc>,
    /// When it was last written.
    pub updated_at: DateTime<Utc>,
    /// The W3C trace id of the trace it was started in (and its later steps continue), when
    /// it was started inside one.
    pub trace_id: Option<String>,
}

/// One row of an instance's timeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimelineEntry<S, E, F> {
    /// Increasing along the timeline (the instance's version after the write).
    pub seq: i64,
    /// The state before; `None` for the start.
    pub from: Option<S>,
    /// The state after.
    pub to: S,
    /// The event; `None` for the start.
    pub event: Option<E>,
    /// The effects emitted, in order.
    pub effects: Vec<F>,
    /// The message that carried the event (or, for the start, the one being handled).
    pub message_id: Option<Uuid>,
    /// When it was written.
    pub at: DateTime<Utc>,
}

/// An effect of an instance that needs a confirmation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EffectStatus<F, E> {
    /// The effect.
    pub effect: F,
    /// How many times it was sent (the first send included).
    pub attempts: u32,
    /// When it was first sent (since it was last confirmed).
    pub first_sent_at: DateTime<Utc>,
    /// When it was last sent.
    pub last_sent_at: DateTime<Utc>,
    /// When it is re-sent unless confirmed first.
    pub next_attempt_at: DateTime<Utc>,
    /// When it was confirmed, and by which event; `None` while outstanding.
    pub confirmed: Option<(DateTime<Utc>, E)>,
}

impl<F, E> EffectStatus<F, E> {
    /// Whether it still awaits its confirmation.
    pub fn is_outstanding(&self) -> bool {
        self.confirmed.is_none()
    }
}

/// An instance with its timeline and its effects, as [`SagaRuntime::history`] reads them
/// together.
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceHistory<S, Data, E, F> {
    /// The instance.
    pub instance: Instance<S, Data>,
    /// Its timeline, oldest first.
    pub timeline: Vec<TimelineEntry<S, E, F>>,
    /// Every effect that needs a confirmation, outstanding or confirmed, in the order they were
    /// first sent.
    pub effects: Vec<EffectStatus<F, E>>,
}

/// The [`InstanceHistory`] of a saga definition `D`.
pub type HistoryOf<D> =
    InstanceHistory<<D as Saga>::State, <D as Saga>::Data, <D as Saga>::Event, <D as Saga>::Effect>;

/// The timeline of an instance of `D`.
type TimelineOf<D> =
    Vec<TimelineEntry<<D as Saga>::State, <D as Saga>::Event, <D as Saga>::Effect>>;
/// The effects of an instance of `D`.
type EffectsOf<D> = Vec<EffectStatus<<D as Saga>::Effect, <D as Saga>::Event>>;

impl<D: Saga> SagaRuntime<D> {
    /// The instance, if it exists.
    pub async fn instance<C: ConnectionTrait>(
        &self,
        db: &C,
        instance_id: Uuid,
    ) -> Result<Option<Instance<D::State, D::Data>>, RuntimeError> {
        match store::load(db, self.name(), instance_id).await? {
            Some(row) => Ok(Some(self.typed_instance(instance_id, row)?)),
            None => Ok(None),
        }
    }

    /// The instance's timeline, oldest first.
    pub async fn timeline<C: ConnectionTrait>(
        &self,
        db: &C,
        instance_id: Uuid,
    ) -> Result<Vec<TimelineEntry<D::State, D::Event, D::Effect>>, RuntimeError> {
        let rows = store::timeline(db, self.name(), instance_id).await?;
        self.typed_timeline(instance_id, rows)
    }

    /// Every effect of the instance that needs a confirmation, outstanding or confirmed, in
    /// the order they were first sent.
    pub async fn effects<C: ConnectionTrait>(
        &self,
        db: &C,
        instance_id: Uuid,
    ) -> Result<Vec<EffectStatus<D::Effect, D::Event>>, RuntimeError> {
        let rows = store::effects(db, self.name(), instance_id).await?;
        self.typed_effects(instance_id, rows)
    }

    /// The instance, its timeline and its effects, read in one round trip (one snapshot), if
    /// the instance exists: what an API shows of one saga.
    pub async fn history<C: ConnectionTrait>(
        &self,
        db: &C,
        instance_id: Uuid,
    ) -> Result<Option<HistoryOf<D>>, RuntimeError> {
        let Some((row, timeline, effects)) = store::history(db, self.name(), instance_id).await?
        else {
            return Ok(None);
        };
        Ok(Some(InstanceHistory {
            instance: self.typed_instance(instance_id, row)?,
            timeline: self.typed_timeline(instance_id, timeline)?,
            effects: self.typed_effects(instance_id, effects)?,
        }))
    }

    fn corrupt(&self, instance_id: Uuid, detail: String) -> RuntimeError {
        RuntimeError::Corrupt {
            saga: self.name(),
            instance_id,
            detail,
        }
    }

    fn typed_instance(
        &self,
        instance_id: Uuid,
        row: store::InstanceRow,
    ) -> Result<Instance<D::State, D::Data>, RuntimeError> {
        let state = self.state_named(instance_id, &row.state)?;
        let data = serde_json::from_value(row.data).map_err(|error| {
            self.corrupt(instance_id, format!("its data does not decode: {error}"))
        })?;
        Ok(Instance {
            id: instance_id,
            state,
            version: row.version,
            data,
            deadline_at: row.deadline_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
            trace_id: outbox::trace::TraceContext::parse(row.traceparent.as_deref(), None)
                .map(|context| context.trace_id()),
        })
    }

    fn typed_timeline(
        &self,
        instance_id: Uuid,
        rows: Vec<store::TransitionRow>,
    ) -> Result<TimelineOf<D>, RuntimeError> {
        let corrupt = |detail: String| self.corrupt(instance_id, detail);
        rows.into_iter()
            .map(|row| {
                let effect_names: Vec<String> = serde_json::from_value(row.effects)
                    .map_err(|error| corrupt(format!("timeline effects: {error}")))?;
                Ok(TimelineEntry {
                    seq: row.seq,
                    from: row
                        .from_state
                        .map(|name| self.state_named(instance_id, &name))
                        .transpose()?,
                    to: self.state_named(instance_id, &row.to_state)?,
                    event: row
                        .event
                        .map(|name| {
                            D::Event::from_name(&name)
                                .ok_or_else(|| corrupt(format!("unknown event {name:?}")))
                        })
                        .transpose()?,
                    effects: effect_names
                        .iter()
                        .map(|name| {
                            D::Effect::from_name(name)
                                .ok_or_else(|| corrupt(format!("unknown effect {name:?}")))
                        })
                        .collect::<Result<_, _>>()?,
                    message_id: row.message_id,
                    at: row.at,
                })
            })
            .collect()
    }

    fn typed_effects(
        &self,
        instance_id: Uuid,
        rows: Vec<store::EffectRow>,
    ) -> Result<EffectsOf<D>, RuntimeError> {
        let corrupt = |detail: String| self.corrupt(instance_id, detail);
        rows.into_iter()
            .map(|row| {
                let confirmed = match (row.confirmed_at, row.confirmed_by) {
                    (Some(at), Some(name)) => Some((
                        at,
                        D::Event::from_name(&name)
                            .ok_or_else(|| corrupt(format!("unknown event {name:?}")))?,
                    )),
                    _ => None,
                };
                Ok(EffectStatus {
                    effect: D::Effect::from_name(&row.effect)
                        .ok_or_else(|| corrupt(format!("unknown effect {:?}", row.effect)))?,
                    attempts: u32::try_from(row.attempts).unwrap_or(0),
                    first_sent_at: row.first_sent_at,
                    last_sent_at: row.last_sent_at,
                    next_attempt_at: row.next_attempt_at,
                    confirmed,
                })
            })
            .collect()
    }

    /// Checks that a timeline is a path through the table from its initial state (the start
    /// row aside); returns the state it ends in.
    pub fn check_timeline(
        &self,
        timeline: &[TimelineEntry<D::State, D::Event, D::Effect>],
    ) -> Result<D::State, PathError<D::State, D::Event>> {
        let steps = timeline
            .iter()
            .filter_map(|entry| match (entry.from, entry.event) {
                (Some(from), Some(event)) => Some((from, event, entry.to)),
                _ => None,
            });
        self.definition().table().check_path(steps)
    }
}
