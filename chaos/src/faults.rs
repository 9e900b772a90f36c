//! The faults injected while orders flow: service kills (`SIGKILL`, restart after a pause), one
//! payment outage longer than the saga deadline (so that orders are cancelled by their deadline
//! and the charges payment makes when it returns must be refunded), one broker cut (every
//! connection of the run's vhost closed by the broker), one database cut (every backend of the
//! run's databases terminated), duplicates (delivered messages published again, by the service
//! that produced them, as a redelivery or a relay crash would), poison (malformed and unknown
//! messages straight onto every consumer queue) and forgeries (well-formed messages of a type
//! the sender does not produce, for orders in flight: the broker must refuse them or every
//! consumer must dead-letter them before its handler sees them).
//!
//! Only the run's own vhost and databases are touched: other tests on the machine are not
//! disturbed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use contracts::{
    CustomerId, EXCHANGE, Envelope, MessageType, Money, OrderId, PaymentId, PaymentSucceeded,
    PricedLine, ProductId, Quantity, SUBSCRIPTIONS, Service, StockReserved,
};
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use outbox::entity::outbox_message;
use outbox::wire;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, Statement};
use testkit::system::{Svc, System, wait_until_ready};
use tokio::sync::Mutex;

use crate::bus::{BrokerAccess, Published, Publisher};
use crate::rng::Rng;
use crate::world::PRODUCTS;

/// Header marking a message the harness injected as poison; it survives dead-lettering, so the
/// invariants can tell injected dead letters from valid ones.
pub const POISON_HEADER: &str = "x-chaos-poison";

/// Header marking a forged message, for the same reason.
pub const FORGED_HEADER: &str = "x-chaos-forged";

/// One forged message and what became of it at the broker.
#[derive(Clone, Debug)]
pub struct Forgery {
    /// What was forged, for whom, by whom and how, for the report.
    pub description: String,
    /// Who sent it and how (without the order), for the report's summary.
    pub sender: String,
    /// Its message id (consumers record handled ids in their inbox).
    pub message_id: uuid::Uuid,
    /// The queues subscribed to its type: each must dead-letter a copy if the broker took it.
    pub queues: Vec<String>,
    /// Whether the broker itself must refuse it (a `user_id` that is not the sender's own).
    pub broker_must_refuse: bool,
    /// What the broker said.
    pub published: Published,
}

/// What was injected.
#[derive(Debug, Default)]
pub struct FaultLog {
    /// Human-readable events, in order.
    pub events: Vec<String>,
    /// Instances killed.
    pub kills: u64,
    /// Broker cuts.
    pub broker_cuts: u64,
    /// Database cuts.
    pub database_cuts: u64,
    /// Outages of every payment-svc replica past the saga deadline.
    pub outages: u64,
    /// Database outages past the consumers' whole retry budget.
    pub database_outages: u64,
    /// Full restarts of the broker (every node of it).
    pub broker_restarts: u64,
    /// Nodes of a cluster stopped and brought back.
    pub nodes_stopped: u64,
    /// Broker memory alarms raised and lifted.
    pub broker_alarms: u64,
    /// Crash loops of one service (and the kills in them).
    pub crash_loops: u64,
    /// Delivered messages published again.
    pub duplicates: u64,
    /// Poison messages per queue.
    pub poison: HashMap<String, u64>,
    /// Forged messages, refused or not.
    pub forgeries: Vec<Forgery>,
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    Kill,
    Outage,
    BrokerCut,
    DatabaseCut,
    Duplicates,
    Poison { huge: bool },
    Forgeries,
    DatabaseOutage,
    BrokerRestart,
    BrokerAlarm,
    CrashLoop,
}

/// How long inventory's database stays away in a [`Fault::DatabaseOutage`]: longer than a
/// consumer's whole retry budget (delays of 1, 5 and 30 s), so that a consumer that blamed the
/// messages for it would dead-letter them.
pub const DATABASE_OUTAGE: Duration = Duration::from_secs(40);

/// How long the broker's memory alarm lasts in a [`Fault::BrokerAlarm`].
pub const BROKER_ALARM: Duration = Duration::from_secs(8);

/// How long a stopped cluster node stays away.
pub const NODE_DOWN: Duration = Duration::from_secs(15);

/// How many times a [`Fault::CrashLoop`] kills its service, each soon after it started again.
pub const CRASH_LOOP_KILLS: u32 = 10;

/// A schedule over `run_time`: kills at random moments, one payment outage, one broker and one
/// database cut, two rounds of poison, two rounds of forgeries, duplicates every two seconds —
/// and the faults production brings: a broker memory alarm, inventory's database away past the
/// retry budget, a crash loop of order-svc, and a full broker restart (with a broker of the
/// run's own) or its busiest node stopped (with a cluster).
fn schedule(rng: &mut Rng, run_time: Duration, kills: u64) -> Vec<(Duration, Fault)> {
    let at = |fraction: f64| run_time.mul_f64(fraction);
    let mut plan = vec![
        (at(0.15), Fault::BrokerAlarm),
        (at(0.25), Fault::DatabaseOutage),
        (at(0.45), Fault::CrashLoop),
        (at(0.6), Fault::BrokerRestart),
    ];
    for _ in 0..kills {
        plan.push((
            at(0.1 + 0.8 * (rng.below(1000) as f64 / 1000.0)),
            Fault::Kill,
        ));
    }
    plan.push((at(0.4), Fault::Outage));
    plan.push((
        at(0.3 + 0.2 * (rng.below(1000) as f64 / 1000.0)),
        Fault::BrokerCut,
    ));
    plan.push((
        at(0.55 + 0.2 * (rng.below(1000) as f64 / 1000.0)),
        Fault::DatabaseCut,
    ));
    plan.push((at(0.2), Fault::Poison { huge: true }));
    plan.push((at(0.7), Fault::Poison { huge: false }));
    plan.push((at(0.35), Fault::Forgeries));
    plan.push((at(0.8), Fault::Forgeries));
    let mut moment = Duration::from_secs(2);
    while moment < run_time {
        plan.push((moment, Fault::Duplicates));
        moment += Duration::from_secs(2);
    }
    plan.sort_by_key(|(moment, _)| *moment);
    plan
}

/// Injects faults for `run_time`, then makes sure every instance runs again. The payment
/// outage lasts `outage`, which the caller makes longer than the saga deadline.
pub async fn inject(
    system: Arc<Mutex<System>>,
    broker: BrokerAccess,
    databases: HashMap<Svc, DatabaseConnection>,
    run_time: Duration,
    kills: u64,
    outage: Duration,
    mut rng: Rng,
) -> FaultLog {
    let mut log = FaultLog::default();
    let mut restarts = tokio::task::JoinSet::new();
    let payment_down_until = Arc::new(std::sync::Mutex::new(None));
    let started = tokio::time::Instant::now();
    for (moment, fault) in schedule(&mut rng, run_time, kills) {
        tokio::time::sleep_until(started + moment).await;
        let elapsed = started.elapsed().as_secs_f64();
        match fault {
            Fault::Kill => {
                let mut running = system.lock().await;
                let instances: Vec<(Svc, usize)> = Svc::ALL
                    .iter()
                    .flat_map(|&svc| (0..running.replicas(svc)).map(move |replica| (svc, replica)))
                    .filter(|&(svc, replica)| running.is_running(svc, replica))
                    .collect();
                let Some(&(svc, replica)) = rng.pick(&instances) else {
                    continue;
                };
                running.kill(svc, replica).await;
                drop(running);
                let pause = Duration::from_millis(rng.between(300, 3_000));
                log.events.push(format!(
                    "{elapsed:6.1}s SIGKILL {} #{replica}, restart after {pause:?}",
                    svc.binary()
                ));
                log.kills += 1;
                // The restart runs beside the schedule, so that other faults still come on time.
                restarts.spawn(restart_later(
                    Arc::clone(&system),
                    svc,
                    replica,
                    pause,
                    Arc::clone(&payment_down_until),
                ));
            }
            Fault::Outage => {
                *payment_down_until
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Some(tokio::time::Instant::now() + outage);
                let mut running = system.lock().await;
                let replicas = running.replicas(Svc::Payment);
                for replica in 0..replicas {
                    if running.is_running(Svc::Payment, replica) {
                        running.kill(Svc::Payment, replica).await;
                    }
                }
                drop(running);
                log.events.push(format!(
                    "{elapsed:6.1}s outage: every payment-svc replica SIGKILLed, back after {outage:?} (past the saga deadline)"
                ));
                log.outages += 1;
                for replica in 0..replicas {
                    restarts.spawn(restart_later(
                        Arc::clone(&system),
                        Svc::Payment,
                        replica,
                        outage,
                        Arc::clone(&payment_down_until),
                    ));
                }
            }
            Fault::BrokerCut => {
                let closed = system.lock().await.vhost().close_connections();
                log.events.push(format!(
                    "{elapsed:6.1}s broker cut: {closed} connections closed by the broker"
                ));
                log.broker_cuts += 1;
            }
            Fault::DatabaseCut => {
                let system = system.lock().await;
                for svc in [Svc::Order, Svc::Inventory, Svc::Payment] {
                    system.database(svc).terminate_connections().await;
                }
                log.events.push(format!(
                    "{elapsed:6.1}s database cut: every backend of the three databases terminated"
                ));
                log.database_cuts += 1;
            }
            Fault::Duplicates => {
                let (republished, failures) = republish_delivered(&broker, &databases).await;
                log.duplicates += republished;
                if let Some(failure) = failures.first() {
                    log.events.push(format!(
                        "{elapsed:6.1}s {} duplicates not published, e.g. {failure}",
                        failures.len()
                    ));
                }
            }
            Fault::Poison { huge } => {
                let injected = poison_every_queue(&broker.admin_url, huge).await;
                let total: u64 = injected.values().sum();
                log.events.push(format!("{elapsed:6.1}s poison: {total} malformed or unknown messages onto every consumer queue"));
                for (queue, count) in injected {
                    *log.poison.entry(queue).or_default() += count;
                }
            }
            Fault::DatabaseOutage => {
                system.lock().await.take_database_away(Svc::Inventory).await;
                log.events.push(format!(
                    "{elapsed:6.1}s database outage: inventory-svc's database refuses every connection for {DATABASE_OUTAGE:?} (past the consumers' retry budget)"
                ));
                log.database_outages += 1;
                let system = Arc::clone(&system);
                restarts.spawn(async move {
                    tokio::time::sleep(DATABASE_OUTAGE).await;
                    system.lock().await.give_database_back(Svc::Inventory).await;
                    None
                });
            }
            Fault::BrokerRestart => {
                // Beside the schedule: a restart takes seconds, a stopped node is away for
                // longer, and other faults must still come on time.
                let clustered = system.lock().await.broker_cluster().is_some();
                let event = match clustered {
                    true => {
                        log.nodes_stopped += 1;
                        format!(
                            "the cluster node leading most queues stopped for {NODE_DOWN:?}, then started again"
                        )
                    }
                    false => {
                        log.broker_restarts += 1;
                        "broker restart: the node stopped and started again".to_owned()
                    }
                };
                log.events.push(format!("{elapsed:6.1}s {event}"));
                restarts.spawn(restart_broker(Arc::clone(&system)));
            }
            Fault::BrokerAlarm => {
                let raised = tokio::task::block_in_place(|| {
                    let mut running = system.blocking_lock();
                    broker_alarm(&mut running, true)
                });
                if raised {
                    log.events.push(format!(
                        "{elapsed:6.1}s broker memory alarm: publishing blocked for {BROKER_ALARM:?}"
                    ));
                    log.broker_alarms += 1;
                    let system = Arc::clone(&system);
                    restarts.spawn(async move {
                        tokio::time::sleep(BROKER_ALARM).await;
                        tokio::task::block_in_place(|| {
                            broker_alarm(&mut system.blocking_lock(), false);
                        });
                        None
                    });
                }
            }
            Fault::CrashLoop => {
                log.events.push(format!(
                    "{elapsed:6.1}s crash loop: order-svc #0 SIGKILLed {CRASH_LOOP_KILLS} times, each 0.5-2 s after it started again"
                ));
                log.crash_loops += 1;
                log.kills += u64::from(CRASH_LOOP_KILLS);
                restarts.spawn(crash_loop(
                    Arc::clone(&system),
                    Svc::Order,
                    Rng::new(rng.next_u64()),
                ));
            }
            Fault::Forgeries => {
                let forgeries = forge(&broker, &databases[&Svc::Order], &mut rng).await;
                let accepted = forgeries
                    .iter()
                    .filter(|forgery| forgery.published == Published::Accepted)
                    .count();
                let refused = forgeries
                    .iter()
                    .filter(|forgery| matches!(forgery.published, Published::Refused(_)))
                    .count();
                log.events.push(format!(
                    "{elapsed:6.1}s forgeries: {} forged messages, {accepted} taken by the broker (consumers must dead-letter them), {refused} refused by it",
                    forgeries.len()
                ));
                log.forgeries.extend(forgeries);
            }
        }
    }
    while let Some(restarted) = restarts.join_next().await {
        match restarted {
            Ok(None) => {}
            Ok(Some(failure)) => log.events.push(failure),
            Err(error) => log.events.push(format!("a restart failed: {error}")),
        }
    }
    log.events.push(format!(
        "{:6.1}s faults stop, every instance running again ({} duplicates published in all)",
        started.elapsed().as_secs_f64(),
        log.duplicates
    ));
    log
}

/// Restarts the broker: a node of the run's own is stopped and started again (every message
/// it held must survive); in a cluster, the node that leads most of the run's queues is stopped
/// for [`NODE_DOWN`], then started again (its queues elect new leaders meanwhile). Nothing with
/// the shared broker. `Some` says what went wrong.
async fn restart_broker(system: Arc<Mutex<System>>) -> Option<String> {
    let mut running = system.lock().await;
    let vhost = running.vhost().name().to_owned();
    if let Some(node) = running.broker_node() {
        tokio::task::block_in_place(|| node.restart());
        return None;
    }
    let cluster = running.broker_cluster()?;
    let busiest = tokio::task::block_in_place(|| busiest_node(cluster, &vhost));
    tokio::task::block_in_place(|| cluster.stop_node(busiest));
    drop(running);
    tokio::time::sleep(NODE_DOWN).await;
    let mut running = system.lock().await;
    let cluster = running.broker_cluster()?;
    tokio::task::block_in_place(|| cluster.start_node(busiest));
    None
}

/// The node leading most of the vhost's consumer queues.
fn busiest_node(cluster: &testkit::rabbit::RabbitCluster, vhost: &str) -> usize {
    let mut leads = vec![0_usize; cluster.size()];
    for subscription in SUBSCRIPTIONS {
        let leader = cluster.leader_of(vhost, &subscription.queue());
        if let Some(count) = leads.get_mut(leader) {
            *count += 1;
        }
    }
    leads
        .iter()
        .enumerate()
        .max_by_key(|(_, count)| **count)
        .map(|(node, _)| node)
        .unwrap_or(0)
}

/// Raises (or lifts) a memory alarm on the run's own broker — in a cluster on its first node,
/// which blocks publishing on every node; `false` when the run uses the shared broker, which no
/// fault may block.
fn broker_alarm(system: &mut System, on: bool) -> bool {
    if let Some(node) = system.broker_node() {
        node.set_memory_alarm(on);
        return true;
    }
    match system.broker_cluster() {
        Some(cluster) => {
            cluster.node(0).set_memory_alarm(on);
            true
        }
        None => false,
    }
}

/// Kills `svc` #0 [`CRASH_LOOP_KILLS`] times, each time 0.5–2 s after starting it again (often
/// before it is even ready, with its queues' backlog prefetched), then lets it run.
async fn crash_loop(system: Arc<Mutex<System>>, svc: Svc, mut rng: Rng) -> Option<String> {
    for _ in 0..CRASH_LOOP_KILLS {
        let mut running = system.lock().await;
        if running.is_running(svc, 0) {
            running.kill(svc, 0).await;
        }
        running.spawn_instance(svc, 0);
        drop(running);
        tokio::time::sleep(Duration::from_millis(rng.between(500, 2_000))).await;
    }
    let url = {
        let mut running = system.lock().await;
        if running.is_running(svc, 0) {
            running.kill(svc, 0).await;
        }
        running.spawn_instance(svc, 0);
        running.instance_url(svc, 0)
    };
    ready_or_report(svc, 0, &url).await
}

/// `None` once the instance at `url` is ready; after 90 s, what did not come back.
async fn ready_or_report(svc: Svc, replica: usize, url: &str) -> Option<String> {
    match wait_until_ready(url, Duration::from_secs(90)).await {
        true => None,
        false => Some(format!("{} #{replica} did not come back", svc.binary())),
    }
}

/// Starts a killed instance again after `pause`; `Some` if it did not become ready.
async fn restart_later(
    system: Arc<Mutex<System>>,
    svc: Svc,
    replica: usize,
    pause: Duration,
    payment_down_until: Arc<std::sync::Mutex<Option<tokio::time::Instant>>>,
) -> Option<String> {
    tokio::time::sleep(pause).await;
    // A replica killed just before the payment outage must not come back during it: that would
    // end the outage early (found by a long run whose outage lasted 3 s instead of 18 s).
    let outage_ends = *payment_down_until
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let (Svc::Payment, Some(until)) = (svc, outage_ends) {
        tokio::time::sleep_until(until).await;
    }
    let url = {
        let mut running = system.lock().await;
        running.spawn_instance(svc, replica);
        running.instance_url(svc, replica)
    };
    ready_or_report(svc, replica, &url).await
}

/// Publishes up to five already-delivered messages of each service again, as a broker
/// redelivery or a relay crash would: with the producing service's own user and `user_id`, so
/// that consumers accept them as the real thing and must deduplicate them. Returns how many were
/// published and why others were not.
async fn republish_delivered(
    broker: &BrokerAccess,
    databases: &HashMap<Svc, DatabaseConnection>,
) -> (u64, Vec<String>) {
    let (mut republished, mut failures) = (0, Vec::new());
    for (svc, db) in databases {
        let rows = outbox_message::Entity::find()
            .from_raw_sql(Statement::from_string(
                DbBackend::Postgres,
                "SELECT * FROM outbox_messages WHERE processed_at IS NOT NULL ORDER BY random() LIMIT 5",
            ))
            .all(db)
            .await
            .unwrap_or_default();
        if rows.is_empty() {
            continue;
        }
        // A service's outbox holds only the types it produces; its user may publish those.
        let Some((url, user)) = broker.service(svc.service()) else {
            continue;
        };
        let publisher = match Publisher::connect(url, "chaos duplicates").await {
            Ok(publisher) => publisher,
            Err(error) => {
                failures.push(format!("{} could not connect: {error}", svc.binary()));
                continue;
            }
        };
        for row in rows {
            let outgoing = wire::outgoing(&outbox::NewMessage::from(&row));
            let properties = outgoing.properties.with_user_id(ShortString::from(user));
            match publisher
                .publish(EXCHANGE, &outgoing.routing_key, properties, &outgoing.body)
                .await
            {
                Published::Accepted => republished += 1,
                Published::Refused(reason) | Published::Failed(reason) => {
                    failures.push(format!("{} as {user}: {reason}", outgoing.routing_key));
                    break;
                }
            }
        }
        publisher.close().await;
    }
    (republished, failures)
}

/// Poison cases: properties and body, each of them undecodable for a different reason.
fn poison_cases(message_type: &str, huge: bool) -> Vec<(BasicProperties, Vec<u8>)> {
    // Each case is marked with an id of its own: a dead letter duplicated by a kill between
    // its publish into the `.dlq` and its acknowledgement is then counted once.
    let marked = || {
        let mut headers = FieldTable::default();
        headers.insert(
            POISON_HEADER.into(),
            AMQPValue::LongString(uuid::Uuid::now_v7().to_string().into()),
        );
        headers
    };
    let order = uuid::Uuid::now_v7().to_string();
    let valid = |kind: &str| {
        BasicProperties::default()
            .with_message_id(uuid::Uuid::now_v7().to_string().into())
            .with_type(kind.into())
            .with_correlation_id(order.as_str().into())
            .with_headers(marked())
    };
    let mut cases = vec![
        (valid(message_type), b"{not json at all".to_vec()),
        (valid("LaunchTheRockets"), b"{}".to_vec()),
        (
            valid(message_type),
            br#"{"order_id": 42, "reason": false, "total": "lots"}"#.to_vec(),
        ),
        (
            BasicProperties::default().with_headers(marked()),
            format!(r#"{{"order_id": "{order}"}}"#).into_bytes(),
        ),
    ];
    if huge {
        cases.push((valid(message_type), vec![b'['; 10 * 1024 * 1024]));
    }
    cases
}

/// Publishes the poison cases straight onto every consumer queue as the administrator (one
/// 10 MiB body in all when `huge`). Returns how many went to each queue.
async fn poison_every_queue(admin_url: &str, huge: bool) -> HashMap<String, u64> {
    let mut injected = HashMap::new();
    let Ok(publisher) = Publisher::connect(admin_url, "chaos poison").await else {
        return injected;
    };
    for (index, subscription) in SUBSCRIPTIONS.iter().enumerate() {
        let queue = subscription.queue();
        for (properties, body) in poison_cases(subscription.message_type.name(), huge && index == 0)
        {
            if publisher.publish("", &queue, properties, &body).await == Published::Accepted {
                *injected.entry(queue.clone()).or_default() += 1;
            }
        }
    }
    publisher.close().await;
    injected
}

/// The queues subscribed to `message_type`.
fn subscribers(message_type: MessageType) -> Vec<String> {
    SUBSCRIPTIONS
        .iter()
        .filter(|subscription| subscription.message_type == message_type)
        .map(|subscription| subscription.queue())
        .collect()
}

/// Up to three orders to forge messages for, with their customers: orders in flight (`Pending`
/// or `Reserved`), the targets a forger would pick since a forged answer could move them; else
/// any orders (a forged payment for a cancelled order would be refunded); else, before any
/// order exists, an order nobody placed. The database may have just been cut (the harness's own
/// connections too), so each query is tried a few times.
async fn forgery_targets(db: &DatabaseConnection, rng: &mut Rng) -> Vec<(uuid::Uuid, uuid::Uuid)> {
    const QUERIES: [&str; 2] = [
        "SELECT o.id, o.customer_id FROM orders o
         JOIN saga_instances s ON s.saga = 'OrderSaga' AND s.id = o.id
         WHERE s.state IN ('Pending', 'Reserved') ORDER BY random() LIMIT 3",
        "SELECT id, customer_id FROM orders ORDER BY random() LIMIT 3",
    ];
    for sql in QUERIES {
        for _ in 0..5 {
            let Ok(rows) = db
                .query_all_raw(Statement::from_string(DbBackend::Postgres, sql))
                .await
            else {
                tokio::time::sleep(Duration::from_millis(300)).await;
                continue;
            };
            let targets: Vec<_> = rows
                .iter()
                .filter_map(|row| {
                    Some((row.try_get_by_index(0).ok()?, row.try_get_by_index(1).ok()?))
                })
                .collect();
            if !targets.is_empty() {
                return targets;
            }
            break;
        }
    }
    let mut id = || uuid::Uuid::from_u64_pair(rng.next_u64(), rng.next_u64());
    vec![(id(), id())]
}

/// The forged messages for one order: a `PaymentSucceeded` of nothing (which would commit the
/// goods without a charge) and a `StockReserved` at a price of 0 (which would have payment
/// charge nothing), neither sent by its producer. (Built from constants that are valid, so none
/// is ever left out.)
fn forged_messages(order: uuid::Uuid, customer: uuid::Uuid) -> Vec<Envelope> {
    let (order_id, customer_id) = (OrderId::from(order), CustomerId::from(customer));
    let paid = PaymentSucceeded {
        order_id,
        customer_id,
        payment_id: PaymentId::generate(),
        amount: Money::ZERO,
    };
    let free = match (ProductId::new(PRODUCTS[0].id), Quantity::new(1)) {
        (Ok(product_id), Ok(quantity)) => {
            let line = PricedLine {
                product_id,
                quantity,
                unit_price: Money::ZERO,
            };
            StockReserved::new(order_id, customer_id, vec![line]).ok()
        }
        _ => None,
    };
    let paid = Envelope::new(&paid, None).ok();
    let free = free.and_then(|reserved| Envelope::new(&reserved, None).ok());
    [paid, free].into_iter().flatten().collect()
}

/// Publishes forged messages for orders in flight, each on a connection of its own (a refusal
/// closes the channel): as the administrator with its own `user_id`, without any `user_id`,
/// claiming the producer's `user_id` on the administrator's connection (the broker must refuse
/// it), and as a service that does not produce the type (inventory for payments, notify for
/// reservations: refused by the broker's topic permissions, or dead-lettered by consumers).
async fn forge(
    broker: &BrokerAccess,
    order_db: &DatabaseConnection,
    rng: &mut Rng,
) -> Vec<Forgery> {
    let admin_user = broker.admin_user();
    let mut forgeries = Vec::new();
    for (order, customer) in forgery_targets(order_db, rng).await {
        for envelope in forged_messages(order, customer) {
            let message_type = envelope.message_type;
            let producer = message_type.producer();
            let Some((_, producer_user)) = broker.service(producer) else {
                continue;
            };
            let impostor = match message_type {
                MessageType::PaymentSucceeded => Service::Inventory,
                _ => Service::Notify,
            };
            let Some((impostor_url, impostor_user)) = broker.service(impostor) else {
                continue;
            };
            // (who, url, user_id, whether the broker itself must refuse it)
            let senders: [(String, &str, Option<&str>, bool); 4] = [
                (
                    format!("the administrator ({admin_user})"),
                    broker.admin_url.as_str(),
                    Some(admin_user.as_str()),
                    false,
                ),
                (
                    "the administrator without user_id".to_owned(),
                    broker.admin_url.as_str(),
                    None,
                    false,
                ),
                (
                    format!("the administrator claiming user_id {producer_user}"),
                    broker.admin_url.as_str(),
                    Some(producer_user),
                    true,
                ),
                (
                    format!("{impostor} ({impostor_user})"),
                    impostor_url,
                    Some(impostor_user),
                    false,
                ),
            ];
            // Every sender every time: each is a different way in, and a run must try them all.
            for (who, url, user_id, broker_must_refuse) in &senders {
                let mut envelope = envelope.clone();
                envelope.message_id = contracts::MessageId::generate();
                forgeries
                    .push(publish_forged(&envelope, who, url, *user_id, *broker_must_refuse).await);
            }
        }
    }
    forgeries
}

/// Publishes `envelope`, marked with [`FORGED_HEADER`], on a new connection to `url` with
/// `user_id`, and records what the broker said.
async fn publish_forged(
    envelope: &Envelope,
    who: &str,
    url: &str,
    user_id: Option<&str>,
    broker_must_refuse: bool,
) -> Forgery {
    let outgoing = wire::outgoing(&outbox::NewMessage::from(envelope));
    let mut properties = wire::with_headers(
        &outgoing.properties,
        &[(FORGED_HEADER, AMQPValue::Boolean(true))],
    );
    if let Some(user_id) = user_id {
        properties = properties.with_user_id(ShortString::from(user_id));
    }
    let published = match Publisher::connect(url, "chaos forger").await {
        Ok(publisher) => {
            let published = publisher
                .publish(EXCHANGE, &outgoing.routing_key, properties, &outgoing.body)
                .await;
            publisher.close().await;
            published
        }
        Err(error) => Published::Failed(format!("could not connect: {error}")),
    };
    Forgery {
        description: format!(
            "{} for order {} from {who}",
            envelope.message_type, envelope.correlation_id
        ),
        sender: format!("{} from {who}", envelope.message_type),
        message_id: envelope.message_id.as_uuid(),
        queues: subscribers(envelope.message_type),
        broker_must_refuse,
        published,
    }
}
