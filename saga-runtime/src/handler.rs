//! The runtime as the consumer runner's handler: every consumed message is an event of the saga.

use std::sync::Arc;

use outbox::{Handler, HandlerError};
use sea_orm::DatabaseTransaction;
use tracing::debug;

use crate::definition::Saga;
use crate::engine::{Applied, SagaRuntime};

/// Applies each consumed message to its instance in the consumer's transaction (with the inbox
/// row); the effects go to the outbox in the same transaction.
pub struct SagaHandler<D: Saga> {
    runtime: Arc<SagaRuntime<D>>,
}

impl<D: Saga> SagaHandler<D> {
    /// A handler for `runtime`'s saga.
    pub fn new(runtime: Arc<SagaRuntime<D>>) -> Self {
        SagaHandler { runtime }
    }
}

impl<D: Saga> Handler<D::Message> for SagaHandler<D> {
    async fn handle(
        &self,
        transaction: &DatabaseTransaction,
        message: &D::Message,
    ) -> Result<(), HandlerError> {
        match self.runtime.handle(transaction, message).await? {
            Applied::Step { .. } => {}
            Applied::Duplicate { state } => {
                debug!(
                    saga = self.runtime.name(),
                    ?state,
                    "event already reflected"
                )
            }
        }
        Ok(())
    }
}
