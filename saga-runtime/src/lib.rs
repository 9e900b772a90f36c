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
//! # Example: a saga persisted, stepped and read back
//!
//! Against the real PostgreSQL (this example runs in the tests, in a database of its own);
//! `examples/parcel.rs` wires the same into a running service with the broker.
//!
//! ```
//! use saga_core::{Confirmation, Label, Row, Table, labels};
//! use saga_runtime::{Applied, Cause, Correlated, EffectContext, JsonMessage, Rejection, Saga};
//! use saga_runtime::{SagaMigrator, SagaRuntime};
//! use sea_orm::TransactionTrait;
//!
//! labels! { pub enum Door { Closed, Open } }
//! labels! { pub enum Heard { Opened, Unlocked } }
//! labels! { pub enum Asked { Unlock } }
//!
//! static DOOR: Table<'static, Door, Heard, Asked> = Table {
//!     name: "Door",
//!     initial: Door::Closed,
//!     start_effects: &[Asked::Unlock],
//!     terminal: &[Door::Open],
//!     rows: &[Row::new(Door::Closed, Heard::Opened, Door::Open, &[])],
//!     ignored: &[(Door::Closed, Heard::Unlocked), (Door::Open, Heard::Unlocked)],
//!     deadlines: &[],
//!     // `Unlock` is sent again until the lock answers `Unlocked`.
//!     confirmations: &[Confirmation::new(Asked::Unlock, &[Heard::Unlocked])],
//! };
//!
//! struct DoorSaga;
//!
//! impl Saga for DoorSaga {
//!     type State = Door;
//!     type Event = Heard;
//!     type Effect = Asked;
//!     type Data = String; // who asked for the door
//!     type Message = JsonMessage;
//!
//!     fn table(&self) -> &'static Table<'static, Door, Heard, Asked> { &DOOR }
//!
//!     fn event_of(&self, message: &JsonMessage) -> Option<Correlated<Heard>> {
//!         let event = Heard::from_name(&message.message_type)?;
//!         Some(Correlated { instance_id: message.correlation_id, event })
//!     }
//!
//!     fn messages(&self, effect: Asked, door: &EffectContext<'_, Self>)
//!         -> Result<Vec<outbox::NewMessage>, Rejection>
//!     {
//!         let body = serde_json::json!({ "for": door.data });
//!         Ok(vec![JsonMessage::new(effect.name(), door.instance_id, body).into_new_message()])
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let database = testkit::TestDatabase::create().await;
//! # let database_url = database.url();
//! let db = sea_orm::Database::connect(database_url).await?;
//! outbox::migrate::<SagaMigrator>(&db).await?;
//! let runtime = SagaRuntime::new(DoorSaga)?;
//! let door = uuid::Uuid::now_v7();
//!
//! // Start: the instance, its first timeline row and `Unlock` in the outbox, in one transaction.
//! let transaction = db.begin().await?;
//! runtime.start(&transaction, door, "Ada".to_owned(), None).await?;
//! transaction.commit().await?;
//! let effects = runtime.effects(&db, door).await?;
//! assert!(effects[0].is_outstanding(), "Unlock awaits its confirmation");
//!
//! // The lock's answer confirms it; the door opening moves the saga.
//! let unlocked = JsonMessage::new("Unlocked", door, serde_json::json!({}));
//! let opened = JsonMessage::new("Opened", door, serde_json::json!({}));
//! let transaction = db.begin().await?;
//! assert_eq!(runtime.handle(&transaction, &unlocked).await?, Applied::Duplicate { state: Door::Closed });
//! runtime.apply(&transaction, door, Heard::Opened, Cause::Message(&opened)).await?;
//! transaction.commit().await?;
//!
//! assert_eq!(runtime.instance(&db, door).await?.map(|door| door.state), Some(Door::Open));
//! assert!(!runtime.effects(&db, door).await?[0].is_outstanding());
//! assert_eq!(runtime.timeline(&db, door).await?.len(), 2); // the start, then Opened
//! # Ok(())
//! # }
//! ```
//!
//! # Invariants
//! - A step writes its state, timeline row, outbox rows and outstanding effects in one
//!   transaction, or nothing.
//! - A table that does not validate is refused by [`SagaRuntime::new`].
//! - An effect awaiting confirmation is never forgotten: it is confirmed, or re-sent.

#![deny(missing_docs)]

mod activity;
mod definition;
mod engine;
mod error;
mod handler;
mod message;
pub mod migration;
mod store;
mod sweeper;
mod view;

pub use activity::{Activity, EdgeCount};
pub use definition::{Cause, Correlated, EffectContext, Rejection, Saga, Step};
pub use engine::{Applied, InvalidDefinition, SagaRuntime, Settings};
pub use error::RuntimeError;
pub use handler::SagaHandler;
pub use message::JsonMessage;
pub use migration::SagaMigrator;
pub use sweeper::{Sweep, SweepFuture, SweepReport, Sweeper};
pub use view::{EffectStatus, HistoryOf, Instance, InstanceHistory, TimelineEntry};
