//! Quiescence and the system's invariants, read from the databases and the broker.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use lapin::options::{BasicAckOptions, BasicGetOptions};
use lapin::types::AMQPValue;
use saga_core::Label;
use saga_core::order::{ORDER_SAGA, OrderEvent, OrderState};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement, Value};
use testkit::system::Svc;

use crate::bus::Published;
use crate::faults::{FORGED_HEADER, Forgery, POISON_HEADER};
use crate::world::{Kind, Placed, Setup};

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

/// What quiescence looks like now: orders not yet terminal plus commands awaiting confirmation,
/// unpublished outbox rows, messages waiting in queues (dead-letter queues excluded).
pub async fn pending_work(
    databases: &HashMap<Svc, DatabaseConnection>,
    placed: &[Placed],
    queue_depths: &[(String, u64)],
) -> Result<(i64, i64, u64), DbErr> {
    let order_db = &databases[&Svc::Order];
    let waiting = rows(
        order_db,
        // Not yet terminal, or still awaiting a confirmation (a re-send is due).
        "SELECT (SELECT count(*) FROM saga_instances
                 WHERE saga = 'OrderSaga' AND id = ANY($1) AND state NOT IN ('Completed', 'Cancelled'))
              + (SELECT count(*) FROM saga_effects
                 WHERE saga = 'OrderSaga' AND instance_id = ANY($1) AND confirmed_at IS NULL)",
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

/// Every command the saga sent for the run's orders was confirmed: nothing awaits confirmation
/// (a lost command would have been re-sent until answered).
async fn confirmations(
    order_db: &DatabaseConnection,
    order_ids: &[uuid::Uuid],
) -> Result<Check, DbErr> {
    let mut check =
        Check::new("1c. every command the saga sent was confirmed (nothing awaits confirmation)");
    let sent = rows(
        order_db,
        "SELECT instance_id, effect, attempts, confirmed_at IS NULL FROM saga_effects
         WHERE saga = 'OrderSaga' AND instance_id = ANY($1)",
        vec![order_ids.to_vec().into()],
    )
    .await?;
    for row in sent {
        check.checked += 1;
        if row.try_get_by_index::<bool>(3)? {
            let order_id: uuid::Uuid = row.try_get_by_index(0)?;
            let effect: String = row.try_get_by_index(1)?;
            let attempts: i32 = row.try_get_by_index(2)?;
            check.violations.push(format!(
                "order {order_id}: {effect} still awaits confirmation after {attempts} sends"
            ));
        }
    }
    Ok(check)
}

/// Σ quantity × unit price of an order's reserved lines; `None` when it has none or one is not
/// priced.
fn reserved_total(lines: Option<&BTreeMap<String, (i64, Option<i64>)>>) -> Option<i64> {
    let lines = lines.filter(|lines| !lines.is_empty())?;
    lines.values().try_fold(0_i64, |total, (quantity, price)| {
        total.checked_add(quantity.checked_mul((*price)?)?)
    })
}

/// Every invariant the databases can tell.
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

    // Orders, their lines and timelines: the saga runtime holds the state, the prices and the
    // total (in the instance's data) and the timeline; `order_lines` what was ordered.
    let mut orders: HashMap<uuid::Uuid, (String, Option<i64>)> = HashMap::new();
    for row in rows(
        order_db,
        "SELECT id, state, (data->>'total')::bigint FROM saga_instances
         WHERE saga = 'OrderSaga' AND id = ANY($1)",
        vec![order_ids.clone().into()],
    )
    .await?
    {
        orders.insert(
            row.try_get_by_index(0)?,
            (row.try_get_by_index(1)?, row.try_get_by_index(2)?),
        );
    }
    let mut order_lines: HashMap<uuid::Uuid, BTreeMap<String, (i64, Option<i64>)>> = HashMap::new();
    for row in rows(
        order_db,
        "SELECT l.order_id, l.product_id, l.quantity,
             (SELECT (priced->>'unit_price')::bigint
              FROM saga_instances s,
                  jsonb_array_elements(CASE jsonb_typeof(s.data->'priced')
                      WHEN 'array' THEN s.data->'priced' ELSE '[]'::jsonb END) AS priced
              WHERE s.saga = 'OrderSaga' AND s.id = l.order_id
                  AND priced->>'product_id' = l.product_id)
         FROM order_lines l WHERE l.order_id = ANY($1)",
        vec![order_ids.clone().into()],
    )
    .await?
    {
        let quantity: i32 = row.try_get_by_index(2)?;
        order_lines
            .entry(row.try_get_by_index(0)?)
            .or_default()
            .insert(
                row.try_get_by_index(1)?,
                (i64::from(quantity), row.try_get_by_index(3)?),
            );
    }
    let mut timelines: HashMap<uuid::Uuid, Vec<(String, String, String)>> = HashMap::new();
    for row in rows(
        order_db,
        // The start row (no event) is not a step of the table.
        "SELECT instance_id, from_state, event, to_state FROM saga_transitions
         WHERE saga = 'OrderSaga' AND instance_id = ANY($1) AND event IS NOT NULL
         ORDER BY instance_id, seq",
        vec![order_ids.clone().into()],
    )
    .await?
    {
        timelines
            .entry(row.try_get_by_index(0)?)
            .or_default()
            .push((
                row.try_get_by_index(1)?,
                row.try_get_by_index(2)?,
                row.try_get_by_index(3)?,
            ));
    }
    let orders_in_database = count(order_db, "SELECT count(*) FROM orders").await?;
    // Inventory: reservations and their priced lines, products.
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
    let mut reserved_lines: HashMap<uuid::Uuid, BTreeMap<String, (i64, Option<i64>)>> =
        HashMap::new();
    for row in rows(
        inventory_db,
        "SELECT order_id, product_id, quantity, unit_price FROM reservation_lines WHERE order_id = ANY($1)",
        vec![order_ids.clone().into()],
    )
    .await?
    {
        reserved_lines.entry(row.try_get_by_index(0)?).or_default().insert(
            row.try_get_by_index(1)?,
            (row.try_get_by_index(2)?, row.try_get_by_index(3)?),
        );
    }
    // Payments (every decision, tombstones included) and accounts.
    let mut payments: HashMap<uuid::Uuid, Payment> = HashMap::new();
    for row in rows(
        payment_db,
        "SELECT order_id, status, amount, customer_id, payment_id IS NOT NULL FROM payments",
        Vec::new(),
    )
    .await?
    {
        payments.insert(
            row.try_get_by_index(0)?,
            Payment {
                status: row.try_get_by_index(1)?,
                amount: row.try_get_by_index(2)?,
                customer: row.try_get_by_index(3)?,
                charged: row.try_get_by_index(4)?,
            },
        );
    }
    let mut accounts: HashMap<String, i64> = HashMap::new();
    for row in rows(
        payment_db,
        "SELECT customer_id, balance FROM accounts",
        Vec::new(),
    )
    .await?
    {
        let customer: uuid::Uuid = row.try_get_by_index(0)?;
        accounts.insert(customer.to_string(), row.try_get_by_index(1)?);
    }

    let mut terminal = Check::new("1. every accepted order is terminal (none stuck, none lost)");
    let mut nothing_else = Check::new(
        "1b. the orders in the database are the accepted ones (refused requests created nothing)",
    );
    let mut per_order = Check::new(
        "3. Completed: one charge of its reserved total, stock committed; Cancelled: no net charge, nothing committed",
    );
    let mut prices = Check::new(
        "3b. every order is priced from the catalog: reserved lines at catalog prices, the order's total and every payment decision = the reserved total",
    );
    let mut intents = Check::new(
        "3c. orders for unknown products and of customers without an account are cancelled",
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
        let expected = setup.catalog_total(&order.lines);
        let reserved = reserved_total(reserved_lines.get(&id));
        per_order.checked += 1;
        let payment = payments.get(&id);
        let reservation = reservations.get(&id).map(String::as_str);
        let quantities = |lines: Option<&BTreeMap<String, (i64, Option<i64>)>>| {
            lines.map(|lines| {
                lines
                    .iter()
                    .map(|(product, (quantity, _))| (product.clone(), *quantity))
                    .collect::<BTreeMap<_, _>>()
            })
        };
        match status.as_str() {
            "Completed" => {
                match payment {
                    Some(payment)
                        if payment.status == "Charged" && Some(payment.amount) == reserved => {}
                    other => per_order.violations.push(format!(
                        "completed order {id} (reserved total {reserved:?}) has payment {other:?}"
                    )),
                }
                if reservation != Some("Committed")
                    || quantities(reserved_lines.get(&id)) != quantities(order_lines.get(&id))
                {
                    per_order.violations.push(format!(
                        "completed order {id}: reservation {reservation:?} holds {:?}, the order has {:?}",
                        reserved_lines.get(&id),
                        order_lines.get(&id)
                    ));
                }
            }
            "Cancelled" => {
                if let Some(payment) = payment
                    && payment.status == "Charged"
                {
                    per_order.violations.push(format!(
                        "cancelled order {id} is still charged {}",
                        payment.amount
                    ));
                }
                if reservation == Some("Committed") || reservation == Some("Held") {
                    per_order.violations.push(format!(
                        "cancelled order {id} has its reservation {reservation:?}"
                    ));
                }
            }
            _ => {}
        }

        // Prices: the client sent none, so every price and total must be the catalog's.
        prices.checked += 1;
        for (product, (_, unit_price)) in reserved_lines.get(&id).into_iter().flatten() {
            let catalog = setup.prices.get(product).copied();
            if unit_price.is_none() || *unit_price != catalog {
                prices.violations.push(format!(
                    "order {id}: {product} reserved at {unit_price:?}, the catalog price is {catalog:?}"
                ));
            }
        }
        if reserved.is_some() && reserved != expected {
            prices.violations.push(format!(
                "order {id}: reserved total {reserved:?}, at catalog prices {expected:?}"
            ));
        }
        for (product, (_, unit_price)) in order_lines.get(&id).into_iter().flatten() {
            if unit_price.is_some() && *unit_price != setup.prices.get(product).copied() {
                prices.violations.push(format!(
                    "order {id}: the order shows {product} at {unit_price:?}, the catalog price is {:?}",
                    setup.prices.get(product)
                ));
            }
        }
        if total.is_some() && *total != reserved {
            prices.violations.push(format!(
                "order {id}: the order shows a total of {total:?}, its reserved total is {reserved:?}"
            ));
        }
        if status == "Completed" && total.is_none() {
            prices
                .violations
                .push(format!("completed order {id} shows no total"));
        }
        if let Some(payment) = payment
            && payment.customer.is_some()
            && Some(payment.amount) != reserved
        {
            prices.violations.push(format!(
                "order {id}: payment {} for {}, the reserved total is {reserved:?}",
                payment.status, payment.amount
            ));
        }

        if matches!(order.kind, Kind::UnknownProduct | Kind::Stranger) {
            intents.checked += 1;
            if status != "Cancelled" {
                intents.violations.push(format!(
                    "order {id} ({:?}, customer {}) ended {status}",
                    order.kind, order.customer
                ));
            }
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
    nothing_else.checked = usize::try_from(orders_in_database).unwrap_or(0);
    if usize::try_from(orders_in_database).ok() != Some(orders.len()) {
        nothing_else.violations.push(format!(
            "{orders_in_database} orders in the database, {} of them accepted by the harness",
            orders.len()
        ));
    }
    let placed_by_id: HashMap<uuid::Uuid, &Placed> = placed
        .iter()
        .filter_map(|order| Some((order.order_id.parse().ok()?, order)))
        .collect();
    for (order_id, payment) in &payments {
        if !placed_by_id.contains_key(order_id) {
            nothing_else.violations.push(format!(
                "payment {} of {} for order {order_id}, which the harness never placed",
                payment.status, payment.amount
            ));
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
            for (product, (quantity, _)) in order_lines.get(&id).into_iter().flatten() {
                *committed_by_product.entry(product.clone()).or_default() += quantity;
            }
        }
    }
    for row in rows(inventory_db, "SELECT product_id, available, reserved, committed, price FROM products WHERE product_id LIKE 'chaos-%'", Vec::new()).await? {
        let product: String = row.try_get_by_index(0)?;
        let (available, reserved, committed): (i64, i64, i64) = (row.try_get_by_index(1)?, row.try_get_by_index(2)?, row.try_get_by_index(3)?);
        let price: i64 = row.try_get_by_index(4)?;
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
        if setup.prices.get(&product) != Some(&price) {
            stock.violations.push(format!("{product}: the catalog price became {price}, the operator set {:?}", setup.prices.get(&product)));
        }
    }

    let mut money = Check::new(
        "4. money: per customer initial - charged + refunded = balance; Σ balances + charged - refunded = Σ initial; accounts only for funded customers",
    );
    let mut net_charged: HashMap<String, i64> = HashMap::new();
    let (mut charged, mut refunded) = (0_i64, 0_i64);
    for payment in payments.values() {
        let Some(customer) = payment.customer.filter(|_| payment.charged) else {
            continue;
        };
        charged += payment.amount;
        match payment.status.as_str() {
            "Charged" => *net_charged.entry(customer.to_string()).or_default() += payment.amount,
            _ => refunded += payment.amount,
        }
    }
    for (customer, initial) in &setup.balances {
        money.checked += 1;
        let net = net_charged.get(customer).copied().unwrap_or(0);
        match accounts.get(customer) {
            Some(balance) if initial - net == *balance => {}
            Some(balance) => money.violations.push(format!(
                "customer {customer}: initial {initial} - net charged {net} != balance {balance}"
            )),
            None => money
                .violations
                .push(format!("funded customer {customer} has no account")),
        }
    }
    for (customer, balance) in &accounts {
        if !setup.balances.contains_key(customer) {
            money.violations.push(format!(
                "payment opened an account for {customer}, whom no operator funded (balance {balance})"
            ));
        }
    }
    let initial: i64 = setup.balances.values().sum();
    let balances: i64 = accounts.values().sum();
    money.checked += 1;
    if balances + charged - refunded != initial {
        money.violations.push(format!(
            "Σ balances {balances} + charged {charged} - refunded {refunded} != Σ initial balances {initial}"
        ));
    }

    let mut messaging =
        Check::new("5. every outbox row processed; no legitimate message in any dead-letter queue");
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

    let confirmed = confirmations(order_db, &order_ids).await?;
    Ok(vec![
        terminal,
        nothing_else,
        confirmed,
        stock,
        per_order,
        prices,
        intents,
        money,
        messaging,
        paths,
    ])
}

/// A payment decision as payment-svc stored it.
#[derive(Clone, Debug)]
struct Payment {
    status: String,
    amount: i64,
    /// `None` for a tombstone (a refund that came before any charge).
    customer: Option<uuid::Uuid>,
    /// Whether money moved (a charge, refunded since or not).
    charged: bool,
}

/// Every injected poison message is in a dead-letter queue.
pub fn check_poison(injected: &HashMap<String, u64>, dead_letters: &DeadLetters) -> Check {
    let mut check = Check::new("5b. every injected poison message was dead-lettered");
    let injected: u64 = injected.values().sum();
    check.checked = usize::try_from(injected).unwrap_or(usize::MAX);
    if dead_letters.poison as u64 != injected {
        check.violations.push(format!(
            "{injected} injected, {} found in dead-letter queues",
            dead_letters.poison
        ));
    }
    check
}

/// Every forgery was refused by the broker, or dead-lettered by every subscriber with a sender
/// reason, and none reached a handler (no consumer's inbox holds its id).
pub async fn check_forgeries(
    forgeries: &[Forgery],
    dead_letters: &DeadLetters,
    databases: &HashMap<Svc, DatabaseConnection>,
) -> Result<Check, DbErr> {
    let mut check = judge_forgeries(forgeries, dead_letters);
    let forged_ids: Vec<uuid::Uuid> = forgeries.iter().map(|forgery| forgery.message_id).collect();
    for (svc, db) in databases {
        for row in rows(
            db,
            "SELECT consumer, message_id FROM processed_messages WHERE message_id = ANY($1)",
            vec![forged_ids.clone().into()],
        )
        .await?
        {
            let consumer: String = row.try_get_by_index(0)?;
            let message_id: uuid::Uuid = row.try_get_by_index(1)?;
            check.violations.push(format!(
                "{}'s consumer {consumer} handled forged message {message_id}",
                svc.binary()
            ));
        }
    }
    Ok(check)
}

/// The broker's and the consumers' part of [`check_forgeries`]: what the broker took, every
/// subscriber must have dead-lettered for its sender; a spoofed `user_id` must not have been
/// taken at all; and at least one forgery must have reached the consumers, or nothing was
/// proven.
pub fn judge_forgeries(forgeries: &[Forgery], dead_letters: &DeadLetters) -> Check {
    let mut check = Check::new(
        "5c. every forged message was refused by the broker or dead-lettered for its sender by every subscriber, and changed nothing",
    );
    let mut letters: HashMap<(String, uuid::Uuid), &DeadLetter> = HashMap::new();
    for letter in &dead_letters.forged {
        match letter.message_id {
            Some(message_id) => {
                letters.insert((letter.queue.clone(), message_id), letter);
            }
            None => check.violations.push(format!(
                "a forged dead letter in {} has no message id",
                letter.queue
            )),
        }
    }
    let mut expected = 0;
    for forgery in forgeries {
        check.checked += 1;
        match &forgery.published {
            Published::Accepted if forgery.broker_must_refuse => check.violations.push(format!(
                "the broker accepted {}: user_id can be spoofed",
                forgery.description
            )),
            Published::Accepted => {
                for queue in &forgery.queues {
                    expected += 1;
                    match letters.remove(&(queue.clone(), forgery.message_id)) {
                        Some(letter) if letter.reason.contains("user_id") => {}
                        Some(letter) => check.violations.push(format!(
                            "{} was dead-lettered in {queue}, but not for its sender: {}",
                            forgery.description, letter.reason
                        )),
                        None => check.violations.push(format!(
                            "{} is not in {queue}.dlq: its consumer took it",
                            forgery.description
                        )),
                    }
                }
            }
            // A publish cut off before its confirmation has an unknown fate: the broker may have
            // routed it first. Its copies need not be there, but those that are must have been
            // dead-lettered for their sender.
            Published::Failed(_) => {
                for queue in &forgery.queues {
                    match letters.remove(&(queue.clone(), forgery.message_id)) {
                        Some(letter) if !letter.reason.contains("user_id") => {
                            check.violations.push(format!(
                                "{} was dead-lettered in {queue}, but not for its sender: {}",
                                forgery.description, letter.reason
                            ))
                        }
                        Some(_) | None => {}
                    }
                }
            }
            Published::Refused(_) => {}
        }
    }
    for ((queue, message_id), _) in letters {
        check.violations.push(format!(
            "forged message {message_id} dead-lettered in {queue}, but the broker refused it"
        ));
    }
    if expected == 0 {
        check.violations.push(format!(
            "no forgery reached a consumer ({} attempted): nothing was proven",
            forgeries.len()
        ));
    }
    check
}

/// What the dead-letter queues held at the end.
#[derive(Debug, Default)]
pub struct DeadLetters {
    /// Dead letters in all.
    pub total: usize,
    /// Per queue.
    pub per_queue: BTreeMap<String, usize>,
    /// Injected poison, each case once.
    pub poison: usize,
    /// The marks of the poison found (each case carries its own).
    pub poison_marks: BTreeSet<String>,
    /// Second copies of a poison case (dead-lettered again after a kill between its publish into
    /// the `.dlq` and its acknowledgement: dead-lettering is at least once).
    pub poison_copies: usize,
    /// Injected forgeries.
    pub forged: Vec<DeadLetter>,
    /// Dead letters that were neither, with their queue and reason.
    pub valid: Vec<String>,
}

/// One dead letter.
#[derive(Clone, Debug)]
pub struct DeadLetter {
    /// The queue it was dead-lettered from.
    pub queue: String,
    /// Its message id.
    pub message_id: Option<uuid::Uuid>,
    /// Its `x-dead-letter-reason`.
    pub reason: String,
}

/// Drains every `.dlq` of the run's vhost (every subscription's, and any other the broker
/// lists) and sorts its messages into poison, forgeries and others. Each queue is emptied with
/// `basic.get` until the broker says it is empty: the depths `rabbitmqctl` lists are statistics
/// that may lag behind the last dead letters.
pub async fn drain_dead_letters(
    amqp_url: &str,
    queue_depths: &[(String, u64)],
) -> Result<DeadLetters, lapin::Error> {
    let connection =
        crate::bus::connect_any(amqp_url, lapin::ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    let mut letters = DeadLetters::default();
    let mut queues: BTreeSet<String> = contracts::SUBSCRIPTIONS
        .iter()
        .map(|subscription| format!("{}.dlq", subscription.queue()))
        .collect();
    queues.extend(
        queue_depths
            .iter()
            .filter(|(name, _)| name.ends_with(".dlq"))
            .map(|(name, _)| name.clone()),
    );
    for queue in &queues {
        while let Some(message) = channel
            .basic_get(queue.as_str().into(), BasicGetOptions::default())
            .await?
        {
            let delivery = message.delivery;
            let headers = delivery.properties.headers().clone().unwrap_or_default();
            let reason = match headers
                .inner()
                .get(contracts::envelope::HEADER_DEAD_LETTER_REASON)
            {
                Some(AMQPValue::LongString(text)) => {
                    String::from_utf8_lossy(text.as_bytes()).into_owned()
                }
                _ => "no reason header (dead-lettered by the broker's delivery limit?)".into(),
            };
            // The `.dlq` suffix is the dead-letter queue's; the letter is from the queue before it.
            let source = queue.strip_suffix(".dlq").unwrap_or(queue).to_owned();
            match (
                headers.inner().contains_key(POISON_HEADER),
                headers.inner().contains_key(FORGED_HEADER),
            ) {
                (true, _) => {
                    let mark = headers
                        .inner()
                        .get(POISON_HEADER)
                        .map(|value| format!("{value:?}"));
                    if !letters.poison_marks.insert(mark.unwrap_or_default()) {
                        letters.poison_copies += 1;
                    }
                    letters.poison = letters.poison_marks.len();
                }
                (false, true) => letters.forged.push(DeadLetter {
                    queue: source,
                    message_id: delivery
                        .properties
                        .message_id()
                        .as_ref()
                        .and_then(|id| id.as_str().parse().ok()),
                    reason,
                }),
                (false, false) => letters.valid.push(format!("{queue}: {reason}")),
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    /// A forgery of `PaymentSucceeded` (two subscribers) with id `id`.
    fn forgery(id: u128, published: Published, broker_must_refuse: bool) -> Forgery {
        Forgery {
            description: format!("forgery {id}"),
            sender: "someone".to_owned(),
            message_id: uuid::Uuid::from_u128(id),
            queues: vec![
                "order-svc.PaymentSucceeded".to_owned(),
                "notify-svc.PaymentSucceeded".to_owned(),
            ],
            broker_must_refuse,
            published,
        }
    }

    fn letter(id: u128, queue: &str, reason: &str) -> DeadLetter {
        DeadLetter {
            queue: queue.to_owned(),
            message_id: Some(uuid::Uuid::from_u128(id)),
            reason: reason.to_owned(),
        }
    }

    const SENDER: &str = "PaymentSucceeded has no user_id; only payment-svc may send it";

    /// Judges `forgeries` against the forged `letters` and expects one violation per fragment,
    /// each containing it, in order.
    fn check(forgeries: Vec<Forgery>, letters: Vec<DeadLetter>, expected: &[&str]) {
        let dead_letters = DeadLetters {
            forged: letters,
            ..DeadLetters::default()
        };
        let judged = judge_forgeries(&forgeries, &dead_letters);
        assert_eq!(judged.checked, forgeries.len());
        assert_eq!(
            judged.violations.len(),
            expected.len(),
            "{:?}",
            judged.violations
        );
        for (violation, fragment) in judged.violations.iter().zip(expected) {
            assert!(
                violation.contains(fragment),
                "{violation:?} lacks {fragment:?}"
            );
        }
    }

    #[test]
    fn forgeries_must_be_refused_or_dead_lettered_for_their_sender_everywhere() {
        let refused = || Published::Refused("ACCESS_REFUSED".to_owned());
        let both = |id, reason| {
            vec![
                letter(id, "order-svc.PaymentSucceeded", reason),
                letter(id, "notify-svc.PaymentSucceeded", reason),
            ]
        };
        // Taken by the broker, dead-lettered by both subscribers; a refused one beside it.
        check(
            vec![
                forgery(1, Published::Accepted, false),
                forgery(2, refused(), true),
            ],
            both(1, SENDER),
            &[],
        );
        // One subscriber handled it.
        check(
            vec![forgery(1, Published::Accepted, false)],
            vec![letter(1, "order-svc.PaymentSucceeded", SENDER)],
            &["not in notify-svc.PaymentSucceeded.dlq"],
        );
        // Dead-lettered, but for a reason that says nothing of its sender.
        check(
            vec![forgery(1, Published::Accepted, false)],
            both(1, "payload does not decode"),
            &["not for its sender", "not for its sender"],
        );
        // A spoofed user_id the broker let through.
        check(
            vec![
                forgery(1, Published::Accepted, true),
                forgery(2, Published::Accepted, false),
            ],
            both(2, SENDER),
            &["user_id can be spoofed"],
        );
        // Nothing reached a consumer: nothing was proven.
        check(
            vec![
                forgery(1, refused(), true),
                forgery(2, Published::Failed("connection reset".to_owned()), false),
            ],
            Vec::new(),
            &["nothing was proven"],
        );
        // A forgery cut off before its confirmation may have been routed: its dead letters
        // count for nothing against it, as long as they name the sender.
        check(
            vec![
                forgery(1, Published::Accepted, false),
                forgery(2, Published::Failed("connection reset".to_owned()), false),
            ],
            [
                both(1, SENDER),
                vec![letter(2, "order-svc.PaymentSucceeded", SENDER)],
            ]
            .concat(),
            &[],
        );
        check(
            vec![
                forgery(1, Published::Accepted, false),
                forgery(2, Published::Failed("connection reset".to_owned()), false),
            ],
            [
                both(1, SENDER),
                vec![letter(2, "order-svc.PaymentSucceeded", "handler failed")],
            ]
            .concat(),
            &["not for its sender"],
        );
        // A dead letter of a forgery the broker refused.
        check(
            vec![
                forgery(1, Published::Accepted, false),
                forgery(2, refused(), false),
            ],
            [
                both(1, SENDER),
                vec![letter(2, "order-svc.PaymentSucceeded", SENDER)],
            ]
            .concat(),
            &["the broker refused it"],
        );
    }

    #[test]
    fn poison_is_counted_exactly() {
        for (injected, found, violations) in [(0, 0, 0), (5, 5, 0), (5, 4, 1), (5, 6, 1)] {
            let dead_letters = DeadLetters {
                poison: found,
                ..DeadLetters::default()
            };
            let injected = HashMap::from([("q".to_owned(), injected)]);
            let judged = check_poison(&injected, &dead_letters);
            assert_eq!(judged.violations.len(), violations, "{injected:?} {found}");
        }
    }

    #[test]
    fn reserved_totals_need_every_line_priced() {
        let lines = |lines: &[(&str, i64, Option<i64>)]| -> BTreeMap<String, (i64, Option<i64>)> {
            lines
                .iter()
                .map(|&(product, quantity, price)| (product.to_owned(), (quantity, price)))
                .collect()
        };
        for (held, total) in [
            (
                lines(&[("a", 2, Some(120)), ("b", 1, Some(250))]),
                Some(490),
            ),
            (lines(&[("a", 2, Some(0))]), Some(0)),
            (lines(&[("a", 2, Some(120)), ("b", 1, None)]), None),
            (lines(&[]), None),
            (lines(&[("a", 2, Some(i64::MAX))]), None),
        ] {
            assert_eq!(reserved_total(Some(&held)), total, "{held:?}");
        }
        assert_eq!(reserved_total(None), None);
    }
}
