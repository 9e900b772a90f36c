//! What the long-running parts of the messaging (the consumer runner, the relay) say about
//! themselves, so that a service's readiness reflects its own state instead of opening a new
//! connection per probe: a service whose consumer is reconnecting is not ready, even if the
//! broker would accept a fresh connection.
//!
//! ```
//! use outbox::health::{ComponentHealth, Condition};
//!
//! let consumer = ComponentHealth::new();
//! assert!(consumer.check().is_err(), "not ready before it ever connected");
//! consumer.set(Condition::Up);
//! assert_eq!(consumer.check(), Ok(()));
//! consumer.set(Condition::Down("broker: connection reset".into()));
//! assert_eq!(consumer.check(), Err("broker: connection reset".to_owned()));
//! ```

use std::sync::{Arc, Mutex, PoisonError};

/// The state of one component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Condition {
    /// Not connected yet.
    Starting,
    /// Connected and working (the consumer consumes every queue; the relay publishes).
    Up,
    /// Connected, but the broker blocks publishing (a memory or disk alarm): the relay holds its
    /// rows in the outbox until the broker unblocks it. Still ready: the outbox absorbs what the
    /// service commits meanwhile.
    Blocked(String),
    /// Lost its connection or its database; retrying. The reason says why.
    Down(String),
}

/// A component's condition, shared between the component (which sets it) and the readiness
/// probe (which reads it). Cheap to clone.
#[derive(Clone, Debug)]
pub struct ComponentHealth(Arc<Mutex<Condition>>);

impl Default for ComponentHealth {
    fn default() -> Self {
        Self::new()
    }
}

impl ComponentHealth {
    /// A component that has not connected yet.
    pub fn new() -> Self {
        ComponentHealth(Arc::new(Mutex::new(Condition::Starting)))
    }

    /// Records the component's condition.
    pub fn set(&self, condition: Condition) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = condition;
    }

    /// The component's condition.
    pub fn condition(&self) -> Condition {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Readiness: `Ok` when up (or blocked, which the outbox absorbs), otherwise the reason.
    pub fn check(&self) -> Result<(), String> {
        match self.condition() {
            Condition::Up | Condition::Blocked(_) => Ok(()),
            Condition::Starting => Err("not connected yet".to_owned()),
            Condition::Down(reason) => Err(reason),
        }
    }
}
