//! Cancellation on request: the customer's (or an operator's) `CancelRequested`, applied through
//! the saga table like every other decision.
//!
//! The table decides: a `Pending` or `Reserved` order is cancelled pre-emptively (release,
//! refund, announcement), a `Cancelled` one ignores the repeat, and a `Paid` or `Completed` one
//! has no decision for it ([`RuntimeError::Invalid`]): its goods are paid for and on their way.

use contracts::OrderId;
use saga_core::order::OrderEvent;
use saga_runtime::{Cause, RuntimeError};
use sea_orm::{DatabaseConnection, TransactionTrait};
use service_kit::auth::Caller;
use tracing::{debug, info};

use crate::store::{self, OrderRecord, OrderRuntime};

/// How many times a cancellation that lost a race with a concurrent step is tried again on
/// fresh state before giving up.
const ATTEMPTS: usize = 5;

/// What a cancellation request came to.
#[derive(Debug)]
pub enum Cancellation {
    /// The order is cancelled (now, or it already was).
    Cancelled(Box<OrderRecord>),
    /// The order is in this state, which cannot be cancelled (`Paid`, `Completed`).
    Refused {
        /// The order.
        order_id: OrderId,
        /// Its state.
        state: &'static str,
    },
    /// No such order, or (for a customer) another customer's.
    NotFound,
}

/// Who asked, in words, for the cancellation reason: "the customer" or "operator <subject>".
pub fn requested_by(caller: &Caller) -> String {
    match caller {
        Caller::Customer(_) => "the customer".to_owned(),
        Caller::Operator { subject } => format!("operator {subject}"),
    }
}

/// Applies `CancelRequested` to the order for `caller`, each attempt in a transaction of its
/// own; a lost race ([`RuntimeError::Conflict`]) is tried again on fresh state. The caller
/// wakes the relay after a [`Cancellation::Cancelled`].
pub async fn cancel(
    db: &DatabaseConnection,
    runtime: &OrderRuntime,
    order_id: OrderId,
    caller: &Caller,
) -> Result<Cancellation, RuntimeError> {
    match store::order_row(db, order_id).await? {
        Some(found) if caller.may_act_for(found.customer_id) => {}
        // Another customer's order is answered exactly like a missing one.
        Some(_) | None => return Ok(Cancellation::NotFound),
    }
    let by = requested_by(caller);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let transaction = db.begin().await?;
        let applied = runtime
            .apply(
                &transaction,
                order_id.as_uuid(),
                OrderEvent::CancelRequested,
                Cause::Requested { by: &by },
            )
            .await;
        match applied {
            Ok(applied) => {
                transaction.commit().await?;
                info!(%order_id, by, ?applied, "cancellation requested");
                let record = store::find(db, runtime, order_id).await?.ok_or(
                    RuntimeError::UnknownInstance {
                        saga: runtime.name(),
                        instance_id: order_id.as_uuid(),
                    },
                )?;
                return Ok(Cancellation::Cancelled(Box::new(record)));
            }
            Err(RuntimeError::Invalid { state, .. }) => {
                transaction.rollback().await?;
                return Ok(Cancellation::Refused { order_id, state });
            }
            Err(RuntimeError::Conflict) if attempt < ATTEMPTS => {
                transaction.rollback().await?;
                debug!(%order_id, attempt, "cancellation lost a race; trying again");
            }
            Err(other) => {
                transaction.rollback().await?;
                return Err(other);
            }
        }
    }
}
