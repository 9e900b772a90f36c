//! Payment's reactions to the messages it consumes.

use contracts::{AnyMessage, Envelope, Money, PaymentFailed, PaymentRefunded, PaymentSucceeded};
use outbox::{Handler, HandlerError, enqueue_message};
use sea_orm::DatabaseTransaction;
use tracing::info;

use crate::ledger::{ChargeDecision, RefundPlan};
use crate::store::{self, ChargeOutcome, RefundOutcome};

/// Handles `StockReserved` and `RefundPayment` inside the consumer's transaction, publishing
/// the answer through the outbox in the same transaction. Every copy of a request is answered
/// with the one decision taken for its order — `PaymentSucceeded` with the same payment and
/// amount, `PaymentFailed` with the recorded reason, `PaymentRefunded` for every refund — except
/// a charge request for a refunded order, which no one waits for.
pub struct PaymentHandler {
    /// `PAYMENT_DEMO_BALANCE`: for demos only, the balance an account opens with when a
    /// customer without one is charged; 0 (the default) opens none, and the charge fails.
    pub default_balance: Money,
}

impl Handler<Envelope<AnyMessage>> for PaymentHandler {
    async fn handle(
        &self,
        transaction: &DatabaseTransaction,
        envelope: &Envelope<AnyMessage>,
    ) -> Result<(), HandlerError> {
        let cause = Some(envelope.message_id);
        match &envelope.payload {
            AnyMessage::StockReserved(reserved) => {
                // Every copy is answered with the one decision for the order: inventory answers
                // each re-sent reservation request again, and the first answer may be the one
                // that was lost.
                let decision = match store::charge(transaction, reserved, self.default_balance)
                    .await?
                {
                    ChargeOutcome::Charged(payment_id) => {
                        info!(%payment_id, amount = %reserved.total, customer_id = %reserved.customer_id, "payment charged");
                        ChargeDecision::Charged {
                            payment_id,
                            customer_id: reserved.customer_id,
                            amount: reserved.total,
                        }
                    }
                    ChargeOutcome::Failed(reason) => {
                        info!(%reason, customer_id = %reserved.customer_id, "payment failed");
                        ChargeDecision::Failed {
                            customer_id: reserved.customer_id,
                            reason,
                        }
                    }
                    ChargeOutcome::AlreadyDecided(decision) => {
                        info!(
                            status = decision.status().name(),
                            "payment decided before; answering with that decision again"
                        );
                        decision
                    }
                };
                match decision {
                    ChargeDecision::Charged {
                        payment_id,
                        customer_id,
                        amount,
                    } => {
                        let succeeded = PaymentSucceeded {
                            order_id: reserved.order_id,
                            customer_id,
                            payment_id,
                            amount,
                        };
                        enqueue_message(transaction, &succeeded, cause).await?;
                    }
                    ChargeDecision::Failed {
                        customer_id,
                        reason,
                    } => {
                        enqueue_message(
                            transaction,
                            &PaymentFailed {
                                order_id: reserved.order_id,
                                customer_id,
                                reason,
                            },
                            cause,
                        )
                        .await?;
                    }
                    ChargeDecision::Refunded => {
                        // Refunded, or a tombstone: only a cancelled order is refunded, and a
                        // cancelled saga waits for no answer to a charge request (it ignores
                        // `PaymentFailed` and would answer `PaymentSucceeded` with one more
                        // refund). Silence also keeps the customer from being told of a
                        // payment that did not happen, or failed when it did not.
                        info!("payment refunded before; a cancelled order needs no answer");
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

    /// Every account the batch's charges and refunds will update, locked in customer id
    /// order: the rows payment's writers contend for.
    async fn lock_batch(
        &self,
        transaction: &DatabaseTransaction,
        envelopes: &[&Envelope<AnyMessage>],
    ) -> Result<(), HandlerError> {
        let (mut charged, mut refunded) = (Vec::new(), Vec::new());
        for envelope in envelopes {
            match &envelope.payload {
                AnyMessage::StockReserved(reserved) => charged.push(reserved.customer_id),
                AnyMessage::RefundPayment(command) => refunded.push(command.order_id),
                _ => {}
            }
        }
        store::lock_accounts_of_batch(transaction, &charged, &refunded).await?;
        Ok(())
    }
}
