//! The relay: `OutboxPublisher<C>` moves committed outbox rows to the broker.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use lapin::options::BasicPublishOptions;
use lapin::{Channel, Connection, ConnectionStatus};
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
use crate::health::{ComponentHealth, Condition};
use crate::message::NewMessage;
use crate::stats::{OUTBOX_BACKLOG, OUTBOX_BLOCKED, OUTBOX_OLDEST_AGE, PublisherStats};
use crate::trace::{TRACEPARENT, TraceContext};
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
    /// How long a batch may wait for its publishes and the broker's confirms. The claim's
    /// transaction stays open meanwhile, so this bounds how long the relay holds its rows'
    /// locks and a database connection (a broker that blocks publishing never confirms); past
    /// it the batch is rolled back (its rows stay unprocessed) and the relay reconnects.
    pub confirm_timeout: Duration,
}

impl Default for PublisherConfig {
    fn default() -> Self {
        PublisherConfig {
            batch_size: 256,
            poll_interval: Duration::from_secs(1),
            gauge_interval: Duration::from_secs(5),
            connection_name: "outbox-publisher".into(),
            confirm_timeout: Duration::from_secs(10),
        }
    }
}

/// Why one relay round failed.
#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error("broker: {0}")]
    Broker(#[from] lapin::Error),
    #[error("the broker did not confirm a batch within {0:?}")]
    Unconfirmed(Duration),
    #[error("database: {0}")]
    Database(#[from] DbErr),
}

/// Why a relay session ended.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("broker: {0}")]
    Broker(#[from] lapin::Error),
    #[error("the broker did not confirm a batch within {0:?}{hint}", hint = blocked_hint(*.1))]
    Unconfirmed(Duration, bool),
}

fn blocked_hint(blocked: bool) -> &'static str {
    match blocked {
        true => " (the broker blocks publishing: a memory or disk alarm)",
        false => "",
    }
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
    health: ComponentHealth,
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
            health: ComponentHealth::new(),
        }
    }

    /// Counters of what this relay published, readable while it runs.
    pub fn stats(&self) -> Arc<PublisherStats> {
        Arc::clone(&self.stats)
    }

    /// Whether this relay is connected, blocked by the broker, or down (for readiness).
    pub fn health(&self) -> ComponentHealth {
        self.health.clone()
    }

    /// Runs until `shutdown` is cancelled; a batch in flight is finished first.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Backoff::new(Duration::from_secs(10));
        while !shutdown.is_cancelled() {
            let connection = match self.broker.connect(&self.config.connection_name).await {
                Ok(connection) => connection,
                Err(cause) => {
                    warn!(%cause, "outbox publisher cannot reach the broker; retrying");
                    self.health.set(Condition::Down(format!("broker: {cause}")));
                    if !backoff.wait(&shutdown).await {
                        break;
                    }
                    continue;
                }
            };
            let ended = self.session(&connection, &shutdown, &mut backoff).await;
            // A blocked connection cannot send its close: never wait for it long.
            let _ = tokio::time::timeout(
                Duration::from_secs(1),
                connection.close(200, "outbox publisher stopping".into()),
            )
            .await;
            match ended {
                Ok(()) => break,
                Err(cause) => {
                    warn!(%cause, "outbox publisher lost the broker; reconnecting");
                    self.health.set(match cause {
                        SessionError::Unconfirmed(_, true) => Condition::Blocked(cause.to_string()),
                        _ => Condition::Down(cause.to_string()),
                    });
                    if !backoff.wait(&shutdown).await {
                        break;
                    }
                }
            }
        }
        self.health.set(Condition::Down("stopped".into()));
        info!("outbox publisher stopped");
    }

    /// Publishes until shutdown (`Ok`) or until the broker fails (`Err`, to reconnect).
    async fn session(
        &self,
        connection: &Connection,
        shutdown: &CancellationToken,
        backoff: &mut Backoff,
    ) -> Result<(), SessionError> {
        let channel = Broker::confirm_channel(connection).await?;
        let ended = self
            .publish_until_shutdown(&channel, connection.status(), shutdown, backoff)
            .await;
        if ended.is_ok() {
            // Before the connection, so that lapin does not log spurious errors.
            let _ = tokio::time::timeout(
                Duration::from_secs(1),
                channel.close(200, "shutting down".into()),
            )
            .await;
        }
        ended
    }

    async fn publish_until_shutdown(
        &self,
        channel: &Channel,
        connection: &ConnectionStatus,
        shutdown: &CancellationToken,
        backoff: &mut Backoff,
    ) -> Result<(), SessionError> {
        // Up only once a batch went through: a new connection to a broker under an alarm
        // looks fine until it publishes.
        info!("outbox publisher connected");
        let mut gauges_due = tokio::time::Instant::now();
        loop {
            // Drain: full batches mean more is waiting.
            loop {
                if !self.wait_while_blocked(connection, shutdown).await {
                    return Ok(());
                }
                match self.relay_batch(channel).await {
                    Ok(claimed) => {
                        backoff.reset();
                        self.health.set(Condition::Up);
                        if claimed < self.config.batch_size || shutdown.is_cancelled() {
                            break;
                        }
                    }
                    Err(RelayError::Broker(cause)) => return Err(cause.into()),
                    Err(RelayError::Unconfirmed(waited)) => {
                        return Err(SessionError::Unconfirmed(waited, connection.blocked()));
                    }
                    Err(RelayError::Database(cause)) => {
                        warn!(%cause, "outbox publisher cannot use the database; retrying");
                        self.health
                            .set(Condition::Down(format!("database: {cause}")));
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
                    // Publish what the last committed transactions left before stopping,
                    // unless the broker blocks publishing: then the rows wait in the outbox
                    // for the next start, and the stop stays prompt.
                    while !connection.blocked() {
                        match self.relay_batch(channel).await {
                            Ok(claimed) if claimed == self.config.batch_size => {}
                            Ok(_) | Err(_) => break,
                        }
                    }
                    return Ok(());
                }
            }
        }
    }

    /// While the broker blocks this connection (a memory or disk alarm), waits without holding
    /// any transaction: nothing claimed could be confirmed. `false` if shutdown came first.
    async fn wait_while_blocked(
        &self,
        connection: &ConnectionStatus,
        shutdown: &CancellationToken,
    ) -> bool {
        if !connection.blocked() {
            return true;
        }
        warn!(
            "the broker blocks publishing (a memory or disk alarm); the outbox holds new messages until it unblocks"
        );
        self.health.set(Condition::Blocked(
            "the broker blocks publishing (a memory or disk alarm); messages wait in the outbox"
                .into(),
        ));
        metrics::gauge!(OUTBOX_BLOCKED).set(1.0);
        while connection.blocked() {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(250)) => {}
                () = shutdown.cancelled() => return false,
            }
        }
        metrics::gauge!(OUTBOX_BLOCKED).set(0.0);
        info!("the broker unblocked publishing; draining the outbox");
        self.health.set(Condition::Up);
        true
    }

    /// One round: claim, publish, await confirms, mark. Returns how many rows were claimed.
    /// The claim's transaction is open for at most [`PublisherConfig::confirm_timeout`] beyond
    /// the claim itself: past it, the batch is rolled back.
    async fn relay_batch(&self, channel: &Channel) -> Result<u32, RelayError> {
        let transaction = self.db.begin().await?;
        let rows = claim(&transaction, self.config.batch_size).await?;
        let claimed = u32::try_from(rows.len()).unwrap_or(u32::MAX);
        if rows.is_empty() {
            transaction.commit().await?;
            return Ok(0);
        }
        let outcomes = match tokio::time::timeout(
            self.config.confirm_timeout,
            self.publish_confirmed(channel, &rows),
        )
        .await
        {
            Ok(outcomes) => outcomes?,
            Err(_elapsed) => {
                // Dropping the transaction rolls it back: the rows stay unprocessed and are
                // claimed again (by this relay after it reconnects, or by another).
                drop(transaction);
                return Err(RelayError::Unconfirmed(self.config.confirm_timeout));
            }
        };
        let (published, failed) = outcomes;
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

    /// Publishes `rows` in order and awaits every confirm: the ids the broker took, and the
    /// ids it refused (returned as unroutable, or nacked) with the reason.
    async fn publish_confirmed(
        &self,
        channel: &Channel,
        rows: &[outbox_message::Model],
    ) -> Result<(Vec<Uuid>, Vec<(Uuid, String)>), lapin::Error> {
        let exchange = &self.broker.topology().exchange;
        // Each message is sent inside a `send` span that continues the trace its row captured,
        // and carries that span's context on; the spans end once the confirms are in.
        let mut in_flight: Vec<(&outbox_message::Model, PublisherConfirm, tracing::Span)> =
            Vec::with_capacity(rows.len());
        for row in rows {
            let outgoing = wire::outgoing(&NewMessage::from(row));
            let span = send_span(exchange, &outgoing.routing_key, row);
            let properties = match TraceContext::of(&span) {
                Some(context) => wire::with_headers(
                    &outgoing.properties,
                    &[(TRACEPARENT, wire::long_string(&context.traceparent()))],
                ),
                None => outgoing.properties,
            };
            let confirm = channel
                .basic_publish(
                    wire::short_string(exchange),
                    wire::short_string(&outgoing.routing_key),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    &outgoing.body,
                    properties.with_user_id(wire::short_string(self.broker.user())),
                )
                .await?;
            in_flight.push((row, confirm, span));
        }

        let mut published: Vec<Uuid> = Vec::with_capacity(rows.len());
        let mut failed: Vec<(Uuid, String)> = Vec::new();
        for (row, confirm, _send_span) in in_flight {
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
        Ok((published, failed))
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

/// The `send` span of one row: OpenTelemetry's messaging conventions, a child of the trace the
/// row captured when it was enqueued.
fn send_span(exchange: &str, routing_key: &str, row: &outbox_message::Model) -> tracing::Span {
    let span = tracing::info_span!(
        "send",
        otel.name = %format!("send {exchange}"),
        otel.kind = "producer",
        messaging.system = "rabbitmq",
        messaging.operation.type = "send",
        messaging.destination.name = %exchange,
        messaging.rabbitmq.destination.routing_key = %routing_key,
        messaging.message.id = %row.id,
        messaging.message.conversation_id = %row.correlation_id,
        correlation_id = %row.correlation_id,
    );
    let captured = row.headers.as_object().and_then(TraceContext::from_headers);
    crate::trace::adopt(&span, captured.as_ref());
    span
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
