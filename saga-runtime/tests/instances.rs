//! The runtime against the real PostgreSQL: a due timer fires through the table, an instance the
//! definition refuses is rolled back alone and postponed (never half a step), an unconfirmed
//! effect is re-sent with a new message id until its confirmation arrives, and two transactions
//! that step one instance at once cannot both win.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use outbox::{NewMessage, OutboxSignal};
use saga_core::{Confirmation, Deadline, Label, Row, Table, labels};
use saga_runtime::{
    Applied, Cause, Correlated, EffectContext, JsonMessage, Rejection, RuntimeError, Saga,
    SagaMigrator, SagaRuntime, Settings, SweepReport, Sweeper,
};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, TransactionTrait};
use uuid::Uuid;

labels! { pub enum Task { Waiting, Finished, Expired } }
labels! { pub enum Heard { Done, TimedOut, Notified } }
labels! { pub enum Asked { Notify } }

static TASK: Table<'static, Task, Heard, Asked> = Table {
    name: "Task",
    initial: Task::Waiting,
    start_effects: &[],
    terminal: &[Task::Finished, Task::Expired],
    rows: &[
        Row::new(Task::Waiting, Heard::Done, Task::Finished, &[]),
        Row::new(
            Task::Waiting,
            Heard::TimedOut,
            Task::Expired,
            &[Asked::Notify],
        ),
    ],
    ignored: &[(Task::Expired, Heard::Notified)],
    deadlines: &[Deadline::new(
        &[Task::Waiting],
        Duration::from_secs(60),
        Heard::TimedOut,
    )],
    confirmations: &[Confirmation::new(Asked::Notify, &[Heard::Notified])],
};

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct TaskData {
    /// A definition bug for this instance: its effects cannot be built.
    poisoned: bool,
}

struct TaskSaga;

impl Saga for TaskSaga {
    type State = Task;
    type Event = Heard;
    type Effect = Asked;
    type Data = TaskData;
    type Message = JsonMessage;

    fn table(&self) -> &'static Table<'static, Task, Heard, Asked> {
        &TASK
    }

    fn event_of(&self, message: &JsonMessage) -> Option<Correlated<Heard>> {
        Some(Correlated {
            instance_id: message.correlation_id,
            event: Heard::from_name(&message.message_type)?,
        })
    }

    fn messages(
        &self,
        effect: Asked,
        task: &EffectContext<'_, Self>,
    ) -> Result<Vec<NewMessage>, Rejection> {
        if task.data.poisoned {
            return Err(Rejection::new("this task's notification cannot be built"));
        }
        let body = serde_json::json!({ "attempt": task.attempt });
        Ok(vec![
            JsonMessage::new(effect.name(), task.instance_id, body).into_new_message(),
        ])
    }

    /// Due at once, so that a sweep right after the start fires it.
    fn deadline_after(&self, _deadline: &Deadline<'static, Task, Heard>) -> Duration {
        Duration::ZERO
    }
}

async fn scalar(db: &DatabaseConnection, sql: &str, instance_id: Uuid) -> i64 {
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            [instance_id.into()],
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index(0).unwrap()
}

/// `(state, timeline rows, outbox rows, seconds until the timer fires (rounded), effect attempts)`;
/// checks on the way that the history read in one round trip is what the three reads return.
async fn observe(
    runtime: &SagaRuntime<TaskSaga>,
    db: &DatabaseConnection,
    instance_id: Uuid,
) -> (Task, usize, i64, Option<i64>, Vec<(Asked, u32, bool)>) {
    let instance = runtime.instance(db, instance_id).await.unwrap().unwrap();
    let timeline = runtime.timeline(db, instance_id).await.unwrap();
    let outbox = scalar(
        db,
        "SELECT count(*) FROM outbox_messages WHERE correlation_id = $1",
        instance_id,
    )
    .await;
    let timer = instance.deadline_at.map(|due| {
        (due - chrono::Utc::now())
            .num_milliseconds()
            .div_euclid(1000)
            + 1
    });
    let effects = runtime.effects(db, instance_id).await.unwrap();
    let history = runtime.history(db, instance_id).await.unwrap().unwrap();
    assert_eq!(
        (&history.instance, &history.timeline, &history.effects),
        (&instance, &timeline, &effects)
    );
    let effects = effects
        .iter()
        .map(|effect| (effect.effect, effect.attempts, effect.is_outstanding()))
        .collect();
    (instance.state, timeline.len(), outbox, timer, effects)
}

#[tokio::test]
async fn a_refused_instance_is_rolled_back_alone_and_unconfirmed_effects_are_sent_again() {
    let database = testkit::TestDatabase::create().await;
    let db = sea_orm::Database::connect(database.url()).await.unwrap();
    outbox::migrate::<SagaMigrator>(&db).await.unwrap();
    let settings = Settings {
        resend_after: Duration::ZERO,
        resend_max: Duration::ZERO,
        retry_failed_after: Duration::from_secs(30),
        ..Settings::default()
    };
    let runtime = Arc::new(SagaRuntime::new(TaskSaga).unwrap().with_settings(settings));
    let sweeper = Sweeper::new(db.clone(), OutboxSignal::new()).with_saga(Arc::clone(&runtime));
    let (healthy, poisoned) = (Uuid::now_v7(), Uuid::now_v7());
    let transaction = db.begin().await.unwrap();
    for (instance_id, poisoned) in [(healthy, false), (poisoned, true)] {
        runtime
            .start(&transaction, instance_id, TaskData { poisoned }, None)
            .await
            .unwrap();
    }
    transaction.commit().await.unwrap();

    // The first sweep fires both timers; the poisoned instance's step fails and is undone alone.
    // (With no wait before re-sends, the same sweep already sends the notification again.)
    let first = sweeper.sweep_once().await.unwrap();
    assert_eq!(
        (first.deadlines_fired, first.resent, first.postponed),
        (1, 1, 1),
        "{first:?}"
    );
    assert_eq!(
        observe(&runtime, &db, healthy).await,
        (Task::Expired, 2, 2, None, vec![(Asked::Notify, 2, true)])
    );
    assert_eq!(
        observe(&runtime, &db, poisoned).await,
        (Task::Waiting, 1, 0, Some(30), vec![]),
        "nothing of the refused step was written, and its timer waits 30 s"
    );

    // No confirmation: each sweep sends the notification again, with a new message id.
    let check = |report: SweepReport, resent: usize| {
        assert_eq!(
            (report.deadlines_fired, report.resent, report.postponed),
            (0, resent, 0),
            "{report:?}"
        );
    };
    check(sweeper.sweep_once().await.unwrap(), 1);
    check(sweeper.sweep_once().await.unwrap(), 1);
    assert_eq!(
        observe(&runtime, &db, healthy).await,
        (Task::Expired, 2, 4, None, vec![(Asked::Notify, 4, true)])
    );
    let distinct_ids = scalar(
        &db,
        "SELECT count(DISTINCT id) FROM outbox_messages WHERE correlation_id = $1",
        healthy,
    )
    .await;
    assert_eq!(distinct_ids, 4, "every copy is a new message");

    // The confirmation ends the re-sends; the state does not move (the table ignores it).
    let transaction = db.begin().await.unwrap();
    runtime
        .apply(
            &transaction,
            healthy,
            Heard::Notified,
            Cause::Requested { by: "the test" },
        )
        .await
        .unwrap();
    transaction.commit().await.unwrap();
    check(sweeper.sweep_once().await.unwrap(), 0);
    assert_eq!(
        observe(&runtime, &db, healthy).await,
        (Task::Expired, 2, 4, None, vec![(Asked::Notify, 4, false)])
    );
}

#[tokio::test]
async fn of_two_transactions_stepping_one_instance_the_second_loses_and_writes_nothing() {
    let database = testkit::TestDatabase::create().await;
    let db = sea_orm::Database::connect(database.url()).await.unwrap();
    outbox::migrate::<SagaMigrator>(&db).await.unwrap();
    let runtime = Arc::new(SagaRuntime::new(TaskSaga).unwrap());
    let task = Uuid::now_v7();
    let transaction = db.begin().await.unwrap();
    runtime
        .start(&transaction, task, TaskData { poisoned: false }, None)
        .await
        .unwrap();
    transaction.commit().await.unwrap();

    let first = db.begin().await.unwrap();
    let applied = runtime
        .apply(&first, task, Heard::Done, Cause::Requested { by: "first" })
        .await
        .unwrap();
    assert_eq!(
        applied,
        Applied::Step {
            from: Task::Waiting,
            to: Task::Finished,
            effects: &[]
        }
    );
    // The second reads the instance as it was committed and blocks on the first's row lock.
    let second = {
        let (db, runtime) = (db.clone(), Arc::clone(&runtime));
        tokio::spawn(async move {
            let transaction = db.begin().await.unwrap();
            let outcome = runtime
                .apply(&transaction, task, Heard::TimedOut, Cause::Deadline)
                .await;
            transaction.rollback().await.unwrap();
            outcome
        })
    };
    let waiting = "SELECT count(*) FROM pg_stat_activity
                   WHERE wait_event_type = 'Lock' AND datname = current_database() AND $1::uuid IS NOT NULL";
    for _ in 0..200 {
        if scalar(&db, waiting, task).await == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        scalar(&db, waiting, task).await,
        1,
        "the second step waits for the first"
    );
    first.commit().await.unwrap();
    match second.await.unwrap() {
        Err(RuntimeError::Conflict) => {}
        other => panic!("the second step must lose the race, got {other:?}"),
    }
    assert_eq!(
        observe(&runtime, &db, task).await,
        (Task::Finished, 2, 0, None, vec![])
    );
}

#[tokio::test]
async fn activity_counts_instances_by_state_and_steps_by_edge_since_a_moment() {
    let database = testkit::TestDatabase::create().await;
    let db = sea_orm::Database::connect(database.url()).await.unwrap();
    outbox::migrate::<SagaMigrator>(&db).await.unwrap();
    let runtime = SagaRuntime::new(TaskSaga).unwrap();
    let before_any = chrono::Utc::now();
    let tasks: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
    let transaction = db.begin().await.unwrap();
    for &task in &tasks {
        runtime
            .start(&transaction, task, TaskData { poisoned: false }, None)
            .await
            .unwrap();
    }
    runtime
        .apply(
            &transaction,
            tasks[0],
            Heard::Done,
            Cause::Requested { by: "the test" },
        )
        .await
        .unwrap();
    transaction.commit().await.unwrap();

    let activity = runtime.activity(&db, before_any).await.unwrap();
    assert_eq!(
        activity.in_state,
        [(Task::Waiting, 2), (Task::Finished, 1), (Task::Expired, 0)]
    );
    let edges: Vec<(Option<Task>, Option<Heard>, Task, u64)> = activity
        .edges
        .iter()
        .map(|edge| (edge.from, edge.event, edge.to, edge.steps))
        .collect();
    assert_eq!(
        edges,
        [
            (None, None, Task::Waiting, 3),
            (Some(Task::Waiting), Some(Heard::Done), Task::Finished, 1)
        ]
    );
    let later = runtime
        .activity(&db, chrono::Utc::now() + chrono::Duration::seconds(1))
        .await
        .unwrap();
    assert!(later.edges.is_empty(), "no step since: {later:?}");
    assert_eq!(later.in_state, activity.in_state, "states are counted now");
}
