//! The runtime's SQL, untyped: names and JSON in, rows out. [`crate::engine`] gives it types.
//!
//! Every write of a step is one round trip where it can be: the versioned update, its
//! timeline row and the confirmations its event carries are one statement, the effects it
//! sends one upsert.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, QueryResult, Statement, Value};
use uuid::Uuid;

/// A stored instance, as read.
#[derive(Clone, Debug)]
pub(crate) struct InstanceRow {
    pub(crate) state: String,
    pub(crate) version: i64,
    pub(crate) data: serde_json::Value,
    pub(crate) deadline_at: Option<DateTime<Utc>>,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
    pub(crate) traceparent: Option<String>,
}

/// What a step does to the instance's timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TimerWrite {
    Keep,
    Clear,
    /// Due this long from now (the database's clock, which the sweeper compares with).
    Arm(Duration),
}

impl TimerWrite {
    fn mode(self) -> (&'static str, i64) {
        match self {
            TimerWrite::Keep => ("keep", 0),
            TimerWrite::Clear => ("clear", 0),
            TimerWrite::Arm(after) => ("arm", millis(after)),
        }
    }
}

/// One written decision, for the timeline.
pub(crate) struct StepWrite<'a> {
    pub(crate) saga: &'a str,
    pub(crate) instance_id: Uuid,
    pub(crate) read_version: i64,
    pub(crate) from_state: &'a str,
    pub(crate) to_state: &'a str,
    pub(crate) event: &'a str,
    pub(crate) effects: &'a [&'a str],
    pub(crate) message_id: Option<Uuid>,
    pub(crate) data: serde_json::Value,
    pub(crate) timer: TimerWrite,
    /// The outstanding effects the event confirms (marked in the same statement).
    pub(crate) confirmed: Vec<String>,
}

pub(crate) fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn statement(sql: &str, values: impl IntoIterator<Item = Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// Runs a statement; the number of rows it wrote.
async fn execute<C: ConnectionTrait>(
    db: &C,
    sql: &str,
    values: impl IntoIterator<Item = Value>,
) -> Result<u64, DbErr> {
    Ok(db
        .execute_raw(statement(sql, values))
        .await?
        .rows_affected())
}

/// Runs a query and reads each row with `read`.
pub(crate) async fn query<C: ConnectionTrait, T>(
    db: &C,
    sql: &str,
    values: impl IntoIterator<Item = Value>,
    read: impl Fn(&QueryResult) -> Result<T, DbErr>,
) -> Result<Vec<T>, DbErr> {
    let rows = db.query_all_raw(statement(sql, values)).await?;
    rows.iter().map(read).collect()
}

pub(crate) async fn load<C: ConnectionTrait>(
    db: &C,
    saga: &str,
    instance_id: Uuid,
) -> Result<Option<InstanceRow>, DbErr> {
    let row = db
        .query_one_raw(statement(
            "SELECT state, version, data, deadline_at, created_at, updated_at, traceparent
             FROM saga_instances WHERE saga = $1 AND id = $2",
            [saga.into(), instance_id.into()],
        ))
        .await?;
    row.map(|row| instance_row(&row)).transpose()
}

fn instance_row(row: &QueryResult) -> Result<InstanceRow, DbErr> {
    Ok(InstanceRow {
        state: row.try_get_by_index(0)?,
        version: row.try_get_by_index(1)?,
        data: row.try_get_by_index(2)?,
        deadline_at: row.try_get_by_index(3)?,
        created_at: row.try_get_by_index(4)?,
        updated_at: row.try_get_by_index(5)?,
        traceparent: row.try_get_by_index(6)?,
    })
}

/// A new instance, for [`insert`].
pub(crate) struct NewInstance<'a> {
    pub(crate) saga: &'a str,
    pub(crate) instance_id: Uuid,
    pub(crate) state: &'a str,
    pub(crate) data: serde_json::Value,
    pub(crate) effects: &'a [&'a str],
    pub(crate) timer: TimerWrite,
    pub(crate) cause: Option<Uuid>,
    /// The trace the instance starts in (`traceparent`), continued by the sweeper's work.
    pub(crate) traceparent: Option<String>,
}

/// Inserts a new instance at version 1 with its first timeline row (`from_state` and `event`
/// empty: the start). `false` if the id is taken.
pub(crate) async fn insert<C: ConnectionTrait>(
    db: &C,
    instance: NewInstance<'_>,
) -> Result<bool, DbErr> {
    let NewInstance {
        saga,
        instance_id,
        state,
        data,
        effects,
        timer,
        cause,
        traceparent,
    } = instance;
    let (mode, after) = timer.mode();
    let inserted = execute(db,
            "WITH started AS (
                 INSERT INTO saga_instances (saga, id, state, version, data, deadline_at, traceparent)
                 VALUES ($1, $2, $3, 1, $4,
                         CASE WHEN $5 = 'arm' THEN now() + $6::bigint * interval '1 millisecond' END,
                         $9)
                 ON CONFLICT DO NOTHING
                 RETURNING saga, id
             )
             INSERT INTO saga_transitions (saga, instance_id, seq, from_state, to_state, event, effects, message_id, at)
             SELECT saga, id, 1, NULL, $3, NULL, $7, $8, clock_timestamp() FROM started",
            [
                saga.into(),
                instance_id.into(),
                state.into(),
                data.into(),
                mode.into(),
                after.into(),
                serde_json::json!(effects).into(),
                cause.into(),
                traceparent.into(),
            ],
        )
        .await?;
    Ok(inserted == 1)
}

/// The versioned update of a step, its timeline row and the confirmations its event carries,
/// in one statement: the row is written and the effects confirmed only if the update won.
/// `false` when another transaction stepped the instance first.
///
/// The effects' rows are joined to the updated instance, so the instance's row is locked
/// before them: every writer locks an instance before its effects, and a confirmation never
/// waits for a firing timer in the opposite order.
pub(crate) async fn write_step<C: ConnectionTrait>(
    db: &C,
    step: StepWrite<'_>,
) -> Result<bool, DbErr> {
    let (mode, after) = step.timer.mode();
    let written = execute(db,
            "WITH stepped AS (
                 UPDATE saga_instances
                 SET state = $3, version = version + 1, data = $4, updated_at = now(),
                     deadline_at = CASE $5
                         WHEN 'keep' THEN deadline_at
                         WHEN 'arm' THEN now() + $6::bigint * interval '1 millisecond'
                     END
                 WHERE saga = $1 AND id = $2 AND version = $7
                 RETURNING saga, id, version
             ), confirmed AS (
                 UPDATE saga_effects effect SET confirmed_at = now(), confirmed_by = $9
                 FROM stepped
                 WHERE effect.saga = stepped.saga AND effect.instance_id = stepped.id
                   AND effect.effect = ANY($12) AND effect.confirmed_at IS NULL
             )
             INSERT INTO saga_transitions (saga, instance_id, seq, from_state, to_state, event, effects, message_id, at)
             SELECT saga, id, version, $8, $3, $9, $10, $11, clock_timestamp() FROM stepped",
            [
                step.saga.into(),
                step.instance_id.into(),
                step.to_state.into(),
                step.data.into(),
                mode.into(),
                after.into(),
                step.read_version.into(),
                step.from_state.into(),
                step.event.into(),
                serde_json::json!(step.effects).into(),
                step.message_id.into(),
                step.confirmed.into(),
            ],
        )
        .await?;
    Ok(written == 1)
}

/// Writes changed data without a decision (a duplicate event that still told facts); versioned
/// like a step. `false` on a lost race.
pub(crate) async fn write_data<C: ConnectionTrait>(
    db: &C,
    saga: &str,
    instance_id: Uuid,
    read_version: i64,
    data: serde_json::Value,
) -> Result<bool, DbErr> {
    let written = execute(
        db,
        "UPDATE saga_instances SET data = $3, version = version + 1, updated_at = now()
             WHERE saga = $1 AND id = $2 AND version = $4",
        [
            saga.into(),
            instance_id.into(),
            data.into(),
            read_version.into(),
        ],
    )
    .await?;
    Ok(written == 1)
}

/// Marks the outstanding effects `effects` of the instance confirmed by `event`.
pub(crate) async fn confirm<C: ConnectionTrait>(
    db: &C,
    saga: &str,
    instance_id: Uuid,
    effects: Vec<String>,
    event: &str,
) -> Result<u64, DbErr> {
    let confirmed = execute(
        db,
        "UPDATE saga_effects SET confirmed_at = now(), confirmed_by = $4
             WHERE saga = $1 AND instance_id = $2 AND effect = ANY($3) AND confirmed_at IS NULL",
        [
            saga.into(),
            instance_id.into(),
            effects.into(),
            event.into(),
        ],
    )
    .await?;
    Ok(confirmed)
}

/// Records effects just sent that need a confirmation: new rows at attempt 1, or — for an
/// effect emitted again — one more attempt of the outstanding row (a confirmed one reopens).
/// `effects` must hold each name once.
pub(crate) async fn record_sent<C: ConnectionTrait>(
    db: &C,
    saga: &str,
    instance_id: Uuid,
    effects: Vec<String>,
    first_resend_after: Duration,
) -> Result<(), DbErr> {
    if effects.is_empty() {
        return Ok(());
    }
    execute(db,
        "INSERT INTO saga_effects (saga, instance_id, effect, attempts, first_sent_at, last_sent_at, next_attempt_at)
         SELECT $1, $2, effect, 1, now(), now(), now() + $4::bigint * interval '1 millisecond'
         FROM unnest($3::text[]) AS effect
         ON CONFLICT (saga, instance_id, effect) DO UPDATE SET
             attempts = CASE WHEN saga_effects.confirmed_at IS NULL
                             THEN saga_effects.attempts + 1 ELSE 1 END,
             first_sent_at = CASE WHEN saga_effects.confirmed_at IS NULL
                                  THEN saga_effects.first_sent_at ELSE now() END,
             last_sent_at = now(),
             next_attempt_at = EXCLUDED.next_attempt_at,
             confirmed_at = NULL,
             confirmed_by = NULL",
        [
            saga.into(),
            instance_id.into(),
            effects.into(),
            millis(first_resend_after).into(),
        ],
    )
    .await?;
    Ok(())
}

/// An instance whose timer is due.
pub(crate) struct DueTimer {
    pub(crate) instance_id: Uuid,
    pub(crate) state: String,
    /// The trace the instance was started in.
    pub(crate) traceparent: Option<String>,
}

/// Claims instances whose timer is due, soonest first, locking them (`SKIP LOCKED`: replicas
/// sweep disjoint instances).
pub(crate) async fn claim_due_timers<C: ConnectionTrait>(
    db: &C,
    saga: &str,
    batch: u64,
) -> Result<Vec<DueTimer>, DbErr> {
    query(
        db,
        "SELECT id, state, traceparent FROM saga_instances
             WHERE saga = $1 AND deadline_at <= now()
             ORDER BY deadline_at
             LIMIT $2
             FOR UPDATE SKIP LOCKED",
        [saga.into(), i64::try_from(batch).unwrap_or(i64::MAX).into()],
        |row| {
            Ok(DueTimer {
                instance_id: row.try_get_by_index(0)?,
                state: row.try_get_by_index(1)?,
                traceparent: row.try_get_by_index(2)?,
            })
        },
    )
    .await
}

/// Moves an instance's timer `after` into the future (a deadline that could not be applied is
/// tried again later, not at every sweep).
pub(crate) async fn postpone_timer<C: ConnectionTrait>(
    db: &C,
    saga: &str,
    instance_id: Uuid,
    after: Duration,
) -> Result<(), DbErr> {
    execute(
        db,
        "UPDATE saga_instances SET deadline_at = now() + $3::bigint * interval '1 millisecond'
         WHERE saga = $1 AND id = $2",
        [saga.into(), instance_id.into(), millis(after).into()],
    )
    .await?;
    Ok(())
}

/// Clears a timer that no deadline of the table explains any more.
pub(crate) async fn clear_timer<C: ConnectionTrait>(
    db: &C,
    saga: &str,
    instance_id: Uuid,
) -> Result<(), DbErr> {
    execute(
        db,
        "UPDATE saga_instances SET deadline_at = NULL WHERE saga = $1 AND id = $2",
        [saga.into(), instance_id.into()],
    )
    .await?;
    Ok(())
}

/// An outstanding effect due for a re-send.
pub(crate) struct DueEffect {
    pub(crate) instance_id: Uuid,
    pub(crate) effect: String,
    pub(crate) attempts: i32,
    /// The trace the instance was started in.
    pub(crate) traceparent: Option<String>,
}

/// Claims outstanding effects due for a re-send, most overdue first, locking their rows.
pub(crate) async fn claim_due_effects<C: ConnectionTrait>(
    db: &C,
    saga: &str,
    batch: u64,
) -> Result<Vec<DueEffect>, DbErr> {
    query(
        db,
        "SELECT effect.instance_id, effect.effect, effect.attempts, instance.traceparent
             FROM saga_effects effect
             JOIN saga_instances instance
               ON instance.saga = effect.saga AND instance.id = effect.instance_id
             WHERE effect.saga = $1 AND effect.confirmed_at IS NULL
               AND effect.next_attempt_at <= now()
             ORDER BY effect.next_attempt_at
             LIMIT $2
             FOR UPDATE OF effect SKIP LOCKED",
        [saga.into(), i64::try_from(batch).unwrap_or(i64::MAX).into()],
        |row| {
            Ok(DueEffect {
                instance_id: row.try_get_by_index(0)?,
                effect: row.try_get_by_index(1)?,
                attempts: row.try_get_by_index(2)?,
                traceparent: row.try_get_by_index(3)?,
            })
        },
    )
    .await
}

/// Counts one more attempt of an outstanding effect, due again `after` from now.
pub(crate) async fn record_resent<C: ConnectionTrait>(
    db: &C,
    saga: &str,
    instance_id: Uuid,
    effect: &str,
    after: Duration,
) -> Result<(), DbErr> {
    execute(
        db,
        "UPDATE saga_effects
         SET attempts = attempts + 1, last_sent_at = now(),
             next_attempt_at = now() + $4::bigint * interval '1 millisecond'
         WHERE saga = $1 AND instance_id = $2 AND effect = $3",
        [
            saga.into(),
            instance_id.into(),
            effect.into(),
            millis(after).into(),
        ],
    )
    .await?;
    Ok(())
}

/// Moves an outstanding effect's next attempt `after` from now without counting a send (its
/// messages could not be built).
pub(crate) async fn postpone_effect<C: ConnectionTrait>(
    db: &C,
    saga: &str,
    instance_id: Uuid,
    effect: &str,
    after: Duration,
) -> Result<(), DbErr> {
    execute(
        db,
        "UPDATE saga_effects SET next_attempt_at = now() + $4::bigint * interval '1 millisecond'
         WHERE saga = $1 AND instance_id = $2 AND effect = $3",
        [
            saga.into(),
            instance_id.into(),
            effect.into(),
            millis(after).into(),
        ],
    )
    .await?;
    Ok(())
}

/// A timeline row, as read (also from the JSON array [`history`] builds, field by field).
#[derive(serde::Deserialize)]
pub(crate) struct TransitionRow {
    pub(crate) seq: i64,
    pub(crate) from_state: Option<String>,
    pub(crate) to_state: String,
    pub(crate) event: Option<String>,
    pub(crate) effects: serde_json::Value,
    pub(crate) message_id: Option<Uuid>,
    pub(crate) at: DateTime<Utc>,
}

pub(crate) async fn timeline<C: ConnectionTrait>(
    db: &C,
    saga: &str,
    instance_id: Uuid,
) -> Result<Vec<TransitionRow>, DbErr> {
    query(
        db,
        "SELECT seq, from_state, to_state, event, effects, message_id, at
             FROM saga_transitions WHERE saga = $1 AND instance_id = $2 ORDER BY seq",
        [saga.into(), instance_id.into()],
        |row| {
            Ok(TransitionRow {
                seq: row.try_get_by_index(0)?,
                from_state: row.try_get_by_index(1)?,
                to_state: row.try_get_by_index(2)?,
                event: row.try_get_by_index(3)?,
                effects: row.try_get_by_index(4)?,
                message_id: row.try_get_by_index(5)?,
                at: row.try_get_by_index(6)?,
            })
        },
    )
    .await
}

/// An effect row, as read (also from the JSON array [`history`] builds, field by field).
#[derive(serde::Deserialize)]
pub(crate) struct EffectRow {
    pub(crate) effect: String,
    pub(crate) attempts: i32,
    pub(crate) first_sent_at: DateTime<Utc>,
    pub(crate) last_sent_at: DateTime<Utc>,
    pub(crate) next_attempt_at: DateTime<Utc>,
    pub(crate) confirmed_at: Option<DateTime<Utc>>,
    pub(crate) confirmed_by: Option<String>,
}

pub(crate) async fn effects<C: ConnectionTrait>(
    db: &C,
    saga: &str,
    instance_id: Uuid,
) -> Result<Vec<EffectRow>, DbErr> {
    query(
        db,
            "SELECT effect, attempts, first_sent_at, last_sent_at, next_attempt_at, confirmed_at, confirmed_by
             FROM saga_effects WHERE saga = $1 AND instance_id = $2 ORDER BY first_sent_at, effect",
            [saga.into(), instance_id.into()],
        |row| {
            Ok(EffectRow {
                effect: row.try_get_by_index(0)?,
                attempts: row.try_get_by_index(1)?,
                first_sent_at: row.try_get_by_index(2)?,
                last_sent_at: row.try_get_by_index(3)?,
                next_attempt_at: row.try_get_by_index(4)?,
                confirmed_at: row.try_get_by_index(5)?,
                confirmed_by: row.try_get_by_index(6)?,
            })
        })
    .await
}

/// The instance with its timeline (by `seq`) and its effects (in the order they were first
/// sent) in one round trip: the two lists come as JSON arrays of rows, each row an array of
/// the columns [`timeline`] and [`effects`] read.
pub(crate) async fn history<C: ConnectionTrait>(
    db: &C,
    saga: &str,
    instance_id: Uuid,
) -> Result<Option<(InstanceRow, Vec<TransitionRow>, Vec<EffectRow>)>, DbErr> {
    let row = db
        .query_one_raw(statement(
            "SELECT i.state, i.version, i.data, i.deadline_at, i.created_at, i.updated_at, i.traceparent,
                    (SELECT coalesce(json_agg(json_build_array(t.seq, t.from_state, t.to_state, t.event,
                                                               t.effects, t.message_id, t.at)
                                              ORDER BY t.seq), '[]')
                     FROM saga_transitions t WHERE t.saga = i.saga AND t.instance_id = i.id),
                    (SELECT coalesce(json_agg(json_build_array(e.effect, e.attempts, e.first_sent_at,
                                                               e.last_sent_at, e.next_attempt_at,
                                                               e.confirmed_at, e.confirmed_by)
                                              ORDER BY e.first_sent_at, e.effect), '[]')
                     FROM saga_effects e WHERE e.saga = i.saga AND e.instance_id = i.id)
             FROM saga_instances i WHERE i.saga = $1 AND i.id = $2",
            [saga.into(), instance_id.into()],
        ))
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let undecodable = |what: &str, error: serde_json::Error| {
        DbErr::Type(format!(
            "the {what} of saga instance {instance_id}: {error}"
        ))
    };
    let timeline: serde_json::Value = row.try_get_by_index(7)?;
    let effects: serde_json::Value = row.try_get_by_index(8)?;
    Ok(Some((
        instance_row(&row)?,
        serde_json::from_value(timeline).map_err(|error| undecodable("timeline", error))?,
        serde_json::from_value(effects).map_err(|error| undecodable("effects", error))?,
    )))
}

/// Per effect: how many are outstanding and the age of the oldest, in seconds.
pub(crate) async fn outstanding_summary<C: ConnectionTrait>(
    db: &C,
    saga: &str,
) -> Result<Vec<(String, i64, f64)>, DbErr> {
    query(
        db,
        "SELECT effect, count(*), EXTRACT(EPOCH FROM now() - min(first_sent_at))::float8
             FROM saga_effects WHERE saga = $1 AND confirmed_at IS NULL GROUP BY effect",
        [saga.into()],
        |row| {
            Ok((
                row.try_get_by_index(0)?,
                row.try_get_by_index(1)?,
                row.try_get_by_index(2)?,
            ))
        },
    )
    .await
}
