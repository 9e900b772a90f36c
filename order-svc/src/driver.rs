//! Drives the order saga: applies an event to a stored order through `saga_core`'s table and
//! writes the result — new state (optimistically, by version), timeline row, effects in the
//! outbox — in the caller's transaction. Used by the message handler and the deadline sweeper.
//!
//! It also records the prices the participants tell: the catalog-priced lines and total of
//! `StockReserved`, and the amount of `PaymentSucceeded` (the same total). They are recorded
//! whatever the saga decides — a late reservation after a cancellation, a reservation that the
//! payment overtook — so that an order always shows what was charged.

use std::time::Duration;

use std::collections::BTreeMap;

use contracts::{
    CustomerId, Envelope, MessageId, Money, OrderId, OrderLine, PricedLine, ProductId, Quantity,
};
use outbox::{HandlerError, OutboxSignal};
use saga_core::Outcome;
use saga_core::order::{ORDER_SAGA, OrderEffect, OrderEvent, OrderState};
use saga_core::{Label, PathError};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, QueryFilter,
    QueryOrder, Statement, TransactionTrait,
};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};
use uuid::Uuid;

use crate::entity::{order, order_line, order_transition};
use crate::saga::{EffectError, Heard, Learned, OrderFacts, effect_message, reason};

/// What applying an event did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// A row of the table applied: a transition, or a compensation that stays (`from == to`).
    Step {
        /// State before.
        from: OrderState,
        /// State after.
        to: OrderState,
    },
    /// The event was already reflected in the state; nothing changed.
    Duplicate(OrderState),
}

/// Why an event could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// No such order (no participant answers about an order that was never placed).
    #[error("unknown order {0}")]
    UnknownOrder(OrderId),
    /// The stored order cannot be read as a saga state.
    #[error("order {order_id} is corrupt: {detail}")]
    Corrupt {
        /// The order.
        order_id: OrderId,
        /// What is wrong.
        detail: String,
    },
    /// The saga table has no decision for this event in this state.
    #[error("{event} is invalid for an order in state {state}")]
    Invalid {
        /// The state.
        state: OrderState,
        /// The event.
        event: OrderEvent,
    },
    /// A reservation that does not match the order (other customer, other lines or
    /// quantities): its prices cannot be the order's.
    #[error("the reservation does not match order {order_id}: {detail}")]
    Mismatch {
        /// The order.
        order_id: OrderId,
        /// What differs.
        detail: String,
    },
    /// Another transaction applied a step first; apply again on fresh state.
    #[error("the order changed concurrently")]
    Conflict,
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] DbErr),
    /// An effect's message could not be built from what is known of the order.
    #[error("{0}")]
    Effect(#[from] EffectError),
    /// An effect could not be encoded.
    #[error("encoding an effect: {0}")]
    Encode(#[from] serde_json::Error),
}

impl From<ApplyError> for HandlerError {
    fn from(error: ApplyError) -> Self {
        match error {
            ApplyError::Conflict => HandlerError::Conflict,
            ApplyError::Database(cause) => HandlerError::Database(cause),
            other => HandlerError::Rejected(other.to_string()),
        }
    }
}

/// Applies `heard` to the order: one step of the saga table, written with optimistic
/// concurrency (the update only succeeds if the version read is still current).
pub async fn apply<C: ConnectionTrait>(
    db: &C,
    order_id: OrderId,
    heard: &Heard,
    message_id: Option<MessageId>,
    saga_timeout: Duration,
) -> Result<Applied, ApplyError> {
    let mut found = order::Entity::find_by_id(order_id.as_uuid())
        .one(db)
        .await?
        .ok_or(ApplyError::UnknownOrder(order_id))?;
    let before = OrderState::from_name(&found.status).ok_or_else(|| ApplyError::Corrupt {
        order_id,
        detail: format!("unknown status {:?}", found.status),
    })?;
    let decision = match ORDER_SAGA.step(before, heard.event) {
        Outcome::Transition { to, effects, .. } => Some((to, effects)),
        Outcome::Compensate { effects, .. } => Some((before, effects)),
        Outcome::Duplicate { .. } => None,
        Outcome::Invalid { state } => {
            return Err(ApplyError::Invalid {
                state,
                event: heard.event,
            });
        }
    };
    // Prices are facts about the order, not steps of the saga: an event the saga has moved past
    // (a reservation overtaken by its payment) still tells what was charged.
    if let Some(learned) = &heard.learned {
        found.total = record(db, &found, learned).await?;
    }
    let Some((after, effects)) = decision else {
        return Ok(Applied::Duplicate(before));
    };
    let why = reason(before, heard, saga_timeout);
    let version = found.version + 1;
    let cancellation_reason =
        (after == OrderState::Cancelled && before != OrderState::Cancelled).then(|| why.clone());
    let effect_names: Vec<&str> = effects.iter().map(|effect| effect.name()).collect();
    // The versioned update and the timeline row in one statement (one round trip): the row is
    // written only if the update won, so a lost race leaves no trace.
    let stepped = db
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "WITH stepped AS (
                 UPDATE orders
                 SET status = $1, version = $2, updated_at = now(),
                     cancellation_reason = COALESCE(cancellation_reason, $3)
                 WHERE id = $4 AND version = $5
                 RETURNING id
             )
             INSERT INTO order_transitions (order_id, seq, from_state, to_state, event, effects, message_id, at)
             SELECT id, $2, $6, $1, $7, $8, $9, clock_timestamp() FROM stepped",
            [
                after.name().into(),
                version.into(),
                cancellation_reason.into(),
                order_id.as_uuid().into(),
                found.version.into(),
                before.name().into(),
                heard.event.name().into(),
                serde_json::json!(effect_names).into(),
                message_id.map(|id| id.as_uuid()).into(),
            ],
        ))
        .await?;
    if stepped.rows_affected() != 1 {
        return Err(ApplyError::Conflict);
    }
    if !effects.is_empty() {
        let facts = facts(db, &found, effects).await?;
        let envelopes = effects
            .iter()
            .map(|&effect| {
                let message = effect_message(effect, &facts, &why)?;
                Ok(Envelope::from_any(&message, message_id)?)
            })
            .collect::<Result<Vec<_>, ApplyError>>()?;
        outbox::enqueue_all(db, &envelopes).await?;
    }
    info!(from = before.name(), to = after.name(), event = heard.event.name(), effects = ?effect_names, "saga step");
    Ok(Applied::Step {
        from: before,
        to: after,
    })
}

async fn facts<C: ConnectionTrait>(
    db: &C,
    found: &order::Model,
    effects: &[OrderEffect],
) -> Result<OrderFacts, ApplyError> {
    let order_id = OrderId::from(found.id);
    let corrupt = |detail: String| ApplyError::Corrupt { order_id, detail };
    let total = found
        .total
        .map(Money::new)
        .transpose()
        .map_err(|error| corrupt(error.to_string()))?;
    // Only the reservation request carries the lines.
    let mut lines = Vec::new();
    if effects.contains(&OrderEffect::ReserveStock) {
        let rows = order_line::Entity::find()
            .filter(order_line::Column::OrderId.eq(found.id))
            .order_by_asc(order_line::Column::LineNo)
            .all(db)
            .await?;
        for row in rows {
            lines.push(OrderLine {
                product_id: ProductId::new(row.product_id)
                    .map_err(|error| corrupt(error.to_string()))?,
                quantity: Quantity::new(i64::from(row.quantity))
                    .map_err(|error| corrupt(error.to_string()))?,
            });
        }
    }
    Ok(OrderFacts {
        order_id,
        customer_id: CustomerId::from(found.customer_id),
        total,
        lines,
    })
}

/// Records what `learned` tells about the order's prices and returns its total afterwards. The
/// first record wins: a redelivery tells the same again, and what was charged never changes.
async fn record<C: ConnectionTrait>(
    db: &C,
    found: &order::Model,
    learned: &Learned,
) -> Result<Option<i64>, ApplyError> {
    let order_id = OrderId::from(found.id);
    match learned {
        Learned::Reservation {
            customer_id,
            items,
            total,
        } => record_reservation(db, found, *customer_id, items, *total).await,
        Learned::Charge { amount } => {
            if found.total.is_some() {
                warn_if_differs(order_id, found.total, *amount);
                return Ok(found.total);
            }
            let row = db
                .query_one_raw(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    "UPDATE orders SET total = COALESCE(total, $2) WHERE id = $1 RETURNING total",
                    [found.id.into(), amount.minor_units().into()],
                ))
                .await?;
            let total = recorded_total(row)?;
            warn_if_differs(order_id, total, *amount);
            Ok(total)
        }
    }
}

async fn record_reservation<C: ConnectionTrait>(
    db: &C,
    found: &order::Model,
    customer_id: CustomerId,
    items: &[PricedLine],
    total: Money,
) -> Result<Option<i64>, ApplyError> {
    let order_id = OrderId::from(found.id);
    let mismatch = |detail: String| ApplyError::Mismatch { order_id, detail };
    if customer_id.as_uuid() != found.customer_id {
        return Err(mismatch(format!(
            "reserved for customer {customer_id}, placed by {}",
            found.customer_id
        )));
    }
    let lines = order_line::Entity::find()
        .filter(order_line::Column::OrderId.eq(found.id))
        .all(db)
        .await?;
    let ordered: BTreeMap<&str, i64> = lines
        .iter()
        .map(|line| (line.product_id.as_str(), i64::from(line.quantity)))
        .collect();
    let reserved: BTreeMap<&str, i64> = items
        .iter()
        .map(|line| (line.product_id.as_str(), i64::from(line.quantity.get())))
        .collect();
    if ordered != reserved {
        return Err(mismatch(format!(
            "reserved {reserved:?}, ordered {ordered:?}"
        )));
    }
    let all_known = found.total.is_some() && lines.iter().all(|line| line.unit_price.is_some());
    if all_known {
        warn_if_differs(order_id, found.total, total);
        return Ok(found.total);
    }
    let (products, prices): (Vec<String>, Vec<i64>) = items
        .iter()
        .map(|line| {
            (
                line.product_id.as_str().to_owned(),
                line.unit_price.minor_units(),
            )
        })
        .unzip();
    // The lines and the total in one statement (one round trip).
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "WITH priced AS (
                 UPDATE order_lines AS line
                 SET unit_price = COALESCE(line.unit_price, catalog.unit_price)
                 FROM unnest($2::text[], $3::bigint[]) AS catalog (product_id, unit_price)
                 WHERE line.order_id = $1 AND line.product_id = catalog.product_id
             )
             UPDATE orders SET total = COALESCE(total, $4) WHERE id = $1 RETURNING total",
            [
                found.id.into(),
                products.into(),
                prices.into(),
                total.minor_units().into(),
            ],
        ))
        .await?;
    let recorded = recorded_total(row)?;
    warn_if_differs(order_id, recorded, total);
    Ok(recorded)
}

fn recorded_total(row: Option<sea_orm::QueryResult>) -> Result<Option<i64>, DbErr> {
    match row {
        Some(row) => row.try_get_by_index::<Option<i64>>(0),
        None => Err(DbErr::RecordNotFound("the order being priced".into())),
    }
}

/// A charge or a reservation whose total is not the one recorded first means a participant
/// disagrees about the price: nothing to undo here, but operators must hear of it.
fn warn_if_differs(order_id: OrderId, recorded: Option<i64>, told: Money) {
    if recorded != Some(told.minor_units()) {
        warn!(%order_id, ?recorded, told = told.minor_units(), "participants disagree on the order's total");
    }
}

/// Checks that an order's stored timeline is a path through the saga table.
pub fn check_timeline(timeline: &[order_transition::Model]) -> Result<OrderState, String> {
    let mut steps = Vec::with_capacity(timeline.len());
    for row in timeline {
        let from = OrderState::from_name(&row.from_state)
            .ok_or_else(|| format!("unknown state {}", row.from_state))?;
        let to = OrderState::from_name(&row.to_state)
            .ok_or_else(|| format!("unknown state {}", row.to_state))?;
        let event = OrderEvent::from_name(&row.event)
            .ok_or_else(|| format!("unknown event {}", row.event))?;
        steps.push((from, event, to));
    }
    ORDER_SAGA
        .check_path(steps)
        .map_err(|error: PathError<_, _>| error.to_string())
}

/// Cancels, through the saga table, every order whose deadline passed while it waited in a state
/// that a deadline moves (`Pending`, `Reserved`). Orders are claimed with `FOR UPDATE SKIP
/// LOCKED`, so replicas sweep disjoint orders. Returns how many were moved.
pub async fn sweep_once(
    db: &DatabaseConnection,
    saga_timeout: Duration,
    batch: i64,
) -> Result<usize, DbErr> {
    let waiting: Vec<String> = ORDER_SAGA
        .states_moved_by(OrderEvent::DeadlinePassed)
        .into_iter()
        .map(|state| state.name().to_owned())
        .collect();
    let transaction = db.begin().await?;
    let overdue = transaction
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT id FROM orders
             WHERE status = ANY($1) AND deadline_at <= now()
             ORDER BY deadline_at
             LIMIT $2
             FOR UPDATE SKIP LOCKED",
            [waiting.into(), batch.into()],
        ))
        .await?;
    let heard = Heard {
        event: OrderEvent::DeadlinePassed,
        reason: None,
        learned: None,
    };
    let mut moved = 0;
    for row in overdue {
        let order_id = OrderId::from(row.try_get_by_index::<Uuid>(0)?);
        let span = info_span!("deadline", %order_id);
        match apply(&transaction, order_id, &heard, None, saga_timeout)
            .instrument(span)
            .await
        {
            Ok(Applied::Step { from, to }) => {
                moved += 1;
                record_step(from, to);
            }
            Ok(Applied::Duplicate(_)) => {}
            Err(ApplyError::Database(cause)) => return Err(cause),
            // The row is locked and its state was filtered: nothing else can happen, but a
            // surprise must not stop the sweeper.
            Err(other) => warn!(%order_id, error = %other, "deadline not applied"),
        }
    }
    transaction.commit().await?;
    Ok(moved)
}

/// Counts a saga step in the `saga_transitions_total{from, to}` metric.
pub fn record_step(from: OrderState, to: OrderState) {
    metrics::counter!("saga_transitions_total", "from" => from.name(), "to" => to.name())
        .increment(1);
}

/// Sweeps every `interval` until `stop`, waking the relay when it cancelled something.
pub async fn run_sweeper(
    db: DatabaseConnection,
    signal: OutboxSignal,
    saga_timeout: Duration,
    interval: Duration,
    stop: CancellationToken,
) {
    while !stop.is_cancelled() {
        match sweep_once(&db, saga_timeout, 100).await {
            Ok(0) => {}
            Ok(moved) => {
                info!(moved, "deadline sweeper cancelled overdue orders");
                signal.wake();
                // More may be overdue: sweep again at once.
                continue;
            }
            Err(cause) => warn!(%cause, "deadline sweep failed; will try again"),
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = stop.cancelled() => return,
        }
    }
}
