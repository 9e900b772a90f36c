//! Inventory's reactions to the messages it consumes.

use contracts::{AnyMessage, Envelope, StockCommitted, StockFailed, StockReleased};
use outbox::{Handler, HandlerError, enqueue_message};
use sea_orm::DatabaseTransaction;
use tracing::info;

use crate::stock::Answer;
use crate::store::{self, CommitOutcome, ReleaseOutcome, ReserveOutcome};

/// Handles `OrderCreated`, `CommitStock` and `ReleaseStock` inside the consumer's transaction,
/// publishing the answer through the outbox in the same transaction: `StockReserved` with the
/// lines priced from the catalog, or `StockFailed` with the reason, both naming the customer.
/// Every command is answered, every copy of it too (a repeat with the decision already taken):
/// `StockCommitted` for a commit of a committed reservation, `StockReleased` for a release of
/// nothing. Only what the saga never asks is rejected: a commit of nothing held, a release of
/// sold stock.
pub struct InventoryHandler;

impl Handler<Envelope<AnyMessage>> for InventoryHandler {
    async fn handle(
        &self,
        transaction: &DatabaseTransaction,
        envelope: &Envelope<AnyMessage>,
    ) -> Result<(), HandlerError> {
        let cause = Some(envelope.message_id);
        match &envelope.payload {
            AnyMessage::OrderCreated(order) => {
                // Every copy is answered, a repeat with the decision taken before: the saga
                // re-sends the request (new message id) until it hears an answer, and the first
                // answer may be the one that was lost.
                let answer = match store::reserve(transaction, order).await? {
                    ReserveOutcome::Decided(answer) => answer,
                    ReserveOutcome::AlreadyDecided(status, answer) => {
                        info!(
                            status = status.name(),
                            "reservation decided before; answering with that decision again"
                        );
                        answer
                    }
                };
                match answer {
                    Answer::Reserved(reserved) => {
                        // Priced from the catalog under the rows' locks when the stock was
                        // held: the total payment charges is what the catalog asked then.
                        info!(total = %reserved.total, "stock reserved");
                        enqueue_message(transaction, &reserved, cause).await?;
                    }
                    Answer::Failed(reason) => {
                        info!(%reason, "stock not reserved");
                        enqueue_message(
                            transaction,
                            &StockFailed {
                                order_id: order.order_id,
                                customer_id: order.customer_id,
                                reason,
                            },
                            cause,
                        )
                        .await?;
                    }
                }
            }
            AnyMessage::CommitStock(command) => {
                match store::commit(transaction, command.order_id).await? {
                    CommitOutcome::Committed | CommitOutcome::AlreadyCommitted => {
                        enqueue_message(
                            transaction,
                            &StockCommitted {
                                order_id: command.order_id,
                            },
                            cause,
                        )
                        .await?;
                    }
                    CommitOutcome::NothingHeld(status) => {
                        return Err(HandlerError::Rejected(format!(
                            "cannot commit stock for order {}: the reservation is {}",
                            command.order_id,
                            status.map_or("absent", |status| status.name())
                        )));
                    }
                }
            }
            AnyMessage::ReleaseStock(command) => {
                match store::release(transaction, command.order_id, &command.reason).await? {
                    ReleaseOutcome::Released | ReleaseOutcome::NothingHeld => {
                        enqueue_message(
                            transaction,
                            &StockReleased {
                                order_id: command.order_id,
                            },
                            cause,
                        )
                        .await?;
                    }
                    ReleaseOutcome::AlreadyCommitted => {
                        return Err(HandlerError::Rejected(format!(
                            "cannot release stock for order {}: it was committed",
                            command.order_id
                        )));
                    }
                }
            }
            other => {
                return Err(HandlerError::Rejected(format!(
                    "inventory-svc does not handle {}",
                    other.message_type()
                )));
            }
        }
        Ok(())
    }

    /// Every product the batch's reservations, commits and releases will update, locked in id
    /// order: the rows all of inventory's writers contend for.
    async fn lock_batch(
        &self,
        transaction: &DatabaseTransaction,
        envelopes: &[&Envelope<AnyMessage>],
    ) -> Result<(), HandlerError> {
        let (mut ordered, mut settled) = (Vec::new(), Vec::new());
        for envelope in envelopes {
            match &envelope.payload {
                AnyMessage::OrderCreated(order) => ordered.extend(
                    order
                        .items
                        .iter()
                        .map(|line| line.product_id.as_str().to_owned()),
                ),
                AnyMessage::CommitStock(command) => settled.push(command.order_id),
                AnyMessage::ReleaseStock(command) => settled.push(command.order_id),
                _ => {}
            }
        }
        store::lock_products_of_batch(transaction, ordered, &settled).await?;
        Ok(())
    }
}
