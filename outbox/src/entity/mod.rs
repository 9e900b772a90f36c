//! SeaORM entities of the tables this crate owns.

pub mod outbox_message;
pub mod processed_message;
