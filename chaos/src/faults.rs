//! The faults injected while orders flow: service kills (`SIGKILL`, restart after a pause), one
//! payment outage longer than the saga deadline (so that orders are cancelled by their deadline
//! and the charges payment makes when it returns must be refunded), one broker cut (every
//! connection of the run's vhost closed by the broker), one database cut (every backend of the
//! run's databases terminated), duplicates (delivered messages published again) and poison
//! (malformed and unknown messages straight onto every consumer queue).
//!
//! Only the run's own vhost and databases are touched: other tests on the machine are not
//! disturbed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use contracts::SUBSCRIPTIONS;
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable};
use outbox::entity::outbox_message;
use outbox::wire;
use sea_orm::{DatabaseConnection, DbBackend, EntityTrait, Statement};
use testkit::bus::TestBus;
use testkit::system::{Svc, System, wait_until_ready};
use tokio::sync::Mutex;

use crate::rng::Rng;

/// Header marking a message the harness injected as poison; it survives dead-lettering, so the
/// invariants can tell injected dead letters from valid ones.
pub const POISON_HEADER: &str = "x-chaos-poison";

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
    /// Delivered messages published again.
    pub duplicates: u64,
    /// Poison messages per queue.
    pub poison: HashMap<String, u64>,
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    Kill,
    Outage,
    BrokerCut,
    DatabaseCut,
    Duplicates,
    Poison { huge: bool },
}

/// A schedule over `run_time`: kills at random moments, one payment outage, one broker and one
/// database cut, two rounds of poison, and duplicates every two seconds.
fn schedule(rng: &mut Rng, run_time: Duration, kills: u64) -> Vec<(Duration, Fault)> {
    let at = |fraction: f64| run_time.mul_f64(fraction);
    let mut plan = Vec::new();
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
    databases: HashMap<Svc, DatabaseConnection>,
    run_time: Duration,
    kills: u64,
    outage: Duration,
    mut rng: Rng,
) -> FaultLog {
    let mut log = FaultLog::default();
    let mut restarts = tokio::task::JoinSet::new();
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
                restarts.spawn(restart_later(Arc::clone(&system), svc, replica, pause));
            }
            Fault::Outage => {
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
                let amqp_url = system.lock().await.vhost().url().to_owned();
                let republished = republish_delivered(&amqp_url, &databases).await;
                log.duplicates += republished;
            }
            Fault::Poison { huge } => {
                let amqp_url = system.lock().await.vhost().url().to_owned();
                let injected = poison_every_queue(&amqp_url, huge).await;
                let total: u64 = injected.values().sum();
                log.events.push(format!("{elapsed:6.1}s poison: {total} malformed or unknown messages onto every consumer queue"));
                for (queue, count) in injected {
                    *log.poison.entry(queue).or_default() += count;
                }
            }
        }
    }
    while let Some(restarted) = restarts.join_next().await {
        match restarted {
            Ok((_, _, true)) => {}
            Ok((svc, replica, false)) => log
                .events
                .push(format!("{} #{replica} did not come back", svc.binary())),
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

/// Starts a killed instance again after `pause`; says whether it became ready.
async fn restart_later(
    system: Arc<Mutex<System>>,
    svc: Svc,
    replica: usize,
    pause: Duration,
) -> (Svc, usize, bool) {
    tokio::time::sleep(pause).await;
    let url = {
        let mut running = system.lock().await;
        running.spawn_instance(svc, replica);
        running.instance_url(svc, replica)
    };
    let ready = wait_until_ready(&url, Duration::from_secs(90)).await;
    (svc, replica, ready)
}

/// Publishes up to five already-delivered messages of each service again, as a broker
/// redelivery or a relay crash would.
async fn republish_delivered(amqp_url: &str, databases: &HashMap<Svc, DatabaseConnection>) -> u64 {
    let bus = TestBus::connect(amqp_url, &[]).await;
    let mut republished = 0;
    for db in databases.values() {
        let rows = outbox_message::Entity::find()
            .from_raw_sql(Statement::from_string(
                DbBackend::Postgres,
                "SELECT * FROM outbox_messages WHERE processed_at IS NOT NULL ORDER BY random() LIMIT 5",
            ))
            .all(db)
            .await
            .unwrap_or_default();
        for row in rows {
            let outgoing = wire::outgoing(&row);
            bus.publish_raw(
                contracts::EXCHANGE,
                &outgoing.routing_key,
                outgoing.properties,
                &outgoing.body,
            )
            .await;
            republished += 1;
        }
    }
    republished
}

/// Poison cases: properties and body, each of them undecodable for a different reason.
fn poison_cases(message_type: &str, huge: bool) -> Vec<(BasicProperties, Vec<u8>)> {
    let mut headers = FieldTable::default();
    headers.insert(POISON_HEADER.into(), AMQPValue::Boolean(true));
    let order = uuid::Uuid::now_v7().to_string();
    let valid = |kind: &str| {
        BasicProperties::default()
            .with_message_id(uuid::Uuid::now_v7().to_string().into())
            .with_type(kind.into())
            .with_correlation_id(order.as_str().into())
            .with_headers(headers.clone())
    };
    let mut cases = vec![
        (valid(message_type), b"{not json at all".to_vec()),
        (valid("LaunchTheRockets"), b"{}".to_vec()),
        (
            valid(message_type),
            br#"{"order_id": 42, "reason": false, "total": "lots"}"#.to_vec(),
        ),
        (
            BasicProperties::default().with_headers(headers.clone()),
            format!(r#"{{"order_id": "{order}"}}"#).into_bytes(),
        ),
    ];
    if huge {
        cases.push((valid(message_type), vec![b'['; 10 * 1024 * 1024]));
    }
    cases
}

/// Publishes the poison cases straight onto every consumer queue (one 10 MiB body in all when
/// `huge`). Returns how many went to each queue.
async fn poison_every_queue(amqp_url: &str, huge: bool) -> HashMap<String, u64> {
    let bus = TestBus::connect(amqp_url, &[]).await;
    let mut injected = HashMap::new();
    for (index, subscription) in SUBSCRIPTIONS.iter().enumerate() {
        let queue = subscription.queue();
        for (properties, body) in poison_cases(subscription.message_type.name(), huge && index == 0)
        {
            bus.publish_raw("", &queue, properties, &body).await;
            *injected.entry(queue.clone()).or_default() += 1;
        }
    }
    injected
}
