//! Quiescence and the system's invariants, read from the databases and the broker.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use futures::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions};
use lapin::types::{AMQPValue, FieldTable};
use saga_core::Label;
use saga_core::order::{ORDER_SAGA, OrderEvent, OrderState};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement, Value};
use testkit::system::Svc;

use crate::faults::POISON_HEADER;
use crate::world::{Placed, Setup};

/// One invariant's result.
#[derive(Debug)]
pub struct Check {
    /// What is checked.
    pub name: &'static str,
    /// How many things were checked.
    pub checked: usize,
    /// Evidence of every violation.
    pub violations: Vec<String>,
}

impl Check {
    fn new(name: &'static str) -> Check {
        Check {
            name,
            checked: 0,
            violations: Vec::new(),
        }
    }
}

async fn rows(
    db: &DatabaseConnection,
    sql: &str,
    values: Vec<Value>,
) -> Result<Vec<sea_orm::QueryResult>, DbErr> {
    db.query_all_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        sql,
        values,
    ))
    .await
}

async fn count(db: &DatabaseConnection, sql: &str) -> Result<i64, DbErr> {
    Ok(rows(db, sql, Vec::new())
        .await?
        .first()
        .map(|row| row.try_get_by_index::<i64>(0))
        .transpose()?
        .unwrap_or(0))
}

fn ids(placed: &[Placed]) -> Vec<uuid::Uuid> {
    placed
        .iter()
        .filter_map(|order| order.order_id.parse().ok())
        .collect()
}

/// What quiescence looks like now: orders not yet terminal, unpublished outbox rows, messages
/// waiting in queues (dead-letter queues excluded).
pub async fn pending_work(
    databases: &HashMap<Svc, DatabaseConnection>,
    placed: &[Placed],
    queue_depths: &[(String, u64)],
) -> Result<(i64, i64, u64), DbErr> {
    let order_db = &databases[&Svc::Order];
    let waiting = rows(
        order_db,
        "SELECT count(*) FROM orders WHERE id = ANY($1) AND status NOT IN ('Completed', 'Cancelled')",
        vec![ids(placed).into()],
    )
    .await?
    .first()
    .map(|row| row.try_get_by_index::<i64>(0))
    .transpose()?
    .unwrap_or(0);
    let mut unpublished = 0;
    for db in databases.values() {
        unpublished += count(
            db,
            "SELECT count(*) FROM outbox_messages WHERE processed_at IS NULL",
        )
        .await?;
    }
    let queued = queue_depths
        .iter()
        .filter(|(name, _)| !name.ends_with(".dlq"))
        .map(|(_, depth)| depth)
        .sum();
    Ok((waiting, unpublished, queued))
}

/// Every invariant of the run.
pub async fn check_all(
    databases: &HashMap<Svc, DatabaseConnection>,
    setup: &Setup,
    placed: &[Placed],
    dead_letters: &DeadLetters,
) -> Result<Vec<Check>, DbErr> {
    let (order_db, inventory_db, payment_db) = (
        &databases[&Svc::Order],
        &databases[&Svc::Inventory],
        &databases[&Svc::Payment],
    );
    let order_ids = ids(placed);

    // Orders, their lines and timelines.
    let mut orders: HashMap<uuid::Uuid, (String, i64)> = HashMap::new();
    for row in rows(
        order_db,
        "SELECT id, status, total FROM orders WHERE id = ANY($1)",
        vec![order_ids.clone().into()],
    )
    .await?
    {
        orders.insert(
            row.try_get_by_index(0)?,
            (row.try_get_by_index(1)?, row.try_get_by_index(2)?),
        );
    }
    let mut order_lines: HashMap<uuid::Uuid, BTreeMap<String, i64>> = HashMap::new();
    for row in rows(
        order_db,
        "SELECT order_id, product_id, quantity FROM order_lines WHERE order_id = ANY($1)",
        vec![order_ids.clone().into()],
    )
    .await?
    {
        let quantity: i32 = row.try_get_by_index(2)?;
        order_lines
            .entry(row.try_get_by_index(0)?)
            .or_default()
            .insert(row.try_get_by_index(1)?, i64::from(quantity));
    }
    let mut timelines: HashMap<uuid::Uuid, Vec<(String, String, String)>> = HashMap::new();
    for row in rows(
        order_db,
        "SELECT order_id, from_state, event, to_state FROM order_transitions WHERE order_id = ANY($1) ORDER BY order_id, seq",
        vec![order_ids.clone().into()],
    )
    .await?
    {
        timelines
            .entry(row.try_get_by_index(0)?)
            .or_default()
            .push((row.try_get_by_index(1)?, row.try_get_by_index(2)?, row.try_get_by_index(3)?));
    }
    // Inventory: reservations and their lines, products.
    let mut reservations: HashMap<uuid::Uuid, String> = HashMap::new();
    for row in rows(
        inventory_db,
        "SELECT order_id, status FROM reservations WHERE order_id = ANY($1)",
        vec![order_ids.clone().into()],
    )
    .await?
    {
        reservations.insert(row.try_get_by_index(0)?, row.try_get_by_index(1)?);
    }
    let mut reserved_lines: HashMap<uuid::Uuid, BTreeMap<String, i64>> = HashMap::new();
    for row in rows(
        inventory_db,
        "SELECT order_id, product_id, quantity FROM reservation_lines WHERE order_id = ANY($1)",
        vec![order_ids.clone().into()],
    )
    .await?
    {
        reserved_lines
            .entry(row.try_get_by_index(0)?)
            .or_default()
            .insert(row.try_get_by_index(1)?, row.try_get_by_index(2)?);
    }
    // Payments and accounts.
    let mut payments: HashMap<uuid::Uuid, (String, i64, Option<uuid::Uuid>)> = HashMap::new();
    for row in rows(
        payment_db,
        "SELECT order_id, status, amount, customer_id FROM payments WHERE order_id = ANY($1)",
        vec![order_ids.clone().into()],
    )
    .await?
    {
        payments.insert(
            row.try_get_by_index(0)?,
            (
                row.try_get_by_index(1)?,
                row.try_get_by_index(2)?,
                row.try_get_by_index(3)?,
            ),
        );
    }

    let mut terminal = Check::new("1. every accepted order is terminal (none stuck, none lost)");
    let mut per_order = Check::new(
        "3. Completed: one charge of its total, stock committed; Cancelled: no net charge, nothing committed",
    );
    let mut paths = Check::new("6. every timeline is a path through the saga table");
    for order in placed {
        let Ok(id) = order.order_id.parse::<uuid::Uuid>() else {
            terminal
                .violations
                .push(format!("order id {:?} is not a UUID", order.order_id));
            continue;
        };
        terminal.checked += 1;
        let Some((status, total)) = orders.get(&id) else {
            terminal.violations.push(format!(
                "order {id} was accepted but is not in the database"
            ));
            continue;
        };
        if status != "Completed" && status != "Cancelled" {
            terminal
                .violations
                .push(format!("order {id} is stuck in {status}"));
        }
        per_order.checked += 1;
        let payment = payments.get(&id);
        let reservation = reservations.get(&id).map(String::as_str);
        match status.as_str() {
            "Completed" => {
                match payment {
                    Some((payment_status, amount, _))
                        if payment_status == "Charged" && amount == total => {}
                    other => per_order.violations.push(format!(
                        "completed order {id} (total {total}) has payment {other:?}"
                    )),
                }
                if reservation != Some("Committed")
                    || reserved_lines.get(&id) != order_lines.get(&id)
                {
                    per_order.violations.push(format!(
                        "completed order {id}: reservation {reservation:?} holds {:?}, the order has {:?}",
                        reserved_lines.get(&id),
                        order_lines.get(&id)
                    ));
                }
            }
            "Cancelled" => {
                if let Some((payment_status, amount, _)) = payment
                    && payment_status == "Charged"
                {
                    per_order
                        .violations
                        .push(format!("cancelled order {id} is still charged {amount}"));
                }
                if reservation == Some("Committed") || reservation == Some("Held") {
                    per_order.violations.push(format!(
                        "cancelled order {id} has its reservation {reservation:?}"
                    ));
                }
            }
            _ => {}
        }
        paths.checked += 1;
        let steps: Vec<(OrderState, OrderEvent, OrderState)> = timelines
            .get(&id)
            .map(|steps| {
                steps
                    .iter()
                    .filter_map(|(from, event, to)| {
                        Some((
                            OrderState::from_name(from)?,
                            OrderEvent::from_name(event)?,
                            OrderState::from_name(to)?,
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        match ORDER_SAGA.check_path(steps) {
            Ok(end) if end.name() == status => {}
            Ok(end) => paths.violations.push(format!(
                "order {id}: the timeline ends in {end} but the order is {status}"
            )),
            Err(error) => paths.violations.push(format!("order {id}: {error}")),
        }
    }

    let mut stock =
        Check::new("2. per product: initial stock = available + committed, reserved = 0");
    let mut committed_by_product: HashMap<String, i64> = HashMap::new();
    for order in placed {
        let Ok(id) = order.order_id.parse::<uuid::Uuid>() else {
            continue;
        };
        if orders.get(&id).map(|(status, _)| status.as_str()) == Some("Completed") {
            for (product, quantity) in order_lines.get(&id).into_iter().flatten() {
                *committed_by_product.entry(product.clone()).or_default() += quantity;
            }
        }
    }
    for row in rows(inventory_db, "SELECT product_id, available, reserved, committed FROM products WHERE product_id LIKE 'chaos-%'", Vec::new()).await? {
        let product: String = row.try_get_by_index(0)?;
        let (available, reserved, committed): (i64, i64, i64) = (row.try_get_by_index(1)?, row.try_get_by_index(2)?, row.try_get_by_index(3)?);
        let initial = setup.stock.get(&product).copied().unwrap_or(0);
        stock.checked += 1;
        if available + committed != initial || reserved != 0 {
            stock.violations.push(format!(
                "{product}: initial {initial}, available {available} + committed {committed}, reserved {reserved}"
            ));
        }
        let expected = committed_by_product.get(&product).copied().unwrap_or(0);
        if committed != expected {
            stock.violations.push(format!("{product}: committed {committed}, but completed orders bought {expected}"));
        }
    }

    let mut money = Check::new("4. per customer: initial balance - charged + refunded = balance");
    let mut charged: HashMap<String, i64> = HashMap::new();
    for (status, amount, customer) in payments.values() {
        if status == "Charged"
            && let Some(customer) = customer
        {
            *charged.entry(customer.to_string()).or_default() += amount;
        }
    }
    let customers: Vec<uuid::Uuid> = setup
        .balances
        .keys()
        .filter_map(|customer| customer.parse().ok())
        .collect();
    for row in rows(
        payment_db,
        "SELECT customer_id, balance FROM accounts WHERE customer_id = ANY($1)",
        vec![customers.into()],
    )
    .await?
    {
        let customer: uuid::Uuid = row.try_get_by_index(0)?;
        let balance: i64 = row.try_get_by_index(1)?;
        let customer = customer.to_string();
        let initial = setup.balances.get(&customer).copied().unwrap_or(0);
        let net = charged.get(&customer).copied().unwrap_or(0);
        money.checked += 1;
        if initial - net != balance {
            money.violations.push(format!(
                "customer {customer}: initial {initial} - net charged {net} != balance {balance}"
            ));
        }
    }

    let mut messaging =
        Check::new("5. every outbox row processed; every dead letter is injected poison");
    for (svc, db) in databases {
        let unprocessed = count(
            db,
            "SELECT count(*) FROM outbox_messages WHERE processed_at IS NULL",
        )
        .await?;
        messaging.checked +=
            usize::try_from(count(db, "SELECT count(*) FROM outbox_messages").await?).unwrap_or(0);
        if unprocessed != 0 {
            messaging.violations.push(format!(
                "{}: {unprocessed} outbox rows unprocessed",
                svc.binary()
            ));
        }
    }
    messaging.checked += dead_letters.total;
    for valid in &dead_letters.valid {
        messaging
            .violations
            .push(format!("a valid message was dead-lettered: {valid}"));
    }

    Ok(vec![terminal, stock, per_order, money, messaging, paths])
}

/// What the dead-letter queues held at the end.
#[derive(Debug, Default)]
pub struct DeadLetters {
    /// Dead letters in all.
    pub total: usize,
    /// Per queue.
    pub per_queue: BTreeMap<String, usize>,
    /// Dead letters that were not injected poison, with their reason.
    pub valid: Vec<String>,
}

/// Drains every `.dlq` of the run's vhost and sorts its messages into poison and others.
pub async fn drain_dead_letters(
    amqp_url: &str,
    queue_depths: &[(String, u64)],
) -> Result<DeadLetters, lapin::Error> {
    let connection =
        lapin::Connection::connect(amqp_url, lapin::ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    let mut letters = DeadLetters::default();
    for (queue, depth) in queue_depths
        .iter()
        .filter(|(name, _)| name.ends_with(".dlq"))
    {
        if *depth == 0 {
            continue;
        }
        let mut consumer = channel
            .basic_consume(
                queue.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        for _ in 0..*depth {
            let Ok(Some(Ok(delivery))) =
                tokio::time::timeout(Duration::from_secs(5), consumer.next()).await
            else {
                break;
            };
            let headers = delivery.properties.headers().clone().unwrap_or_default();
            let poison = headers.inner().contains_key(POISON_HEADER);
            if !poison {
                let reason = match headers
                    .inner()
                    .get(contracts::envelope::HEADER_DEAD_LETTER_REASON)
                {
                    Some(AMQPValue::LongString(text)) => {
                        String::from_utf8_lossy(text.as_bytes()).into_owned()
                    }
                    _ => "no reason header (dead-lettered by the broker's delivery limit?)".into(),
                };
                letters.valid.push(format!("{queue}: {reason}"));
            }
            letters.total += 1;
            *letters.per_queue.entry(queue.clone()).or_default() += 1;
            delivery.ack(BasicAckOptions::default()).await?;
        }
    }
    let _ = channel.close(200, "done".into()).await;
    let _ = connection.close(200, "done".into()).await;
    Ok(letters)
}
