//! The runtime's tables, as `sea-orm-migration` migrations an embedding service lists in its own
//! migrator (after the outbox's, whose tables the runtime writes too).
//!
//! - `saga_instances`: one row per instance of every saga — state, version (optimistic
//!   concurrency), data (JSON), and the one timer its state group may have.
//! - `saga_transitions`: the timeline, one row per decision that wrote something.
//! - `saga_effects`: one row per effect of an instance that needs a confirmation: attempts,
//!   when it was first and last sent, when it is due again, and when (by which event) it was
//!   confirmed. Partial indexes keep the sweeper's scans to what is due.

use sea_orm::DbErr;
use sea_orm_migration::prelude::*;

/// Creates the three tables.
pub struct CreateSagaTables;

impl MigrationName for CreateSagaTables {
    fn name(&self) -> &str {
        "m20261201_900001_create_saga_runtime_tables"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateSagaTables {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE TABLE saga_instances (
                    saga text NOT NULL,
                    id uuid NOT NULL,
                    state text NOT NULL,
                    version bigint NOT NULL,
                    data jsonb NOT NULL,
                    deadline_at timestamptz,
                    created_at timestamptz NOT NULL DEFAULT now(),
                    updated_at timestamptz NOT NULL DEFAULT now(),
                    PRIMARY KEY (saga, id)
                );
                -- The timer sweep: only instances with a running timer, soonest first.
                CREATE INDEX saga_instances_deadline ON saga_instances (saga, deadline_at)
                    WHERE deadline_at IS NOT NULL;
                CREATE INDEX saga_instances_state ON saga_instances (saga, state, id DESC);
                CREATE TABLE saga_transitions (
                    saga text NOT NULL,
                    instance_id uuid NOT NULL,
                    seq bigint NOT NULL,
                    from_state text,
                    to_state text NOT NULL,
                    event text,
                    effects jsonb NOT NULL,
                    message_id uuid,
                    at timestamptz NOT NULL,
                    PRIMARY KEY (saga, instance_id, seq),
                    FOREIGN KEY (saga, instance_id) REFERENCES saga_instances (saga, id)
                );
                CREATE INDEX saga_transitions_at ON saga_transitions (saga, at);
                CREATE TABLE saga_effects (
                    saga text NOT NULL,
                    instance_id uuid NOT NULL,
                    effect text NOT NULL,
                    attempts integer NOT NULL CHECK (attempts >= 1),
                    first_sent_at timestamptz NOT NULL,
                    last_sent_at timestamptz NOT NULL,
                    next_attempt_at timestamptz NOT NULL,
                    confirmed_at timestamptz,
                    confirmed_by text,
                    PRIMARY KEY (saga, instance_id, effect),
                    FOREIGN KEY (saga, instance_id) REFERENCES saga_instances (saga, id)
                );
                -- The re-send sweep and the outstanding gauges: unconfirmed effects only.
                CREATE INDEX saga_effects_due ON saga_effects (saga, next_attempt_at)
                    WHERE confirmed_at IS NULL;",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP TABLE saga_effects, saga_transitions, saga_instances")
            .await?;
        Ok(())
    }
}

/// Adds `saga_instances.traceparent`: the W3C trace context an instance was started in, so
/// that what the sweeper does for it later (a deadline, a re-send) continues the same trace.
pub struct AddTraceContext;

impl MigrationName for AddTraceContext {
    fn name(&self) -> &str {
        "m20261202_900002_saga_instances_traceparent"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AddTraceContext {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("ALTER TABLE saga_instances ADD COLUMN traceparent text")
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("ALTER TABLE saga_instances DROP COLUMN traceparent")
            .await?;
        Ok(())
    }
}

/// The runtime's migrations, for a service's `MigratorTrait::migrations` (after
/// `outbox::migration::migrations()`).
pub fn migrations() -> Vec<Box<dyn MigrationTrait>> {
    vec![Box::new(CreateSagaTables), Box::new(AddTraceContext)]
}

/// A migrator with the outbox's and the runtime's tables: enough for a service whose only
/// state is its sagas (and for tests).
pub struct SagaMigrator;

impl MigratorTrait for SagaMigrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut all = outbox::migration::migrations();
        all.extend(migrations());
        all
    }
}
