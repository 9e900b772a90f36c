//! Pure statistics over measured values: percentiles, summaries, per-second buckets and
//! histograms. No I/O, no clocks; every function takes plain numbers.
//!
//! # Percentile definition
//!
//! Percentiles use the **nearest-rank** method on sorted data: for `n` values sorted
//! ascending, the `p`-th percentile (0 < p ≤ 100) is the value at 1-based rank
//! `⌈p / 100 × n⌉`. It is always one of the measured values (never interpolated), so
//! `p100` is the maximum, and for the values 1 to 100 the p50 is 50 and the p99 is 99.
//! A `p` of 0 or less yields the minimum; more than 100 yields the maximum. Empty data has no
//! percentile (`None`). NaN values sort last (by [`f64::total_cmp`]).

use serde::{Deserialize, Serialize};

/// The nearest-rank `p`-th percentile of `sorted`, which must be sorted ascending.
/// `None` when `sorted` is empty. See the [module documentation](self) for the definition.
pub fn percentile_sorted(sorted: &[f64], p: f64) -> Option<f64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = if p.is_nan() || p <= 0.0 {
        1
    } else if p >= 100.0 {
        n
    } else {
        // ⌈p/100 × n⌉ computed in integers where possible to avoid 0.29 × 100 style drift:
        // p is scaled to millionths, which is finer than any percentile anyone asks for.
        let scaled = (p * 1_000_000.0).round() as u128;
        let numerator = scaled * n as u128;
        let denominator = 100_000_000_u128;
        usize::try_from(numerator.div_ceil(denominator)).unwrap_or(n)
    };
    sorted.get(rank.clamp(1, n) - 1).copied()
}

/// The nearest-rank `p`-th percentile of `values` in any order (a sorted copy is made).
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    percentile_sorted(&sorted(values), p)
}

/// A sorted copy of `values` (ascending, NaN last).
pub fn sorted(values: &[f64]) -> Vec<f64> {
    let mut copy = values.to_vec();
    copy.sort_by(f64::total_cmp);
    copy
}

/// Count, mean and nearest-rank percentiles of a set of values.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// How many values.
    pub count: usize,
    /// The smallest value.
    pub min: f64,
    /// The arithmetic mean.
    pub mean: f64,
    /// Nearest-rank 50th percentile.
    pub p50: f64,
    /// Nearest-rank 95th percentile.
    pub p95: f64,
    /// Nearest-rank 99th percentile.
    pub p99: f64,
    /// The largest value.
    pub max: f64,
}

impl Summary {
    /// The summary of `values` in any order; `None` when there are none.
    pub fn of(values: &[f64]) -> Option<Summary> {
        let sorted = sorted(values);
        let count = sorted.len();
        let min = *sorted.first()?;
        let max = *sorted.last()?;
        let mean = sorted.iter().sum::<f64>() / count as f64;
        Some(Summary {
            count,
            min,
            mean,
            p50: percentile_sorted(&sorted, 50.0)?,
            p95: percentile_sorted(&sorted, 95.0)?,
            p99: percentile_sorted(&sorted, 99.0)?,
            max,
        })
    }
}

/// The one-second bucket an instant `at_secs` seconds after the start falls in: bucket `k`
/// holds `[k, k + 1)`. Negative and NaN instants fall in bucket 0.
pub fn bucket_of(at_secs: f64) -> usize {
    if at_secs.is_nan() || at_secs <= 0.0 {
        0
    } else {
        at_secs.floor() as usize
    }
}

/// How many buckets cover `[0, span_secs]`: at least one, and one more when `span_secs` lies
/// exactly on a boundary, so that an instant equal to the span still has its bucket.
pub fn bucket_count(span_secs: f64) -> usize {
    bucket_of(span_secs) + 1
}

/// How many of `times_secs` fall in each of `buckets` one-second buckets; instants past the
/// last bucket are counted in the last one (none are lost).
pub fn per_second_counts(times_secs: &[f64], buckets: usize) -> Vec<u64> {
    let mut counts = vec![0_u64; buckets.max(1)];
    let last = counts.len() - 1;
    for &at in times_secs {
        if let Some(count) = counts.get_mut(bucket_of(at).min(last)) {
            *count += 1;
        }
    }
    counts
}

/// The values of `samples` (`(instant in seconds, value)`) grouped by the one-second bucket of
/// their instant, in `buckets` buckets (later instants go to the last one).
pub fn per_second_values(samples: &[(f64, f64)], buckets: usize) -> Vec<Vec<f64>> {
    let mut groups = vec![Vec::new(); buckets.max(1)];
    let last = groups.len() - 1;
    for &(at, value) in samples {
        if let Some(group) = groups.get_mut(bucket_of(at).min(last)) {
            group.push(value);
        }
    }
    groups
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

/// A histogram of non-negative `values` from 0 to past the maximum, in equal bins of a nice
/// width (see [`nice_step`]), at most `max_bins` of them (at least 2 are allowed). Negative
/// values count in the first bin, NaN is skipped; empty input gives no bins.
pub fn histogram(values: &[f64], max_bins: usize) -> Vec<Bin> {
    let finite: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    let Some(max) = finite.iter().copied().reduce(f64::max) else {
        return Vec::new();
    };
    let max = max.max(0.0);
    let slots = max_bins.max(2);
    // A width of at least max / (slots - 1) keeps ⌊max / width⌋ + 1 bins within `slots`.
    let width = nice_step(max / (slots - 1) as f64);
    let count = ((max / width).floor() as usize + 1).min(slots);
    let mut bins: Vec<Bin> = (0..count)
        .map(|index| Bin {
            lo: index as f64 * width,
            hi: (index + 1) as f64 * width,
            count: 0,
        })
        .collect();
    for value in finite {
        let index = if value <= 0.0 {
            0
        } else {
            ((value / width).floor() as usize).min(count - 1)
        };
        if let Some(bin) = bins.get_mut(index) {
            bin.count += 1;
        }
    }
    bins
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn one_to_hundred() -> Vec<f64> {
        (1..=100).map(f64::from).collect()
    }

    #[test]
    fn percentiles_of_one_to_hundred() {
        let values = one_to_hundred();
        for (p, expected) in [
            (50.0, 50.0),
            (95.0, 95.0),
            (99.0, 99.0),
            (99.9, 100.0),
            (100.0, 100.0),
            (1.0, 1.0),
            (0.5, 1.0),
            (0.0, 1.0),
            (150.0, 100.0),
            (29.0, 29.0),
        ] {
            assert_eq!(percentile(&values, p), Some(expected), "p{p}");
        }
        let summary = Summary::of(&values).unwrap();
        assert_eq!(
            (
                summary.count,
                summary.min,
                summary.p50,
                summary.p95,
                summary.p99,
                summary.max
            ),
            (100, 1.0, 50.0, 95.0, 99.0, 100.0)
        );
        assert!((summary.mean - 50.5).abs() < 1e-9);
    }

    #[test]
    fn nearest_rank_on_small_sets() {
        // n = 10: p50 → rank 5, p95 → rank ⌈9.5⌉ = 10, p99 → rank 10.
        let values: Vec<f64> = (1..=10).map(|v| f64::from(v) * 10.0).collect();
        assert_eq!(percentile(&values, 50.0), Some(50.0));
        assert_eq!(percentile(&values, 95.0), Some(100.0));
        assert_eq!(percentile(&values, 10.0), Some(10.0));
        assert_eq!(percentile(&values, 11.0), Some(20.0));
        // n = 4: p50 → rank 2 (the lower middle, never an average).
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 50.0), Some(2.0));
    }

    #[test]
    fn empty_input_has_no_statistics() {
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(Summary::of(&[]), None);
        assert!(histogram(&[], 10).is_empty());
        assert_eq!(per_second_counts(&[], 3), vec![0, 0, 0]);
    }

    #[test]
    fn a_single_value_is_every_percentile() {
        let summary = Summary::of(&[42.5]).unwrap();
        assert_eq!(
            (
                summary.count,
                summary.min,
                summary.p50,
                summary.p95,
                summary.p99,
                summary.max
            ),
            (1, 42.5, 42.5, 42.5, 42.5, 42.5)
        );
        assert_eq!(summary.mean, 42.5);
        let bins = histogram(&[42.5], 10);
        assert_eq!(bins.iter().map(|bin| bin.count).sum::<u64>(), 1);
    }

    #[test]
    fn unsorted_input_gives_the_same_answers() {
        let mut values = one_to_hundred();
        values.reverse();
        values.swap(3, 70);
        values.swap(10, 55);
        assert_eq!(Summary::of(&values), Summary::of(&one_to_hundred()));
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 50.0), Some(2.0));
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 100.0), Some(3.0));
    }

    #[test]
    fn percentiles_are_ordered() {
        let values: Vec<f64> = (0..1000).map(|i| f64::from((i * 7919) % 1000)).collect();
        let summary = Summary::of(&values).unwrap();
        assert!(summary.min <= summary.p50);
        assert!(summary.p50 <= summary.p95);
        assert!(summary.p95 <= summary.p99);
        assert!(summary.p99 <= summary.max);
    }

    #[test]
    fn buckets_are_one_second_wide() {
        assert_eq!(bucket_of(0.0), 0);
        assert_eq!(bucket_of(0.999), 0);
        assert_eq!(bucket_of(1.0), 1);
        assert_eq!(bucket_of(-3.0), 0);
        assert_eq!(bucket_of(f64::NAN), 0);
        assert_eq!(bucket_count(0.0), 1);
        assert_eq!(bucket_count(2.5), 3);
        assert_eq!(bucket_count(3.0), 4);
        assert_eq!(
            per_second_counts(&[0.1, 0.2, 1.5, 2.0, 2.99, 9.0], 3),
            vec![2, 1, 3]
        );
        let groups = per_second_values(&[(0.5, 10.0), (1.5, 20.0), (0.7, 30.0)], 2);
        assert_eq!(groups, vec![vec![10.0, 30.0], vec![20.0]]);
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
    fn histogram_of_one_to_hundred() {
        let bins = histogram(&one_to_hundred(), 11);
        assert_eq!(bins.len(), 11);
        assert_eq!(
            bins[0],
            Bin {
                lo: 0.0,
                hi: 10.0,
                count: 9
            }
        );
        assert!(bins[1..10].iter().all(|bin| bin.count == 10));
        assert_eq!(
            bins[10],
            Bin {
                lo: 100.0,
                hi: 110.0,
                count: 1
            }
        );
        assert_eq!(bins.iter().map(|bin| bin.count).sum::<u64>(), 100);
    }

    #[test]
    fn histogram_respects_the_bin_limit_and_counts_everything() {
        for max_bins in [2, 3, 7, 20, 40] {
            let values: Vec<f64> = (0..500).map(|i| f64::from(i) * 1.37).collect();
            let bins = histogram(&values, max_bins);
            assert!(bins.len() <= max_bins, "{} bins for {max_bins}", bins.len());
            assert_eq!(bins.iter().map(|bin| bin.count).sum::<u64>(), 500);
            assert!(bins.last().unwrap().hi > 499.0 * 1.37);
            assert!(bins.windows(2).all(|pair| pair[0].hi == pair[1].lo));
        }
        // All zeros: one bin from 0.
        assert_eq!(
            histogram(&[0.0, 0.0], 10),
            vec![Bin {
                lo: 0.0,
                hi: 1.0,
                count: 2
            }]
        );
    }
}
