//! Pure statistics over measured values: latency summaries and histograms (HdrHistogram) and
//! counts per time bucket. No I/O, no clocks; every function takes plain numbers or durations.
//!
//! # Latencies and percentiles
//!
//! A [`Latencies`] records durations in whole microseconds in an HdrHistogram with
//! [`SIGNIFICANT_DIGITS`] significant decimal digits, from 1 µs to [`MAX_TRACKED`] (a longer
//! one counts as that long in the percentiles). Its minimum, maximum and mean are exact.
//!
//! A percentile `p` is the **nearest-rank** one — the value at 1-based rank `⌈p / 100 × n⌉` of
//! the `n` values sorted ascending — as the histogram resolves it: the highest value its bucket
//! holds, so at most 0.1 % above the measured one, and never outside the exact minimum and
//! maximum. For the values 1 to 100 ms the p50 is 50 ms and the p99 is 99 ms (to 0.1 %); for a
//! single value every percentile is that value. No values have no summary (`None`).

use std::time::Duration;

use hdrhistogram::{CreationError, Histogram};
use serde::{Deserialize, Serialize};

/// Significant decimal digits the latency histograms keep (3: a resolution of 0.1 %).
pub const SIGNIFICANT_DIGITS: u8 = 3;
/// The longest latency the histograms tell apart; longer ones count as this long in the
/// percentiles and the histogram bins (the exact maximum is kept).
pub const MAX_TRACKED: Duration = Duration::from_secs(3_600);

/// Count, mean and nearest-rank percentiles of a set of latencies, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// How many values.
    pub count: usize,
    /// The smallest value (exact).
    pub min: f64,
    /// The arithmetic mean (exact).
    pub mean: f64,
    /// Nearest-rank 50th percentile (to 0.1 %).
    pub p50: f64,
    /// Nearest-rank 95th percentile (to 0.1 %).
    pub p95: f64,
    /// Nearest-rank 99th percentile (to 0.1 %).
    pub p99: f64,
    /// The largest value (exact).
    pub max: f64,
}

/// One bar of a histogram: the values in `[lo, hi)`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bin {
    /// Lower edge (inclusive).
    pub lo: f64,
    /// Upper edge (exclusive).
    pub hi: f64,
    /// How many values fall in the bin.
    pub count: u64,
}

/// Latencies recorded in an HdrHistogram (see the [module documentation](self)), with their
/// exact sum, minimum and maximum beside it.
#[derive(Clone, Debug)]
pub struct Latencies {
    histogram: Histogram<u64>,
    sum_us: u128,
    min_us: u64,
    max_us: u64,
}

/// Microseconds in milliseconds.
fn ms(us: u64) -> f64 {
    us as f64 / 1_000.0
}

impl Latencies {
    /// An empty record. Fails only if the histogram's fixed bounds were invalid.
    pub fn new() -> Result<Latencies, CreationError> {
        let highest = u64::try_from(MAX_TRACKED.as_micros()).unwrap_or(u64::MAX);
        Ok(Latencies {
            histogram: Histogram::new_with_max(highest, SIGNIFICANT_DIGITS)?,
            sum_us: 0,
            min_us: u64::MAX,
            max_us: 0,
        })
    }

    /// Records one latency (in whole microseconds, rounded down).
    pub fn record(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.histogram.saturating_record(us);
        self.sum_us += u128::from(us);
        self.min_us = self.min_us.min(us);
        self.max_us = self.max_us.max(us);
    }

    /// How many latencies were recorded.
    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    /// Forgets every latency, keeping the histogram's memory for the next ones.
    pub fn clear(&mut self) {
        self.histogram.reset();
        self.sum_us = 0;
        self.min_us = u64::MAX;
        self.max_us = 0;
    }

    /// The summary of what was recorded, in milliseconds; `None` when nothing was.
    pub fn summary(&self) -> Option<Summary> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        let mut quantiles = self
            .histogram
            .value_at_quantiles([0.5, 0.95, 0.99])
            .map(|us| ms(us.clamp(self.min_us, self.max_us)));
        let (p50, p95, p99) = (quantiles.next()?, quantiles.next()?, quantiles.next()?);
        Some(Summary {
            count: usize::try_from(count).unwrap_or(usize::MAX),
            min: ms(self.min_us),
            mean: self.sum_us as f64 / count as f64 / 1_000.0,
            p50,
            p95,
            p99,
            max: ms(self.max_us),
        })
    }

    /// Clears, records `latencies` and summarizes them: one histogram serves many groups.
    pub fn summarize(&mut self, latencies: impl IntoIterator<Item = Duration>) -> Option<Summary> {
        self.clear();
        for latency in latencies {
            self.record(latency);
        }
        self.summary()
    }

    /// A histogram of what was recorded, in milliseconds, from 0 to past the maximum, in equal
    /// bins of a nice width (see [`nice_step`], at least 1 µs), at most `max_bins` of them (at
    /// least 2 are allowed). Every value is counted, in the bin of the highest value its
    /// HdrHistogram bucket holds (as the percentiles are). Nothing recorded gives no bins.
    pub fn bins(&self, max_bins: usize) -> Vec<Bin> {
        if self.count() == 0 {
            return Vec::new();
        }
        let max = ms(self.max_us);
        let slots = max_bins.max(2);
        // A width of at least max / (slots - 1) keeps ⌊max / width⌋ + 1 bins within `slots`.
        let width = nice_step(max / (slots - 1) as f64).max(0.001);
        let count = ((max / width).floor() as usize + 1).min(slots);
        let mut bins: Vec<Bin> = (0..count)
            .map(|index| Bin {
                lo: index as f64 * width,
                hi: (index + 1) as f64 * width,
                count: 0,
            })
            .collect();
        for recorded in self.histogram.iter_recorded() {
            let value = self
                .histogram
                .highest_equivalent(recorded.value_iterated_to())
                .clamp(self.min_us, self.max_us);
            let index = ((ms(value) / width).floor() as usize).min(count - 1);
            if let Some(bin) = bins.get_mut(index) {
                bin.count += recorded.count_at_value();
            }
        }
        bins
    }
}

/// The smallest "nice" number (1, 2 or 5 times a power of ten) at least `raw`; 1 for
/// non-positive or non-finite input.
pub fn nice_step(raw: f64) -> f64 {
    if !raw.is_finite() || raw <= 0.0 {
        return 1.0;
    }
    let magnitude = 10_f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|factor| factor * magnitude)
        .find(|&step| step >= raw * (1.0 - 1e-12))
        .unwrap_or(10.0 * magnitude)
}

/// The bucket of `width_secs` an instant `at_secs` seconds after the start falls in: bucket
/// `k` holds `[k × width, (k + 1) × width)`. Negative and NaN instants, and any instant when
/// the width is not positive, fall in bucket 0.
pub fn bucket_of(at_secs: f64, width_secs: f64) -> usize {
    let position = at_secs / width_secs;
    if !(width_secs > 0.0 && width_secs.is_finite() && position.is_finite() && position > 0.0) {
        0
    } else {
        position.floor() as usize
    }
}

/// How many buckets of `width_secs` cover `[0, span_secs]`: at least one, and one more when
/// `span_secs` lies exactly on a boundary, so that an instant equal to the span still has its
/// bucket.
pub fn bucket_count(span_secs: f64, width_secs: f64) -> usize {
    bucket_of(span_secs, width_secs) + 1
}

/// The values of `samples` (`(instant in seconds, value)`) grouped by their bucket of
/// `width_secs`, in `buckets` buckets (at least one; later instants go to the last one).
pub fn group_by_bucket<T: Copy>(
    samples: &[(f64, T)],
    width_secs: f64,
    buckets: usize,
) -> Vec<Vec<T>> {
    let mut groups = vec![Vec::new(); buckets.max(1)];
    let last = groups.len() - 1;
    for &(at, value) in samples {
        if let Some(group) = groups.get_mut(bucket_of(at, width_secs).min(last)) {
            group.push(value);
        }
    }
    groups
}

/// How many of `times_secs` fall in each of `buckets` buckets of `width_secs` (at least one;
/// instants past the last bucket are counted in the last one: none are lost).
pub fn counts_per_bucket(times_secs: &[f64], width_secs: f64, buckets: usize) -> Vec<u64> {
    let samples: Vec<(f64, ())> = times_secs.iter().map(|&at| (at, ())).collect();
    group_by_bucket(&samples, width_secs, buckets)
        .iter()
        .map(|group| group.len() as u64)
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    /// Durations of `values` milliseconds, to the microsecond.
    fn millis(values: &[f64]) -> Vec<Duration> {
        values
            .iter()
            .map(|&ms| Duration::from_micros((ms * 1_000.0).round() as u64))
            .collect()
    }

    /// The summary of `values_ms`: `(count, min, p50, p95, p99, max)` within the histogram's
    /// 0.1 % (min and max exactly), and the mean.
    fn check(case: &str, values_ms: &[f64], expected: Option<((usize, [f64; 5]), f64)>) {
        let mut latencies = Latencies::new().unwrap();
        let summary = latencies.summarize(millis(values_ms));
        let Some(((count, [min, p50, p95, p99, max]), mean)) = expected else {
            assert_eq!(summary, None, "{case}");
            return;
        };
        let summary = summary.unwrap_or_else(|| panic!("{case}: no summary"));
        assert_eq!(summary.count, count, "{case}");
        assert_eq!((summary.min, summary.max), (min, max), "{case}: exact");
        for (name, actual, wanted) in [
            ("p50", summary.p50, p50),
            ("p95", summary.p95, p95),
            ("p99", summary.p99, p99),
        ] {
            assert!(
                actual >= wanted && actual <= wanted * 1.001,
                "{case}: {name} = {actual}, expected {wanted} to 0.1 %"
            );
        }
        assert!(
            (summary.mean - mean).abs() < 1e-9,
            "{case}: mean {summary:?}"
        );
        assert!(
            summary.min <= summary.p50 && summary.p50 <= summary.p95,
            "{case}"
        );
        assert!(
            summary.p95 <= summary.p99 && summary.p99 <= summary.max,
            "{case}"
        );
    }

    #[test]
    fn summaries_are_nearest_rank_to_a_tenth_of_a_percent() {
        let one_to_hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        let mut shuffled = one_to_hundred.clone();
        shuffled.reverse();
        shuffled.swap(3, 70);
        let tens: Vec<f64> = (1..=10).map(|v| f64::from(v) * 10.0).collect();
        let spread: Vec<f64> = (0..1000).map(|i| f64::from((i * 7919) % 1000)).collect();
        check("nothing", &[], None);
        check(
            "1 to 100 ms",
            &one_to_hundred,
            Some(((100, [1.0, 50.0, 95.0, 99.0, 100.0]), 50.5)),
        );
        check(
            "the same, unsorted",
            &shuffled,
            Some(((100, [1.0, 50.0, 95.0, 99.0, 100.0]), 50.5)),
        );
        // n = 10: p50 → rank 5, p95 → rank ⌈9.5⌉ = 10, p99 → rank 10.
        check(
            "ten values",
            &tens,
            Some(((10, [10.0, 50.0, 100.0, 100.0, 100.0]), 55.0)),
        );
        // n = 4: p50 → rank 2 (the lower middle, never an average).
        check(
            "four values",
            &[1.0, 2.0, 3.0, 4.0],
            Some(((4, [1.0, 2.0, 4.0, 4.0, 4.0]), 2.5)),
        );
        check(
            "one value is every percentile",
            &[42.5],
            Some(((1, [42.5; 5]), 42.5)),
        );
        check(
            "sub-millisecond values are exact",
            &[0.003, 0.001, 0.002],
            Some(((3, [0.001, 0.002, 0.003, 0.003, 0.003]), 0.002)),
        );
        check(
            "a zero",
            &[0.0, 0.0, 5.0],
            Some(((3, [0.0, 0.0, 5.0, 5.0, 5.0]), 5.0 / 3.0)),
        );
        check(
            "0 to 999 ms",
            &spread,
            Some(((1000, [0.0, 499.0, 949.0, 989.0, 999.0]), 499.5)),
        );
        // Two hours count as one in the percentiles, but the maximum and mean are exact.
        check(
            "beyond the tracked range",
            &[1.0, 7_200_000.0],
            Some((
                (2, [1.0, 1.0, 3_600_000.0, 3_600_000.0, 7_200_000.0]),
                3_600_000.5,
            )),
        );
    }

    #[test]
    fn one_record_serves_many_groups() {
        let mut latencies = Latencies::new().unwrap();
        latencies.record(Duration::from_millis(900));
        let first = latencies.summarize(millis(&[1.0, 2.0])).unwrap();
        assert_eq!(
            (first.count, first.max),
            (2, 2.0),
            "cleared before the group"
        );
        latencies.clear();
        assert_eq!((latencies.count(), latencies.summary()), (0, None));
        assert!(latencies.bins(10).is_empty());
    }

    /// The bins of `values_ms` in at most `max_bins`: `(lo, hi, count)` each.
    fn check_bins(values_ms: &[f64], max_bins: usize, expected: &[(f64, f64, u64)]) {
        let mut latencies = Latencies::new().unwrap();
        latencies.summarize(millis(values_ms));
        let bins: Vec<(f64, f64, u64)> = latencies
            .bins(max_bins)
            .iter()
            .map(|bin| (bin.lo, bin.hi, bin.count))
            .collect();
        assert_eq!(bins.len(), expected.len(), "{values_ms:?}: {bins:?}");
        for (bin, wanted) in bins.iter().zip(expected) {
            assert!(
                (bin.0 - wanted.0).abs() < 1e-9 && (bin.1 - wanted.1).abs() < 1e-9,
                "{bins:?}"
            );
            assert_eq!(bin.2, wanted.2, "{bins:?}");
        }
    }

    #[test]
    fn histograms_have_nice_bins_and_count_everything() {
        let one_to_hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        let mut expected = vec![(0.0, 10.0, 9)];
        expected.extend((1..10).map(|k| (f64::from(k) * 10.0, f64::from(k + 1) * 10.0, 10)));
        expected.push((100.0, 110.0, 1));
        check_bins(&one_to_hundred, 11, &expected);
        check_bins(&[0.0, 0.0], 10, &[(0.0, 1.0, 2)]);
        for max_bins in [2, 3, 7, 20, 40] {
            let values: Vec<f64> = (0..500).map(|i| f64::from(i) * 1.37).collect();
            let mut latencies = Latencies::new().unwrap();
            latencies.summarize(millis(&values));
            let bins = latencies.bins(max_bins);
            assert!(bins.len() <= max_bins, "{} bins for {max_bins}", bins.len());
            assert_eq!(bins.iter().map(|bin| bin.count).sum::<u64>(), 500);
            assert!(bins.last().unwrap().hi > 499.0 * 1.37);
            assert!(bins.windows(2).all(|pair| pair[0].hi == pair[1].lo));
        }
    }

    #[test]
    fn a_single_value_has_one_full_bin() {
        let mut latencies = Latencies::new().unwrap();
        latencies.record(Duration::from_micros(42_500));
        let bins = latencies.bins(10);
        assert_eq!(bins.iter().map(|bin| bin.count).sum::<u64>(), 1);
        let full = bins.iter().find(|bin| bin.count == 1).unwrap();
        assert!(full.lo <= 42.5 && 42.5 < full.hi, "{bins:?}");
    }

    #[test]
    fn nice_steps() {
        for (raw, expected) in [
            (0.0, 1.0),
            (-1.0, 1.0),
            (1.0, 1.0),
            (1.2, 2.0),
            (3.0, 5.0),
            (7.0, 10.0),
            (10.0, 10.0),
            (11.0, 20.0),
            (0.03, 0.05),
            (450.0, 500.0),
        ] {
            assert!(
                (nice_step(raw) - expected).abs() < 1e-9,
                "nice_step({raw}) = {}",
                nice_step(raw)
            );
        }
    }

    #[test]
    fn buckets() {
        for (at, width, bucket) in [
            (0.0, 1.0, 0),
            (0.999, 1.0, 0),
            (1.0, 1.0, 1),
            (-3.0, 1.0, 0),
            (f64::NAN, 1.0, 0),
            (59.9, 60.0, 0),
            (60.0, 60.0, 1),
            (150.0, 60.0, 2),
            (5.0, 0.0, 0),
            (5.0, f64::INFINITY, 0),
        ] {
            assert_eq!(
                bucket_of(at, width),
                bucket,
                "{at} s in buckets of {width} s"
            );
        }
        for (span, width, count) in [(0.0, 1.0, 1), (2.5, 1.0, 3), (3.0, 1.0, 4), (90.0, 60.0, 2)] {
            assert_eq!(bucket_count(span, width), count, "{span} s by {width} s");
        }
        assert_eq!(
            counts_per_bucket(&[0.1, 0.2, 1.5, 2.0, 2.99, 9.0], 1.0, 3),
            vec![2, 1, 3]
        );
        assert_eq!(counts_per_bucket(&[], 1.0, 3), vec![0, 0, 0]);
        assert_eq!(counts_per_bucket(&[0.5], 1.0, 0), vec![1]);
        let groups = group_by_bucket(&[(0.5, 10), (1.5, 20), (0.7, 30), (4.0, 40)], 1.0, 2);
        assert_eq!(groups, vec![vec![10, 30], vec![20, 40]]);
    }
}
