//! What every service does at start and at stop around its messaging: connect to the database
//! and the broker (retrying while they are away, within a bound), migrate, run the relay,
//! the consumers, retention and other background loops, and stop them in the right order.
//!
//! [`Messaging`] is a service with a database (inbox, outbox, relay); [`BrokerMessaging`] one
//! without (a consumer that deduplicates in memory and publishes nothing). Both give the
//! readiness [`Probe`]s of what they depend on and the [`BackgroundTasks`] to stop. Nothing
//! here serves HTTP: the HTTP side of a service's start (readiness endpoint, router, serving,
//! then stopping these tasks) is `service-kit`'s `launch`, which builds on this module.

use std::future::Future;
use std::time::Duration;

use sea_orm::{DatabaseConnection, DbErr};
use sea_orm_migration::MigratorTrait;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::broker::{Backoff, Broker};
use crate::consumer::{Handler, StatelessHandler};
use crate::health::ComponentHealth;
use crate::message::Inbound;
use crate::migration::{PoolOptions, connect, migrate};
use crate::sender::Producers;
use crate::topology::Topology;

/// Why a service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The database URL cannot be used at all (not a PostgreSQL URL).
    #[error("DATABASE_URL is invalid: {0}")]
    InvalidDatabaseUrl(String),
    /// The database stayed unreachable for the whole startup timeout.
    #[error("the database was unreachable for {waited:?}: {cause}")]
    DatabaseUnreachable {
        /// How long the service tried.
        waited: Duration,
        /// The last error.
        cause: String,
    },
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migration(DbErr),
    /// The broker URL cannot be used at all.
    #[error("AMQP_URL is invalid: {0}")]
    InvalidBrokerUrl(String),
    /// The broker stayed unreachable (or refused the topology) for the whole startup timeout.
    #[error("the broker was unreachable for {waited:?}: {cause}")]
    BrokerUnreachable {
        /// How long the service tried.
        waited: Duration,
        /// The last error.
        cause: String,
    },
    /// Shutdown was requested while starting.
    #[error("shutdown requested during start-up")]
    Cancelled,
}

/// Retries `attempt` with backoff until it succeeds, `timeout` passes (`Err` with the last
/// error) or `shutdown` is cancelled (`Ok(None)`).
async fn retry_until<T, E, F, Fut>(
    what: &str,
    timeout: Duration,
    shutdown: &CancellationToken,
    mut attempt: F,
) -> Result<Option<T>, (Duration, E)>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let started = tokio::time::Instant::now();
    let mut backoff = Backoff::new(Duration::from_secs(5));
    loop {
        let error = match attempt().await {
            Ok(value) => return Ok(Some(value)),
            Err(error) => error,
        };
        let waited = started.elapsed();
        if waited >= timeout {
            return Err((waited, error));
        }
        warn!(%error, waited_ms = waited.as_millis() as u64, "{what} is not reachable yet; retrying");
        if !backoff.wait(shutdown).await {
            return Ok(None);
        }
    }
}

/// Connects to PostgreSQL (retrying up to `timeout`) and applies the migrations of `M`.
pub async fn connect_database<M: MigratorTrait>(
    database_url: &str,
    pool: &PoolOptions,
    timeout: Duration,
    shutdown: &CancellationToken,
) -> Result<DatabaseConnection, StartupError> {
    if !(database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")) {
        return Err(StartupError::InvalidDatabaseUrl(
            "expected postgres://user:password@host:port/database".into(),
        ));
    }
    let db = match retry_until("the database", timeout, shutdown, || {
        connect(database_url, pool)
    })
    .await
    {
        Ok(Some(db)) => db,
        Ok(None) => return Err(StartupError::Cancelled),
        Err((waited, cause)) => {
            return Err(StartupError::DatabaseUnreachable {
                waited,
                cause: cause.to_string(),
            });
        }
    };
    migrate::<M>(&db).await.map_err(StartupError::Migration)?;
    info!("database connected and migrated");
    Ok(db)
}

/// Connects to the broker (retrying up to `timeout`) and declares the topology, or, where its
/// user may not, checks that `queues` (those the process consumes) exist.
pub async fn connect_broker(
    amqp_url: &str,
    queues: Vec<String>,
    topology: Topology,
    timeout: Duration,
    shutdown: &CancellationToken,
) -> Result<Broker, StartupError> {
    let is_amqp = |url: &str| url.starts_with("amqp://") || url.starts_with("amqps://");
    if !amqp_url.split(',').map(str::trim).all(is_amqp) {
        return Err(StartupError::InvalidBrokerUrl(
            "expected amqp://user:password@host:port/vhost, or one such URL per cluster node \
             separated by commas"
                .into(),
        ));
    }
    let broker = Broker::new(amqp_url, topology).consuming(queues);
    let declared = retry_until("the broker", timeout, shutdown, || async {
        let connection = broker.connect("startup").await?;
        connection.close(200, "topology declared".into()).await
    })
    .await;
    match declared {
        Ok(Some(())) => {
            info!("broker connected and topology declared");
            Ok(broker)
        }
        Ok(None) => Err(StartupError::Cancelled),
        Err((waited, cause)) => Err(StartupError::BrokerUnreachable {
            waited,
            cause: cause.to_string(),
        }),
    }
}

/// Readiness of the database: a round trip.
pub async fn check_database(db: &DatabaseConnection) -> Result<(), String> {
    db.ping().await.map_err(|error| error.to_string())
}

/// The background tasks of a service, stopped in two phases: first everything that *produces*
/// outbox rows (consumers, sweepers), then the relay, which drains what they committed.
pub struct BackgroundTasks {
    producers: JoinSet<()>,
    producers_stop: CancellationToken,
    relays: JoinSet<()>,
    relays_stop: CancellationToken,
}

impl Default for BackgroundTasks {
    fn default() -> Self {
        Self::new()
    }
}

impl BackgroundTasks {
    /// No tasks yet.
    pub fn new() -> Self {
        BackgroundTasks {
            producers: JoinSet::new(),
            producers_stop: CancellationToken::new(),
            relays: JoinSet::new(),
            relays_stop: CancellationToken::new(),
        }
    }

    /// Spawns a task that may write outbox rows (a consumer runner, a sweeper, retention); it
    /// receives the token that stops it.
    pub fn spawn_producer<F, Fut>(&mut self, task: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.producers.spawn(task(self.producers_stop.clone()));
    }

    /// Spawns a relay; it is stopped after every producer has stopped.
    pub fn spawn_relay<F, Fut>(&mut self, task: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.relays.spawn(task(self.relays_stop.clone()));
    }

    /// Stops the producers, waits for them (each finishes its batch in flight), then stops the
    /// relays, which publish what the last batches committed before they exit.
    pub async fn shutdown(mut self) {
        self.producers_stop.cancel();
        while let Some(ended) = self.producers.join_next().await {
            if let Err(cause) = ended {
                warn!(%cause, "a background task ended abnormally");
            }
        }
        self.relays_stop.cancel();
        while let Some(ended) = self.relays.join_next().await {
            if let Err(cause) = ended {
                warn!(%cause, "a relay ended abnormally");
            }
        }
    }
}

/// A readiness probe: a named check a service's `/health/ready` runs.
pub type Probe = std::sync::Arc<
    dyn Fn() -> std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync,
>;

/// Where a service's database and broker are, how long to wait for them at start, and how the
/// service uses them.
#[derive(Clone, Copy, Debug)]
pub struct Infrastructure<'a> {
    /// `DATABASE_URL`.
    pub database_url: &'a str,
    /// `AMQP_URL`.
    pub amqp_url: &'a str,
    /// `STARTUP_TIMEOUT_SECS`.
    pub startup_timeout: Duration,
    /// `DATABASE_MAX_CONNECTIONS`: the pool's size.
    pub max_connections: u32,
    /// Deliveries handled per transaction. Batches save commits, but hold every row lock they
    /// took until the batch commits: a service whose messages contend for a few hot rows
    /// (stock per product, balance per customer) should use 1 and more lanes instead.
    pub max_batch: usize,
    /// Parallel consumer lanes (one correlation's messages always share a lane).
    pub lanes: usize,
}

/// The messaging of a service with a database, running: its consumer (with the inbox), its
/// relay, and retention, all stopped by [`BackgroundTasks::shutdown`].
pub struct Messaging {
    /// The service's database, migrated.
    pub db: DatabaseConnection,
    /// The broker, its topology declared.
    pub broker: Broker,
    /// Wakes the relay after a commit that enqueued messages.
    pub signal: crate::OutboxSignal,
    /// The running tasks; a service may add its own producers (sweepers).
    pub background: BackgroundTasks,
    /// Whether the consumer consumes and the relay publishes (readiness).
    consumer_health: ComponentHealth,
    relay_health: ComponentHealth,
}

impl Messaging {
    /// Connects (retrying within the start-up timeout), migrates with `Mig`, and starts the
    /// consumer of `queues` with `handler` (accepting each type from its one sender in
    /// `producers` only), the relay and retention. `service` names the connections.
    pub async fn start<Mig: MigratorTrait, M: Inbound, H: Handler<M>>(
        service: &str,
        queues: Vec<String>,
        topology: Topology,
        producers: &Producers,
        infrastructure: Infrastructure<'_>,
        handler: H,
        shutdown: &CancellationToken,
    ) -> Result<Messaging, StartupError> {
        let pool = PoolOptions {
            max_connections: infrastructure.max_connections,
            ..PoolOptions::default()
        };
        let db = connect_database::<Mig>(
            infrastructure.database_url,
            &pool,
            infrastructure.startup_timeout,
            shutdown,
        )
        .await?;
        let broker = connect_broker(
            infrastructure.amqp_url,
            queues.clone(),
            topology,
            infrastructure.startup_timeout,
            shutdown,
        )
        .await?;
        let signal = crate::OutboxSignal::new();
        let mut background = BackgroundTasks::new();

        let processor = crate::TransactionalProcessor::new(db.clone(), handler, signal.clone());
        let consumer_config = crate::ConsumerConfig {
            connection_name: format!("{service} consumer"),
            max_batch: infrastructure.max_batch,
            lanes: infrastructure.lanes,
            producers: producers.clone(),
            ..crate::ConsumerConfig::default()
        };
        let consumer =
            crate::ConsumerRunner::new(broker.clone(), queues, processor, consumer_config);
        let consumer_health = consumer.health();
        background.spawn_producer(|stop| consumer.run(stop));
        let retention_db = db.clone();
        background.spawn_producer(|stop| {
            crate::run_retention(retention_db, crate::RetentionConfig::default(), stop)
        });
        let publisher_config = crate::PublisherConfig {
            connection_name: format!("{service} publisher"),
            ..crate::PublisherConfig::default()
        };
        let publisher = crate::OutboxPublisher::new(
            db.clone(),
            broker.clone(),
            signal.clone(),
            publisher_config,
        );
        let relay_health = publisher.health();
        background.spawn_relay(|stop| publisher.run(stop));
        Ok(Messaging {
            db,
            broker,
            signal,
            background,
            consumer_health,
            relay_health,
        })
    }

    /// The readiness probes, from the service's own state: the pool answers a round trip, the
    /// consumer consumes every queue, the relay is connected (or blocked by a broker alarm,
    /// which the outbox absorbs). No probe opens a connection of its own.
    pub fn probes(&self) -> Vec<(&'static str, Probe)> {
        vec![
            ("database", database_probe(self.db.clone())),
            ("consumer", component_probe(self.consumer_health.clone())),
            ("relay", component_probe(self.relay_health.clone())),
        ]
    }
}

/// The readiness probe of a database: [`check_database`].
fn database_probe(db: DatabaseConnection) -> Probe {
    std::sync::Arc::new(move || {
        let db = db.clone();
        Box::pin(async move { check_database(&db).await })
    })
}

/// The readiness probe of a component that reports its own health.
fn component_probe(health: ComponentHealth) -> Probe {
    std::sync::Arc::new(move || {
        let health = health.clone();
        Box::pin(async move { health.check() })
    })
}

/// Where a service without a database finds its broker, how long to wait for it at start, and
/// how it deduplicates.
#[derive(Clone, Copy, Debug)]
pub struct BrokerInfrastructure<'a> {
    /// `AMQP_URL`.
    pub amqp_url: &'a str,
    /// `STARTUP_TIMEOUT_SECS`.
    pub startup_timeout: Duration,
    /// How many message ids the consumer remembers to drop redeliveries (at least 1): with no
    /// inbox table, a redelivery of an older one is handled again.
    pub remembered_messages: usize,
}

/// The messaging of a service without a database, running: one consumer whose
/// [`InMemoryProcessor`](crate::InMemoryProcessor) deduplicates in memory, stopped by
/// [`BackgroundTasks::shutdown`]. There is no relay: such a service publishes nothing.
pub struct BrokerMessaging {
    /// The broker, its topology declared.
    pub broker: Broker,
    /// The running tasks; a service may add its own producers.
    pub background: BackgroundTasks,
    /// Whether the consumer consumes (readiness).
    consumer_health: ComponentHealth,
}

impl BrokerMessaging {
    /// Connects to the broker (retrying within the start-up timeout) and starts the consumer
    /// of `queues` with `handler` (accepting each type from its one sender in `producers`
    /// only), with the consumer's default batching. `service` names the connection.
    pub async fn start<M: Inbound, H: StatelessHandler<M>>(
        service: &str,
        queues: Vec<String>,
        topology: Topology,
        producers: &Producers,
        infrastructure: BrokerInfrastructure<'_>,
        handler: H,
        shutdown: &CancellationToken,
    ) -> Result<BrokerMessaging, StartupError> {
        let broker = connect_broker(
            infrastructure.amqp_url,
            queues.clone(),
            topology,
            infrastructure.startup_timeout,
            shutdown,
        )
        .await?;
        let mut background = BackgroundTasks::new();
        let processor = crate::InMemoryProcessor::new(handler, infrastructure.remembered_messages);
        let consumer_config = crate::ConsumerConfig {
            connection_name: format!("{service} consumer"),
            producers: producers.clone(),
            ..crate::ConsumerConfig::default()
        };
        let consumer =
            crate::ConsumerRunner::new(broker.clone(), queues, processor, consumer_config);
        let consumer_health = consumer.health();
        background.spawn_producer(|stop| consumer.run(stop));
        Ok(BrokerMessaging {
            broker,
            background,
            consumer_health,
        })
    }

    /// The readiness probe: the consumer consumes every queue.
    pub fn probes(&self) -> Vec<(&'static str, Probe)> {
        vec![("consumer", component_probe(self.consumer_health.clone()))]
    }
}
