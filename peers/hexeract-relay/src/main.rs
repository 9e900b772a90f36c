//! The peer benchmark of saga-rs's outbox relay: hexeract 0.6's transactional outbox over
//! PostgreSQL, relayed to RabbitMQ through hexeract's RabbitMQ bus, measured the way
//! `outbox/benches/relay.rs` measures ours ("Relay throughput").
//!
//! Each case runs in a fresh database and a fresh vhost on the same servers as our bench:
//! a backlog of committed outbox rows (enqueued through hexeract's `PgOutboxPublisher` in
//! transactions of 1,000) is drained by hexeract's outbox worker, whose handler publishes each
//! row through hexeract's `RabbitMqTransport` (persistent, mandatory, publisher confirm awaited)
//! to a durable topic exchange bound to a durable quorum queue. The clock runs from the workers'
//! start until the database holds no undelivered row.
//!
//! The Markdown rows go to stdout; settings, payload size and checks go to stderr.
//!
//! Environment: `PEER_BENCH_MESSAGES` (default 20000, rounded up to a multiple of 1,000),
//! `PEER_BENCH_CASES` (comma-separated subset of `default,tuned,scaled`; default all),
//! `PEER_BENCH_WORKERS` (workers of the `scaled` case, default 8), and the servers as testkit
//! reads them: `TESTKIT_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432`, a
//! superuser), `TESTKIT_AMQP_URL` (default `amqp://guest:guest@127.0.0.1:5672`, an
//! administrator) and `TESTKIT_RABBITMQCTL` (the `rabbitmqctl` command, default `rabbitmqctl`).

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use hexeract::bus::{Exchange, ExchangeKind, RawBusPublish};
use hexeract::bus_rabbitmq::RabbitMqTransport;
use hexeract::core::HandlerContext;
use hexeract::outbox::{
    ErasedHandler, Event, Handler, OutboxError, OutboxPublisher, OutboxWorker, OutboxWorkerConfig,
    TypedHandler,
};
use hexeract::outbox_sql::{PgOutboxPublisher, PgOutboxStore};
use lapin::options::{QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The same exchange, routing key and queue as our relay's `CommitStock` publishes.
const EXCHANGE: &str = "saga.events";
const ROUTING_KEY: &str = "CommitStock";
const QUEUE: &str = "inventory-svc.CommitStock";
const TABLE: &str = "outbox";
/// Rows per enqueue transaction, as in our bench.
const ENQUEUE_TRANSACTION: u64 = 1_000;
/// The body our relay publishes for a `CommitStock`: `{"order_id":"<uuid>"}`.
const OUR_BODY_BYTES: usize = 51;
/// A run that delivers nothing for this long has failed.
const STALL: Duration = Duration::from_secs(60);

/// The same message as ours, serialised the same way: its AMQP body is the payload's JSON.
#[derive(Debug, Serialize, Deserialize)]
struct CommitStock {
    order_id: Uuid,
}

impl Event for CommitStock {
    const EVENT_TYPE: &'static str = "CommitStock";
}

/// The outbox handler that makes hexeract's worker a relay: it publishes the row through
/// hexeract's RabbitMQ transport and returns once the broker confirmed it. The published
/// `message_id` is the outbox row's `event_id` (stable across retries, as ours), hence
/// `publish_raw` rather than `Transport::publish`, which mints a new id per attempt.
struct Relay {
    transport: Arc<RabbitMqTransport>,
    published: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    /// Time spent in `publish_raw` (publish and confirm), summed over rows, in nanoseconds.
    publishing: Arc<AtomicU64>,
}

impl Handler<CommitStock> for Relay {
    type Error = OutboxError;

    async fn handle(&self, event: CommitStock, ctx: &HandlerContext) -> Result<(), OutboxError> {
        let body = serde_json::to_vec(&event)?;
        let started = Instant::now();
        let outcome = self
            .transport
            .publish_raw(
                ROUTING_KEY,
                *ctx.message_id.as_uuid(),
                CommitStock::EVENT_TYPE,
                &body,
            )
            .await;
        let spent = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.publishing.fetch_add(spent, Ordering::Relaxed);
        match outcome {
            Ok(()) => {
                self.published.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(cause) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                Err(OutboxError::Internal(cause.to_string()))
            }
        }
    }
}

/// One configuration of hexeract's worker.
struct Case {
    /// What the Markdown row calls it.
    label: String,
    /// Workers polling the same table (hexeract scales a relay by adding workers).
    workers: usize,
    config: OutboxWorkerConfig,
}

impl Case {
    fn settings(&self) -> String {
        let config = &self.config;
        format!(
            "{} worker(s), batch_size {}, poll_interval {:?}, min_cycle_delay {:?}, \
             dispatch_timeout {:?}, max_attempts {}; each worker dispatches its batch one row \
             at a time (publish, await confirm, mark in its own transaction)",
            self.workers,
            config.batch_size,
            config.poll_interval,
            config.min_cycle_delay,
            config.dispatch_timeout,
            config.max_attempts
        )
    }
}

fn cases(workers: usize) -> Vec<(&'static str, Case)> {
    let defaults = OutboxWorkerConfig::default();
    // As ours: up to 256 rows per claim. No pause between full batches (the default 5 ms
    // paces a draining backlog, which is what is measured here).
    let tuned = OutboxWorkerConfig {
        batch_size: 256,
        min_cycle_delay: Duration::ZERO,
        ..OutboxWorkerConfig::default()
    };
    // Several workers share the backlog through `FOR UPDATE SKIP LOCKED` and the claim lease.
    // Smaller batches, so that the workers finish together rather than one draining the last
    // claim alone.
    let scaled = OutboxWorkerConfig {
        batch_size: 32,
        min_cycle_delay: Duration::ZERO,
        ..OutboxWorkerConfig::default()
    };
    vec![
        (
            "default",
            Case {
                label: "hexeract 0.6 relay, worker defaults (1 worker, batch 10)".into(),
                workers: 1,
                config: defaults,
            },
        ),
        (
            "tuned",
            Case {
                label: "hexeract 0.6 relay".into(),
                workers: 1,
                config: tuned,
            },
        ),
        (
            "scaled",
            Case {
                label: format!("hexeract 0.6 relay, {workers} workers (batch 32)"),
                workers,
                config: scaled,
            },
        ),
    ]
}

fn setting(name: &str, default: u64) -> anyhow::Result<u64> {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .with_context(|| format!("{name}={value} is not a number")),
        Err(_) => Ok(default),
    }
}

/// The servers, as testkit finds them.
struct Servers {
    postgres: String,
    amqp: String,
    rabbitmqctl: Vec<String>,
}

impl Servers {
    fn from_env() -> Servers {
        let rabbitmqctl = std::env::var("TESTKIT_RABBITMQCTL")
            .ok()
            .map(|prefix| prefix.split_whitespace().map(str::to_owned).collect())
            .filter(|words: &Vec<String>| !words.is_empty())
            .unwrap_or_else(|| vec!["rabbitmqctl".to_owned()]);
        Servers {
            postgres: std::env::var("TESTKIT_POSTGRES_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into()),
            amqp: std::env::var("TESTKIT_AMQP_URL")
                .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672".into()),
            rabbitmqctl,
        }
    }

    fn rabbitmqctl(&self, args: &[&str]) -> anyhow::Result<()> {
        let (program, prefix) = self
            .rabbitmqctl
            .split_first()
            .context("TESTKIT_RABBITMQCTL is empty")?;
        let output = Command::new(program)
            .args(prefix)
            .arg("-q")
            .args(args)
            .output()
            .with_context(|| format!("running {program}"))?;
        ensure!(
            output.status.success(),
            "rabbitmqctl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
        Ok(())
    }

    /// The user of the AMQP URL (the administrator), to grant it the vhost.
    fn amqp_user(&self) -> &str {
        let rest = self
            .amqp
            .split_once("://")
            .map_or(self.amqp.as_str(), |(_, rest)| rest);
        rest.rsplit_once('@')
            .map_or("guest", |(userinfo, _)| userinfo)
            .split(':')
            .next()
            .unwrap_or("guest")
    }
}

/// A database and a vhost of one case's own, removed afterwards whatever happened.
struct Fresh {
    name: String,
}

impl Fresh {
    async fn create(servers: &Servers) -> anyhow::Result<Fresh> {
        let name = format!("peer_hexeract_{}", Uuid::now_v7().simple());
        let admin = PgPool::connect(&format!("{}/postgres", servers.postgres))
            .await
            .context("connecting to PostgreSQL")?;
        sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
            .execute(&admin)
            .await
            .context("creating the database")?;
        admin.close().await;
        let fresh = Fresh { name };
        let vhost = servers
            .rabbitmqctl(&["add_vhost", &fresh.name])
            .and_then(|()| {
                servers.rabbitmqctl(&[
                    "set_permissions",
                    "-p",
                    &fresh.name,
                    servers.amqp_user(),
                    ".*",
                    ".*",
                    ".*",
                ])
            });
        if let Err(cause) = vhost {
            fresh.remove(servers).await;
            return Err(cause.context("creating the vhost"));
        }
        Ok(fresh)
    }

    fn database_url(&self, servers: &Servers) -> String {
        format!("{}/{}", servers.postgres, self.name)
    }

    fn amqp_url(&self, servers: &Servers) -> String {
        format!("{}/{}", servers.amqp, self.name)
    }

    async fn remove(&self, servers: &Servers) {
        if let Err(cause) = servers.rabbitmqctl(&["delete_vhost", &self.name]) {
            eprintln!("warning: vhost {} not deleted: {cause:#}", self.name);
        }
        let dropped = async {
            let admin = PgPool::connect(&format!("{}/postgres", servers.postgres)).await?;
            sqlx::raw_sql(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ))
            .execute(&admin)
            .await?;
            admin.close().await;
            Ok::<(), sqlx::Error>(())
        };
        if let Err(cause) = dropped.await {
            eprintln!("warning: database {} not dropped: {cause}", self.name);
        }
    }
}

/// What one case measured.
struct Outcome {
    messages: u64,
    elapsed: Duration,
    body_bytes: usize,
    queued: u32,
    handler_failures: u64,
    /// Mean time a row spent in `publish_raw` (publish + confirm).
    publish_per_row: Duration,
}

async fn run(servers: &Servers, case: &Case, messages: u64) -> anyhow::Result<Outcome> {
    let fresh = Fresh::create(servers).await?;
    let outcome = measure(servers, &fresh, case, messages).await;
    fresh.remove(servers).await;
    outcome
}

async fn measure(
    servers: &Servers,
    fresh: &Fresh,
    case: &Case,
    messages: u64,
) -> anyhow::Result<Outcome> {
    // The pool is the caller's to configure; it gets ours (`outbox::connect`): connections
    // opened ahead of need, no ping before handing out a connection. The claim cycle and each
    // mark transaction take one per worker, plus the progress check.
    let connections = u32::try_from(case.workers + 2).unwrap_or(u32::MAX);
    let pool = PgPoolOptions::new()
        .max_connections(connections)
        .min_connections(connections)
        .test_before_acquire(false)
        .connect(&fresh.database_url(servers))
        .await
        .context("connecting to the fresh database")?;
    hexeract::outbox_sql::postgres::ensure_schema(&pool, TABLE).await?;

    // The backlog: committed rows, through hexeract's own enqueue, 1,000 per transaction.
    let publisher = PgOutboxPublisher::new(pool.clone(), TABLE)?;
    for _ in 0..messages / ENQUEUE_TRANSACTION {
        let mut transaction = pool.begin().await?;
        for _ in 0..ENQUEUE_TRANSACTION {
            let event = CommitStock {
                order_id: Uuid::now_v7(),
            };
            publisher.publish_in_tx(&mut transaction, &event).await?;
        }
        transaction.commit().await?;
    }
    let body_bytes = serde_json::to_vec(&CommitStock {
        order_id: Uuid::now_v7(),
    })?
    .len();

    // The broker side: hexeract's transport declares the durable topic exchange; the quorum
    // queue and its binding are declared with lapin (hexeract's `Queue` has no arguments).
    let exchange = Exchange::new(EXCHANGE, ExchangeKind::Topic)?.durable(true);
    let transport =
        Arc::new(RabbitMqTransport::with_exchange(&fresh.amqp_url(servers), exchange).await?);
    let connection = transport.pool().connection().inner();
    let setup = connection.create_channel().await?;
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    setup
        .queue_declare(
            QUEUE.into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            arguments,
        )
        .await?;
    setup
        .queue_bind(
            QUEUE.into(),
            EXCHANGE.into(),
            ROUTING_KEY.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;

    let published = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let publishing = Arc::new(AtomicU64::new(0));
    let relay = Arc::new(Relay {
        transport: Arc::clone(&transport),
        published: Arc::clone(&published),
        failed: Arc::clone(&failed),
        publishing: Arc::clone(&publishing),
    });
    let mut workers = Vec::with_capacity(case.workers);
    for _ in 0..case.workers {
        // What `PgOutboxWorkerBuilder::build` does, with `min_cycle_delay` settable (the
        // builder has no setter for it).
        let store = PgOutboxStore::new(pool.clone(), TABLE)?;
        let handler: Arc<dyn ErasedHandler> = Arc::new(TypedHandler::<CommitStock, Relay>::shared(
            Arc::clone(&relay),
        ));
        let handlers = HashMap::from([(CommitStock::EVENT_TYPE, handler)]);
        workers.push(OutboxWorker::new(store, handlers, case.config.clone()));
    }

    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let running: Vec<_> = workers
        .into_iter()
        .map(|worker| tokio::spawn(worker.run(shutdown.clone())))
        .collect();
    let drained = wait_until_delivered(&pool, &published, messages).await;
    let elapsed = started.elapsed();
    shutdown.cancel();
    for worker in running {
        worker.await??;
    }
    drained?;

    let queued = setup
        .queue_declare(
            QUEUE.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?
        .message_count();
    let _ = connection.close(200, "done".into()).await;
    pool.close().await;
    Ok(Outcome {
        messages,
        elapsed,
        body_bytes,
        queued,
        handler_failures: failed.load(Ordering::Relaxed),
        publish_per_row: Duration::from_nanos(publishing.load(Ordering::Relaxed) / messages),
    })
}

/// Waits until no row is left undelivered. The database is asked once a second, and every
/// millisecond once the handler has published every row (the last marks commit just after).
async fn wait_until_delivered(
    pool: &PgPool,
    published: &AtomicU64,
    messages: u64,
) -> anyhow::Result<()> {
    let count = format!("SELECT count(*) FROM {TABLE} WHERE delivered_at IS NULL");
    let mut asked = Instant::now();
    let mut last_pending = i64::MAX;
    let mut progressed = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(1)).await;
        if published.load(Ordering::Relaxed) < messages && asked.elapsed() < Duration::from_secs(1)
        {
            continue;
        }
        asked = Instant::now();
        let pending: i64 = sqlx::query_scalar(&count).fetch_one(pool).await?;
        if pending == 0 {
            return Ok(());
        }
        if pending < last_pending {
            last_pending = pending;
            progressed = Instant::now();
        } else if progressed.elapsed() > STALL {
            bail!("no row delivered for {STALL:?}; {pending} left");
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let messages =
        setting("PEER_BENCH_MESSAGES", 20_000)?.div_ceil(ENQUEUE_TRANSACTION) * ENQUEUE_TRANSACTION;
    ensure!(messages > 0, "PEER_BENCH_MESSAGES must be positive");
    let workers = usize::try_from(setting("PEER_BENCH_WORKERS", 8)?)?.max(1);
    let selected =
        std::env::var("PEER_BENCH_CASES").unwrap_or_else(|_| "default,tuned,scaled".into());
    let selected: Vec<&str> = selected.split(',').map(str::trim).collect();
    let servers = Servers::from_env();

    eprintln!(
        "hexeract 0.6 relay peer bench: {messages} messages, enqueued in transactions of \
         {ENQUEUE_TRANSACTION}; published persistent and mandatory to the topic exchange \
         {EXCHANGE} ({ROUTING_KEY} → durable quorum queue {QUEUE}), each confirm awaited"
    );
    println!("| measure | result |");
    println!("|---|---|");
    for (name, case) in cases(workers) {
        if !selected.contains(&name) {
            continue;
        }
        eprintln!("[{name}] {}", case.settings());
        let outcome = run(&servers, &case, messages)
            .await
            .with_context(|| format!("case {name}"))?;
        let rate = outcome.messages as f64 / outcome.elapsed.as_secs_f64();
        println!(
            "| {}: committed outbox rows → published, broker-confirmed and marked | {rate:.0} msg/s |",
            case.label
        );
        let per_row = outcome
            .elapsed
            .mul_f64(case.workers as f64 / outcome.messages as f64);
        eprintln!(
            "[{name}] {} rows in {:.2} s; AMQP body {} bytes (ours: {OUR_BODY_BYTES}); \
             {} messages in the quorum queue; {} handler failures; per row and worker \
             {:.2} ms, of which publish + confirm {:.2} ms",
            outcome.messages,
            outcome.elapsed.as_secs_f64(),
            outcome.body_bytes,
            outcome.queued,
            outcome.handler_failures,
            per_row.as_secs_f64() * 1e3,
            outcome.publish_per_row.as_secs_f64() * 1e3
        );
        if u64::from(outcome.queued) != outcome.messages {
            eprintln!(
                "[{name}] warning: the queue holds {} messages, not {} (at-least-once duplicates?)",
                outcome.queued, outcome.messages
            );
        }
    }
    Ok(())
}
