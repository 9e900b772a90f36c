//! order-svc's reaction to the messages it consumes: each is an event of the order saga.

use std::time::Duration;

use contracts::{AnyMessage, Envelope};
use outbox::{Handler, HandlerError};
use sea_orm::DatabaseTransaction;
use tracing::debug;

use crate::driver::{Applied, apply, record_step};
use crate::saga::heard;

/// Applies every consumed message to its order through the saga table, in the consumer's
/// transaction (with the inbox row); the effects go to the outbox in the same transaction.
pub struct SagaHandler {
    /// `ORDER_SAGA_TIMEOUT_SECS`, quoted in cancellation reasons.
    pub saga_timeout: Duration,
}

impl Handler for SagaHandler {
    async fn handle(
        &self,
        transaction: &DatabaseTransaction,
        envelope: &Envelope<AnyMessage>,
    ) -> Result<(), HandlerError> {
        let Some(heard) = heard(&envelope.payload) else {
            return Err(HandlerError::Rejected(format!(
                "order-svc does not handle {}",
                envelope.message_type
            )));
        };
        let applied = apply(
            transaction,
            envelope.correlation_id,
            &heard,
            Some(envelope.message_id),
            self.saga_timeout,
        )
        .await?;
        match applied {
            Applied::Step { from, to } => record_step(from, to),
            Applied::Duplicate(state) => {
                debug!(?state, event = ?heard.event, "event already reflected")
            }
        }
        Ok(())
    }
}
