//! Deleting processed outbox rows and old inbox records, in small batches.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How long to keep what.
#[derive(Clone, Debug)]
pub struct RetentionConfig {
    /// Processed outbox rows and inbox records older than this are deleted. The inbox must
    /// remember a message longer than the broker could possibly redeliver it.
    pub max_age: Duration,
    /// Rows deleted per statement, so no purge holds locks for long.
    pub batch_size: u32,
    /// Time between purges.
    pub interval: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            max_age: Duration::from_secs(7 * 24 * 60 * 60),
            batch_size: 1_000,
            interval: Duration::from_secs(60 * 60),
        }
    }
}

/// Rows deleted by one purge.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Purged {
    /// Processed outbox rows.
    pub outbox: u64,
    /// Inbox records.
    pub inbox: u64,
}

/// Deletes everything older than the configured age, batch by batch.
pub async fn purge<C: ConnectionTrait>(db: &C, config: &RetentionConfig) -> Result<Purged, DbErr> {
    let max_age_seconds = i64::try_from(config.max_age.as_secs()).unwrap_or(i64::MAX);
    let outbox = delete_in_batches(
        db,
        "DELETE FROM outbox_messages WHERE id IN (
             SELECT id FROM outbox_messages
             WHERE processed_at < now() - $1 * interval '1 second'
             LIMIT $2)",
        max_age_seconds,
        config.batch_size,
    )
    .await?;
    let inbox = delete_in_batches(
        db,
        "DELETE FROM processed_messages WHERE ctid IN (
             SELECT ctid FROM processed_messages
             WHERE processed_at < now() - $1 * interval '1 second'
             LIMIT $2)",
        max_age_seconds,
        config.batch_size,
    )
    .await?;
    Ok(Purged { outbox, inbox })
}

async fn delete_in_batches<C: ConnectionTrait>(
    db: &C,
    sql: &str,
    max_age_seconds: i64,
    batch_size: u32,
) -> Result<u64, DbErr> {
    let mut deleted = 0;
    loop {
        let result = db
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                sql,
                [max_age_seconds.into(), i64::from(batch_size).into()],
            ))
            .await?;
        deleted += result.rows_affected();
        if result.rows_affected() < u64::from(batch_size) {
            return Ok(deleted);
        }
    }
}

/// Purges at start and then every [`RetentionConfig::interval`] until `shutdown`.
pub async fn run_retention<C: ConnectionTrait>(
    db: C,
    config: RetentionConfig,
    shutdown: CancellationToken,
) {
    loop {
        match purge(&db, &config).await {
            Ok(purged) if purged != Purged::default() => {
                info!(?purged, "retention purged old rows")
            }
            Ok(_) => {}
            Err(cause) => warn!(%cause, "retention purge failed; will try again"),
        }
        tokio::select! {
            () = tokio::time::sleep(config.interval) => {}
            () = shutdown.cancelled() => return,
        }
    }
}
