//! The chaos harness: proves, with a repeatable run, that no order is lost or stuck and no stock
//! or money leaks when services crash, the broker or the database goes away, and messages
//! arrive duplicated or malformed.
//!
//! A run starts the four services as separate processes against fresh databases and a fresh
//! vhost provisioned with one least-privilege broker user per service ([`testkit::system`]).
//! As an operator it sets its own stock and catalog prices and funds its customers ([`world`]);
//! it drives a steady stream of orders with bearer tokens, mostly as the customers themselves
//! ([`drive`]), while [`faults`] kills and restarts services, cuts the broker and the database,
//! republishes delivered messages as their producers ([`bus`]), publishes poison onto every
//! consumer queue and forges messages from the wrong senders; then it waits for quiescence and
//! checks the [`invariants`] from the databases and the broker.

pub mod args;
pub mod bus;
pub mod drive;
pub mod faults;
pub mod invariants;
pub mod rng;
pub mod world;

pub use args::Args;
