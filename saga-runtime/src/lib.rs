//! Runs any [`saga_core`] table on PostgreSQL, with the [`outbox`] for messages.
//!
//! A service supplies one [`Saga`] definition — the table, how a consumed message maps to an
//! instance and an event, and how each effect becomes messages from the instance's data — and
//! the runtime does the rest, in the caller's transaction:
//!
//! - **persistence**: each instance is a row of `saga_instances` (state, version, data as
//!   JSON, timer); every decision that writes is a row of the `saga_transitions` timeline;
//! - **concurrency**: steps are versioned updates; a lost race is [`RuntimeError::Conflict`]
//!   and the consumer runner handles the message again on fresh state;
//! - **the outbox**: effects become outbox rows in the same transaction, so a step and its
//!   messages commit together or not at all; consumed messages are recorded in the inbox by the
//!   consumer runner ([`SagaHandler`] plugs the runtime into it);
//! - **timers as table data**: a state group's [`saga_core::Deadline`] arms, keeps or clears the
//!   instance's one timer at every step; the [`Sweeper`] fires due timers through the table;
//! - **confirmed effects**: an effect with a [`saga_core::Confirmation`] stays outstanding in
//!   `saga_effects` until a confirming event is heard, and the sweeper re-sends it with capped
//!   backoff until then. A command lost anywhere — in the broker, in a dead-letter queue, in a
//!   crash — is sent again, so the saga converges. Participants must answer every copy
//!   (idempotently, with the decision they already took).
//!
//! The tables come as migrations ([`migration::migrations`]) for the service's own migrator.
//!
//! # Invariants
//! - A step writes its state, timeline row, outbox rows and outstanding effects in one
//!   transaction, or nothing.
//! - A table that does not validate is refused by [`SagaRuntime::new`].
//! - An effect awaiting confirmation is never forgotten: it is confirmed, or re-sent.

#![deny(missing_docs)]

mod definition;
mod engine;
mod error;
mod handler;
mod message;
pub mod migration;
mod store;
mod sweeper;
mod view;

pub use definition::{Cause, Correlated, EffectContext, Rejection, Saga, Step};
pub use engine::{Applied, InvalidDefinition, SagaRuntime, Settings};
pub use error::RuntimeError;
pub use handler::SagaHandler;
pub use message::JsonMessage;
pub use migration::SagaMigrator;
pub use sweeper::{Sweep, SweepFuture, SweepReport, Sweeper};
pub use view::{EffectStatus, Instance, TimelineEntry};
