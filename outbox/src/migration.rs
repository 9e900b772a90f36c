//! The outbox's and inbox's tables, as `sea-orm-migration` migrations that every service lists in
//! its own migrator, and [`migrate`], which applies a migrator safely when replicas start at once.

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, TransactionTrait};
use sea_orm_migration::prelude::*;

/// Creates `outbox_messages`.
///
/// The partial index on `seq` holds only unprocessed rows, so claiming "unprocessed, oldest
/// first" stays an index range scan however many processed rows retention has yet to delete.
pub struct CreateOutboxMessages;

impl MigrationName for CreateOutboxMessages {
    fn name(&self) -> &str {
        "m20261124_000001_create_outbox_messages"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateOutboxMessages {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE TABLE outbox_messages (
                    id uuid PRIMARY KEY,
                    seq bigint GENERATED ALWAYS AS IDENTITY,
                    type text NOT NULL,
                    payload jsonb NOT NULL,
                    correlation_id uuid NOT NULL,
                    causation_id uuid,
                    headers jsonb NOT NULL DEFAULT '{}',
                    occurred_at timestamptz NOT NULL,
                    processed_at timestamptz,
                    attempts integer NOT NULL DEFAULT 0,
                    last_error text,
                    next_attempt_at timestamptz
                );
                CREATE INDEX outbox_messages_unprocessed
                    ON outbox_messages (seq) WHERE processed_at IS NULL;
                CREATE INDEX outbox_messages_processed_at
                    ON outbox_messages (processed_at) WHERE processed_at IS NOT NULL;
                CREATE INDEX outbox_messages_correlation ON outbox_messages (correlation_id);",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP TABLE outbox_messages")
            .await?;
        Ok(())
    }
}

/// Creates `processed_messages`, the inbox.
pub struct CreateProcessedMessages;

impl MigrationName for CreateProcessedMessages {
    fn name(&self) -> &str {
        "m20261124_000002_create_processed_messages"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateProcessedMessages {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE TABLE processed_messages (
                    consumer text NOT NULL,
                    message_id uuid NOT NULL,
                    type text NOT NULL,
                    correlation_id uuid NOT NULL,
                    processed_at timestamptz NOT NULL DEFAULT now(),
                    PRIMARY KEY (consumer, message_id)
                );
                CREATE INDEX processed_messages_processed_at ON processed_messages (processed_at);",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP TABLE processed_messages")
            .await?;
        Ok(())
    }
}

/// The outbox's and inbox's migrations, for a service's `MigratorTrait::migrations`.
pub fn migrations() -> Vec<Box<dyn MigrationTrait>> {
    vec![
        Box::new(CreateOutboxMessages),
        Box::new(CreateProcessedMessages),
    ]
}

/// A migrator holding only the outbox and inbox tables (tests, and services that need nothing
/// else in their database).
pub struct OutboxMigrator;

impl MigratorTrait for OutboxMigrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        migrations()
    }
}

/// Applies every pending migration of `M` in one transaction, under a transaction-scoped
/// advisory lock, so that replicas starting together apply each migration exactly once (the
/// others wait, then find nothing pending). PostgreSQL's DDL is transactional, so a failed
/// migration leaves nothing half-applied.
pub async fn migrate<M: MigratorTrait>(db: &DatabaseConnection) -> Result<(), DbErr> {
    // Any constant works as long as every service uses the same one for its own database.
    const MIGRATION_LOCK: i64 = 0x5A6A_0001;
    let transaction = db.begin().await?;
    // A migration may rewrite a large table: the pool's statement timeout is for traffic.
    transaction
        .execute_unprepared("SET LOCAL statement_timeout = 0")
        .await?;
    transaction
        .execute_unprepared(&format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
        .await?;
    M::up(&transaction, None).await?;
    transaction.commit().await
}

/// Pool settings for a service's database.
#[derive(Clone, Debug)]
pub struct PoolOptions {
    /// Connections kept open even when idle, so that a burst never waits for new ones to be
    /// established (a fresh PostgreSQL connection costs tens of milliseconds).
    /// Clamped to `max_connections`.
    pub min_connections: u32,
    /// The most connections the pool opens.
    pub max_connections: u32,
    /// How long a caller waits for a free connection before failing.
    pub acquire_timeout: std::time::Duration,
    /// PostgreSQL's `statement_timeout` for every connection: a statement stuck behind a lock
    /// fails after this long (an infrastructure failure, which pauses the consumer without
    /// spending the message's attempts) instead of holding a connection for ever. Migrations
    /// lift it for their own transaction.
    pub statement_timeout: std::time::Duration,
    /// PostgreSQL's `idle_in_transaction_session_timeout`: the server ends a session that sat
    /// idle inside a transaction this long — the backstop that keeps a stuck task from holding
    /// row locks and a connection, and from holding back vacuum, however it got stuck.
    pub idle_in_transaction_timeout: std::time::Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            min_connections: 2,
            max_connections: 10,
            acquire_timeout: std::time::Duration::from_secs(5),
            statement_timeout: std::time::Duration::from_secs(30),
            idle_in_transaction_timeout: std::time::Duration::from_secs(60),
        }
    }
}

/// Connects a pool to `url` with settings fit for a service: connections established ahead of
/// need, no per-statement logging (tracing spans stay), no round trip to test a connection that
/// was in use a moment ago, and the server-side timeouts of [`PoolOptions`] set on every
/// session (in the start-up packet: no extra round trip).
pub async fn connect(url: &str, options: &PoolOptions) -> Result<DatabaseConnection, DbErr> {
    let session_settings = [
        (
            "statement_timeout",
            options.statement_timeout.as_millis().to_string(),
        ),
        (
            "idle_in_transaction_session_timeout",
            options.idle_in_transaction_timeout.as_millis().to_string(),
        ),
    ];
    let mut connect = sea_orm::ConnectOptions::new(url);
    connect.map_sqlx_postgres_opts(move |postgres| postgres.options(session_settings.clone()));
    connect
        .min_connections(std::cmp::min(
            options.min_connections,
            options.max_connections,
        ))
        .max_connections(options.max_connections)
        .acquire_timeout(options.acquire_timeout)
        .connect_timeout(std::time::Duration::from_secs(5))
        .sqlx_logging(false)
        .test_before_acquire(false)
        .test_before_acquire_if_idle_for(std::time::Duration::from_secs(30));
    sea_orm::Database::connect(connect).await
}
