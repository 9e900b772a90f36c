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
//!   states, states that cannot finish, terminal states that can be left, timers that would
//!   fire for ever and confirmations that could arrive where the table has no decision;
//! - **timed**: [`Deadline`]s say which states time out, after how long, with which event, and
//!   [`Table::timer_after`] tells a runtime what each step does to the timer;
//! - **confirmed**: [`Confirmation`]s say which events prove an effect was carried out, so a
//!   runtime re-sends the effect until one of them arrives ([`Table::confirmation_of`],
//!   [`Table::confirmed_by`]) and a lost command only delays the saga;
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
//! use std::time::Duration;
//! use saga_core::{labels, Confirmation, Deadline, Outcome, Row, Table, TimerChange};
//!
//! labels! { pub enum Parcel { Packed, Shipped, Delivered, Returned } }
//! labels! { pub enum Heard { CourierPickedUp, Signed, Refused, Refunded, LostInTransit } }
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
//!         Row::new(Parcel::Shipped, Heard::LostInTransit, Parcel::Returned, &[Asked::RefundBuyer]),
//!     ],
//!     ignored: &[
//!         (Parcel::Shipped, Heard::CourierPickedUp),
//!         (Parcel::Returned, Heard::Refunded),
//!         (Parcel::Delivered, Heard::LostInTransit),
//!         (Parcel::Returned, Heard::LostInTransit),
//!     ],
//!     // A parcel not signed for within two weeks is presumed lost.
//!     deadlines: &[Deadline::new(&[Parcel::Shipped], Duration::from_secs(14 * 86_400),
//!                                Heard::LostInTransit)],
//!     // The refund is re-sent until the bank confirms it; booking the courier is confirmed by
//!     // the pick-up itself. Restocking is fire-and-forget.
//!     confirmations: &[
//!         Confirmation::new(Asked::BookCourier, &[Heard::CourierPickedUp]),
//!         Confirmation::new(Asked::RefundBuyer, &[Heard::Refunded]),
//!     ],
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
//! // Shipping arms the timer, delivery clears it; the refund waits for its confirmation.
//! assert!(matches!(PARCEL.timer_after(Some(Parcel::Packed), Parcel::Shipped), TimerChange::Arm(_)));
//! assert_eq!(PARCEL.timer_after(Some(Parcel::Shipped), Parcel::Delivered), TimerChange::Clear);
//! assert_eq!(PARCEL.confirmed_by(Heard::Refunded), [Asked::RefundBuyer]);
//! assert!(PARCEL.confirmation_of(Asked::RestockItem).is_none());
//!
//! assert!(PARCEL.to_mermaid().contains("Shipped --> Returned : Refused / RefundBuyer, RestockItem"));
//! assert!(PARCEL.to_mermaid().contains("note right of Shipped : LostInTransit after 1209600 s"));
//! ```

#![deny(missing_docs)]

mod confirmation;
mod diagram;
mod error;
mod label;
pub mod order;
mod table;
mod timer;
mod validate;

pub use confirmation::Confirmation;
pub use error::{DefinitionError, InvalidTable};
pub use label::Label;
pub use table::{Outcome, PathError, Row, Table};
pub use timer::{Deadline, TimerChange};
