//! Accounts and payments in the database. Every function runs inside the caller's transaction.
//!
//! **Exactly one decision per order.** The primary key of `payments` is the guard: a charge
//! records the payment with `INSERT ... ON CONFLICT (order_id) DO NOTHING` and, in the same
//! statement, moves the money only if that insert wrote the row. PostgreSQL makes the insert
//! wait for any other transaction that inserted the same order (another message about the
//! order, on another replica or lane) and skips it if that one committed; the charge then moves
//! nothing and reports the other decision instead. A refund that finds nothing leaves a
//! tombstone the same way, so a late charge request charges nothing.
//!
//! **Never overdrawn.** Money leaves an account only under the account's row lock, after the
//! locked balance was found sufficient; the `CHECK (balance >= 0)` backs it up. Locks are taken
//! account first, then payment, in both charge and refund.
//!
//! **No money from nowhere.** A charge never opens a funded account for a customer payment has
//! not heard of (unless a demo balance is configured): the order fails payment, recorded like
//! any other decision, and only an operator funds accounts.

use contracts::{CustomerId, Money, OrderId, PaymentId, StockReserved};
use sea_orm::{
    ActiveValue, ConnectionTrait, DbBackend, DbErr, EntityTrait, Statement, TransactionSession,
    TransactionTrait, TryInsertResult,
};

use crate::entity::{account, payment};
use crate::ledger::{ChargeDecision, PaymentStatus, RefundPlan, insufficient_balance, no_account};

/// What a charge request came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChargeOutcome {
    /// The total was taken from the balance.
    Charged(PaymentId),
    /// Nothing was taken; why, for people.
    Failed(String),
    /// Payment had already decided for this order (another message about the same order: a
    /// repeat of `StockReserved` after the saga re-sent its request, or a tombstone left by a
    /// refund that came first): nothing changes, and the answer is that decision again
    /// (none for a refunded order: see [`ChargeDecision::Refunded`]).
    AlreadyDecided(ChargeDecision),
}

/// What a refund request came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefundOutcome {
    /// The payment's status decided; a [`RefundPlan::GiveBack`] has given the money back now.
    Planned(RefundPlan),
    /// Payment never heard of the order: a tombstone now.
    Tombstone,
}

impl RefundOutcome {
    /// The amount the `PaymentRefunded` answer carries.
    pub fn answer(self) -> Money {
        match self {
            RefundOutcome::Planned(plan) => plan.answer(),
            RefundOutcome::Tombstone => Money::ZERO,
        }
    }
}

fn corrupt(order_id: OrderId, what: impl std::fmt::Display) -> DbErr {
    DbErr::Custom(format!("payment of order {order_id}: {what}"))
}

fn status_of_row(row: &payment::Model) -> Result<PaymentStatus, DbErr> {
    PaymentStatus::from_name(&row.status).ok_or_else(|| {
        corrupt(
            row.order_id.into(),
            format!("unknown status {:?}", row.status),
        )
    })
}

fn amount_of_row(row: &payment::Model) -> Result<Money, DbErr> {
    Money::new(row.amount).map_err(|error| corrupt(row.order_id.into(), error))
}

/// The decision the order's payment record states, if payment decided for the order.
async fn charge_decision<C: ConnectionTrait>(
    db: &C,
    order_id: OrderId,
) -> Result<Option<ChargeDecision>, DbErr> {
    let Some(row) = payment(db, order_id).await? else {
        return Ok(None);
    };
    let earlier = ChargeDecision::from_record(
        status_of_row(&row)?,
        row.payment_id.map(PaymentId::from),
        row.customer_id.map(CustomerId::from),
        amount_of_row(&row)?,
        row.reason.as_deref(),
    )
    .map_err(|what| corrupt(order_id, what))?;
    Ok(Some(earlier))
}

/// Inserts the payment unless the order has one; `false` if it had.
async fn record_payment<C: ConnectionTrait>(
    db: &C,
    row: payment::ActiveModel,
) -> Result<bool, DbErr> {
    let inserted = payment::Entity::insert(row)
        .on_conflict_do_nothing()
        .exec_without_returning(db)
        .await?;
    Ok(matches!(inserted, TryInsertResult::Inserted(rows) if rows > 0))
}

fn new_payment(
    order_id: OrderId,
    payment_id: Option<PaymentId>,
    customer_id: Option<CustomerId>,
    amount: Money,
    status: PaymentStatus,
    reason: Option<String>,
) -> payment::ActiveModel {
    let now = contracts::envelope::now();
    payment::ActiveModel {
        order_id: ActiveValue::Set(order_id.as_uuid()),
        payment_id: ActiveValue::Set(payment_id.map(|id| id.as_uuid())),
        customer_id: ActiveValue::Set(customer_id.map(|id| id.as_uuid())),
        amount: ActiveValue::Set(amount.minor_units()),
        status: ActiveValue::Set(status.name().to_owned()),
        reason: ActiveValue::Set(reason),
        created_at: ActiveValue::Set(now),
        updated_at: ActiveValue::Set(now),
    }
}

/// Opens the customer's account with `balance` unless it exists; `true` if it was opened.
async fn open_account<C: ConnectionTrait>(
    db: &C,
    customer_id: CustomerId,
    balance: Money,
) -> Result<bool, DbErr> {
    let now = contracts::envelope::now();
    let inserted = account::Entity::insert(account::ActiveModel {
        customer_id: ActiveValue::Set(customer_id.as_uuid()),
        balance: ActiveValue::Set(balance.minor_units()),
        created_at: ActiveValue::Set(now),
        updated_at: ActiveValue::Set(now),
    })
    .on_conflict_do_nothing()
    .exec_without_returning(db)
    .await?;
    Ok(matches!(inserted, TryInsertResult::Inserted(rows) if rows > 0))
}

fn missing_account(customer_id: CustomerId) -> DbErr {
    DbErr::RecordNotFound(format!("account of customer {customer_id}"))
}

/// The account's balance, locked until the caller's transaction ends; `None` if there is no
/// account.
async fn lock_balance<C: ConnectionTrait>(
    db: &C,
    customer_id: CustomerId,
) -> Result<Option<i64>, DbErr> {
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT balance FROM accounts WHERE customer_id = $1 FOR UPDATE",
            [customer_id.as_uuid().into()],
        ))
        .await?;
    row.map(|row| row.try_get_by_index(0)).transpose()
}

/// Locks, in customer id order, the accounts of the customers in `charged` and of the orders in
/// `refunded`: what a batch of charges and refunds will update.
pub async fn lock_accounts_of_batch<C: ConnectionTrait>(
    db: &C,
    charged: &[CustomerId],
    refunded: &[OrderId],
) -> Result<(), DbErr> {
    if charged.is_empty() && refunded.is_empty() {
        return Ok(());
    }
    let charged: Vec<uuid::Uuid> = charged.iter().map(|customer| customer.as_uuid()).collect();
    let refunded: Vec<uuid::Uuid> = refunded.iter().map(|order| order.as_uuid()).collect();
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT customer_id FROM accounts
         WHERE customer_id = ANY($1)
            OR customer_id IN (SELECT customer_id FROM payments WHERE order_id = ANY($2))
         ORDER BY customer_id FOR UPDATE",
        [charged.into(), refunded.into()],
    ))
    .await?;
    Ok(())
}

/// Charges the order's total to its customer. Decides at most once per order (see the module
/// documentation); a request for an order decided before moves nothing and reports that
/// decision ([`ChargeOutcome::AlreadyDecided`]), whatever total the request names.
///
/// A customer without an account is not charged: the charge fails with
/// [`no_account`](crate::ledger::no_account) and no account is opened, because only an operator
/// funds accounts (`PUT /accounts/{customer_id}`). Only for demos, a positive `demo_balance`
/// (`PAYMENT_DEMO_BALANCE`) opens the account with that balance and charges it.
///
/// Three round trips in the usual case: look for an earlier decision, lock the account and
/// read its balance, then [`decide`] in one statement.
pub async fn charge<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    request: &StockReserved,
    demo_balance: Money,
) -> Result<ChargeOutcome, DbErr> {
    let (order_id, customer_id) = (request.order_id, request.customer_id);
    if let Some(earlier) = charge_decision(db, order_id).await? {
        return Ok(ChargeOutcome::AlreadyDecided(earlier));
    }
    if let Some(available) = lock_balance(db, customer_id).await? {
        return decide(db, request, Some(available)).await;
    }
    if demo_balance == Money::ZERO {
        // Nothing to lock: an account an operator opens meanwhile does not change a decision
        // taken before it existed.
        return decide(db, request, None).await;
    }
    // A demo's new customer. The account is opened in a savepoint, so that a charge that loses
    // the race for its order leaves no account behind.
    let attempt = db.begin().await?;
    open_account(&attempt, customer_id, demo_balance).await?;
    let available = lock_balance(&attempt, customer_id)
        .await?
        .ok_or_else(|| missing_account(customer_id))?;
    let outcome = decide(&attempt, request, Some(available)).await?;
    match outcome {
        ChargeOutcome::AlreadyDecided(_) => attempt.rollback().await?,
        ChargeOutcome::Charged(_) | ChargeOutcome::Failed(_) => attempt.commit().await?,
    }
    Ok(outcome)
}

/// Decides the charge against the customer's locked `available` balance (`None`: the customer
/// has no account, so the charge fails), in one statement: records the decision (guarded by the
/// payments primary key) and moves the money only if that record was written and says
/// `Charged`. A lost race moves nothing.
async fn decide<C: ConnectionTrait>(
    db: &C,
    request: &StockReserved,
    available: Option<i64>,
) -> Result<ChargeOutcome, DbErr> {
    let (order_id, customer_id, amount) = (request.order_id, request.customer_id, request.total);
    let failed = |reason: String| {
        (
            ChargeOutcome::Failed(reason.clone()),
            None,
            PaymentStatus::Failed,
            Some(reason),
        )
    };
    // The account is locked: the balance read is the balance the update will see.
    let (outcome, payment_id, status, reason) = match available {
        Some(available) if available >= amount.minor_units() => {
            let payment_id = PaymentId::generate();
            (
                ChargeOutcome::Charged(payment_id),
                Some(payment_id.as_uuid()),
                PaymentStatus::Charged,
                None,
            )
        }
        Some(available) => failed(insufficient_balance(amount, available)),
        None => failed(no_account(customer_id)),
    };
    let recorded = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "WITH decided AS (
                 INSERT INTO payments (order_id, payment_id, customer_id, amount, status, reason)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (order_id) DO NOTHING
                 RETURNING status
             ), taken AS (
                 UPDATE accounts SET balance = balance - $4, updated_at = now()
                 WHERE customer_id = $3 AND EXISTS (SELECT 1 FROM decided WHERE status = 'Charged')
                 RETURNING customer_id
             )
             SELECT (SELECT count(*) FROM decided) AS recorded, (SELECT count(*) FROM taken) AS taken",
            [
                order_id.as_uuid().into(),
                payment_id.into(),
                customer_id.as_uuid().into(),
                amount.minor_units().into(),
                status.name().into(),
                reason.into(),
            ],
        ))
        .await?
        .ok_or_else(|| corrupt(order_id, "the charge statement returned no row"))?;
    let inserted: i64 = recorded.try_get_by_index(0)?;
    let taken: i64 = recorded.try_get_by_index(1)?;
    match (inserted, taken, &outcome) {
        (1, 1, ChargeOutcome::Charged(_)) | (1, 0, ChargeOutcome::Failed(_)) => return Ok(outcome),
        // The locked account cannot vanish; if it did, the error rolls the decision back.
        (1, _, _) => return Err(corrupt(order_id, "the charge moved no money")),
        _ => {}
    }
    // Another decision for the order came first (a redelivery, another message about the same
    // order, or a refund's tombstone): nothing was moved; answer with that decision.
    let earlier = charge_decision(db, order_id)
        .await?
        .ok_or_else(|| corrupt(order_id, "no payment after a conflicting insert"))?;
    Ok(ChargeOutcome::AlreadyDecided(earlier))
}

/// Gives the order's charge back; answers again if it was given back before; leaves a
/// tombstone when payment never heard of the order.
pub async fn refund<C: ConnectionTrait>(
    db: &C,
    order_id: OrderId,
    reason: &str,
) -> Result<RefundOutcome, DbErr> {
    let found = match payment(db, order_id).await? {
        Some(found) => found,
        None => {
            let tombstone = new_payment(
                order_id,
                None,
                None,
                Money::ZERO,
                PaymentStatus::Refunded,
                Some(reason.to_owned()),
            );
            if record_payment(db, tombstone).await? {
                return Ok(RefundOutcome::Tombstone);
            }
            // A charge decided for the order meanwhile; refund what it decided.
            payment(db, order_id)
                .await?
                .ok_or_else(|| corrupt(order_id, "vanished after a conflicting insert"))?
        }
    };
    let plan = RefundPlan::for_payment(status_of_row(&found)?, amount_of_row(&found)?);
    let RefundPlan::GiveBack(amount) = plan else {
        return Ok(RefundOutcome::Planned(plan));
    };
    let customer_id = found
        .customer_id
        .map(CustomerId::from)
        .ok_or_else(|| corrupt(order_id, "charged without a customer"))?;
    lock_balance(db, customer_id)
        .await?
        .ok_or_else(|| missing_account(customer_id))?;
    let marked = db
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "UPDATE payments SET status = $2, reason = $3, updated_at = now()
             WHERE order_id = $1 AND status = $4",
            [
                order_id.as_uuid().into(),
                PaymentStatus::Refunded.name().into(),
                reason.into(),
                PaymentStatus::Charged.name().into(),
            ],
        ))
        .await?;
    if marked.rows_affected() != 1 {
        // A concurrent refund gave the money back first; a charge is refunded only once.
        return Ok(RefundOutcome::Planned(RefundPlan::AlreadyRefunded(amount)));
    }
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "UPDATE accounts SET balance = balance + $2, updated_at = now() WHERE customer_id = $1",
        [customer_id.as_uuid().into(), amount.minor_units().into()],
    ))
    .await?;
    Ok(RefundOutcome::Planned(plan))
}

/// An order's payment.
pub async fn payment<C: ConnectionTrait>(
    db: &C,
    order_id: OrderId,
) -> Result<Option<payment::Model>, DbErr> {
    payment::Entity::find_by_id(order_id.as_uuid())
        .one(db)
        .await
}

/// A customer's account.
pub async fn account<C: ConnectionTrait>(
    db: &C,
    customer_id: CustomerId,
) -> Result<Option<account::Model>, DbErr> {
    account::Entity::find_by_id(customer_id.as_uuid())
        .one(db)
        .await
}

/// Sets a customer's balance, opening the account if needed; `true` if opened.
pub async fn set_balance<C: ConnectionTrait>(
    db: &C,
    customer_id: CustomerId,
    balance: Money,
) -> Result<(account::Model, bool), DbErr> {
    // Accounts are never deleted: if the insert found one, the update finds it too.
    let opened = open_account(db, customer_id, balance).await?;
    if !opened {
        db.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "UPDATE accounts SET balance = $2, updated_at = now() WHERE customer_id = $1",
            [customer_id.as_uuid().into(), balance.minor_units().into()],
        ))
        .await?;
    }
    let stored = account(db, customer_id).await?.ok_or_else(|| {
        DbErr::RecordNotFound(format!(
            "account of customer {customer_id} vanished after upsert"
        ))
    })?;
    Ok((stored, opened))
}
