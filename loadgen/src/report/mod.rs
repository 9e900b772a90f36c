//! The run's result: built from what the ledger and the memory sampler recorded, printed as a
//! table ([`table`]), written as JSON ([`to_json`]) and drawn as SVG charts ([`svg`]).
//!
//! Latencies are HdrHistograms ([`crate::stats`]), measured from each order's intended send
//! time in the open loop and from its actual send in the closed loop ([`LatencyOrigin`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::stats::{Bin, Summary};
use crate::{Intent, Status};

mod build;
mod memory;
mod svg;
mod table;
#[cfg(test)]
mod tests;
mod windows;

pub(crate) use build::{RunInfo, build};
pub use svg::{SvgError, svg};
pub use table::table;

/// Most failures kept in the report (and so printed); the count says how many there were.
pub const MAX_FAILURES_LISTED: usize = 20;
/// Most distinct HTTP error messages kept.
pub const MAX_ERROR_KINDS: usize = 10;
/// Most bins of the POST-to-terminal latency histogram.
pub const HISTOGRAM_BINS: usize = 30;
/// Width of the report's windows unless `--window-secs` says otherwise.
pub const DEFAULT_WINDOW_SECS: f64 = 60.0;

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
    /// The instant every latency of the report is measured from.
    #[serde(default)]
    pub latency_origin: LatencyOrigin,
    /// POST → response of the created orders, from the latency origin, in milliseconds.
    pub post_latency_ms: Option<Summary>,
    /// POST → terminal event received, from the latency origin, of the orders whose event was
    /// seen, in milliseconds.
    pub terminal_latency_ms: Option<Summary>,
    /// Open loop: how late loadgen sent each order (actual − intended send), dropped ones
    /// included, in milliseconds; large values mean the generator itself was a bottleneck.
    /// `None` in the closed loop, which has no schedule.
    #[serde(default)]
    pub send_lag_ms: Option<Summary>,
    /// Per intended outcome: how many were created and how they ended.
    pub outcomes: Vec<OutcomeRow>,
    /// Per second of the run (`second` k covers `[k, k + 1)` seconds after the start).
    pub per_second: Vec<Second>,
    /// Per window of `load.window_secs` over the whole run.
    #[serde(default)]
    pub windows: Vec<Window>,
    /// Distribution of POST-to-terminal latency (milliseconds).
    pub terminal_latency_histogram_ms: Vec<Bin>,
    /// Resident memory of each watched process, in name order.
    #[serde(default)]
    pub memory: Vec<ProcessMemory>,
    /// The most frequent HTTP errors (POSTs that created no order), most frequent first.
    pub http_errors: Vec<ErrorCount>,
    /// How many orders failed the end check.
    pub failure_count: u64,
    /// The first [`MAX_FAILURES_LISTED`] of them.
    pub failures: Vec<Failure>,
    /// Things worth knowing that do not fail the run (warnings included).
    pub notes: Vec<String>,
    /// Whether every created order reached a terminal state matching its intent.
    pub passed: bool,
}

/// The instant an order's latencies are measured from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LatencyOrigin {
    /// Open loop: the order's intended send time, `start + index / rate`, so that a generator
    /// that falls behind or a server that stalls it cannot hide latency (no coordinated
    /// omission).
    IntendedSend,
    /// Closed loop: the order's actual send (there is no schedule).
    #[default]
    ActualSend,
}

impl LatencyOrigin {
    /// The origin in words, for the table and the charts.
    pub fn describe(self) -> &'static str {
        match self {
            LatencyOrigin::IntendedSend => {
                "from each order's intended send time (open loop: no coordinated omission)"
            }
            LatencyOrigin::ActualSend => {
                "from each order's actual send (closed loop: there is no schedule)"
            }
        }
    }
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
    /// `--window-secs`: the width of the report's windows.
    #[serde(default = "default_window_secs")]
    pub window_secs: f64,
}

fn default_window_secs() -> f64 {
    DEFAULT_WINDOW_SECS
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
    /// Orders actually sent (or dropped) in this second.
    pub sent: u64,
    /// Completed events received in this second.
    pub completed: u64,
    /// Cancelled events received in this second.
    pub cancelled: u64,
    /// p50 of the POST latency of the orders whose latency origin is in this second.
    pub post_p50_ms: Option<f64>,
    /// p99 of the POST latency of the orders whose latency origin is in this second.
    pub post_p99_ms: Option<f64>,
    /// p50 of the POST-to-terminal latency of the orders whose latency origin is in this
    /// second.
    pub terminal_p50_ms: Option<f64>,
    /// p99 of the POST-to-terminal latency of the orders whose latency origin is in this
    /// second.
    pub terminal_p99_ms: Option<f64>,
}

/// One window of `--window-secs` of the run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// Seconds since the start at which the window begins.
    pub start_secs: f64,
    /// Seconds since the start at which it ends (the last window ends with the run).
    pub end_secs: f64,
    /// Orders whose latency origin (open loop: intended send time) is in the window, dropped
    /// ones included.
    pub sent: u64,
    /// Completed events received in the window.
    pub completed: u64,
    /// Cancelled events received in the window.
    pub cancelled: u64,
    /// p99 of the POST latency of the orders sent in the window.
    pub post_p99_ms: Option<f64>,
    /// p50 of the POST-to-terminal latency of the orders sent in the window.
    pub terminal_p50_ms: Option<f64>,
    /// p99 of the POST-to-terminal latency of the orders sent in the window.
    pub terminal_p99_ms: Option<f64>,
    /// Resident memory of each watched process at the window's end (its last sample in the
    /// window), in bytes, by name; a process with no sample in the window is absent.
    pub rss_bytes: BTreeMap<String, u64>,
}

/// The resident memory of one watched process over the run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessMemory {
    /// Its name (`--watch-process NAME=…`, or the name of its pid file).
    pub name: String,
    /// Its process id.
    pub pid: u32,
    /// The largest resident set size sampled, in bytes.
    pub peak_bytes: Option<u64>,
    /// The last one sampled, in bytes.
    pub last_bytes: Option<u64>,
    /// Every sample, in time order (about one a second).
    pub samples: Vec<RssSample>,
}

/// One sample of a process's resident memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RssSample {
    /// When it was read, in milliseconds since the start.
    pub at_ms: u64,
    /// The resident set size (`VmRSS`), in bytes.
    pub rss_bytes: u64,
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

/// The report as pretty-printed JSON.
pub fn to_json(report: &Report) -> Result<String, serde_json::Error> {
    serde_json::to_string_pretty(report)
}

/// The load in one line, for the table and the charts.
pub(crate) fn describe_load(load: &Load) -> String {
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

impl Report {
    /// The width of the report's windows in seconds: `--window-secs`, unless a long run
    /// widened them (see the notes).
    pub fn window_width(&self) -> f64 {
        match self.windows.as_slice() {
            [first, _, ..] => first.end_secs - first.start_secs,
            _ => self.load.window_secs,
        }
    }
}

/// `secs` to the millisecond, without trailing zeros, for labels.
pub(crate) fn seconds(secs: f64) -> String {
    format!("{}", (secs * 1_000.0).round() / 1_000.0)
}

/// Bytes in mebibytes.
pub(crate) fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
