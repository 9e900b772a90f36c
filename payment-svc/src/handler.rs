//! Payment's reactions to the messages it consumes.

use contracts::{AnyMessage, Envelope, Money, PaymentFailed, PaymentRefunded, PaymentSucceeded};
use outbox::{Handler, HandlerError, enqueue_message};
use sea_orm::DatabaseTransaction;
use tracing::info;

use crate::ledger::RefundPlan;
use crate::store::{self, ChargeOutcome, RefundOutcome};

/// Handles `StockReserved` and `RefundPayment` inside the consumer's transaction, publishing
/// the answer through the outbox in the same transaction.
pub struct PaymentHandler {
    /// `PAYMENT_DEMO_BALANCE`: for demos only, the balance an account opens with when a
    /// customer without one is charged; 0 (the default) opens none, and the charge fails.
    pub default_balance: Money,
}

impl Handler for PaymentHandler {
    async fn handle(
        &self,
        transaction: &DatabaseTransaction,
        envelope: &Envelope<AnyMessage>,
    ) -> Result<(), HandlerError> {
        let cause = Some(envelope.message_id);
        match &envelope.payload {
            AnyMessage::StockReserved(reserved) => {
                match store::charge(transaction, reserved, self.default_balance).await? {
                    ChargeOutcome::Charged(payment_id) => {
                        info!(%payment_id, amount = %reserved.total, customer_id = %reserved.customer_id, "payment charged");
                        let succeeded = PaymentSucceeded {
                            order_id: reserved.order_id,
                            customer_id: reserved.customer_id,
                            payment_id,
                            amount: reserved.total,
                        };
                        enqueue_message(transaction, &succeeded, cause).await?;
                    }
                    ChargeOutcome::Failed(reason) => {
                        info!(%reason, customer_id = %reserved.customer_id, "payment failed");
                        enqueue_message(
                            transaction,
                            &PaymentFailed {
                                order_id: reserved.order_id,
                                customer_id: reserved.customer_id,
                                reason,
                            },
                            cause,
                        )
                        .await?;
                    }
                    ChargeOutcome::AlreadyDecided(status) => {
                        info!(
                            status = status.name(),
                            "payment already decided; nothing to do"
                        );
                    }
                }
            }
            AnyMessage::RefundPayment(command) => {
                let outcome = store::refund(transaction, command.order_id, &command.reason).await?;
                match outcome {
                    RefundOutcome::Planned(RefundPlan::GiveBack(amount)) => {
                        info!(%amount, reason = %command.reason, "payment refunded");
                    }
                    RefundOutcome::Planned(RefundPlan::AlreadyRefunded(amount)) => {
                        info!(%amount, "payment refunded before; answering again");
                    }
                    RefundOutcome::Planned(RefundPlan::NothingCharged) => {
                        info!("the charge had failed; nothing to refund");
                    }
                    RefundOutcome::Tombstone => {
                        info!(reason = %command.reason, "nothing charged yet; a later charge request will charge nothing");
                    }
                }
                enqueue_message(
                    transaction,
                    &PaymentRefunded {
                        order_id: command.order_id,
                        amount: outcome.answer(),
                    },
                    cause,
                )
                .await?;
            }
            other => {
                return Err(HandlerError::Rejected(format!(
                    "payment-svc does not handle {}",
                    other.message_type()
                )));
            }
        }
        Ok(())
    }
}
