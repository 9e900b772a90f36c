//! Stock and catalog prices in the database. Every function runs inside the caller's
//! transaction; row locks are always taken in product-id order, so concurrent reservations
//! cannot deadlock each other — provided each transaction handles one message (a batch of
//! several would take the rows of successive messages out of order: the service's consumer runs
//! with batches of one).
//!
//! Which price an order pays: the catalog price in force when its stock is held. [`reserve`]
//! reads each product's price under the row lock it takes the units with, in one transaction,
//! and keeps it on the reservation line; a later price change touches neither the line nor the
//! `StockReserved` already published.

use std::collections::HashMap;

use contracts::{Money, OrderCreated, OrderId};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue, ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Statement,
};

use crate::entity::{product, reservation, reservation_line};
use crate::stock::{Answer, CatalogEntry, ReservationStatus, answer_again, decide};

/// What a reservation request came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReserveOutcome {
    /// Decided now: every line held and priced from the catalog, or nothing held and why.
    Decided(Answer),
    /// Inventory had decided for this order before (the saga re-sent the request because it
    /// never heard the answer, or a release came first and left a tombstone): nothing changes,
    /// and the answer is the earlier decision again, so that the saga hears it whichever copy
    /// of the answer was lost.
    AlreadyDecided(ReservationStatus, Answer),
}

/// What a commit request came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommitOutcome {
    /// The held units are sold now.
    Committed,
    /// They were sold already.
    AlreadyCommitted,
    /// There is nothing held to commit (the saga never asks for this).
    NothingHeld(Option<ReservationStatus>),
}

/// What a release request came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReleaseOutcome {
    /// The held units are available again.
    Released,
    /// Nothing was held (released before, failed, or never heard of: a tombstone now).
    NothingHeld,
    /// The units were sold; a release cannot take them back (the saga never asks for this).
    AlreadyCommitted,
}

async fn status_of<C: ConnectionTrait>(
    db: &C,
    order_id: OrderId,
    lock: bool,
) -> Result<Option<ReservationStatus>, DbErr> {
    let mut query = reservation::Entity::find_by_id(order_id.as_uuid());
    if lock {
        query = query.lock_exclusive();
    }
    Ok(query
        .one(db)
        .await?
        .and_then(|row| ReservationStatus::from_name(&row.status)))
}

async fn insert_reservation<C: ConnectionTrait>(
    db: &C,
    order_id: OrderId,
    status: ReservationStatus,
    reason: Option<String>,
) -> Result<(), DbErr> {
    let now = contracts::envelope::now();
    reservation::Entity::insert(reservation::ActiveModel {
        order_id: ActiveValue::Set(order_id.as_uuid()),
        status: ActiveValue::Set(status.name().to_owned()),
        reason: ActiveValue::Set(reason),
        created_at: ActiveValue::Set(now),
        updated_at: ActiveValue::Set(now),
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// Holds every line of `order`, or none, and prices the lines from the catalog. Never
/// oversells: each line is taken with a conditional update (`available >= quantity`) under the
/// product's row lock.
///
/// The order pays the catalog price in force when its stock is held: the prices are read under
/// the same row locks, in the same transaction, as the units are taken, and a price change
/// (`PUT /products/{id}` updates the locked row) waits for this transaction to end — so it
/// comes either wholly before the reservation (which then pays the new price) or wholly after
/// (which does not touch it). The lines keep the price they were held at.
///
/// An order decided before — held, committed, failed, or released (a tombstone, when the
/// release came first) — changes nothing and is answered with that decision again.
pub async fn reserve<C: ConnectionTrait>(
    db: &C,
    order: &OrderCreated,
) -> Result<ReserveOutcome, DbErr> {
    if let Some(earlier) = reservation::Entity::find_by_id(order.order_id.as_uuid())
        .lock_exclusive()
        .one(db)
        .await?
    {
        return answer_again_from_store(db, order, &earlier).await;
    }
    let mut product_ids: Vec<&str> = order
        .items
        .iter()
        .map(|line| line.product_id.as_str())
        .collect();
    product_ids.sort_unstable();

    // Lock every product of the order, in id order (so that concurrent reservations queue up
    // instead of deadlocking), decide and price with the locked rows, then take them in one
    // statement: three round trips whatever the number of lines.
    let catalog = lock_products(db, &product_ids).await?;
    let reserved = match decide(order, &catalog) {
        Ok(reserved) => reserved,
        Err(reason) => {
            insert_reservation(
                db,
                order.order_id,
                ReservationStatus::Failed,
                Some(reason.clone()),
            )
            .await?;
            return Ok(ReserveOutcome::Decided(Answer::Failed(reason)));
        }
    };
    let (mut products, mut quantities, mut prices) = (Vec::new(), Vec::new(), Vec::new());
    for line in &reserved.items {
        products.push(line.product_id.as_str().to_owned());
        quantities.push(i64::from(line.quantity.get()));
        prices.push(line.unit_price.minor_units());
    }
    // The products are locked: take the units and record the reservation, each line with the
    // price just read under the lock, in one statement.
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "WITH taken AS (
             UPDATE products p
             SET available = p.available - line.quantity, reserved = p.reserved + line.quantity,
                 updated_at = now()
             FROM unnest($2::text[], $3::bigint[]) AS line (product_id, quantity)
             WHERE p.product_id = line.product_id
         ), held AS (
             INSERT INTO reservations (order_id, status) VALUES ($1, 'Held') RETURNING order_id
         )
         INSERT INTO reservation_lines (order_id, product_id, quantity, unit_price)
         SELECT held.order_id, line.product_id, line.quantity, line.unit_price
         FROM held, unnest($2::text[], $3::bigint[], $4::bigint[])
             AS line (product_id, quantity, unit_price)",
        [
            order.order_id.as_uuid().into(),
            products.into(),
            quantities.into(),
            prices.into(),
        ],
    ))
    .await?;
    Ok(ReserveOutcome::Decided(Answer::Reserved(reserved)))
}

/// The earlier decision for `order`, whose reservation row `earlier` the caller holds locked
/// (so a concurrent commit or release cannot change it under the answer).
///
/// Lines keep the price they were held at. A line held before inventory priced reservations
/// (`unit_price` NULL; its order carried client prices) is answered at the product's current
/// catalog price: no price was recorded, and inventory never takes a client's price. Such
/// orders predate the catalog and were decided long ago; payment answers its own recorded
/// decision whatever total this repeat names, so the choice moves no money.
async fn answer_again_from_store<C: ConnectionTrait>(
    db: &C,
    order: &OrderCreated,
    earlier: &reservation::Model,
) -> Result<ReserveOutcome, DbErr> {
    let order_id = order.order_id;
    let status = ReservationStatus::from_name(&earlier.status).ok_or_else(|| {
        DbErr::Custom(format!(
            "reservation of order {order_id}: unknown status {:?}",
            earlier.status
        ))
    })?;
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT line.product_id, line.quantity, COALESCE(line.unit_price, p.price)
             FROM reservation_lines line LEFT JOIN products p ON p.product_id = line.product_id
             WHERE line.order_id = $1",
            [order_id.as_uuid().into()],
        ))
        .await?;
    let mut kept = Vec::with_capacity(rows.len());
    for row in &rows {
        let product_id: String = row.try_get_by_index(0)?;
        let unit_price: Option<i64> = row.try_get_by_index(2)?;
        // Products are never deleted; a legacy line whose product is gone cannot be priced.
        let unit_price = unit_price.ok_or_else(|| {
            DbErr::Custom(format!(
                "reservation of order {order_id}: line {product_id} has no price and no product"
            ))
        })?;
        kept.push((product_id, row.try_get_by_index(1)?, unit_price));
    }
    let answer = answer_again(order, status, earlier.reason.as_deref(), &kept)
        .map_err(|error| DbErr::Custom(format!("reservation of order {order_id}: {error}")))?;
    Ok(ReserveOutcome::AlreadyDecided(status, answer))
}

/// Locks the products, in id order, and returns the stock and price of those that exist.
async fn lock_products<C: ConnectionTrait>(
    db: &C,
    product_ids: &[&str],
) -> Result<HashMap<String, CatalogEntry>, DbErr> {
    let product_ids: Vec<String> = product_ids.iter().map(|id| (*id).to_owned()).collect();
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT product_id, available, price FROM products WHERE product_id = ANY($1)
             ORDER BY product_id FOR UPDATE",
            [product_ids.into()],
        ))
        .await?;
    rows.iter()
        .map(|row| {
            let price: i64 = row.try_get_by_index(2)?;
            // The column's CHECK keeps prices at 0 or more; a negative one is a corrupt row.
            let price = Money::new(price).map_err(|error| DbErr::Type(error.to_string()))?;
            let entry = CatalogEntry {
                available: row.try_get_by_index(1)?,
                price,
            };
            Ok((row.try_get_by_index(0)?, entry))
        })
        .collect()
}

/// Locks, in id order, the products named in `ordered` and those held for the orders in
/// `settled`: what a batch of reservations, commits and releases will update.
pub async fn lock_products_of_batch<C: ConnectionTrait>(
    db: &C,
    ordered: Vec<String>,
    settled: &[OrderId],
) -> Result<(), DbErr> {
    if ordered.is_empty() && settled.is_empty() {
        return Ok(());
    }
    let settled: Vec<uuid::Uuid> = settled.iter().map(|order_id| order_id.as_uuid()).collect();
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT product_id FROM products
         WHERE product_id = ANY($1)
            OR product_id IN (SELECT product_id FROM reservation_lines WHERE order_id = ANY($2))
         ORDER BY product_id FOR UPDATE",
        [ordered.into(), settled.into()],
    ))
    .await?;
    Ok(())
}

async fn lines_of<C: ConnectionTrait>(
    db: &C,
    order_id: OrderId,
) -> Result<Vec<reservation_line::Model>, DbErr> {
    reservation_line::Entity::find()
        .filter(reservation_line::Column::OrderId.eq(order_id.as_uuid()))
        .order_by_asc(reservation_line::Column::ProductId)
        .all(db)
        .await
}

/// Moves the units held for the order from `reserved` to `committed`.
pub async fn commit<C: ConnectionTrait>(db: &C, order_id: OrderId) -> Result<CommitOutcome, DbErr> {
    match status_of(db, order_id, true).await? {
        Some(ReservationStatus::Held) => {}
        Some(ReservationStatus::Committed) => return Ok(CommitOutcome::AlreadyCommitted),
        other => return Ok(CommitOutcome::NothingHeld(other)),
    }
    move_held_units(db, order_id, ReservationStatus::Committed, None).await?;
    Ok(CommitOutcome::Committed)
}

/// Gives the units held for the order back; leaves a tombstone when it held nothing yet.
pub async fn release<C: ConnectionTrait>(
    db: &C,
    order_id: OrderId,
    reason: &str,
) -> Result<ReleaseOutcome, DbErr> {
    match status_of(db, order_id, true).await? {
        Some(ReservationStatus::Held) => {}
        Some(ReservationStatus::Committed) => return Ok(ReleaseOutcome::AlreadyCommitted),
        Some(ReservationStatus::Released | ReservationStatus::Failed) => {
            return Ok(ReleaseOutcome::NothingHeld);
        }
        None => {
            insert_reservation(
                db,
                order_id,
                ReservationStatus::Released,
                Some(reason.to_owned()),
            )
            .await?;
            return Ok(ReleaseOutcome::NothingHeld);
        }
    }
    move_held_units(db, order_id, ReservationStatus::Released, Some(reason)).await?;
    Ok(ReleaseOutcome::Released)
}

/// Moves the units a held reservation holds out of `reserved` — into `committed` (sold) or back
/// into `available` (released) — and gives the reservation its new status. Two round trips
/// whatever the number of lines: lock the products (in id order, like every other writer, so
/// no deadlock) while reading the lines, then move every line and set the status in one
/// statement. The caller holds the reservation's lock and has seen it `Held`.
async fn move_held_units<C: ConnectionTrait>(
    db: &C,
    order_id: OrderId,
    to: ReservationStatus,
    reason: Option<&str>,
) -> Result<(), DbErr> {
    let lines = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT p.product_id, line.quantity
             FROM products p JOIN reservation_lines line ON line.product_id = p.product_id
             WHERE line.order_id = $1
             ORDER BY p.product_id
             FOR UPDATE OF p",
            [order_id.as_uuid().into()],
        ))
        .await?;
    let (mut products, mut quantities) = (Vec::new(), Vec::new());
    for line in &lines {
        products.push(line.try_get_by_index::<String>(0)?);
        quantities.push(line.try_get_by_index::<i64>(1)?);
    }
    let destination = match to {
        ReservationStatus::Committed => "committed = p.committed + line.quantity",
        _ => "available = p.available + line.quantity",
    };
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        format!(
            "WITH moved AS (
                 UPDATE products p
                 SET reserved = p.reserved - line.quantity, {destination}, updated_at = now()
                 FROM unnest($2::text[], $3::bigint[]) AS line (product_id, quantity)
                 WHERE p.product_id = line.product_id
             )
             UPDATE reservations SET status = $4, reason = COALESCE($5, reason), updated_at = now()
             WHERE order_id = $1"
        ),
        [
            order_id.as_uuid().into(),
            products.into(),
            quantities.into(),
            to.name().into(),
            reason.map(str::to_owned).into(),
        ],
    ))
    .await?;
    Ok(())
}

/// One product's stock.
pub async fn product<C: ConnectionTrait>(
    db: &C,
    product_id: &str,
) -> Result<Option<product::Model>, DbErr> {
    product::Entity::find_by_id(product_id.to_owned())
        .one(db)
        .await
}

/// Products in id order, at most `limit`, after `after` when given.
pub async fn products<C: ConnectionTrait>(
    db: &C,
    limit: u64,
    after: Option<&str>,
) -> Result<Vec<product::Model>, DbErr> {
    let mut query = product::Entity::find()
        .order_by_asc(product::Column::ProductId)
        .limit(limit);
    if let Some(after) = after {
        query = query.filter(product::Column::ProductId.gt(after));
    }
    query.all(db).await
}

/// Sets a product's available units and price, creating the product if needed; `true` if
/// created. Reservations already held keep the price they were held at.
pub async fn set_product<C: ConnectionTrait>(
    db: &C,
    product_id: &str,
    available: i64,
    price: Money,
) -> Result<(product::Model, bool), DbErr> {
    let existed = product(db, product_id).await?.is_some();
    product::Entity::insert(product::ActiveModel {
        product_id: ActiveValue::Set(product_id.to_owned()),
        available: ActiveValue::Set(available),
        reserved: ActiveValue::NotSet,
        committed: ActiveValue::NotSet,
        price: ActiveValue::Set(price.minor_units()),
        updated_at: ActiveValue::Set(contracts::envelope::now()),
    })
    .on_conflict(
        OnConflict::column(product::Column::ProductId)
            .update_columns([
                product::Column::Available,
                product::Column::Price,
                product::Column::UpdatedAt,
            ])
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    let stored = product(db, product_id).await?.ok_or_else(|| {
        DbErr::RecordNotFound(format!("product {product_id} vanished after upsert"))
    })?;
    Ok((stored, !existed))
}

/// An order's reservation and its lines.
pub async fn reservation<C: ConnectionTrait>(
    db: &C,
    order_id: OrderId,
) -> Result<Option<(reservation::Model, Vec<reservation_line::Model>)>, DbErr> {
    let Some(found) = reservation::Entity::find_by_id(order_id.as_uuid())
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    Ok(Some((found, lines_of(db, order_id).await?)))
}
