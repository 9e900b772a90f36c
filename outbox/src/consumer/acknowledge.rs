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

/// The delivery tags of one channel: those received and not yet settled, and those settled but
/// not yet acknowledged because an earlier delivery is still being handled.
#[derive(Debug, Default)]
pub(super) struct Watermark {
    /// Received, not yet settled (handled, duplicate, retried or dead-lettered).
    outstanding: BTreeSet<u64>,
    /// Settled, waiting for every earlier delivery to be settled too.
    settled: BTreeSet<u64>,
}

impl Watermark {
    /// Notes a delivery as it arrives (tags grow with each delivery on a channel).
    pub(super) fn received(&mut self, tag: u64) {
        self.outstanding.insert(tag);
    }

    /// Notes deliveries as settled; returns the highest tag that one `multiple` acknowledgement
    /// may now cover — every settled delivery below the earliest one still outstanding — and
    /// forgets the deliveries it covers.
    pub(super) fn settle(&mut self, tags: impl IntoIterator<Item = u64>) -> Option<u64> {
        for tag in tags {
            self.outstanding.remove(&tag);
            self.settled.insert(tag);
        }
        let highest = match self.outstanding.first() {
            Some(&earliest_outstanding) => self.settled.range(..earliest_outstanding).next_back(),
            None => self.settled.last(),
        };
        let highest = *highest?;
        self.settled = self.settled.split_off(&(highest + 1));
        Some(highest)
    }

    /// Takes the settled deliveries still waiting on an earlier one (when a session stops with
    /// a batch left unhandled, these can still be acknowledged one by one).
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

    /// Notes a delivery as it arrives, before it is handed to a lane.
    pub(super) async fn received(&self, tag: u64) {
        self.watermark.lock().await.received(tag);
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
    /// will not be settled in this session; the rest are redelivered to the next one.
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

    /// What each step acknowledges: `(received, settled, expected acknowledgement)` applied in
    /// order to one watermark.
    fn check(steps: &[(&[u64], &[u64], Option<u64>)]) {
        let mut watermark = Watermark::default();
        for (index, (received, settled, expected)) in steps.iter().enumerate() {
            for &tag in *received {
                watermark.received(tag);
            }
            let acknowledged = watermark.settle(settled.iter().copied());
            assert_eq!(acknowledged, *expected, "step {index}: {watermark:?}");
        }
    }

    #[test]
    fn acknowledges_the_settled_deliveries_below_the_earliest_outstanding() {
        // One lane, in order: each batch is acknowledged as it settles.
        check(&[(&[1, 2, 3], &[1, 2], Some(2)), (&[4], &[3, 4], Some(4))]);
        // Two lanes interleaved: the later lane waits for the earlier one's deliveries.
        check(&[
            (&[1, 2, 3, 4, 5, 6], &[2, 4, 6], None),
            (&[], &[1, 3], Some(4)),
            (&[], &[5], Some(6)),
        ]);
        // Nothing settled below the earliest outstanding delivery: nothing to acknowledge.
        check(&[
            (&[1, 2], &[], None),
            (&[], &[2], None),
            (&[], &[1], Some(2)),
        ]);
        // Deliveries arriving after a settled one do not hold it back.
        check(&[
            (&[7], &[], None),
            (&[8, 9], &[7], Some(7)),
            (&[], &[9], None),
        ]);
    }

    #[test]
    fn a_covered_delivery_is_never_named_again() {
        let mut watermark = Watermark::default();
        for tag in 1..=4 {
            watermark.received(tag);
        }
        assert_eq!(watermark.settle([1, 2]), Some(2));
        assert_eq!(watermark.settle([4]), None);
        assert_eq!(watermark.take_waiting(), BTreeSet::from([4]));
        // Taken for one-by-one acknowledgement: the watermark no longer offers it.
        assert_eq!(watermark.settle([3]), Some(3));
        assert_eq!(watermark.take_waiting(), BTreeSet::new());
    }
}
