//! [`TransactionalProcessor`]: a batch in one transaction with an inbox row per message, so that
//! a duplicate is skipped and a handler's effects commit with the record of its message.

use std::collections::HashSet;
use std::marker::PhantomData;
use std::sync::Arc;

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, Statement,
    TransactionTrait,
};
use tracing::{Instrument, debug};

use super::{Handler, HandlerError, ProcessError, Processor, Received, Verdict, message_span};
use crate::enqueue::OutboxSignal;
use crate::failure::{Blame, blame_database};
use crate::message::Inbound;

/// Handles a batch in one transaction, each message with its inbox row; falls back to one
/// transaction per message when a message of the batch fails.
pub struct TransactionalProcessor<M, H> {
    db: DatabaseConnection,
    handler: H,
    signal: OutboxSignal,
    immediate_retries: u32,
    /// The message type is the handler's; `fn() -> M` keeps the processor `Send` and `Sync`
    /// whatever `M` is.
    message: PhantomData<fn() -> M>,
}

impl<M: Inbound, H: Handler<M>> TransactionalProcessor<M, H> {
    /// Runs `handler` against `db`; wakes the relay through `signal` after each batch that
    /// enqueued messages.
    pub fn new(db: DatabaseConnection, handler: H, signal: OutboxSignal) -> Self {
        TransactionalProcessor {
            db,
            handler,
            signal,
            immediate_retries: 5,
            message: PhantomData,
        }
    }

    /// Handles a whole batch in one transaction, without savepoints (two round trips per
    /// message saved), with every inbox row written by one statement and the rows its handlers
    /// contend for locked up front ([`Handler::lock_batch`]). `None`, after rolling
    /// everything back, if any handler failed: the caller then handles the messages one by one,
    /// so that only the failing one is retried.
    async fn process_at_once(
        &self,
        batch: &[Received<M>],
    ) -> Result<Option<Vec<Verdict>>, ProcessError> {
        let transaction = self.db.begin().await?;
        let mut first_sight = record_all_in_inbox(&transaction, batch).await?;
        let to_handle: Vec<&M> = batch
            .iter()
            .filter(|item| {
                first_sight.contains(&(Arc::clone(&item.queue), item.message.message_id()))
            })
            .map(|item| &item.message)
            .collect();
        if let Err(error) = self.handler.lock_batch(&transaction, &to_handle).await {
            debug!(%error, batch = batch.len(), "locking the batch's rows failed; handling it one by one");
            transaction.rollback().await?;
            return Ok(None);
        }
        let mut verdicts = Vec::with_capacity(batch.len());
        for item in batch {
            // A message seen before, or a second copy of one earlier in this batch.
            if !first_sight.remove(&(Arc::clone(&item.queue), item.message.message_id())) {
                verdicts.push(Verdict::Duplicate);
                continue;
            }
            let handled = self
                .handler
                .handle(&transaction, &item.message)
                .instrument(message_span(item))
                .await;
            if let Err(error) = handled {
                debug!(%error, batch = batch.len(), "a message failed; handling its batch one by one");
                transaction.rollback().await?;
                return Ok(None);
            }
            verdicts.push(Verdict::Handled);
        }
        transaction.commit().await?;
        Ok(Some(verdicts))
    }

    /// Handles one message in a transaction of its own, handling it again at once after a lost
    /// optimistic-concurrency race or a database error.
    async fn process_alone(&self, item: &Received<M>) -> Result<Verdict, ProcessError> {
        let mut immediate_retries = 0;
        loop {
            let transaction = self.db.begin().await?;
            let first_sight = record_all_in_inbox(&transaction, std::slice::from_ref(item)).await?;
            if first_sight.is_empty() {
                transaction.rollback().await?;
                return Ok(Verdict::Duplicate);
            }
            let error = match self.handler.handle(&transaction, &item.message).await {
                Ok(()) => {
                    transaction.commit().await?;
                    return Ok(Verdict::Handled);
                }
                Err(error) => error,
            };
            transaction.rollback().await?;
            match self.after_failure(error, &mut immediate_retries) {
                AfterFailure::HandleAgain => continue,
                AfterFailure::Settle(verdict) => return Ok(verdict),
                AfterFailure::Pause(cause) => return Err(cause),
            }
        }
    }

    /// What follows a failed attempt: the message's own failures become its verdict; a lost
    /// optimistic-concurrency race or an infrastructure failure (a deadlock, a dropped
    /// connection) is handled again at once a few times, then pauses the consumer without
    /// spending the message's attempts.
    fn after_failure(&self, error: HandlerError, immediate_retries: &mut u32) -> AfterFailure {
        // What follows once handling again at once has not helped.
        let exhausted = match error {
            HandlerError::Rejected(reason) => {
                return AfterFailure::Settle(Verdict::DeadLetter(reason));
            }
            HandlerError::Transient(reason) => return AfterFailure::Settle(Verdict::Retry(reason)),
            HandlerError::Unavailable(reason) => {
                return AfterFailure::Pause(ProcessError::new(reason));
            }
            // A database error the message seems to cause may still be a race with a
            // concurrent copy of it (two replicas inserting the same row: a unique violation),
            // which handling again on fresh state resolves; one that persists is the message's.
            HandlerError::Database(ref cause) => match blame_database(cause) {
                Blame::Message(reason) => AfterFailure::Settle(Verdict::Retry(reason)),
                Blame::Infrastructure(reason) => AfterFailure::Pause(ProcessError::new(reason)),
            },
            HandlerError::Conflict => AfterFailure::Pause(ProcessError::new(
                "optimistic concurrency conflicts did not resolve",
            )),
        };
        if *immediate_retries < self.immediate_retries {
            *immediate_retries += 1;
            debug!(%error, immediate_retries = *immediate_retries, "handling again");
            return AfterFailure::HandleAgain;
        }
        exhausted
    }

    async fn process_batch(&self, batch: &[Received<M>]) -> Result<Vec<Verdict>, ProcessError> {
        if let [item] = batch {
            let verdict = self
                .process_alone(item)
                .instrument(message_span(item))
                .await?;
            return Ok(vec![verdict]);
        }
        if let Some(verdicts) = self.process_at_once(batch).await? {
            return Ok(verdicts);
        }
        let mut verdicts = Vec::with_capacity(batch.len());
        for item in batch {
            verdicts.push(
                self.process_alone(item)
                    .instrument(message_span(item))
                    .await?,
            );
        }
        Ok(verdicts)
    }
}

impl<M: Inbound, H: Handler<M>> Processor<M> for TransactionalProcessor<M, H> {
    async fn process(&self, batch: &[Received<M>]) -> Result<Vec<Verdict>, ProcessError> {
        let (verdicts, enqueued) = crate::enqueue::noting_enqueues(self.process_batch(batch)).await;
        // A rolled-back attempt may have enqueued too: a spurious wake is harmless, a missed
        // one would leave rows for the slow poll.
        if enqueued {
            self.signal.wake();
        }
        verdicts
    }
}

/// What [`TransactionalProcessor::after_failure`] decided.
enum AfterFailure {
    /// Handle the message again at once, in a new transaction.
    HandleAgain,
    /// The message's own failure: settle it so.
    Settle(Verdict),
    /// The infrastructure failed: pause the batch.
    Pause(ProcessError),
}

/// Inserts the inbox rows of a whole batch in one statement; returns the messages seen for the
/// first time.
async fn record_all_in_inbox<M: Inbound>(
    transaction: &DatabaseTransaction,
    batch: &[Received<M>],
) -> Result<HashSet<(Arc<str>, uuid::Uuid)>, DbErr> {
    let (mut consumers, mut message_ids, mut types, mut correlation_ids) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for item in batch {
        consumers.push(item.queue.to_string());
        message_ids.push(item.message.message_id());
        types.push(item.message.message_type().to_owned());
        correlation_ids.push(item.message.correlation_id());
    }
    let inserted = transaction
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO processed_messages (consumer, message_id, type, correlation_id)
             SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::uuid[])
             ON CONFLICT DO NOTHING
             RETURNING consumer, message_id",
            [
                consumers.into(),
                message_ids.into(),
                types.into(),
                correlation_ids.into(),
            ],
        ))
        .await?;
    inserted
        .iter()
        .map(|row| {
            let consumer: String = row.try_get_by_index(0)?;
            let message_id: uuid::Uuid = row.try_get_by_index(1)?;
            Ok((Arc::from(consumer), message_id))
        })
        .collect()
}
