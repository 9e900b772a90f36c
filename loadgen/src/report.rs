//! The run's result: built from what the ledger recorded, printed as a table, written as JSON
//! (serde) and drawn as a self-contained SVG (hand-written markup, no scripts, no external
//! resources).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ledger::{PostError, Snapshot, Via};
use crate::stats::{self, Bin, Summary};
use crate::{Intent, Status};

/// Most failures kept in the report (and so printed); the count says how many there were.
pub const MAX_FAILURES_LISTED: usize = 20;
/// Most distinct HTTP error messages kept.
pub const MAX_ERROR_KINDS: usize = 10;
/// Most bins of the POST-to-terminal latency histogram.
pub const HISTOGRAM_BINS: usize = 30;

/// Everything a run measured and concluded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The run id (prefix of the run's product ids).
    pub run_id: String,
    /// When the first order was due.
    pub started_at: DateTime<Utc>,
    /// The load that was asked for.
    pub load: Load,
    /// How long each phase took.
    pub phases: Phases,
    /// Orders by what happened to them.
    pub counts: Counts,
    /// Orders per second over the run.
    pub throughput: Throughput,
    /// POST send → response of the created orders, in milliseconds.
    pub post_latency_ms: Option<Summary>,
    /// POST send → terminal event received, of the orders whose event was seen, in
    /// milliseconds.
    pub terminal_latency_ms: Option<Summary>,
    /// Per intended outcome: how many were created and how they ended.
    pub outcomes: Vec<OutcomeRow>,
    /// Per second of the run (`second` k covers `[k, k + 1)` seconds after the start).
    pub per_second: Vec<Second>,
    /// Distribution of POST-to-terminal latency (milliseconds).
    pub terminal_latency_histogram_ms: Vec<Bin>,
    /// The most frequent HTTP errors (POSTs that created no order), most frequent first.
    pub http_errors: Vec<ErrorCount>,
    /// How many orders failed the end check.
    pub failure_count: u64,
    /// The first [`MAX_FAILURES_LISTED`] of them.
    pub failures: Vec<Failure>,
    /// Things worth knowing that do not fail the run.
    pub notes: Vec<String>,
    /// Whether every created order reached a terminal state matching its intent.
    pub passed: bool,
}

/// The load that was asked for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Load {
    /// `open` (fixed rate) or `closed` (fixed number of clients).
    pub shape: String,
    /// Orders per second (open loop).
    pub rate: Option<f64>,
    /// Bound on outstanding POSTs (open loop).
    pub max_in_flight: Option<usize>,
    /// Clients (closed loop).
    pub concurrency: Option<usize>,
    /// Closed loop: each client waited for its order's terminal event before the next.
    #[serde(default)]
    pub wait_terminal: bool,
    /// `--duration` in seconds.
    pub duration_secs: Option<f64>,
    /// `--orders`.
    pub orders: Option<u64>,
    /// Fraction of orders meant to fail on stock.
    pub fail_stock: f64,
    /// Fraction of orders meant to fail on payment.
    pub fail_payment: f64,
    /// Products the orders spread over.
    pub products: usize,
    /// Rich customers the orders spread over (plus a quarter as many broke ones).
    pub customers: usize,
    /// `--settle-timeout` in seconds.
    pub settle_timeout_secs: f64,
}

/// Phase durations in seconds since the start.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Phases {
    /// The sending window: until the last order was sent, or `--duration` when that is later
    /// (and the drive lasted that long); the denominator of the send rate.
    pub send_secs: f64,
    /// Until the last POST was answered.
    pub drive_secs: f64,
    /// Until the last terminal state was known (the throughput denominator): the last
    /// terminal event, or the final lookups when they found terminal orders; at least
    /// `drive_secs`.
    pub span_secs: f64,
    /// Until the end of the run, lookups included.
    pub total_secs: f64,
}

/// Orders by what happened to them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Orders the run tried to place (= created + http_errors).
    pub attempted: u64,
    /// Orders the API created.
    pub created: u64,
    /// POSTs that created no order, dropped ones included.
    pub http_errors: u64,
    /// Open loop: orders not sent because the in-flight bound was reached.
    pub dropped: u64,
    /// Created orders that completed.
    pub completed: u64,
    /// Created orders that were cancelled.
    pub cancelled: u64,
    /// Terminal orders whose event was received.
    pub terminal_by_event: u64,
    /// Terminal orders whose event was not received, found by `GET /orders/{id}`.
    pub terminal_by_lookup: u64,
    /// Created orders not terminal at the end (created = completed + cancelled + unobserved).
    pub unobserved: u64,
    /// Terminal orders whose status differs from their intent.
    pub wrong_outcome: u64,
    /// Completed orders charged another total than their lines at the run's catalog prices.
    pub wrong_total: u64,
    /// Terminal events received more than once for one order.
    pub duplicate_events: u64,
    /// Deliveries that were not readable terminal events.
    pub undecodable_events: u64,
    /// Terminal events of orders this run did not create (other clients of the system).
    pub foreign_events: u64,
}

/// Orders per second.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    /// Attempted orders per second of the sending window.
    pub sent_per_sec: f64,
    /// Completed orders per second of the span.
    pub completed_per_sec: f64,
    /// Terminal (completed or cancelled) orders per second of the span.
    pub terminal_per_sec: f64,
}

/// How the orders of one intended outcome ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeRow {
    /// The intended outcome.
    pub intent: Intent,
    /// The terminal status it should reach.
    pub expected_status: Status,
    /// Created orders with this intent (all expected to reach `expected_status`).
    pub expected: u64,
    /// Of which reached `expected_status`.
    pub as_expected: u64,
    /// Of which completed.
    pub completed: u64,
    /// Of which were cancelled.
    pub cancelled: u64,
    /// Of which were not terminal at the end.
    pub not_terminal: u64,
}

/// One second of the run.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Second {
    /// Seconds since the start (this bucket covers `[second, second + 1)`).
    pub second: usize,
    /// Orders sent (or dropped) in this second.
    pub sent: u64,
    /// Completed events received in this second.
    pub completed: u64,
    /// Cancelled events received in this second.
    pub cancelled: u64,
    /// p50 of the POST latency of orders sent in this second.
    pub post_p50_ms: Option<f64>,
    /// p99 of the POST latency of orders sent in this second.
    pub post_p99_ms: Option<f64>,
    /// p50 of the POST-to-terminal latency of orders sent in this second.
    pub terminal_p50_ms: Option<f64>,
    /// p99 of the POST-to-terminal latency of orders sent in this second.
    pub terminal_p99_ms: Option<f64>,
}

/// An HTTP error message and how often it happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorCount {
    /// The error.
    pub message: String,
    /// How many POSTs failed with it.
    pub count: u64,
}

/// An order (or the run) that failed the end check, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The order's index in the run, if about one order.
    pub index: Option<u64>,
    /// Its id.
    pub order_id: Option<Uuid>,
    /// What it was meant to do.
    pub intent: Option<Intent>,
    /// What went wrong.
    pub problem: String,
}

/// What [`build`] needs besides the ledger's snapshot.
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

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1_000.0
}

fn rate_of(count: u64, secs: f64) -> f64 {
    if secs > 0.0 { count as f64 / secs } else { 0.0 }
}

/// The report of a run from what was recorded.
pub(crate) fn build(info: RunInfo, snapshot: Snapshot) -> Report {
    let attempts = &snapshot.attempts;
    let mut counts = Counts {
        attempted: attempts.len() as u64,
        duplicate_events: snapshot.duplicates,
        undecodable_events: snapshot.undecodable,
        foreign_events: snapshot.foreign,
        ..Counts::default()
    };
    let mut rows: BTreeMap<Intent, OutcomeRow> = Intent::ALL
        .iter()
        .map(|&intent| {
            (
                intent,
                OutcomeRow {
                    intent,
                    expected_status: intent.expected_status(),
                    expected: 0,
                    as_expected: 0,
                    completed: 0,
                    cancelled: 0,
                    not_terminal: 0,
                },
            )
        })
        .collect();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut post_samples = Vec::new();
    let mut terminal_samples = Vec::new();
    let mut sent_times = Vec::new();
    let mut completed_times = Vec::new();
    let mut cancelled_times = Vec::new();
    let mut span = info.drive_end;
    let mut last_sent = Duration::ZERO;

    for attempt in attempts {
        let sent_secs = attempt.sent_at.as_secs_f64();
        sent_times.push(sent_secs);
        last_sent = last_sent.max(attempt.sent_at);
        let order_id = match &attempt.result {
            Ok(order_id) => *order_id,
            Err(error) => {
                counts.http_errors += 1;
                let message = match error {
                    PostError::Dropped => {
                        counts.dropped += 1;
                        "dropped: the in-flight bound was reached".to_owned()
                    }
                    PostError::Failed(message) => message.clone(),
                };
                *errors.entry(message).or_default() += 1;
                continue;
            }
        };
        counts.created += 1;
        if let Some(latency) = attempt.post_latency {
            post_samples.push((sent_secs, ms(latency)));
        }
        let row = rows.get_mut(&attempt.intent);
        let failure = |problem: String| Failure {
            index: Some(attempt.index),
            order_id: Some(order_id),
            intent: Some(attempt.intent),
            problem,
        };
        let Some(terminal) = &attempt.terminal else {
            counts.unobserved += 1;
            if let Some(row) = row {
                row.expected += 1;
                row.not_terminal += 1;
            }
            let why = attempt
                .lookup_error
                .clone()
                .unwrap_or_else(|| "no terminal event".to_owned());
            failures.push(failure(format!(
                "not terminal at the end of the run ({why})"
            )));
            continue;
        };
        match terminal.status {
            Status::Completed => counts.completed += 1,
            Status::Cancelled => counts.cancelled += 1,
        }
        match terminal.via {
            Via::Event => {
                counts.terminal_by_event += 1;
                let at = terminal.at.as_secs_f64();
                match terminal.status {
                    Status::Completed => completed_times.push(at),
                    Status::Cancelled => cancelled_times.push(at),
                }
                terminal_samples.push((sent_secs, ms(terminal.at.saturating_sub(attempt.sent_at))));
            }
            Via::Lookup => counts.terminal_by_lookup += 1,
        }
        span = span.max(terminal.at);
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
            counts.wrong_total += 1;
            failures.push(failure(format!(
                "completed for a total of {total}, but its lines cost {} at the catalog's prices",
                attempt.catalog_total
            )));
        }
        if terminal.status != expected {
            counts.wrong_outcome += 1;
            let reason = terminal
                .reason
                .as_deref()
                .map(|reason| format!(" (reason: {reason})"))
                .unwrap_or_default();
            failures.push(failure(format!(
                "meant to {}, expected {expected}, got {}{reason}",
                attempt.intent.describe(),
                terminal.status
            )));
        }
    }
    if counts.created == 0 {
        failures.insert(
            0,
            Failure {
                index: None,
                order_id: None,
                intent: None,
                problem: "no order was created, so nothing was checked".to_owned(),
            },
        );
    }

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

    let drive_secs = info.drive_end.as_secs_f64();
    let send_secs = last_sent
        .as_secs_f64()
        .max(info.load.duration_secs.unwrap_or(0.0).min(drive_secs));
    let span_secs = span.as_secs_f64().max(drive_secs);
    let buckets = stats::bucket_count(span_secs);
    let sent = stats::per_second_counts(&sent_times, buckets);
    let completed = stats::per_second_counts(&completed_times, buckets);
    let cancelled = stats::per_second_counts(&cancelled_times, buckets);
    let post_groups = stats::per_second_values(&post_samples, buckets);
    let terminal_groups = stats::per_second_values(&terminal_samples, buckets);
    let per_second = (0..buckets)
        .map(|second| {
            let post = post_groups.get(second).and_then(|group| Summary::of(group));
            let terminal = terminal_groups
                .get(second)
                .and_then(|group| Summary::of(group));
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
        .collect();
    let post_values: Vec<f64> = post_samples.iter().map(|&(_, value)| value).collect();
    let terminal_values: Vec<f64> = terminal_samples.iter().map(|&(_, value)| value).collect();

    let mut http_errors: Vec<ErrorCount> = errors
        .into_iter()
        .map(|(message, count)| ErrorCount { message, count })
        .collect();
    http_errors.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| a.message.cmp(&b.message))
    });
    http_errors.truncate(MAX_ERROR_KINDS);

    let failure_count = failures.len() as u64;
    failures.truncate(MAX_FAILURES_LISTED);
    Report {
        run_id: info.run_id,
        started_at: info.started_at,
        load: info.load,
        phases: Phases {
            send_secs,
            drive_secs,
            span_secs,
            total_secs: info.end.as_secs_f64().max(span_secs),
        },
        throughput: Throughput {
            sent_per_sec: rate_of(counts.attempted, send_secs),
            completed_per_sec: rate_of(counts.completed, span_secs),
            terminal_per_sec: rate_of(counts.completed + counts.cancelled, span_secs),
        },
        counts,
        post_latency_ms: Summary::of(&post_values),
        terminal_latency_ms: Summary::of(&terminal_values),
        outcomes: rows.into_values().collect(),
        per_second,
        terminal_latency_histogram_ms: stats::histogram(&terminal_values, HISTOGRAM_BINS),
        http_errors,
        failure_count,
        passed: failure_count == 0,
        failures,
        notes,
    }
}

/// The report as pretty-printed JSON.
pub fn to_json(report: &Report) -> Result<String, serde_json::Error> {
    serde_json::to_string_pretty(report)
}

fn describe_load(load: &Load) -> String {
    let shape = match (load.rate, load.concurrency) {
        (Some(rate), _) => format!(
            "open loop at {rate} orders/s (at most {} in flight)",
            load.max_in_flight.unwrap_or(0)
        ),
        (None, Some(concurrency)) if load.wait_terminal => {
            format!("closed loop with {concurrency} clients, each waiting for its order to end")
        }
        (None, Some(concurrency)) => format!("closed loop with {concurrency} clients"),
        (None, None) => load.shape.clone(),
    };
    let limit = match (load.duration_secs, load.orders) {
        (Some(duration), Some(orders)) => format!("for {duration} s or {orders} orders"),
        (Some(duration), None) => format!("for {duration} s"),
        (None, Some(orders)) => format!("for {orders} orders"),
        (None, None) => String::new(),
    };
    format!(
        "{shape} {limit}; mix: fail-stock {}, fail-payment {}; products: {}, customers: {}",
        load.fail_stock, load.fail_payment, load.products, load.customers
    )
}

fn latency_row(out: &mut String, name: &str, summary: Option<&Summary>) {
    match summary {
        Some(s) => {
            let _ = writeln!(
                out,
                "  {name:<22}{:>10.1}{:>10.1}{:>10.1}{:>10.1}{:>10}",
                s.p50, s.p95, s.p99, s.max, s.count
            );
        }
        None => {
            let _ = writeln!(out, "  {name:<22}{:>10}", "no samples");
        }
    }
}

/// The report as the table printed at the end of a run.
pub fn table(report: &Report) -> String {
    let mut out = String::new();
    let c = &report.counts;
    let _ = writeln!(
        out,
        "loadgen run {} — {}",
        report.run_id,
        describe_load(&report.load)
    );
    let _ = writeln!(
        out,
        "started {}; sending {:.1} s, last response at {:.1} s, last terminal at {:.1} s, \
         finished at {:.1} s",
        report.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
        report.phases.send_secs,
        report.phases.drive_secs,
        report.phases.span_secs,
        report.phases.total_secs
    );
    out.push('\n');
    let _ = writeln!(out, "Throughput                      orders/s");
    let t = &report.throughput;
    let _ = writeln!(out, "  {:<22}{:>18.1}", "sent", t.sent_per_sec);
    let _ = writeln!(out, "  {:<22}{:>18.1}", "completed", t.completed_per_sec);
    let _ = writeln!(out, "  {:<22}{:>18.1}", "terminal", t.terminal_per_sec);
    out.push('\n');
    let _ = writeln!(
        out,
        "{:<24}{:>10}{:>10}{:>10}{:>10}{:>10}",
        "Latency (ms)", "p50", "p95", "p99", "max", "samples"
    );
    latency_row(&mut out, "POST", report.post_latency_ms.as_ref());
    latency_row(
        &mut out,
        "POST → terminal",
        report.terminal_latency_ms.as_ref(),
    );
    out.push('\n');
    let _ = writeln!(
        out,
        "{:<16}{:>10}{:>10}{:>12}{:>10}{:>10}{:>14}",
        "Outcome", "expected", "created", "as expected", "completed", "cancelled", "not terminal"
    );
    for row in &report.outcomes {
        let _ = writeln!(
            out,
            "  {:<14}{:>10}{:>10}{:>12}{:>10}{:>10}{:>14}",
            row.intent.to_string(),
            row.expected_status.to_string(),
            row.expected,
            row.as_expected,
            row.completed,
            row.cancelled,
            row.not_terminal
        );
    }
    let _ = writeln!(
        out,
        "  {:<14}{:>10}{:>10}{:>12}{:>10}{:>10}{:>14}",
        "total",
        "",
        c.created,
        report
            .outcomes
            .iter()
            .map(|row| row.as_expected)
            .sum::<u64>(),
        c.completed,
        c.cancelled,
        c.unobserved
    );
    out.push('\n');
    let _ = writeln!(
        out,
        "Orders: {} attempted, {} created, {} HTTP errors ({} dropped), {} unobserved, \
         {} charged a total other than the catalog's; terminal by event {}, by lookup {}",
        c.attempted,
        c.created,
        c.http_errors,
        c.dropped,
        c.unobserved,
        c.wrong_total,
        c.terminal_by_event,
        c.terminal_by_lookup
    );
    let _ = writeln!(
        out,
        "Events: {} duplicate, {} undecodable, {} of other orders",
        c.duplicate_events, c.undecodable_events, c.foreign_events
    );
    for error in &report.http_errors {
        let _ = writeln!(out, "  HTTP error ×{}: {}", error.count, error.message);
    }
    for note in &report.notes {
        let _ = writeln!(out, "Note: {note}");
    }
    out.push('\n');
    if report.passed {
        let _ = writeln!(
            out,
            "PASS: all {} created orders are terminal with the intended outcome, the completed ones at catalog prices",
            c.created
        );
    } else {
        let _ = writeln!(
            out,
            "FAIL: {} order(s) failed the end check",
            report.failure_count
        );
        for failure in &report.failures {
            let who = match (failure.index, failure.order_id) {
                (Some(index), Some(order_id)) => format!("order #{index} {order_id}"),
                (Some(index), None) => format!("order #{index}"),
                (None, Some(order_id)) => format!("order {order_id}"),
                (None, None) => "run".to_owned(),
            };
            let _ = writeln!(out, "  {who}: {}", failure.problem);
        }
        let unlisted = report
            .failure_count
            .saturating_sub(report.failures.len() as u64);
        if unlisted > 0 {
            let _ = writeln!(out, "  … and {unlisted} more");
        }
    }
    out
}

/// Text safe inside SVG (XML) elements and attribute values.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            other => escaped.push(other),
        }
    }
    escaped
}

const WIDTH: f64 = 960.0;
const PANEL_HEIGHT: f64 = 300.0;
const HEADER: f64 = 84.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 30.0;
const PLOT_TOP: f64 = 40.0;
const PLOT_BOTTOM: f64 = 50.0;

/// A plot area and the data ranges it shows (both axes from 0).
struct Frame {
    left: f64,
    top: f64,
    width: f64,
    height: f64,
    x_max: f64,
    y_max: f64,
}

impl Frame {
    fn panel(index: usize, x_max: f64, y_max: f64) -> Frame {
        Frame {
            left: LEFT,
            top: HEADER + index as f64 * PANEL_HEIGHT + PLOT_TOP,
            width: WIDTH - LEFT - RIGHT,
            height: PANEL_HEIGHT - PLOT_TOP - PLOT_BOTTOM,
            x_max: if x_max > 0.0 { x_max } else { 1.0 },
            y_max: if y_max > 0.0 { y_max } else { 1.0 },
        }
    }

    fn x(&self, value: f64) -> f64 {
        self.left + value / self.x_max * self.width
    }

    fn y(&self, value: f64) -> f64 {
        self.top + self.height - value / self.y_max * self.height
    }
}

/// A rounded-up axis maximum and its tick step.
fn axis(data_max: f64) -> (f64, f64) {
    let step = stats::nice_step(data_max / 5.0);
    let max = ((data_max / step).ceil() * step).max(step);
    (max, step)
}

fn format_tick(value: f64) -> String {
    if value.fract().abs() < 1e-9 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned()
    }
}

fn draw_axes(
    out: &mut String,
    frame: &Frame,
    title: &str,
    x_label: &str,
    y_label: &str,
    (x_step, y_step): (f64, f64),
) {
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" font-size="15" font-weight="bold">{}</text>"#,
        frame.left,
        frame.top - 18.0,
        escape(title)
    );
    let mut tick = 0.0;
    while tick <= frame.y_max + y_step * 1e-9 {
        let y = frame.y(tick);
        let _ = writeln!(
            out,
            r##"<line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e5e5e5"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#444">{}</text>"##,
            frame.left,
            frame.left + frame.width,
            frame.left - 6.0,
            y + 4.0,
            format_tick(tick)
        );
        tick += y_step;
    }
    let mut tick = 0.0;
    while tick <= frame.x_max + x_step * 1e-9 {
        let x = frame.x(tick);
        let bottom = frame.top + frame.height;
        let _ = writeln!(
            out,
            r##"<line x1="{x:.1}" y1="{bottom:.1}" x2="{x:.1}" y2="{:.1}" stroke="#444"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" fill="#444">{}</text>"##,
            bottom + 5.0,
            bottom + 18.0,
            format_tick(tick)
        );
        tick += x_step;
    }
    let _ = writeln!(
        out,
        r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="#444"/>"##,
        frame.left, frame.top, frame.width, frame.height
    );
    let _ = writeln!(
        out,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#222">{}</text>"##,
        frame.left + frame.width / 2.0,
        frame.top + frame.height + 36.0,
        escape(x_label)
    );
    let (x, y) = (frame.left - 50.0, frame.top + frame.height / 2.0);
    let _ = writeln!(
        out,
        r##"<text x="{x:.1}" y="{y:.1}" text-anchor="middle" fill="#222" transform="rotate(-90 {x:.1} {y:.1})">{}</text>"##,
        escape(y_label)
    );
}

fn draw_legend(out: &mut String, frame: &Frame, entries: &[(&str, &str, bool)]) {
    let mut x = frame.left + frame.width;
    let y = frame.top - 22.0;
    for (name, color, dashed) in entries.iter().rev() {
        let width = 30.0 + 7.0 * name.chars().count() as f64;
        x -= width;
        let dash = if *dashed {
            r#" stroke-dasharray="5 3""#
        } else {
            ""
        };
        let _ = writeln!(
            out,
            r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{color}" stroke-width="2.5"{dash}/><text x="{:.1}" y="{:.1}" fill="#222">{}</text>"##,
            x,
            y,
            x + 18.0,
            y,
            x + 22.0,
            y + 4.0,
            escape(name)
        );
    }
}

/// Polylines through the points that exist; a missing point breaks the line.
fn draw_series(
    out: &mut String,
    frame: &Frame,
    points: &[(f64, Option<f64>)],
    color: &str,
    dashed: bool,
) {
    let dash = if dashed {
        r#" stroke-dasharray="5 3""#
    } else {
        ""
    };
    let mut segments: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
    for &(x, y) in points {
        match (y, segments.last_mut()) {
            (Some(y), Some(segment)) => segment.push((frame.x(x), frame.y(y))),
            (None, Some(segment)) if !segment.is_empty() => segments.push(Vec::new()),
            _ => {}
        }
    }
    for segment in segments.iter().filter(|segment| !segment.is_empty()) {
        if let [(x, y)] = segment.as_slice() {
            let _ = writeln!(
                out,
                r#"<circle cx="{x:.1}" cy="{y:.1}" r="2.5" fill="{color}"/>"#
            );
            continue;
        }
        let coordinates: Vec<String> = segment
            .iter()
            .map(|(x, y)| format!("{x:.1},{y:.1}"))
            .collect();
        let _ = writeln!(
            out,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"{dash}/>"#,
            coordinates.join(" ")
        );
    }
}

fn no_data(out: &mut String, frame: &Frame) {
    let _ = writeln!(
        out,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#888">no data</text>"##,
        frame.left + frame.width / 2.0,
        frame.top + frame.height / 2.0
    );
}

const SENT: &str = "#8d99ae";
const COMPLETED: &str = "#2a9d8f";
const CANCELLED: &str = "#e76f51";
const P50: &str = "#264653";
const P99: &str = "#d62828";
const POST_P99: &str = "#6c757d";
const BAR: &str = "#457b9d";

/// The report as a self-contained SVG document: throughput per second, latency percentiles
/// per second, and the POST-to-terminal latency histogram.
pub fn svg(report: &Report) -> String {
    let height = HEADER + 3.0 * PANEL_HEIGHT;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="Helvetica, Arial, sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, "<title>loadgen run {}</title>", escape(&report.run_id));
    let _ = writeln!(
        out,
        r##"<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#ffffff"/>"##
    );
    let verdict = if report.passed { "PASS" } else { "FAIL" };
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="28" font-size="18" font-weight="bold">loadgen run {} — {verdict}</text>"#,
        escape(&report.run_id)
    );
    let c = &report.counts;
    let summary = format!(
        "{} created, {} completed, {} cancelled, {} unobserved, {} HTTP errors; {:.1} completed/s, {:.1} terminal/s",
        c.created,
        c.completed,
        c.cancelled,
        c.unobserved,
        c.http_errors,
        report.throughput.completed_per_sec,
        report.throughput.terminal_per_sec
    );
    for (y, line) in [(50, describe_load(&report.load)), (68, summary)] {
        let _ = writeln!(
            out,
            r##"<text x="{LEFT}" y="{y}" fill="#444">{}</text>"##,
            escape(&line)
        );
    }

    let seconds = report.per_second.len() as f64;
    let (x_max, x_step) = axis(seconds);

    // 1. Throughput per second.
    let rate_max = report
        .per_second
        .iter()
        .map(|second| second.sent.max(second.completed).max(second.cancelled))
        .max()
        .unwrap_or(0) as f64;
    let (y_max, y_step) = axis(rate_max);
    let frame = Frame::panel(0, x_max, y_max);
    draw_axes(
        &mut out,
        &frame,
        "Throughput per second",
        "seconds since start (sent: by send time; completed, cancelled: by event arrival)",
        "orders / s",
        (x_step, y_step),
    );
    if report.per_second.is_empty() {
        no_data(&mut out, &frame);
    }
    let points = |value: &dyn Fn(&Second) -> Option<f64>| -> Vec<(f64, Option<f64>)> {
        report
            .per_second
            .iter()
            .map(|second| (second.second as f64 + 0.5, value(second)))
            .collect()
    };
    draw_series(
        &mut out,
        &frame,
        &points(&|s| Some(s.sent as f64)),
        SENT,
        true,
    );
    draw_series(
        &mut out,
        &frame,
        &points(&|s| Some(s.completed as f64)),
        COMPLETED,
        false,
    );
    draw_series(
        &mut out,
        &frame,
        &points(&|s| Some(s.cancelled as f64)),
        CANCELLED,
        false,
    );
    draw_legend(
        &mut out,
        &frame,
        &[
            ("sent", SENT, true),
            ("completed", COMPLETED, false),
            ("cancelled", CANCELLED, false),
        ],
    );

    // 2. Latency percentiles per second.
    let latency_max = report
        .per_second
        .iter()
        .flat_map(|second| {
            [
                second.terminal_p99_ms,
                second.terminal_p50_ms,
                second.post_p99_ms,
            ]
        })
        .flatten()
        .fold(0.0, f64::max);
    let (y_max, y_step) = axis(latency_max);
    let frame = Frame::panel(1, x_max, y_max);
    draw_axes(
        &mut out,
        &frame,
        "Latency per second (nearest-rank percentiles)",
        "seconds since start (orders grouped by send time)",
        "ms",
        (x_step, y_step),
    );
    if latency_max <= 0.0 {
        no_data(&mut out, &frame);
    }
    draw_series(
        &mut out,
        &frame,
        &points(&|s| s.post_p99_ms),
        POST_P99,
        true,
    );
    draw_series(
        &mut out,
        &frame,
        &points(&|s| s.terminal_p50_ms),
        P50,
        false,
    );
    draw_series(
        &mut out,
        &frame,
        &points(&|s| s.terminal_p99_ms),
        P99,
        false,
    );
    draw_legend(
        &mut out,
        &frame,
        &[
            ("POST p99", POST_P99, true),
            ("POST→terminal p50", P50, false),
            ("POST→terminal p99", P99, false),
        ],
    );

    // 3. POST-to-terminal latency histogram.
    let bins = &report.terminal_latency_histogram_ms;
    let hist_x = bins.last().map_or(0.0, |bin| bin.hi);
    let width = bins.first().map_or(1.0, |bin| bin.hi - bin.lo);
    let count_max = bins.iter().map(|bin| bin.count).max().unwrap_or(0) as f64;
    let (y_max, y_step) = axis(count_max);
    let x_step = stats::nice_step(hist_x / 10.0).max(width);
    let frame = Frame::panel(2, hist_x, y_max);
    draw_axes(
        &mut out,
        &frame,
        "POST → terminal latency distribution",
        "ms",
        "orders",
        (x_step, y_step),
    );
    if bins.is_empty() {
        no_data(&mut out, &frame);
    }
    for bin in bins.iter().filter(|bin| bin.count > 0) {
        let (x0, x1) = (frame.x(bin.lo), frame.x(bin.hi));
        let y = frame.y(bin.count as f64);
        let _ = writeln!(
            out,
            r##"<rect x="{:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{BAR}" stroke="#ffffff" stroke-width="0.5"><title>{}–{} ms: {}</title></rect>"##,
            x0,
            (x1 - x0).max(0.5),
            (frame.top + frame.height - y).max(0.0),
            format_tick(bin.lo),
            format_tick(bin.hi),
            bin.count
        );
    }
    if let Some(summary) = &report.terminal_latency_ms {
        let markers = [
            ("p50", summary.p50, P50, 14.0),
            ("p99", summary.p99, P99, 30.0),
        ];
        for (name, value, color, dy) in markers {
            let x = frame.x(value);
            // Labels near the right edge go to the left of their line.
            let (label_x, anchor) = if x > frame.left + frame.width - 120.0 {
                (x - 4.0, "end")
            } else {
                (x + 4.0, "start")
            };
            let _ = writeln!(
                out,
                r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="{color}" stroke-width="1.5" stroke-dasharray="4 3"/><text x="{label_x:.1}" y="{:.1}" text-anchor="{anchor}" fill="{color}" stroke="#ffffff" stroke-width="3" paint-order="stroke">{name} {:.0} ms</text>"##,
                frame.top,
                frame.top + frame.height,
                frame.top + dy,
                value
            );
        }
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::ledger::{Attempt, Terminal};

    fn info(drive_end_ms: u64) -> RunInfo {
        RunInfo {
            run_id: "lg-test<&>".to_owned(),
            started_at: Utc::now(),
            load: Load {
                shape: "open".to_owned(),
                rate: Some(10.0),
                max_in_flight: Some(100),
                concurrency: None,
                wait_terminal: false,
                duration_secs: Some(2.0),
                orders: None,
                fail_stock: 0.1,
                fail_payment: 0.1,
                products: 8,
                customers: 16,
                settle_timeout_secs: 60.0,
            },
            drive_end: Duration::from_millis(drive_end_ms),
            end: Duration::from_millis(drive_end_ms + 100),
        }
    }

    /// What every test order costs at catalog prices (and is charged, when completed).
    const CATALOG_TOTAL: i64 = 2_500;

    fn attempt(index: u64, intent: Intent, terminal: Option<(Status, u64, Via)>) -> Attempt {
        let sent_at = Duration::from_millis(index * 100);
        Attempt {
            index,
            intent,
            catalog_total: CATALOG_TOTAL,
            sent_at,
            post_latency: Some(Duration::from_millis(5 + index)),
            result: Ok(Uuid::now_v7()),
            terminal: terminal.map(|(status, latency_ms, via)| Terminal {
                status,
                at: sent_at + Duration::from_millis(latency_ms),
                via,
                reason: Some("why".to_owned()),
                total: (status == Status::Completed).then_some(CATALOG_TOTAL),
            }),
            lookup_error: None,
        }
    }

    fn good_snapshot() -> Snapshot {
        let mut attempts: Vec<Attempt> = (0..20)
            .map(|index| {
                let intent = match index % 5 {
                    0 => Intent::FailStock,
                    1 => Intent::FailPayment,
                    _ => Intent::Complete,
                };
                let status = intent.expected_status();
                attempt(index, intent, Some((status, 40 + index * 3, Via::Event)))
            })
            .collect();
        attempts.push(Attempt {
            index: 20,
            intent: Intent::Complete,
            catalog_total: CATALOG_TOTAL,
            sent_at: Duration::from_millis(2_000),
            post_latency: None,
            result: Err(PostError::Dropped),
            terminal: None,
            lookup_error: None,
        });
        Snapshot {
            attempts,
            ..Snapshot::default()
        }
    }

    #[test]
    fn counts_add_up_and_a_clean_run_passes() {
        let report = build(info(2_050), good_snapshot());
        let c = report.counts;
        assert!(report.passed, "{:?}", report.failures);
        assert_eq!(
            (c.attempted, c.created, c.http_errors, c.dropped),
            (21, 20, 1, 1)
        );
        assert_eq!(c.created, c.completed + c.cancelled + c.unobserved);
        assert_eq!((c.completed, c.cancelled), (12, 8));
        let expected: Vec<u64> = report.outcomes.iter().map(|row| row.expected).collect();
        assert_eq!(expected, vec![12, 4, 4]);
        assert!(
            report
                .outcomes
                .iter()
                .all(|row| row.as_expected == row.expected)
        );
        let post = report.post_latency_ms.unwrap();
        assert_eq!((post.count, post.max), (20, 24.0));
        let terminal = report.terminal_latency_ms.unwrap();
        assert_eq!((terminal.min, terminal.max), (40.0, 97.0));
        assert_eq!(
            report.per_second.iter().map(|s| s.sent).sum::<u64>(),
            c.attempted
        );
        assert_eq!(
            report
                .per_second
                .iter()
                .map(|s| s.completed + s.cancelled)
                .sum::<u64>(),
            c.terminal_by_event
        );
        assert_eq!(
            report
                .terminal_latency_histogram_ms
                .iter()
                .map(|bin| bin.count)
                .sum::<u64>(),
            20
        );
        assert_eq!(report.http_errors.len(), 1);
        assert!(table(&report).contains("PASS"));
    }

    #[test]
    fn wrong_and_missing_outcomes_fail_the_run() {
        let mut snapshot = good_snapshot();
        snapshot.attempts[0] = attempt(
            0,
            Intent::FailStock,
            Some((Status::Completed, 50, Via::Event)),
        );
        snapshot.attempts[1] = attempt(1, Intent::FailPayment, None);
        snapshot.attempts[1].lookup_error = Some("GET /orders says Pending".into());
        snapshot.attempts[2] = attempt(
            2,
            Intent::Complete,
            Some((Status::Completed, 500, Via::Lookup)),
        );
        let report = build(info(2_050), snapshot);
        assert!(!report.passed);
        assert_eq!(report.failure_count, 2);
        assert_eq!(report.counts.unobserved, 1);
        assert_eq!(report.counts.wrong_outcome, 1);
        assert_eq!(report.counts.terminal_by_lookup, 1);
        assert_eq!(report.terminal_latency_ms.unwrap().count, 18);
        let text = table(&report);
        assert!(text.contains("FAIL: 2 order(s)"), "{text}");
        assert!(text.contains("expected Cancelled, got Completed"), "{text}");
        assert!(text.contains("GET /orders says Pending"), "{text}");
    }

    #[test]
    fn a_completed_order_charged_off_the_catalog_fails_the_run() {
        let mut snapshot = good_snapshot();
        // Order 2 charged one less than its lines cost; order 3's total unknown (a lookup of an
        // order service that showed none).
        for (index, total) in [(2, Some(CATALOG_TOTAL - 1)), (3, None)] {
            if let Some(terminal) = snapshot.attempts[index].terminal.as_mut() {
                terminal.total = total;
            }
        }
        let report = build(info(2_050), snapshot);
        assert!(!report.passed);
        assert_eq!(
            report.counts.wrong_total, 1,
            "no total known is no evidence"
        );
        assert_eq!(report.counts.wrong_outcome, 0);
        let text = table(&report);
        assert!(
            text.contains("completed for a total of 2499, but its lines cost 2500"),
            "{text}"
        );
    }

    #[test]
    fn failures_are_listed_at_most_twenty_times() {
        let attempts = (0..50)
            .map(|index| attempt(index, Intent::Complete, None))
            .collect();
        let report = build(
            info(5_000),
            Snapshot {
                attempts,
                ..Snapshot::default()
            },
        );
        assert_eq!(report.failure_count, 50);
        assert_eq!(report.failures.len(), MAX_FAILURES_LISTED);
        let text = table(&report);
        assert!(text.contains("… and 30 more"));
        let listed = text
            .lines()
            .filter(|line| line.starts_with("  order #"))
            .count();
        assert_eq!(listed, 20);
    }

    #[test]
    fn a_run_without_orders_fails() {
        let report = build(info(1_000), Snapshot::default());
        assert!(!report.passed);
        assert!(report.failures[0].problem.contains("no order was created"));
        assert!(svg(&report).contains("no data"));
    }

    #[test]
    fn json_round_trips() {
        let report = build(info(2_050), good_snapshot());
        let json = to_json(&report).unwrap();
        let back: Report = serde_json::from_str(&json).unwrap();
        // JSON numbers are decimal text: floats may come back a last digit off.
        assert_eq!(back.counts, report.counts);
        assert_eq!(back.outcomes, report.outcomes);
        assert_eq!(back.failures, report.failures);
        let (a, b) = (
            back.terminal_latency_ms.unwrap(),
            report.terminal_latency_ms.unwrap(),
        );
        assert!((a.p99 - b.p99).abs() < 1e-9 && a.count == b.count);
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["outcomes"][1]["intent"], "fail-stock");
        assert_eq!(value["outcomes"][1]["expected_status"], "Cancelled");
    }

    #[test]
    fn svg_is_one_escaped_self_contained_document() {
        let report = build(info(2_050), good_snapshot());
        let svg = svg(&report);
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<svg").count(), 1);
        assert!(svg.contains("lg-test&lt;&amp;&gt;"));
        assert!(!svg.contains("lg-test<&>"));
        assert!(!svg.contains("<script"));
        assert!(!svg.contains("href"));
        assert!(svg.contains("<polyline"));
        assert!(svg.contains("<rect"));
        assert!(!svg.contains("NaN") && !svg.contains("=\"inf"));
    }
}
