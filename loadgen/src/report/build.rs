//! The report from what the run recorded: counts, outcomes, the end check's failures, latency
//! summaries and notes; the time series are [`super::windows`]' and the memory
//! [`super::memory`]'s.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hdrhistogram::CreationError;

use super::windows::{self, Timeline};
use super::{
    Counts, ErrorCount, Failure, HISTOGRAM_BINS, LatencyOrigin, Load, MAX_ERROR_KINDS,
    MAX_FAILURES_LISTED, OutcomeRow, Phases, Report, Throughput, memory,
};
use crate::ledger::{PostError, Snapshot, Via};
use crate::rss::MemoryLog;
use crate::stats::{Latencies, Summary};
use crate::{Intent, Status};

/// What [`build`] needs besides the ledger's snapshot and the memory samples.
#[derive(Clone, Debug)]
pub(crate) struct RunInfo {
    pub(crate) run_id: String,
    pub(crate) started_at: DateTime<Utc>,
    pub(crate) load: Load,
    /// When the last POST was answered.
    pub(crate) drive_end: Duration,
    /// When the final lookups were done (the end of the run).
    pub(crate) end: Duration,
}

fn rate_of(count: u64, secs: f64) -> f64 {
    if secs > 0.0 { count as f64 / secs } else { 0.0 }
}

/// The end check's verdict and tallies, gathered in one pass over the attempts.
struct Tally {
    counts: Counts,
    rows: BTreeMap<Intent, OutcomeRow>,
    errors: BTreeMap<String, u64>,
    failures: Vec<Failure>,
    span: Duration,
    last_sent: Duration,
}

impl Tally {
    fn new(snapshot: &Snapshot, drive_end: Duration) -> Tally {
        let rows = Intent::ALL
            .iter()
            .map(|&intent| {
                let row = OutcomeRow {
                    intent,
                    expected_status: intent.expected_status(),
                    expected: 0,
                    as_expected: 0,
                    completed: 0,
                    cancelled: 0,
                    not_terminal: 0,
                };
                (intent, row)
            })
            .collect();
        Tally {
            counts: Counts {
                attempted: snapshot.attempts.len() as u64,
                duplicate_events: snapshot.duplicates,
                undecodable_events: snapshot.undecodable,
                foreign_events: snapshot.foreign,
                ..Counts::default()
            },
            rows,
            errors: BTreeMap::new(),
            failures: Vec::new(),
            span: drive_end,
            last_sent: Duration::ZERO,
        }
    }
}

/// The report of a run from what was recorded. Fails only if a latency histogram cannot be
/// created (its bounds are fixed, so never in practice).
pub(crate) fn build(
    info: RunInfo,
    snapshot: Snapshot,
    memory: MemoryLog,
) -> Result<Report, CreationError> {
    let mut tally = Tally::new(&snapshot, info.drive_end);
    let mut timeline = Timeline::default();
    for attempt in &snapshot.attempts {
        let origin = attempt.origin();
        timeline.attempt(attempt.sent_at, origin, attempt.intended_at);
        tally.last_sent = tally.last_sent.max(attempt.sent_at);
        let order_id = match &attempt.result {
            Ok(order_id) => *order_id,
            Err(error) => {
                tally.counts.http_errors += 1;
                let message = match error {
                    PostError::Dropped => {
                        tally.counts.dropped += 1;
                        "dropped: the in-flight bound was reached".to_owned()
                    }
                    PostError::Failed(message) => message.clone(),
                };
                *tally.errors.entry(message).or_default() += 1;
                continue;
            }
        };
        tally.counts.created += 1;
        if let Some(answered_at) = attempt.answered_at {
            timeline.post(origin, answered_at.saturating_sub(origin));
        }
        let row = tally.rows.get_mut(&attempt.intent);
        let failure = |problem: String| Failure {
            index: Some(attempt.index),
            order_id: Some(order_id),
            intent: Some(attempt.intent),
            problem,
        };
        let Some(terminal) = &attempt.terminal else {
            tally.counts.unobserved += 1;
            if let Some(row) = row {
                row.expected += 1;
                row.not_terminal += 1;
            }
            let why = attempt
                .lookup_error
                .clone()
                .unwrap_or_else(|| "no terminal event".to_owned());
            tally.failures.push(failure(format!(
                "not terminal at the end of the run ({why})"
            )));
            continue;
        };
        match terminal.status {
            Status::Completed => tally.counts.completed += 1,
            Status::Cancelled => tally.counts.cancelled += 1,
        }
        match terminal.via {
            Via::Event => {
                tally.counts.terminal_by_event += 1;
                timeline.terminal(origin, terminal.at, terminal.status);
            }
            Via::Lookup => tally.counts.terminal_by_lookup += 1,
        }
        tally.span = tally.span.max(terminal.at);
        let expected = attempt.intent.expected_status();
        if let Some(row) = row {
            row.expected += 1;
            match terminal.status {
                Status::Completed => row.completed += 1,
                Status::Cancelled => row.cancelled += 1,
            }
            if terminal.status == expected {
                row.as_expected += 1;
            }
        }
        if terminal.status == Status::Completed
            && let Some(total) = terminal.total
            && total != attempt.catalog_total
        {
            tally.counts.wrong_total += 1;
            tally.failures.push(failure(format!(
                "completed for a total of {total}, but its lines cost {} at the catalog's prices",
                attempt.catalog_total
            )));
        }
        if terminal.status != expected {
            tally.counts.wrong_outcome += 1;
            let reason = terminal
                .reason
                .as_deref()
                .map(|reason| format!(" (reason: {reason})"))
                .unwrap_or_default();
            tally.failures.push(failure(format!(
                "meant to {}, expected {expected}, got {}{reason}",
                attempt.intent.describe(),
                terminal.status
            )));
        }
    }
    let counts = tally.counts;
    if counts.created == 0 {
        tally.failures.insert(
            0,
            Failure {
                index: None,
                order_id: None,
                intent: None,
                problem: "no order was created, so nothing was checked".to_owned(),
            },
        );
    }

    let drive_secs = info.drive_end.as_secs_f64();
    let send_secs = tally
        .last_sent
        .as_secs_f64()
        .max(info.load.duration_secs.unwrap_or(0.0).min(drive_secs));
    let span_secs = tally.span.as_secs_f64().max(drive_secs);
    let total_secs = info.end.as_secs_f64().max(span_secs);

    let mut latencies = Latencies::new()?;
    let per_second = timeline.per_second(span_secs, &mut latencies);
    let window_secs = windows::window_width(info.load.window_secs, total_secs);
    let windows = timeline.windows(window_secs, total_secs, &memory, &mut latencies);
    let send_lag_ms = latencies.summarize(timeline.lags());
    let post_latency_ms = latencies.summarize(timeline.post_latencies());
    let terminal_latency_ms = latencies.summarize(timeline.terminal_latencies());
    // The histogram of what was recorded last: the POST-to-terminal latencies.
    let terminal_latency_histogram_ms = latencies.bins(HISTOGRAM_BINS);

    let mut notes = notes(&snapshot, &counts, &info.load, send_lag_ms.as_ref());
    if window_secs != info.load.window_secs {
        notes.push(format!(
            "the windows are {window_secs:.3} s wide, not {} s: a report has at most {} \
             windows",
            info.load.window_secs,
            windows::MAX_WINDOWS
        ));
    }
    notes.extend(memory.warnings.iter().cloned());

    let mut http_errors: Vec<ErrorCount> = tally
        .errors
        .into_iter()
        .map(|(message, count)| ErrorCount { message, count })
        .collect();
    http_errors.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| a.message.cmp(&b.message))
    });
    http_errors.truncate(MAX_ERROR_KINDS);

    let mut failures = tally.failures;
    let failure_count = failures.len() as u64;
    failures.truncate(MAX_FAILURES_LISTED);
    Ok(Report {
        run_id: info.run_id,
        started_at: info.started_at,
        latency_origin: match info.load.rate {
            Some(_) => LatencyOrigin::IntendedSend,
            None => LatencyOrigin::ActualSend,
        },
        load: info.load,
        phases: Phases {
            send_secs,
            drive_secs,
            span_secs,
            total_secs,
        },
        throughput: Throughput {
            sent_per_sec: rate_of(counts.attempted, send_secs),
            completed_per_sec: rate_of(counts.completed, span_secs),
            terminal_per_sec: rate_of(counts.completed + counts.cancelled, span_secs),
        },
        counts,
        post_latency_ms,
        terminal_latency_ms,
        send_lag_ms,
        outcomes: tally.rows.into_values().collect(),
        per_second,
        windows,
        terminal_latency_histogram_ms,
        memory: memory::processes(&memory),
        http_errors,
        failure_count,
        passed: failure_count == 0,
        failures,
        notes,
    })
}

/// Things worth knowing that do not fail the run.
fn notes(
    snapshot: &Snapshot,
    counts: &Counts,
    load: &Load,
    send_lag_ms: Option<&Summary>,
) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(error) = &snapshot.observer_error {
        notes.push(format!(
            "{error}; orders whose event was missed were looked up over HTTP"
        ));
    }
    if counts.terminal_by_lookup > 0 {
        notes.push(format!(
            "{} order(s) were terminal but their event was not received; their latency is not measured",
            counts.terminal_by_lookup
        ));
    }
    if counts.dropped > 0 {
        notes.push(format!(
            "{} order(s) were dropped: the in-flight bound was reached (the system is slower than the rate)",
            counts.dropped
        ));
    }
    // Late by more than one interval between orders (and 10 ms): the schedule slipped.
    if let (Some(rate), Some(lag)) = (load.rate, send_lag_ms) {
        let tolerance_ms = (1_000.0 / rate).max(10.0);
        if lag.p99 > tolerance_ms {
            notes.push(format!(
                "loadgen sent behind its schedule (p99 {:.1} ms, max {:.1} ms late): the \
                 generator may have been a bottleneck; latencies still count from the intended \
                 send times",
                lag.p99, lag.max
            ));
        }
    }
    notes
}
