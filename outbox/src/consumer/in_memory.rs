//! [`InMemoryProcessor`]: deduplication without a database, by a bounded cache of recent
//! message ids.

use std::collections::{HashSet, VecDeque};
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use tracing::Instrument;

use super::{
    HandlerError, ProcessError, Processor, Received, StatelessHandler, Verdict, message_span,
};
use crate::message::Inbound;

/// What identifies a handled message: the queue (the consumer) and the message id.
type SeenKey = (Arc<str>, uuid::Uuid);

/// Deduplicates in memory, remembering the last `capacity` message ids: a duplicate arriving
/// after a restart, or after that many other messages, is handled again.
pub struct InMemoryProcessor<M, H> {
    handler: H,
    seen: Mutex<SeenMessages>,
    /// The message type is the handler's; `fn() -> M` keeps the processor `Send` and `Sync`
    /// whatever `M` is.
    message: PhantomData<fn() -> M>,
}

/// The last `capacity` keys, oldest first, with a set for lookups.
struct SeenMessages {
    capacity: usize,
    order: VecDeque<SeenKey>,
    set: HashSet<SeenKey>,
}

impl SeenMessages {
    fn contains(&self, key: &SeenKey) -> bool {
        self.set.contains(key)
    }

    fn insert(&mut self, key: SeenKey) {
        if !self.set.insert(key.clone()) {
            return;
        }
        self.order.push_back(key);
        while self.order.len() > self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.set.remove(&oldest);
            }
        }
    }
}

impl<M: Inbound, H: StatelessHandler<M>> InMemoryProcessor<M, H> {
    /// Runs `handler`, remembering up to `capacity` message ids.
    pub fn new(handler: H, capacity: usize) -> Self {
        InMemoryProcessor {
            handler,
            seen: Mutex::new(SeenMessages {
                capacity,
                order: VecDeque::new(),
                set: HashSet::new(),
            }),
            message: PhantomData,
        }
    }

    fn already_seen(&self, key: &SeenKey) -> bool {
        self.seen
            .lock()
            .map(|seen| seen.contains(key))
            .unwrap_or(false)
    }

    fn remember(&self, key: SeenKey) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.insert(key);
        }
    }
}

impl<M: Inbound, H: StatelessHandler<M>> Processor<M> for InMemoryProcessor<M, H> {
    async fn process(&self, batch: &[Received<M>]) -> Result<Vec<Verdict>, ProcessError> {
        let mut verdicts = Vec::with_capacity(batch.len());
        for item in batch {
            let key = (Arc::clone(&item.queue), item.message.message_id());
            if self.already_seen(&key) {
                verdicts.push(Verdict::Duplicate);
                continue;
            }
            let result = self
                .handler
                .handle(&item.message)
                .instrument(message_span(item))
                .await;
            let verdict = match result {
                Ok(()) => {
                    self.remember(key);
                    Verdict::Handled
                }
                Err(HandlerError::Rejected(reason)) => Verdict::DeadLetter(reason),
                // Not the message's fault: the batch is handled again after a pause (what was
                // handled before this one is remembered, so it is not notified twice).
                Err(HandlerError::Unavailable(reason)) => return Err(ProcessError::new(reason)),
                Err(other) => Verdict::Retry(other.to_string()),
            };
            verdicts.push(verdict);
        }
        Ok(verdicts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_forgets_the_oldest_beyond_its_capacity() {
        let mut seen = SeenMessages {
            capacity: 2,
            order: VecDeque::new(),
            set: HashSet::new(),
        };
        let queue: Arc<str> = Arc::from("q");
        let keys: Vec<SeenKey> = (0..3)
            .map(|_| (Arc::clone(&queue), uuid::Uuid::now_v7()))
            .collect();
        for key in &keys {
            seen.insert(key.clone());
        }
        // A repeat does not push anything out.
        seen.insert(keys[2].clone());
        let remembered: Vec<bool> = keys.iter().map(|key| seen.contains(key)).collect();
        assert_eq!(remembered, [false, true, true]);
    }
}
