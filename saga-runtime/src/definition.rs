//! What an embedding service supplies: one [`Saga`] definition.

use std::fmt;
use std::time::Duration;

use outbox::{Inbound, NewMessage};
use saga_core::{Deadline, Label, Outcome, Table};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

/// A saga the runtime can persist and drive: its table, how consumed messages become events of
/// an instance, and how effects become messages.
///
/// Everything else — loading the instance, stepping the table, the versioned update, the
/// timeline, the timers, the outstanding effects and their re-sends, the outbox rows — is the
/// runtime's, in the caller's transaction.
pub trait Saga: Send + Sync + 'static {
    /// The instance's states.
    type State: Label + Send + Sync;
    /// What the saga hears.
    type Event: Label + Send + Sync;
    /// What the saga asks others to do.
    type Effect: Label + Send + Sync;
    /// What the instance knows, stored as JSON beside its state (the order's customer and
    /// lines, the trip's dates, …). Effects are built from it, so that a re-send needs nothing
    /// but the stored instance.
    type Data: Serialize + DeserializeOwned + Clone + fmt::Debug + Send + Sync + 'static;
    /// The messages the service consumes (the outbox's decoded form).
    type Message: Inbound;

    /// The validated table ([`crate::SagaRuntime::new`] refuses an invalid one).
    fn table(&self) -> &'static Table<'static, Self::State, Self::Event, Self::Effect>;

    /// The saga's stored name (`saga_instances.saga`); the table's name unless overridden.
    /// Never change it once instances exist.
    fn name(&self) -> &'static str {
        self.table().name
    }

    /// The instance a consumed message is about and the event it stands for; `None` for a
    /// message this saga does not hear (it is rejected: dead-lettered with the reason).
    fn event_of(&self, message: &Self::Message) -> Option<Correlated<Self::Event>>;

    /// Folds what a step tells into the instance's data before it is written: prices a
    /// participant quoted, the reason a compensation carries. Called for every decided event —
    /// transitions, compensations and duplicates alike (a redelivered event still tells the
    /// same facts) — never for an invalid one. `Err` rejects the message: nothing is written.
    fn record(&self, data: &mut Self::Data, step: &Step<'_, Self>) -> Result<(), Rejection> {
        let _ = (data, step);
        Ok(())
    }

    /// The messages that carry out `effect` for the instance; called when the effect is first
    /// emitted and at every re-send (then `instance.attempt > 1`). Each message needs a fresh
    /// id: participants deduplicate on it, and a re-send must reach them.
    fn messages(
        &self,
        effect: Self::Effect,
        instance: &EffectContext<'_, Self>,
    ) -> Result<Vec<NewMessage>, Rejection>;

    /// How long a deadline waits; the table's value unless the service configures another.
    fn deadline_after(&self, deadline: &Deadline<'static, Self::State, Self::Event>) -> Duration {
        deadline.after
    }
}

/// A consumed message read as an event of one instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Correlated<E> {
    /// The instance the message is about (the correlation id, usually).
    pub instance_id: Uuid,
    /// The event it stands for.
    pub event: E,
}

/// One decided event, as [`Saga::record`] sees it.
#[derive(Debug)]
pub struct Step<'a, D: Saga + ?Sized> {
    /// The instance.
    pub instance_id: Uuid,
    /// Its state before the event.
    pub before: D::State,
    /// The event.
    pub event: D::Event,
    /// What the table decided (never `Invalid` here).
    pub outcome: Outcome<'static, D::State, D::Effect>,
    /// Where the event came from.
    pub cause: Cause<'a, D::Message>,
}

/// Where an event came from.
#[derive(Debug)]
pub enum Cause<'a, M> {
    /// A consumed message carried it.
    Message(&'a M),
    /// The instance's timer fired.
    Deadline,
    /// The service applied it itself, on someone's request (a cancellation through its API):
    /// `by` says who, for reasons and logs.
    Requested {
        /// Who asked, in words.
        by: &'a str,
    },
}

impl<M> Clone for Cause<'_, M> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M> Copy for Cause<'_, M> {}

impl<'a, M: Inbound> Cause<'a, M> {
    /// The message, if a message carried the event.
    pub fn message(&self) -> Option<&'a M> {
        match *self {
            Cause::Message(message) => Some(message),
            Cause::Deadline | Cause::Requested { .. } => None,
        }
    }

    /// The id of the message that carried the event: the causation id of its effects.
    pub fn message_id(&self) -> Option<Uuid> {
        self.message().map(Inbound::message_id)
    }
}

/// What [`Saga::messages`] builds an effect's messages from.
#[derive(Debug)]
pub struct EffectContext<'a, D: Saga + ?Sized> {
    /// The instance.
    pub instance_id: Uuid,
    /// Its state now (after the step that emitted the effect, or at the re-send).
    pub state: D::State,
    /// Its data now.
    pub data: &'a D::Data,
    /// The message being handled when the effect was emitted (`None` for re-sends, deadlines
    /// and starts): the causation id of the effect's messages.
    pub cause: Option<Uuid>,
    /// 1 for the first send, 2 for the first re-send, ….
    pub attempt: u32,
}

/// A definition's refusal of a step or an effect: the message is dead-lettered with this reason
/// and nothing of the step is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection(String);

impl Rejection {
    /// A rejection with the reason, for people.
    pub fn new(reason: impl fmt::Display) -> Rejection {
        Rejection(reason.to_string())
    }

    /// The reason.
    pub fn reason(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl std::error::Error for Rejection {}
