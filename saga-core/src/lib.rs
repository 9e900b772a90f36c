//! Sagas as typed, validated transition tables.
//!
//! A saga coordinates a change that spans several services, none of which can be rolled back by
//! a shared transaction. `saga-core` describes one as a **table**: typed states, the events the
//! saga hears and the effects it asks for (forward steps and compensations), one row per
//! decision. The table is plain data, so it can be
//!
//! - **stepped** with [`Table::step`], a pure, total function: the next state and the effects to
//!   emit, or a typed [`Outcome`] for a duplicate, a late event that needs only its
//!   compensation, or an event that is invalid in this state;
//! - **validated** once with [`Table::validate`], which rejects ambiguous rows, unreachable
//!   states, states that cannot finish and terminal states that can be left;
//! - **drawn** with [`Table::to_mermaid`] and [`Table::to_dot`], one edge per row;
//! - **persisted** as text: every state, event and effect is a [`Label`] with a stable name.
//!
//! The crate does no I/O, starts no runtime, has no dependencies and never panics, so any
//! project can embed it. Persisting the state, delivering events and performing effects is the
//! embedding service's job. [`order::ORDER_SAGA`] is the reference definition used by the order
//! system this crate was written for.
//!
//! # Example: a small saga, defined and stepped
//!
//! ```
//! use saga_core::{labels, Outcome, Row, Table};
//!
//! labels! { pub enum Parcel { Packed, Shipped, Delivered, Returned } }
//! labels! { pub enum Heard { CourierPickedUp, Signed, Refused } }
//! labels! { pub enum Asked { BookCourier, RefundBuyer, RestockItem } }
//!
//! static PARCEL: Table<'static, Parcel, Heard, Asked> = Table {
//!     name: "Parcel",
//!     initial: Parcel::Packed,
//!     start_effects: &[Asked::BookCourier],
//!     terminal: &[Parcel::Delivered, Parcel::Returned],
//!     rows: &[
//!         Row::new(Parcel::Packed, Heard::CourierPickedUp, Parcel::Shipped, &[]),
//!         Row::new(Parcel::Shipped, Heard::Signed, Parcel::Delivered, &[]),
//!         Row::new(Parcel::Shipped, Heard::Refused, Parcel::Returned,
//!                  &[Asked::RefundBuyer, Asked::RestockItem]),
//!     ],
//!     ignored: &[(Parcel::Shipped, Heard::CourierPickedUp)],
//! };
//!
//! PARCEL.validate().expect("the parcel saga is well-formed");
//!
//! let outcome = PARCEL.step(Parcel::Shipped, Heard::Refused);
//! assert_eq!(outcome, Outcome::Transition {
//!     from: Parcel::Shipped,
//!     to: Parcel::Returned,
//!     effects: &[Asked::RefundBuyer, Asked::RestockItem],
//! });
//! // A redelivered pick-up changes nothing; a signature before shipping is invalid.
//! assert_eq!(PARCEL.step(Parcel::Shipped, Heard::CourierPickedUp),
//!            Outcome::Duplicate { state: Parcel::Shipped });
//! assert_eq!(PARCEL.step(Parcel::Packed, Heard::Signed),
//!            Outcome::Invalid { state: Parcel::Packed });
//!
//! assert!(PARCEL.to_mermaid().contains("Shipped --> Returned : Refused / RefundBuyer, RestockItem"));
//! ```

#![deny(missing_docs)]

mod diagram;
mod label;
pub mod order;
mod table;
mod validate;

pub use label::Label;
pub use table::{Outcome, PathError, Row, Table};
pub use validate::{DefinitionError, InvalidTable};
