//! Pure payment rules, separate from the database.

use contracts::{CustomerId, Money, PaymentId};

/// Where an order's payment stands. Stored as its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaymentStatus {
    /// The order's total was taken from the customer's balance.
    Charged,
    /// The balance did not cover the total; nothing was taken.
    Failed,
    /// The charge was given back, or the saga refunded an order payment never charged
    /// (a tombstone: a charge request arriving later charges nothing).
    Refunded,
}

impl PaymentStatus {
    /// The stored name.
    pub fn name(self) -> &'static str {
        match self {
            PaymentStatus::Charged => "Charged",
            PaymentStatus::Failed => "Failed",
            PaymentStatus::Refunded => "Refunded",
        }
    }

    /// The status named `name`.
    pub fn from_name(name: &str) -> Option<PaymentStatus> {
        [Self::Charged, Self::Failed, Self::Refunded]
            .into_iter()
            .find(|status| status.name() == name)
    }
}

/// Why a charge of `needed` failed against a balance of `available` minor units:
/// `insufficient balance: 1500 needed, 900 available`.
pub fn insufficient_balance(needed: Money, available: i64) -> String {
    format!("insufficient balance: {needed} needed, {available} available")
}

/// Why a charge failed for a customer payment has no account for, when no demo balance opens
/// one: `customer <id> has no account; an operator must fund one`.
pub fn no_account(customer_id: CustomerId) -> String {
    format!("customer {customer_id} has no account; an operator must fund one")
}

/// What a refund request does to an order's payment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefundPlan {
    /// Give the charged amount back to the customer and mark the payment refunded.
    GiveBack(Money),
    /// It was given back before: change nothing, answer with the amount again.
    AlreadyRefunded(Money),
    /// Nothing was charged (the charge failed): change nothing, answer with 0.
    NothingCharged,
}

impl RefundPlan {
    /// What to do for a payment with this status and amount.
    pub fn for_payment(status: PaymentStatus, amount: Money) -> RefundPlan {
        match status {
            PaymentStatus::Charged => RefundPlan::GiveBack(amount),
            PaymentStatus::Refunded => RefundPlan::AlreadyRefunded(amount),
            PaymentStatus::Failed => RefundPlan::NothingCharged,
        }
    }

    /// The amount the `PaymentRefunded` answer carries.
    pub fn answer(self) -> Money {
        match self {
            RefundPlan::GiveBack(amount) | RefundPlan::AlreadyRefunded(amount) => amount,
            RefundPlan::NothingCharged => Money::ZERO,
        }
    }
}

/// The reason a repeated charge request for a failed payment is answered with when the failure
/// kept none (every failure is stored with its reason; this only keeps a hand-edited or corrupt
/// row answerable).
pub const FAILED_WITHOUT_REASON: &str = "the payment could not be charged";

/// What payment decided for an order's charge, as every charge request for the order is
/// answered: the first, and each repeat (another `StockReserved` for the order, with a new
/// message id) with that same decision, never a new one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChargeDecision {
    /// Money was taken: answer `PaymentSucceeded` again, with the same payment and amount.
    Charged {
        /// The charge.
        payment_id: PaymentId,
        /// Who was charged.
        customer_id: CustomerId,
        /// What was charged.
        amount: Money,
    },
    /// Nothing was taken: answer `PaymentFailed` again, with the recorded reason.
    Failed {
        /// Who was to be charged.
        customer_id: CustomerId,
        /// Why the charge failed.
        reason: String,
    },
    /// The charge was refunded, or a refund came first and left a tombstone: the saga asked
    /// for the refund, so the order is cancelled, and a cancelled order waits for no answer to
    /// a charge request; nothing is answered.
    Refunded,
}

impl ChargeDecision {
    /// The decision a payment record states; `Err` says why the record is corrupt (a
    /// charge without its payment id, a decision for a customer without one).
    pub fn from_record(
        status: PaymentStatus,
        payment_id: Option<PaymentId>,
        customer_id: Option<CustomerId>,
        amount: Money,
        reason: Option<&str>,
    ) -> Result<ChargeDecision, &'static str> {
        match status {
            PaymentStatus::Refunded => Ok(ChargeDecision::Refunded),
            PaymentStatus::Charged => Ok(ChargeDecision::Charged {
                payment_id: payment_id.ok_or("charged without a payment id")?,
                customer_id: customer_id.ok_or("charged without a customer")?,
                amount,
            }),
            PaymentStatus::Failed => Ok(ChargeDecision::Failed {
                customer_id: customer_id.ok_or("failed without a customer")?,
                reason: reason.unwrap_or(FAILED_WITHOUT_REASON).to_owned(),
            }),
        }
    }

    /// The status of the payment this decision was read from.
    pub fn status(&self) -> PaymentStatus {
        match self {
            ChargeDecision::Charged { .. } => PaymentStatus::Charged,
            ChargeDecision::Failed { .. } => PaymentStatus::Failed,
            ChargeDecision::Refunded => PaymentStatus::Refunded,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(minor_units: i64) -> Money {
        Money::new(minor_units).unwrap()
    }

    #[test]
    fn the_failure_reason_names_both_amounts() {
        let cases = [
            (
                1_500,
                900,
                "insufficient balance: 1500 needed, 900 available",
            ),
            (1, 0, "insufficient balance: 1 needed, 0 available"),
            (
                i64::MAX,
                i64::MAX - 1,
                "insufficient balance: 9223372036854775807 needed, 9223372036854775806 available",
            ),
        ];
        for (needed, available, expected) in cases {
            assert_eq!(insufficient_balance(money(needed), available), expected);
        }
    }

    #[test]
    fn the_no_account_reason_names_the_customer_and_the_remedy() {
        let customer_id: CustomerId = "0199c3e1-0000-7000-8000-0000000000c1".parse().unwrap();
        assert_eq!(
            no_account(customer_id),
            "customer 0199c3e1-0000-7000-8000-0000000000c1 has no account; an operator must \
             fund one"
        );
    }

    #[test]
    fn refunds_give_back_only_what_was_charged() {
        let cases = [
            (
                PaymentStatus::Charged,
                700,
                RefundPlan::GiveBack(money(700)),
                700,
            ),
            (
                PaymentStatus::Refunded,
                700,
                RefundPlan::AlreadyRefunded(money(700)),
                700,
            ),
            // A tombstone is a refunded payment of 0.
            (
                PaymentStatus::Refunded,
                0,
                RefundPlan::AlreadyRefunded(money(0)),
                0,
            ),
            (PaymentStatus::Failed, 700, RefundPlan::NothingCharged, 0),
        ];
        for (status, amount, plan, answer) in cases {
            let planned = RefundPlan::for_payment(status, money(amount));
            assert_eq!(planned, plan, "{status:?} of {amount}");
            assert_eq!(planned.answer(), money(answer), "{status:?} of {amount}");
        }
    }

    #[test]
    fn statuses_read_back_from_their_names() {
        for status in [
            PaymentStatus::Charged,
            PaymentStatus::Failed,
            PaymentStatus::Refunded,
        ] {
            assert_eq!(PaymentStatus::from_name(status.name()), Some(status));
        }
        assert_eq!(PaymentStatus::from_name("charged"), None);
        assert_eq!(PaymentStatus::from_name(""), None);
    }

    #[test]
    fn a_charge_decision_reads_back_from_its_record_or_is_corrupt() {
        let payment_id: PaymentId = "0199c3e1-0000-7000-8000-0000000000a1".parse().unwrap();
        let customer_id: CustomerId = "0199c3e1-0000-7000-8000-0000000000c1".parse().unwrap();
        type Record = (
            PaymentStatus,
            Option<PaymentId>,
            Option<CustomerId>,
            i64,
            Option<&'static str>,
        );
        let cases: &[(Record, Result<ChargeDecision, &str>)] = &[
            (
                (
                    PaymentStatus::Charged,
                    Some(payment_id),
                    Some(customer_id),
                    400,
                    None,
                ),
                Ok(ChargeDecision::Charged {
                    payment_id,
                    customer_id,
                    amount: money(400),
                }),
            ),
            (
                (
                    PaymentStatus::Failed,
                    None,
                    Some(customer_id),
                    400,
                    Some("no money"),
                ),
                Ok(ChargeDecision::Failed {
                    customer_id,
                    reason: "no money".to_owned(),
                }),
            ),
            (
                (PaymentStatus::Failed, None, Some(customer_id), 400, None),
                Ok(ChargeDecision::Failed {
                    customer_id,
                    reason: FAILED_WITHOUT_REASON.to_owned(),
                }),
            ),
            // A tombstone, and a refund after a charge.
            (
                (PaymentStatus::Refunded, None, None, 0, Some("deadline")),
                Ok(ChargeDecision::Refunded),
            ),
            (
                (
                    PaymentStatus::Refunded,
                    Some(payment_id),
                    Some(customer_id),
                    400,
                    None,
                ),
                Ok(ChargeDecision::Refunded),
            ),
            (
                (PaymentStatus::Charged, None, Some(customer_id), 400, None),
                Err("charged without a payment id"),
            ),
            (
                (PaymentStatus::Charged, Some(payment_id), None, 400, None),
                Err("charged without a customer"),
            ),
            (
                (PaymentStatus::Failed, None, None, 400, Some("no money")),
                Err("failed without a customer"),
            ),
        ];
        for ((status, payment, customer, amount, reason), expected) in cases {
            let read =
                ChargeDecision::from_record(*status, *payment, *customer, money(*amount), *reason);
            assert_eq!(
                &read, expected,
                "{status:?} {payment:?} {customer:?} {reason:?}"
            );
            if let Ok(earlier) = read {
                assert_eq!(earlier.status(), *status);
            }
        }
    }
}
