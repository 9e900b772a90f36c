//! Orders in the database: placing them (with their first message), reading them back.

use std::collections::HashMap;
use std::time::Duration;

use contracts::{CustomerId, Envelope, OrderId};
use saga_core::Label;
use saga_core::order::ORDER_SAGA;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, QuerySelect, SqlErr, TransactionTrait,
};
use uuid::Uuid;

use crate::entity::{order, order_line, order_transition};
use crate::saga::{EffectError, OrderFacts, effect_message};
use crate::validation::{ValidOrder, canonical};

/// An order with everything the API shows.
#[derive(Clone, Debug)]
pub struct OrderRecord {
    /// The order row.
    pub order: order::Model,
    /// Its lines, in request order.
    pub lines: Vec<order_line::Model>,
    /// Its saga steps, in order (empty when listing).
    pub timeline: Vec<order_transition::Model>,
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

/// Why an order could not be placed.
#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] DbErr),
    /// The first message could not be built.
    #[error("building the first message: {0}")]
    Effect(#[from] EffectError),
    /// The first message could not be encoded.
    #[error("encoding the first message: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Stores a new `Pending` order and its first message (`OrderCreated`, the saga's start effect)
/// in one transaction. Its prices are unknown until inventory reserves the stock. With an
/// `Idempotency-Key`, a repeated request gets the original order; keys are the customer's own,
/// so another customer's key names another order, and reveals nothing of the first.
pub async fn place(
    db: &DatabaseConnection,
    order: &ValidOrder,
    idempotency_key: Option<&str>,
    saga_timeout: Duration,
) -> Result<Placed, PlaceError> {
    let request = canonical(order);
    if let Some(key) = idempotency_key
        && let Some(existing) = by_idempotency_key(db, order.customer_id, key, &request).await?
    {
        return Ok(existing);
    }
    let order_id = OrderId::generate();
    let now = contracts::envelope::now();
    let deadline =
        now + chrono::Duration::from_std(saga_timeout).unwrap_or(chrono::Duration::seconds(30));
    // The rows are built here once: inserted, then returned as the answer, so the new order is
    // never read back.
    let stored = order::Model {
        id: order_id.as_uuid(),
        customer_id: order.customer_id.as_uuid(),
        status: ORDER_SAGA.initial.name().to_owned(),
        total: None,
        version: 0,
        cancellation_reason: None,
        deadline_at: deadline,
        idempotency_key: idempotency_key.map(str::to_owned),
        idempotency_request: idempotency_key.map(|_| request.clone()),
        created_at: now,
        updated_at: now,
    };
    let lines: Vec<order_line::Model> = order
        .lines
        .iter()
        .enumerate()
        .map(|(index, line)| order_line::Model {
            order_id: order_id.as_uuid(),
            line_no: i32::try_from(index).unwrap_or(i32::MAX),
            product_id: line.product_id.as_str().to_owned(),
            quantity: i32::try_from(line.quantity.get()).unwrap_or(i32::MAX),
            unit_price: None,
        })
        .collect();
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
            if let Some(existing) = by_idempotency_key(db, order.customer_id, key, &request).await?
            {
                return Ok(existing);
            }
        }
        return Err(error.into());
    }
    order_line::Entity::insert_many(
        lines
            .iter()
            .cloned()
            .map(IntoActiveModel::into_active_model),
    )
    .exec_without_returning(&transaction)
    .await?;
    let facts = OrderFacts {
        order_id,
        customer_id: order.customer_id,
        total: None,
        lines: order.lines.clone(),
    };
    let envelopes = ORDER_SAGA
        .start_effects
        .iter()
        .map(|&effect| {
            let message = effect_message(effect, &facts, "order placed")?;
            Ok(Envelope::from_any(&message, None)?)
        })
        .collect::<Result<Vec<_>, PlaceError>>()?;
    outbox::enqueue_all(&transaction, &envelopes).await?;
    transaction.commit().await?;
    metrics::counter!("orders_placed_total").increment(1);
    Ok(Placed::Created(OrderRecord {
        order: stored,
        lines,
        timeline: Vec::new(),
    }))
}

/// The order `customer_id` placed with `key`: only theirs, never another customer's.
async fn by_idempotency_key(
    db: &DatabaseConnection,
    customer_id: CustomerId,
    key: &str,
    request: &str,
) -> Result<Option<Placed>, DbErr> {
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
    let order_id = OrderId::from(existing.id);
    Ok(find(db, order_id).await?.map(Placed::Existing))
}

/// An order with its lines and timeline.
pub async fn find<C: ConnectionTrait>(
    db: &C,
    order_id: OrderId,
) -> Result<Option<OrderRecord>, DbErr> {
    let Some(found) = order::Entity::find_by_id(order_id.as_uuid())
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let lines = order_line::Entity::find()
        .filter(order_line::Column::OrderId.eq(order_id.as_uuid()))
        .order_by_asc(order_line::Column::LineNo)
        .all(db)
        .await?;
    let timeline = order_transition::Entity::find()
        .filter(order_transition::Column::OrderId.eq(order_id.as_uuid()))
        .order_by_asc(order_transition::Column::Seq)
        .all(db)
        .await?;
    Ok(Some(OrderRecord {
        order: found,
        lines,
        timeline,
    }))
}

/// Filters of the order list.
#[derive(Clone, Debug, Default)]
pub struct ListFilter {
    /// Only orders in this state.
    pub status: Option<String>,
    /// Only this customer's orders.
    pub customer_id: Option<Uuid>,
    /// Only orders older than this one (the previous page's last id).
    pub before: Option<Uuid>,
    /// At most this many.
    pub limit: u64,
}

/// Orders newest first (ids are UUID v7, so id order is creation order), with their lines in
/// one more query; the timeline is left out.
pub async fn list<C: ConnectionTrait>(
    db: &C,
    filter: &ListFilter,
) -> Result<Vec<OrderRecord>, DbErr> {
    let mut query = order::Entity::find()
        .order_by_desc(order::Column::Id)
        .limit(filter.limit);
    if let Some(status) = &filter.status {
        query = query.filter(order::Column::Status.eq(status.as_str()));
    }
    if let Some(customer_id) = filter.customer_id {
        query = query.filter(order::Column::CustomerId.eq(customer_id));
    }
    if let Some(before) = filter.before {
        query = query.filter(order::Column::Id.lt(before));
    }
    let orders = query.all(db).await?;
    let ids: Vec<Uuid> = orders.iter().map(|found| found.id).collect();
    let lines = order_line::Entity::find()
        .filter(order_line::Column::OrderId.is_in(ids))
        .order_by_asc(order_line::Column::LineNo)
        .all(db)
        .await?;
    let mut lines_by_order: HashMap<Uuid, Vec<order_line::Model>> = HashMap::new();
    for line in lines {
        lines_by_order.entry(line.order_id).or_default().push(line);
    }
    Ok(orders
        .into_iter()
        .map(|found| OrderRecord {
            lines: lines_by_order.remove(&found.id).unwrap_or_default(),
            order: found,
            timeline: Vec::new(),
        })
        .collect())
}
