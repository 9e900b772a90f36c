//! The run over time: per second (for the charts) and per window of `--window-secs` (for the
//! table, and long runs). Orders are grouped by their latency origin for their latencies,
//! terminal events by their arrival.

use std::time::Duration;

use super::{Second, Window, memory};
use crate::Status;
use crate::rss::MemoryLog;
use crate::stats::{self, Latencies, Summary};

/// Most windows a report has: narrower windows over a long run are widened to fit.
pub(crate) const MAX_WINDOWS: usize = 10_000;

/// Instants (seconds since the start) and latencies of a run's orders, as [`super::build`]
/// goes through them.
#[derive(Debug, Default)]
pub(super) struct Timeline {
    /// Every attempt's actual send (or drop).
    sent: Vec<f64>,
    /// Every attempt's latency origin.
    origins: Vec<f64>,
    /// Open loop: how late each attempt was sent.
    lags: Vec<Duration>,
    /// Created orders: latency origin, POST latency.
    post: Vec<(f64, Duration)>,
    /// Orders whose terminal event came: latency origin, POST-to-terminal latency.
    terminal: Vec<(f64, Duration)>,
    /// Arrivals of `OrderCompleted` events.
    completed: Vec<f64>,
    /// Arrivals of `OrderCancelled` events.
    cancelled: Vec<f64>,
}

impl Timeline {
    /// An order was sent (or dropped) at `sent_at`, meant for `intended_at` in the open loop.
    pub(super) fn attempt(
        &mut self,
        sent_at: Duration,
        origin: Duration,
        intended_at: Option<Duration>,
    ) {
        self.sent.push(sent_at.as_secs_f64());
        self.origins.push(origin.as_secs_f64());
        if let Some(intended_at) = intended_at {
            self.lags.push(sent_at.saturating_sub(intended_at));
        }
    }

    /// A created order's POST took `latency` from its origin.
    pub(super) fn post(&mut self, origin: Duration, latency: Duration) {
        self.post.push((origin.as_secs_f64(), latency));
    }

    /// An order whose latency origin is `origin` was seen terminal at `at`, by its event.
    pub(super) fn terminal(&mut self, origin: Duration, at: Duration, status: Status) {
        let arrival = at.as_secs_f64();
        match status {
            Status::Completed => self.completed.push(arrival),
            Status::Cancelled => self.cancelled.push(arrival),
        }
        self.terminal
            .push((origin.as_secs_f64(), at.saturating_sub(origin)));
    }

    /// Every send lag.
    pub(super) fn lags(&self) -> impl Iterator<Item = Duration> + '_ {
        self.lags.iter().copied()
    }

    /// Every POST latency.
    pub(super) fn post_latencies(&self) -> impl Iterator<Item = Duration> + '_ {
        self.post.iter().map(|&(_, latency)| latency)
    }

    /// Every POST-to-terminal latency.
    pub(super) fn terminal_latencies(&self) -> impl Iterator<Item = Duration> + '_ {
        self.terminal.iter().map(|&(_, latency)| latency)
    }

    /// Per second of `[0, span_secs]`.
    pub(super) fn per_second(&self, span_secs: f64, latencies: &mut Latencies) -> Vec<Second> {
        let buckets = stats::bucket_count(span_secs, 1.0);
        let sent = stats::counts_per_bucket(&self.sent, 1.0, buckets);
        let completed = stats::counts_per_bucket(&self.completed, 1.0, buckets);
        let cancelled = stats::counts_per_bucket(&self.cancelled, 1.0, buckets);
        let post = stats::group_by_bucket(&self.post, 1.0, buckets);
        let terminal = stats::group_by_bucket(&self.terminal, 1.0, buckets);
        (0..buckets)
            .map(|second| {
                let post = summarize(latencies, post.get(second));
                let terminal = summarize(latencies, terminal.get(second));
                Second {
                    second,
                    sent: sent.get(second).copied().unwrap_or(0),
                    completed: completed.get(second).copied().unwrap_or(0),
                    cancelled: cancelled.get(second).copied().unwrap_or(0),
                    post_p50_ms: post.map(|summary| summary.p50),
                    post_p99_ms: post.map(|summary| summary.p99),
                    terminal_p50_ms: terminal.map(|summary| summary.p50),
                    terminal_p99_ms: terminal.map(|summary| summary.p99),
                }
            })
            .collect()
    }

    /// Per window of `width_secs` (see [`window_width`]) of `[0, total_secs]`, the last one
    /// ending with the run, with the memory `memory` sampled.
    pub(super) fn windows(
        &self,
        width_secs: f64,
        total_secs: f64,
        memory: &MemoryLog,
        latencies: &mut Latencies,
    ) -> Vec<Window> {
        let count = window_count(width_secs, total_secs);
        let sent = stats::counts_per_bucket(&self.origins, width_secs, count);
        let completed = stats::counts_per_bucket(&self.completed, width_secs, count);
        let cancelled = stats::counts_per_bucket(&self.cancelled, width_secs, count);
        let post = stats::group_by_bucket(&self.post, width_secs, count);
        let terminal = stats::group_by_bucket(&self.terminal, width_secs, count);
        let mut rss = memory::at_window_ends(memory, width_secs, count).into_iter();
        (0..count)
            .map(|window| {
                let post = summarize(latencies, post.get(window));
                let terminal = summarize(latencies, terminal.get(window));
                let start_secs = window as f64 * width_secs;
                let end_secs = if window + 1 == count {
                    total_secs.max(start_secs)
                } else {
                    start_secs + width_secs
                };
                Window {
                    start_secs,
                    end_secs,
                    sent: sent.get(window).copied().unwrap_or(0),
                    completed: completed.get(window).copied().unwrap_or(0),
                    cancelled: cancelled.get(window).copied().unwrap_or(0),
                    post_p99_ms: post.map(|summary| summary.p99),
                    terminal_p50_ms: terminal.map(|summary| summary.p50),
                    terminal_p99_ms: terminal.map(|summary| summary.p99),
                    rss_bytes: rss.next().unwrap_or_default(),
                }
            })
            .collect()
    }
}

/// The summary of a group, without clearing the histogram for an empty one.
fn summarize(latencies: &mut Latencies, group: Option<&Vec<Duration>>) -> Option<Summary> {
    match group {
        Some(group) if !group.is_empty() => latencies.summarize(group.iter().copied()),
        _ => None,
    }
}

/// The width the windows of a run of `total_secs` get when `--window-secs` asks for
/// `asked_secs`: as asked, unless that would make more than [`MAX_WINDOWS`] of them (then
/// `total_secs / MAX_WINDOWS`); [`super::DEFAULT_WINDOW_SECS`] if it is not a positive number.
pub(super) fn window_width(asked_secs: f64, total_secs: f64) -> f64 {
    let asked = if asked_secs.is_finite() && asked_secs > 0.0 {
        asked_secs
    } else {
        super::DEFAULT_WINDOW_SECS
    };
    asked.max(total_secs / MAX_WINDOWS as f64)
}

/// How many windows of `width_secs` cover `[0, total_secs]`: at least one; the last may be
/// shorter.
fn window_count(width_secs: f64, total_secs: f64) -> usize {
    let count = (total_secs / width_secs).ceil();
    if count.is_finite() && count >= 1.0 {
        (count as usize).min(MAX_WINDOWS)
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn window_widths_and_counts() {
        for (asked, total, width, count) in [
            (60.0, 1_200.5, 60.0, 21),
            (60.0, 30.0, 60.0, 1),
            (60.0, 0.0, 60.0, 1),
            (10.0, 40.0, 10.0, 4),
            (0.0, 30.0, 60.0, 1),
            (f64::NAN, 30.0, 60.0, 1),
            (0.001, 100.0, 0.01, 10_000),
        ] {
            let actual = window_width(asked, total);
            assert!(
                (actual - width).abs() < 1e-12,
                "{asked} over {total}: {actual}"
            );
            assert_eq!(window_count(actual, total), count, "{asked} over {total}");
        }
    }

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    #[test]
    fn windows_group_latencies_by_origin_and_events_by_arrival() {
        let mut timeline = Timeline::default();
        // Meant at 9.9 s, sent at 10.2 s (late), answered at 10.3 s, completed at 10.5 s.
        timeline.attempt(ms(10_200), ms(9_900), Some(ms(9_900)));
        timeline.post(ms(9_900), ms(400));
        timeline.terminal(ms(9_900), ms(10_500), Status::Completed);
        // Meant and sent at 12 s, cancelled at 25 s.
        timeline.attempt(ms(12_000), ms(12_000), Some(ms(12_000)));
        timeline.post(ms(12_000), ms(20));
        timeline.terminal(ms(12_000), ms(25_000), Status::Cancelled);
        let mut latencies = Latencies::new().unwrap();
        let windows = timeline.windows(10.0, 26.0, &MemoryLog::default(), &mut latencies);
        let rows: Vec<_> = windows
            .iter()
            .map(|w| {
                (
                    w.start_secs,
                    w.end_secs,
                    w.sent,
                    w.completed,
                    w.cancelled,
                    w.terminal_p50_ms,
                    w.post_p99_ms,
                )
            })
            .collect();
        assert_eq!(
            rows,
            vec![
                (0.0, 10.0, 1, 0, 0, Some(600.0), Some(400.0)),
                (10.0, 20.0, 1, 1, 0, Some(13_000.0), Some(20.0)),
                (20.0, 26.0, 0, 0, 1, None, None),
            ]
        );
        let lags: Vec<Duration> = timeline.lags().collect();
        assert_eq!(lags, vec![ms(300), ms(0)]);

        let seconds = timeline.per_second(25.0, &mut latencies);
        assert_eq!(seconds.len(), 26);
        assert_eq!(seconds[10].sent, 1, "sent counts the actual send");
        assert_eq!(seconds[9].terminal_p50_ms, Some(600.0), "latency by origin");
        assert_eq!(seconds[10].completed, 1);
        assert_eq!(seconds[25].cancelled, 1);
    }
}
