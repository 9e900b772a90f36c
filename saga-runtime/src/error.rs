//! The runtime's one error type, and how the consumer runner reads it.

use outbox::HandlerError;
use sea_orm::DbErr;
use uuid::Uuid;

use crate::definition::Rejection;

/// Why the runtime could not start, step or re-send an instance.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// No instance with this id (a participant never answers about one that was not started).
    #[error("saga {saga} has no instance {instance_id}")]
    UnknownInstance {
        /// The saga.
        saga: &'static str,
        /// The id asked for.
        instance_id: Uuid,
    },
    /// An instance with this id exists already.
    #[error("saga {saga} already has an instance {instance_id}")]
    AlreadyStarted {
        /// The saga.
        saga: &'static str,
        /// The id.
        instance_id: Uuid,
    },
    /// The stored instance cannot be read with this definition (an unknown state name, data
    /// that does not decode).
    #[error("instance {instance_id} of saga {saga} is corrupt: {detail}")]
    Corrupt {
        /// The saga.
        saga: &'static str,
        /// The instance.
        instance_id: Uuid,
        /// What is wrong.
        detail: String,
    },
    /// The table has no decision for this event in the instance's state.
    #[error("{event} is invalid for saga {saga} in state {state}")]
    Invalid {
        /// The saga.
        saga: &'static str,
        /// The instance's state.
        state: &'static str,
        /// The event.
        event: &'static str,
    },
    /// The message is not an event of this saga.
    #[error("saga {saga} does not hear {message_type}")]
    NotAnEvent {
        /// The saga.
        saga: &'static str,
        /// The message's type.
        message_type: String,
    },
    /// Another transaction stepped the instance first: apply again on fresh state.
    #[error("the saga instance changed concurrently")]
    Conflict,
    /// The definition refused the step or could not build an effect's messages.
    #[error("{0}")]
    Rejected(#[from] Rejection),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] DbErr),
    /// The instance's data could not be encoded.
    #[error("encoding the instance's data: {0}")]
    Encode(#[from] serde_json::Error),
}

impl From<outbox::EnqueueError> for RuntimeError {
    fn from(error: outbox::EnqueueError) -> Self {
        match error {
            outbox::EnqueueError::Database(cause) => RuntimeError::Database(cause),
            outbox::EnqueueError::Encode(cause) => RuntimeError::Encode(cause),
        }
    }
}

impl RuntimeError {
    /// Whether the failure is the infrastructure's (try again) rather than the message's.
    pub fn is_infrastructure(&self) -> bool {
        matches!(self, RuntimeError::Database(_) | RuntimeError::Conflict)
    }
}

impl From<RuntimeError> for HandlerError {
    fn from(error: RuntimeError) -> Self {
        match error {
            RuntimeError::Conflict => HandlerError::Conflict,
            RuntimeError::Database(cause) => HandlerError::Database(cause),
            other => HandlerError::Rejected(other.to_string()),
        }
    }
}
