//! Orders in the database: placing them (the business rows and the saga's start in one
//! transaction), reading them back with their saga state, listing them.
//!
//! The business rows (`orders`, `order_lines`) say who ordered what and when; everything the
//! saga decides — status, prices, total, reasons, deadline, timeline, effects awaiting
//! confirmation — is the saga runtime's, read through [`OrderRuntime`].

use chrono::{DateTime, Utc};
use contracts::{CustomerId, OrderId};
use saga_core::Label;
use saga_core::order::{OrderEffect, OrderEvent, OrderState};
use saga_runtime::{EffectStatus, RuntimeError, SagaRuntime, TimelineEntry};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, IntoActiveModel,
    QueryFilter, QueryResult, SqlErr, Statement, TransactionTrait, Value,
};
use uuid::Uuid;

use crate::definition::{OrderData, OrderSaga};
use crate::entity::{order, order_line};
use crate::validation::{ValidOrder, canonical};

/// The saga runtime of the order saga.
pub type OrderRuntime = SagaRuntime<OrderSaga>;

/// An order with everything the API shows.
#[derive(Clone, Debug)]
pub struct OrderRecord {
    /// The order.
    pub id: Uuid,
    /// Who placed it.
    pub customer_id: Uuid,
    /// When it was placed.
    pub created_at: DateTime<Utc>,
    /// Its saga state.
    pub state: OrderState,
    /// What the saga knows of it: lines, prices, total, reasons.
    pub data: OrderData,
    /// When it is cancelled unless it moves on first; `None` once no timer runs.
    pub deadline_at: Option<DateTime<Utc>>,
    /// The saga's last write.
    pub updated_at: DateTime<Utc>,
    /// The trace it was placed in (a detailed read only).
    pub trace_id: Option<String>,
    /// Its saga steps, in order (empty when listing).
    pub timeline: Vec<TimelineEntry<OrderState, OrderEvent, OrderEffect>>,
    /// The effects still awaiting their confirmation (empty when listing).
    pub awaiting: Vec<EffectStatus<OrderEffect, OrderEvent>>,
}

/// What placing an order came to.
#[derive(Debug)]
pub enum Placed {
    /// A new order.
    Created(OrderRecord),
    /// The `Idempotency-Key` was used before with the same request: the original order.
    Existing(OrderRecord),
    /// The `Idempotency-Key` was used before with a different request.
    KeyReused,
}

/// Stores a new order and starts its saga (`Pending`, the reservation request in the outbox,
/// the deadline armed) in one transaction. Its prices are unknown until inventory reserves the
/// stock. With an `Idempotency-Key`, a repeated request gets the original order; keys are the
/// customer's own, so another customer's key names another order, and reveals nothing of the
/// first.
pub async fn place(
    db: &DatabaseConnection,
    runtime: &OrderRuntime,
    order: &ValidOrder,
    idempotency_key: Option<&str>,
) -> Result<Placed, RuntimeError> {
    let request = canonical(order);
    if let Some(key) = idempotency_key
        && let Some(existing) =
            by_idempotency_key(db, runtime, order.customer_id, key, &request).await?
    {
        return Ok(existing);
    }
    let order_id = OrderId::generate();
    let stored = order::Model {
        id: order_id.as_uuid(),
        customer_id: order.customer_id.as_uuid(),
        idempotency_key: idempotency_key.map(str::to_owned),
        idempotency_request: idempotency_key.map(|_| request.clone()),
        created_at: contracts::envelope::now(),
    };
    let lines = order.lines.iter().enumerate().map(|(index, line)| {
        order_line::Model {
            order_id: order_id.as_uuid(),
            line_no: i32::try_from(index).unwrap_or(i32::MAX),
            product_id: line.product_id.as_str().to_owned(),
            quantity: i32::try_from(line.quantity.get()).unwrap_or(i32::MAX),
        }
        .into_active_model()
    });
    let transaction = db.begin().await?;
    let inserted = order::Entity::insert(stored.clone().into_active_model())
        .exec_without_returning(&transaction)
        .await;
    if let Err(error) = inserted {
        // Another request with the same key won the race: answer as if it had come first.
        if let (Some(key), Some(SqlErr::UniqueConstraintViolation(_))) =
            (idempotency_key, error.sql_err())
        {
            transaction.rollback().await?;
            if let Some(existing) =
                by_idempotency_key(db, runtime, order.customer_id, key, &request).await?
            {
                return Ok(existing);
            }
        }
        return Err(error.into());
    }
    order_line::Entity::insert_many(lines)
        .exec_without_returning(&transaction)
        .await?;
    let data = OrderData::placed(order.customer_id, order.lines.clone());
    runtime
        .start(&transaction, order_id.as_uuid(), data, None)
        .await?;
    // Read in the transaction: the answer shows the deadline and the awaited reservation as
    // the database wrote them.
    let record = with_saga(&transaction, runtime, stored).await?;
    transaction.commit().await?;
    metrics::counter!("orders_placed_total").increment(1);
    Ok(Placed::Created(record))
}

/// The order `customer_id` placed with `key`: only theirs, never another customer's.
async fn by_idempotency_key(
    db: &DatabaseConnection,
    runtime: &OrderRuntime,
    customer_id: CustomerId,
    key: &str,
    request: &str,
) -> Result<Option<Placed>, RuntimeError> {
    let Some(existing) = order::Entity::find()
        .filter(order::Column::CustomerId.eq(customer_id.as_uuid()))
        .filter(order::Column::IdempotencyKey.eq(key))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    if existing.idempotency_request.as_deref() != Some(request) {
        return Ok(Some(Placed::KeyReused));
    }
    Ok(Some(Placed::Existing(
        with_saga(db, runtime, existing).await?,
    )))
}

/// The order's business row, if it exists (who placed it decides who may see it).
pub async fn order_row<C: ConnectionTrait>(
    db: &C,
    order_id: OrderId,
) -> Result<Option<order::Model>, RuntimeError> {
    Ok(order::Entity::find_by_id(order_id.as_uuid())
        .one(db)
        .await?)
}

/// An order with its saga state, timeline and effects awaiting confirmation.
pub async fn find<C: ConnectionTrait>(
    db: &C,
    runtime: &OrderRuntime,
    order_id: OrderId,
) -> Result<Option<OrderRecord>, RuntimeError> {
    let Some(found) = order_row(db, order_id).await? else {
        return Ok(None);
    };
    Ok(Some(with_saga(db, runtime, found).await?))
}

/// The business row completed with the saga's side.
async fn with_saga<C: ConnectionTrait>(
    db: &C,
    runtime: &OrderRuntime,
    found: order::Model,
) -> Result<OrderRecord, RuntimeError> {
    let history = runtime
        .history(db, found.id)
        .await?
        .ok_or(RuntimeError::UnknownInstance {
            saga: runtime.name(),
            instance_id: found.id,
        })?;
    let (instance, timeline, mut awaiting) = (history.instance, history.timeline, history.effects);
    awaiting.retain(EffectStatus::is_outstanding);
    Ok(OrderRecord {
        id: found.id,
        customer_id: found.customer_id,
        created_at: found.created_at,
        state: instance.state,
        data: instance.data,
        deadline_at: instance.deadline_at,
        updated_at: instance.updated_at,
        trace_id: instance.trace_id,
        timeline,
        awaiting,
    })
}

/// Filters of the order list.
#[derive(Clone, Debug, Default)]
pub struct ListFilter {
    /// Only orders in this state.
    pub status: Option<OrderState>,
    /// Only this customer's orders.
    pub customer_id: Option<Uuid>,
    /// Only orders older than this one (the previous page's last id).
    pub before: Option<Uuid>,
    /// Only orders placed at or after this moment.
    pub created_after: Option<DateTime<Utc>>,
    /// Only orders placed before this moment.
    pub created_before: Option<DateTime<Utc>>,
    /// Only orders that are not terminal and have not moved for at least this long (a jam).
    pub waiting_longer_than: Option<std::time::Duration>,
    /// At most this many.
    pub limit: u64,
}

/// Orders newest first (ids are UUID v7, so id order is creation order) with their saga state,
/// in one query: the business rows joined with the saga's instances (indexed by customer, and
/// by state). Timelines and effects are left out.
pub async fn list<C: ConnectionTrait>(
    db: &C,
    runtime: &OrderRuntime,
    filter: &ListFilter,
) -> Result<Vec<OrderRecord>, RuntimeError> {
    let mut sql = String::from(
        "SELECT o.id, o.customer_id, o.created_at, s.state, s.data, s.deadline_at, s.updated_at
         FROM orders o JOIN saga_instances s ON s.saga = $1 AND s.id = o.id
         WHERE true",
    );
    let mut values: Vec<Value> = vec![runtime.name().into()];
    let mut condition = |sql: &mut String, clause: &str, value: Value| {
        values.push(value);
        sql.push_str(&format!(" AND {clause} ${}", values.len()));
    };
    if let Some(status) = filter.status {
        condition(&mut sql, "s.state =", status.name().into());
    }
    if let Some(customer_id) = filter.customer_id {
        condition(&mut sql, "o.customer_id =", customer_id.into());
    }
    if let Some(before) = filter.before {
        condition(&mut sql, "o.id <", before.into());
    }
    if let Some(created_after) = filter.created_after {
        condition(&mut sql, "o.created_at >=", created_after.into());
    }
    if let Some(created_before) = filter.created_before {
        condition(&mut sql, "o.created_at <", created_before.into());
    }
    if let Some(waiting) = filter.waiting_longer_than {
        condition(
            &mut sql,
            "s.updated_at <= now() - interval '1 second' *",
            waiting.as_secs_f64().into(),
        );
        // The terminal states' names come from the table, never from the request.
        for terminal in saga_runtime::Saga::table(runtime.definition()).terminal {
            sql.push_str(&format!(" AND s.state <> '{}'", terminal.name()));
        }
    }
    let limit = i64::try_from(filter.limit).unwrap_or(i64::MAX);
    values.push(limit.into());
    sql.push_str(&format!(" ORDER BY o.id DESC LIMIT ${}", values.len()));
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            values,
        ))
        .await?;
    rows.iter().map(|row| listed(runtime, row)).collect()
}

fn listed(runtime: &OrderRuntime, row: &QueryResult) -> Result<OrderRecord, RuntimeError> {
    let id: Uuid = row.try_get_by_index(0)?;
    let corrupt = |detail: String| RuntimeError::Corrupt {
        saga: runtime.name(),
        instance_id: id,
        detail,
    };
    let state: String = row.try_get_by_index(3)?;
    let data: serde_json::Value = row.try_get_by_index(4)?;
    Ok(OrderRecord {
        id,
        customer_id: row.try_get_by_index(1)?,
        created_at: row.try_get_by_index(2)?,
        state: OrderState::from_name(&state)
            .ok_or_else(|| corrupt(format!("unknown state {state:?}")))?,
        data: serde_json::from_value(data)
            .map_err(|error| corrupt(format!("its data does not decode: {error}")))?,
        deadline_at: row.try_get_by_index(5)?,
        updated_at: row.try_get_by_index(6)?,
        trace_id: None,
        timeline: Vec::new(),
        awaiting: Vec::new(),
    })
}
