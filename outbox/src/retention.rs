//! Keeping the outbox and the inbox small and fast: deleting processed outbox rows and old
//! inbox records in small batches, vacuuming both tables often, and analysing them (and
//! vacuuming and analysing the service's other tables) when they are due.
//!
//! Both are queue tables: every message inserts a row and then updates or forgets it, so dead
//! tuples pile up at the rate of traffic. PostgreSQL's autovacuum would clean them, but it may
//! be off or lagging (the CI server here runs with `autovacuum = off`), and without fresh
//! statistics a prepared claim planned while the table was small keeps its sequential scan for
//! the life of the connection — measured here: the relay's cost per order doubled within
//! 8,000 orders. [`maintain`] vacuums and analyses them (analysing invalidates the stale plans).

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
    /// Time between [`maintain`] rounds (the outbox and the inbox vacuumed every round, every
    /// table vacuumed and analysed when it is due).
    pub vacuum_interval: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            max_age: Duration::from_secs(7 * 24 * 60 * 60),
            batch_size: 1_000,
            interval: Duration::from_secs(60 * 60),
            vacuum_interval: Duration::from_secs(15),
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

/// Vacuums `outbox_messages` and `processed_messages` every round, and vacuums and analyses
/// every table of the service — those two included — that autovacuum's own default thresholds
/// call due (more than 50 + 20 % of its rows dead, or 50 + 10 % changed since its last
/// analyse), skipping a table another process is vacuuming (replicas of a service run this
/// loop too). Runs outside any transaction (`VACUUM` cannot run inside one).
///
/// The queue tables' vacuum is cheap and keeps the claim's index free of dead entries; their
/// analyse is not (it samples 30,000 rows of JSON payloads: 0.5 s for an outbox of 266,000
/// rows, measured), and run every round it cost more than all the service's statements
/// together in a 20-minute soak. Analysed when due, as the table grows, its cost per row stays
/// constant, and a table that was empty when a claim was planned is analysed after its first
/// 50 changes, which re-plans the claim.
///
/// The business and saga tables need it as much as the queue tables: without it, every update
/// of an order or a saga instance leaves a dead row version and a dead index entry behind, and
/// their statistics stay those of an empty table.
pub async fn maintain<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    let due = db
        .query_all_raw(Statement::from_string(DbBackend::Postgres, TABLES_DUE))
        .await?;
    // The queue tables that were not due, vacuumed without an analyse.
    let mut vacuum_only = QUEUE_TABLES.to_vec();
    for row in due {
        let table: String = row.try_get_by_index(0)?;
        let name: String = row.try_get_by_index(1)?;
        vacuum_only.retain(|queue_table| *queue_table != name);
        // The name comes quoted from `format('%I.%I')`.
        db.execute_unprepared(&format!("VACUUM (ANALYZE, SKIP_LOCKED) {table}"))
            .await?;
    }
    if !vacuum_only.is_empty() {
        db.execute_unprepared(&format!("VACUUM (SKIP_LOCKED) {}", vacuum_only.join(", ")))
            .await?;
    }
    Ok(())
}

/// The queue tables, vacuumed every round.
const QUEUE_TABLES: [&str; 2] = ["outbox_messages", "processed_messages"];

/// The tables this role may vacuum (it owns them) in its search path that autovacuum's default
/// thresholds call due: the quoted, qualified name and the bare one.
const TABLES_DUE: &str = "
    SELECT format('%I.%I', stats.schemaname, stats.relname), stats.relname::text
    FROM pg_stat_user_tables stats
    JOIN pg_class class ON class.oid = stats.relid
    WHERE stats.schemaname = ANY (current_schemas(false))
      AND pg_has_role(current_user, class.relowner, 'MEMBER')
      AND (stats.n_dead_tup > 50 + 0.2 * stats.n_live_tup
           OR stats.n_mod_since_analyze > 50 + 0.1 * stats.n_live_tup)
    ORDER BY stats.relname";

/// Purges at start and then every [`RetentionConfig::interval`], and runs [`maintain`] every
/// [`RetentionConfig::vacuum_interval`], until `shutdown`.
pub async fn run_retention<C: ConnectionTrait>(
    db: C,
    config: RetentionConfig,
    shutdown: CancellationToken,
) {
    let mut next_purge = tokio::time::Instant::now();
    loop {
        if tokio::time::Instant::now() >= next_purge {
            match purge(&db, &config).await {
                Ok(purged) if purged != Purged::default() => {
                    info!(?purged, "retention purged old rows")
                }
                Ok(_) => {}
                Err(cause) => warn!(%cause, "retention purge failed; will try again"),
            }
            next_purge = tokio::time::Instant::now() + config.interval;
        }
        if let Err(cause) = maintain(&db).await {
            warn!(%cause, "vacuuming the service's tables failed; will try again");
        }
        tokio::select! {
            () = tokio::time::sleep(config.vacuum_interval.min(config.interval)) => {}
            () = shutdown.cancelled() => return,
        }
    }
}
