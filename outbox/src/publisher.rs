//! The relay: `OutboxPublisher<C>` moves committed outbox rows to the broker.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use lapin::options::BasicPublishOptions;
use lapin::{Channel, Connection};
use lapin::{Confirmation, PublisherConfirm};
use sea_orm::{
    ConnectionTrait, DbBackend, DbErr, EntityTrait, Statement, TransactionSession, TransactionTrait,
};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};
use uuid::Uuid;

use crate::broker::{Backoff, Broker};
use crate::enqueue::OutboxSignal;
use crate::entity::outbox_message;
use crate::message::NewMessage;
use crate::stats::{OUTBOX_BACKLOG, OUTBOX_OLDEST_AGE, PublisherStats};
use crate::wire;

/// How the relay batches and waits.
#[derive(Clone, Debug)]
pub struct PublisherConfig {
    /// Rows claimed, published and marked per transaction.
    pub batch_size: u32,
    /// The safety-net poll: how long the relay sleeps when nothing wakes it (rows left by a
    /// crashed replica, a failed row whose retry time has come).
    pub poll_interval: Duration,
    /// How often the backlog gauges are refreshed.
    pub gauge_interval: Duration,
    /// The connection name shown by the broker.
    pub connection_name: String,
}

impl Default for PublisherConfig {
    fn default() -> Self {
        PublisherConfig {
            batch_size: 256,
            poll_interval: Duration::from_secs(1),
            gauge_interval: Duration::from_secs(5),
            connection_name: "outbox-publisher".into(),
        }
    }
}

/// Why one relay round failed.
#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error("broker: {0}")]
    Broker(#[from] lapin::Error),
    #[error("database: {0}")]
    Database(#[from] DbErr),
}

/// The seed's `OutboxPublisher<TDbContext>`: a background task, generic over the service's
/// database handle, that publishes committed outbox rows.
///
/// Each round claims the oldest unprocessed rows with `FOR UPDATE SKIP LOCKED` (replicas claim
/// disjoint batches and never wait for each other), publishes them in order as persistent,
/// mandatory messages on a confirm channel, and marks them processed only once the broker
/// confirmed them, in the same transaction. A crash before the commit leaves the rows
/// unprocessed and they are published again (at least once; consumers deduplicate).
///
/// It wakes at once on an [`OutboxSignal`], and otherwise polls every
/// [`PublisherConfig::poll_interval`]. It survives the broker or the database going away:
/// it backs off, reconnects and drains the backlog.
pub struct OutboxPublisher<C> {
    db: C,
    broker: Broker,
    signal: OutboxSignal,
    config: PublisherConfig,
    stats: Arc<PublisherStats>,
}

impl<C> OutboxPublisher<C>
where
    C: TransactionTrait + ConnectionTrait + Send + Sync + 'static,
{
    /// A relay for the outbox in `db`, publishing to `broker`, woken by `signal`.
    pub fn new(db: C, broker: Broker, signal: OutboxSignal, config: PublisherConfig) -> Self {
        OutboxPublisher {
            db,
            broker,
            signal,
            config,
            stats: Arc::default(),
        }
    }

    /// Counters of what this relay published, readable while it runs.
    pub fn stats(&self) -> Arc<PublisherStats> {
        Arc::clone(&self.stats)
    }

    /// Runs until `shutdown` is cancelled; a batch in flight is finished first.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Backoff::new(Duration::from_secs(10));
        while !shutdown.is_cancelled() {
            let connection = match self.broker.connect(&self.config.connection_name).await {
                Ok(connection) => connection,
                Err(cause) => {
                    warn!(%cause, "outbox publisher cannot reach the broker; retrying");
                    if !backoff.wait(&shutdown).await {
                        break;
                    }
                    continue;
                }
            };
            match self.session(&connection, &shutdown, &mut backoff).await {
                Ok(()) => {
                    // Shutdown: close politely so nothing is left half-sent.
                    let _ = connection.close(200, "shutting down".into()).await;
                    break;
                }
                Err(cause) => {
                    warn!(%cause, "outbox publisher lost the broker; reconnecting");
                    let _ = connection.close(200, "reconnecting".into()).await;
                    if !backoff.wait(&shutdown).await {
                        break;
                    }
                }
            }
        }
        info!("outbox publisher stopped");
    }

    /// Publishes until shutdown (`Ok`) or until the broker fails (`Err`, to reconnect).
    async fn session(
        &self,
        connection: &Connection,
        shutdown: &CancellationToken,
        backoff: &mut Backoff,
    ) -> Result<(), lapin::Error> {
        let channel = Broker::confirm_channel(connection).await?;
        let ended = self
            .publish_until_shutdown(&channel, shutdown, backoff)
            .await;
        if ended.is_ok() {
            // Before the connection, so that lapin does not log spurious errors.
            let _ = channel.close(200, "shutting down".into()).await;
        }
        ended
    }

    async fn publish_until_shutdown(
        &self,
        channel: &Channel,
        shutdown: &CancellationToken,
        backoff: &mut Backoff,
    ) -> Result<(), lapin::Error> {
        let channel = channel.clone();
        info!("outbox publisher connected");
        let mut gauges_due = tokio::time::Instant::now();
        loop {
            // Drain: full batches mean more is waiting.
            loop {
                match self.relay_batch(&channel).await {
                    Ok(claimed) => {
                        backoff.reset();
                        if claimed < self.config.batch_size || shutdown.is_cancelled() {
                            break;
                        }
                    }
                    Err(RelayError::Broker(cause)) => return Err(cause),
                    Err(RelayError::Database(cause)) => {
                        warn!(%cause, "outbox publisher cannot use the database; retrying");
                        if !backoff.wait(shutdown).await {
                            return Ok(());
                        }
                    }
                }
            }
            if tokio::time::Instant::now() >= gauges_due {
                self.refresh_gauges().await;
                gauges_due = tokio::time::Instant::now() + self.config.gauge_interval;
            }
            tokio::select! {
                () = self.signal.woken() => {}
                () = tokio::time::sleep(self.config.poll_interval) => {}
                () = shutdown.cancelled() => {
                    // Publish what the last committed transactions left before stopping.
                    while let Ok(claimed) = self.relay_batch(&channel).await {
                        if claimed < self.config.batch_size {
                            break;
                        }
                    }
                    return Ok(());
                }
            }
        }
    }

    /// One round: claim, publish, await confirms, mark. Returns how many rows were claimed.
    async fn relay_batch(&self, channel: &Channel) -> Result<u32, RelayError> {
        let transaction = self.db.begin().await?;
        let rows = claim(&transaction, self.config.batch_size).await?;
        let claimed = u32::try_from(rows.len()).unwrap_or(u32::MAX);
        if rows.is_empty() {
            transaction.commit().await?;
            return Ok(0);
        }

        let mut in_flight: Vec<(&outbox_message::Model, PublisherConfirm)> =
            Vec::with_capacity(rows.len());
        for row in &rows {
            let outgoing = wire::outgoing(&NewMessage::from(row));
            let confirm = channel
                .basic_publish(
                    wire::short_string(&self.broker.topology().exchange),
                    wire::short_string(&outgoing.routing_key),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    &outgoing.body,
                    outgoing
                        .properties
                        .with_user_id(wire::short_string(self.broker.user())),
                )
                .await?;
            in_flight.push((row, confirm));
        }

        let mut published: Vec<Uuid> = Vec::with_capacity(rows.len());
        let mut failed: Vec<(Uuid, String)> = Vec::new();
        for (row, confirm) in in_flight {
            match confirm.await? {
                Confirmation::Ack(None) | Confirmation::NotRequested => published.push(row.id),
                Confirmation::Ack(Some(returned)) => {
                    let reason = format!(
                        "unroutable: {} {}",
                        returned.reply_code, returned.reply_text
                    );
                    error!(correlation_id = %row.correlation_id, message_id = %row.id, message_type = %row.message_type, %reason,
                        "broker returned an outbox message; it stays unprocessed");
                    failed.push((row.id, reason));
                }
                Confirmation::Nack(_) => {
                    warn!(correlation_id = %row.correlation_id, message_id = %row.id, "broker nacked an outbox message");
                    failed.push((row.id, "nacked by the broker".into()));
                }
            }
        }

        mark_published(&transaction, &published).await?;
        for (id, reason) in &failed {
            mark_failed(&transaction, *id, reason).await?;
        }
        transaction.commit().await?;
        let failed_ids: HashSet<Uuid> = failed.iter().map(|(id, _)| *id).collect();
        for row in rows.iter().filter(|row| !failed_ids.contains(&row.id)) {
            debug!(correlation_id = %row.correlation_id, message_id = %row.id, message_type = %row.message_type, "published");
        }
        self.stats
            .record(published.len() as u64, failed.len() as u64);
        Ok(claimed)
    }

    async fn refresh_gauges(&self) {
        let statement = Statement::from_string(
            DbBackend::Postgres,
            "SELECT count(*) AS backlog, \
                    COALESCE(EXTRACT(EPOCH FROM now() - min(occurred_at)), 0)::float8 AS oldest \
             FROM outbox_messages WHERE processed_at IS NULL",
        );
        match self.db.query_one_raw(statement).await {
            Ok(Some(row)) => {
                let backlog: i64 = row.try_get("", "backlog").unwrap_or(0);
                let oldest: f64 = row.try_get("", "oldest").unwrap_or(0.0);
                metrics::gauge!(OUTBOX_BACKLOG).set(backlog as f64);
                metrics::gauge!(OUTBOX_OLDEST_AGE).set(oldest.max(0.0));
            }
            Ok(None) => {}
            Err(cause) => debug!(%cause, "could not refresh outbox gauges"),
        }
    }
}

/// Claims the oldest publishable rows, skipping rows other relays hold.
async fn claim<C: ConnectionTrait>(
    db: &C,
    limit: u32,
) -> Result<Vec<outbox_message::Model>, DbErr> {
    outbox_message::Entity::find()
        .from_raw_sql(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT * FROM outbox_messages
             WHERE processed_at IS NULL AND (next_attempt_at IS NULL OR next_attempt_at <= now())
             ORDER BY seq
             LIMIT $1
             FOR UPDATE SKIP LOCKED",
            [i64::from(limit).into()],
        ))
        .all(db)
        .await
}

async fn mark_published<C: ConnectionTrait>(db: &C, ids: &[Uuid]) -> Result<(), DbErr> {
    if ids.is_empty() {
        return Ok(());
    }
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "UPDATE outbox_messages SET processed_at = now() WHERE id = ANY($1)",
        [ids.to_vec().into()],
    ))
    .await?;
    Ok(())
}

/// Records a failed attempt; the row waits 2^attempts seconds (at most 5 minutes) before the
/// next one.
async fn mark_failed<C: ConnectionTrait>(db: &C, id: Uuid, reason: &str) -> Result<(), DbErr> {
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "UPDATE outbox_messages
         SET attempts = attempts + 1,
             last_error = $2,
             next_attempt_at = now() + least(power(2, attempts + 1), 300) * interval '1 second'
         WHERE id = $1",
        [id.into(), reason.into()],
    ))
    .await?;
    Ok(())
}
