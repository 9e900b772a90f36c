//! Writing messages into the outbox — the only way a service publishes.

use std::cell::Cell;
use std::future::Future;
use std::sync::Arc;

use sea_orm::{ActiveValue, ConnectionTrait, DbErr, EntityTrait};
use tokio::sync::Notify;

use crate::entity::outbox_message;
use crate::message::{NewMessage, Outbound, Publish};

/// Why a message could not be enqueued.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    /// The database refused the row (the caller's transaction should roll back).
    #[error("could not write to the outbox: {0}")]
    Database(#[from] DbErr),
    /// The message could not be serialised (a bug in a message type).
    #[error("could not serialise the message: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Wakes the relay at once when a transaction that enqueued messages has committed, instead of
/// leaving the rows for its slow safety-net poll.
///
/// Signal *after* commit (a signal before it would wake the relay to find nothing). Cloning
/// shares the signal; a wake with no relay waiting is remembered until one waits.
#[derive(Clone, Debug, Default)]
pub struct OutboxSignal(Arc<Notify>);

impl OutboxSignal {
    /// A new signal, to share between the code that commits and the relay.
    pub fn new() -> OutboxSignal {
        OutboxSignal::default()
    }

    /// Tells the relay that committed rows are waiting.
    pub fn wake(&self) {
        self.0.notify_one();
    }

    /// Waits for a wake; one given while nobody waited is taken at once. The relay waits here.
    pub async fn woken(&self) {
        self.0.notified().await;
    }
}

tokio::task_local! {
    /// Set by [`enqueue_all`] when it runs inside [`noting_enqueues`].
    static ENQUEUED: Cell<bool>;
}

/// Runs `work` and says whether it enqueued anything, so that the caller wakes the relay only
/// when there is something to publish (an empty claim costs the database three statements).
pub(crate) async fn noting_enqueues<T>(work: impl Future<Output = T>) -> (T, bool) {
    ENQUEUED
        .scope(Cell::new(false), async move {
            let output = work.await;
            (output, ENQUEUED.with(Cell::get))
        })
        .await
}

/// Writes `message` into the outbox inside the caller's transaction: published if and only if
/// that transaction commits.
pub async fn enqueue<C: ConnectionTrait>(
    db: &C,
    message: &impl Outbound,
) -> Result<(), EnqueueError> {
    enqueue_all(db, &[message.to_new_message()?]).await?;
    Ok(())
}

/// Writes several messages in one statement; they are published in this order. Every other
/// way to enqueue ends here.
pub async fn enqueue_all<C: ConnectionTrait>(db: &C, messages: &[NewMessage]) -> Result<(), DbErr> {
    if messages.is_empty() {
        return Ok(());
    }
    let rows = messages.iter().map(|message| {
        // The trace of whatever enqueues the message travels with it (crate::trace).
        let mut headers = message.headers.clone();
        crate::trace::capture_into(&mut headers);
        row(message, headers)
    });
    outbox_message::Entity::insert_many(rows)
        .exec_without_returning(db)
        .await?;
    // Outside a scope (an HTTP handler, a sweeper) there is nothing to note: those wake the
    // relay themselves.
    let _ = ENQUEUED.try_with(|enqueued| enqueued.set(true));
    Ok(())
}

/// The outbox row of `message`, with `headers`.
fn row(
    message: &NewMessage,
    headers: serde_json::Map<String, serde_json::Value>,
) -> outbox_message::ActiveModel {
    outbox_message::ActiveModel {
        id: ActiveValue::Set(message.id),
        seq: ActiveValue::NotSet,
        message_type: ActiveValue::Set(message.message_type.clone()),
        payload: ActiveValue::Set(message.payload.clone()),
        correlation_id: ActiveValue::Set(message.correlation_id),
        causation_id: ActiveValue::Set(message.causation_id),
        headers: ActiveValue::Set(serde_json::Value::Object(headers)),
        occurred_at: ActiveValue::Set(message.occurred_at),
        processed_at: ActiveValue::Set(None),
        attempts: ActiveValue::Set(0),
        last_error: ActiveValue::Set(None),
        next_attempt_at: ActiveValue::Set(None),
    }
}

/// Wraps `message` in a new message (fresh id, produced now) caused by `causation_id` and
/// enqueues it; returns its id.
pub async fn enqueue_message<C: ConnectionTrait, M: Publish>(
    db: &C,
    message: &M,
    causation_id: Option<M::Id>,
) -> Result<M::Id, EnqueueError> {
    let new_message = message.new_message(causation_id)?;
    enqueue_all(db, std::slice::from_ref(&new_message)).await?;
    Ok(M::Id::from(new_message.id))
}
