//! Acknowledging a channel's deliveries with as few frames as their order allows.
//!
//! Every acknowledgement of a quorum queue's delivery is a command in the queue's Raft log, and
//! one `basic.ack` with `multiple` set settles every delivery up to its tag in one command: the
//! raw benchmark consumes 3–4× as many messages per second when one acknowledgement covers 32
//! deliveries, and the whole system spends about 5 % less CPU per order at saturation
//! (BENCHMARKS.md). The lanes of a session settle their batches out of delivery
//! order, so a delivery is acknowledged only once every delivery before it on the channel has
//! been settled too: [`Watermark`] tracks which ones have, [`Acknowledger`] sends the frames.

use std::collections::BTreeSet;

use lapin::Channel;
use lapin::options::BasicAckOptions;

/// The delivery tags of one channel: how far every delivery has been acknowledged, and which
/// later ones are settled but wait for an earlier one.
///
/// The broker numbers a channel's deliveries 1, 2, 3, … across all of its consumers, so a tag is
/// known to exist before the delivery is read: the deliveries of several queues reach the
/// session through separate streams, and one may be read after a later tag of another queue has
/// been settled. Counting on the numbering, not on what has been read, keeps an acknowledgement
/// from covering a delivery nobody has handled yet.
#[derive(Debug, Default)]
pub(super) struct Watermark {
    /// Every delivery up to this tag is settled and acknowledged (0: none yet).
    acknowledged: u64,
    /// Settled above `acknowledged`, waiting for the deliveries before them.
    settled: BTreeSet<u64>,
}

impl Watermark {
    /// Notes deliveries as settled; returns the tag of one `multiple` acknowledgement that now
    /// covers every delivery up to it — when every delivery after the last acknowledged one,
    /// up to that tag, is settled.
    pub(super) fn settle(&mut self, tags: impl IntoIterator<Item = u64>) -> Option<u64> {
        self.settled
            .extend(tags.into_iter().filter(|&tag| tag > self.acknowledged));
        let mut highest = self.acknowledged;
        while self.settled.remove(&(highest + 1)) {
            highest += 1;
        }
        if highest == self.acknowledged {
            return None;
        }
        self.acknowledged = highest;
        Some(highest)
    }

    /// Takes the settled deliveries still waiting on an earlier one (when a session stops with
    /// a delivery left unhandled, these can still be acknowledged one by one).
    pub(super) fn take_waiting(&mut self) -> BTreeSet<u64> {
        std::mem::take(&mut self.settled)
    }
}

/// Acknowledges the deliveries of a consuming channel in delivery order.
pub(super) struct Acknowledger {
    channel: Channel,
    /// Held while a frame is sent: two `multiple` acknowledgements sent out of order would
    /// have the second name a tag the first already covered, which the broker treats as an
    /// unknown tag and closes the channel for.
    watermark: tokio::sync::Mutex<Watermark>,
}

impl Acknowledger {
    /// Acknowledges on `channel` (the one the deliveries came on).
    pub(super) fn new(channel: Channel) -> Self {
        Acknowledger {
            channel,
            watermark: tokio::sync::Mutex::new(Watermark::default()),
        }
    }

    /// Notes deliveries as settled and acknowledges whatever that makes acknowledgeable.
    pub(super) async fn settle(&self, tags: &[u64]) -> Result<(), lapin::Error> {
        let mut watermark = self.watermark.lock().await;
        let Some(highest) = watermark.settle(tags.iter().copied()) else {
            return Ok(());
        };
        self.channel
            .basic_ack(highest, BasicAckOptions { multiple: true })
            .await
    }

    /// Acknowledges, one by one, the settled deliveries still waiting on an earlier one that
    /// will not be settled in this session (the unsettled ones are redelivered to the next).
    pub(super) async fn acknowledge_waiting(&self) -> Result<(), lapin::Error> {
        let mut watermark = self.watermark.lock().await;
        for tag in watermark.take_waiting() {
            self.channel
                .basic_ack(tag, BasicAckOptions { multiple: false })
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What each step acknowledges: `(settled, expected acknowledgement)` applied in order to
    /// one watermark of a channel whose deliveries are numbered from 1.
    fn check(steps: &[(&[u64], Option<u64>)]) {
        let mut watermark = Watermark::default();
        for (index, (settled, expected)) in steps.iter().enumerate() {
            let acknowledged = watermark.settle(settled.iter().copied());
            assert_eq!(acknowledged, *expected, "step {index}: {watermark:?}");
        }
    }

    #[test]
    fn acknowledges_up_to_the_first_delivery_not_yet_settled() {
        // One lane, in order: each batch is acknowledged as it settles.
        check(&[(&[1, 2], Some(2)), (&[3, 4], Some(4))]);
        // Two lanes interleaved: the later lane waits for the earlier one's deliveries.
        check(&[(&[2, 4, 6], None), (&[1, 3], Some(4)), (&[5], Some(6))]);
        // Tag 1 not yet read (another queue's stream), 2 and 3 settled: nothing covers 1.
        check(&[(&[2, 3], None), (&[1], Some(3))]);
        // A tag settled twice, or one already covered, changes nothing.
        check(&[
            (&[1], Some(1)),
            (&[1], None),
            (&[3], None),
            (&[3, 2], Some(3)),
        ]);
    }

    #[test]
    fn a_delivery_acknowledged_alone_is_never_named_again() {
        let mut watermark = Watermark::default();
        assert_eq!(watermark.settle([1, 2]), Some(2));
        assert_eq!(watermark.settle([4]), None);
        assert_eq!(watermark.take_waiting(), BTreeSet::from([4]));
        // 4 was taken to be acknowledged alone: 3 is acknowledged without it.
        assert_eq!(watermark.settle([3]), Some(3));
        assert_eq!(watermark.take_waiting(), BTreeSet::new());
    }
}
