//! The report as the plain-text table printed at the end of a run.

use std::fmt::Write as _;

use super::{LatencyOrigin, Report, describe_load, mib, seconds};
use crate::stats::Summary;

/// The report as the table printed at the end of a run.
pub fn table(report: &Report) -> String {
    let mut out = String::new();
    header(&mut out, report);
    latency(&mut out, report);
    outcomes(&mut out, report);
    memory(&mut out, report);
    windows(&mut out, report);
    verdict(&mut out, report);
    out
}

fn header(out: &mut String, report: &Report) {
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

fn latency(out: &mut String, report: &Report) {
    let _ = writeln!(
        out,
        "{:<24}{:>10}{:>10}{:>10}{:>10}{:>10}",
        "Latency (ms)", "p50", "p95", "p99", "max", "samples"
    );
    latency_row(out, "POST", report.post_latency_ms.as_ref());
    latency_row(out, "POST → terminal", report.terminal_latency_ms.as_ref());
    if report.latency_origin == LatencyOrigin::IntendedSend {
        latency_row(out, "send lag (loadgen)", report.send_lag_ms.as_ref());
    }
    let _ = writeln!(out, "  measured {}", report.latency_origin.describe());
    if report.latency_origin == LatencyOrigin::IntendedSend {
        let _ = writeln!(
            out,
            "  send lag: how late loadgen sent each order (actual − intended send)"
        );
    }
    out.push('\n');
}

fn outcomes(out: &mut String, report: &Report) {
    let c = &report.counts;
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
}

/// `bytes` in MiB, or `-`.
fn mib_cell(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| "-".to_owned(), |bytes| format!("{:.1}", mib(bytes)))
}

fn memory(out: &mut String, report: &Report) {
    if report.memory.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "{:<32}{:>10}{:>10}{:>10}",
        "Resident memory (MiB)", "peak", "last", "samples"
    );
    for process in &report.memory {
        let _ = writeln!(
            out,
            "  {:<30}{:>10}{:>10}{:>10}",
            format!("{} (pid {})", process.name, process.pid),
            mib_cell(process.peak_bytes),
            mib_cell(process.last_bytes),
            process.samples.len()
        );
    }
    out.push('\n');
}

/// `value` with one decimal, or `-`.
fn ms_cell(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |value| format!("{value:.1}"))
}

fn windows(out: &mut String, report: &Report) {
    if report.windows.len() < 2 {
        return;
    }
    let _ = writeln!(
        out,
        "Per {} s window: orders by latency origin, with their latencies (ms); \
         completed and cancelled by event arrival; memory (MiB) at the window's end",
        seconds(report.window_width())
    );
    let names: Vec<&str> = report
        .memory
        .iter()
        .map(|process| process.name.as_str())
        .collect();
    let _ = write!(
        out,
        "  {:>8}{:>8}{:>10}{:>10}{:>10}{:>10}{:>10}",
        "start s", "sent", "completed", "cancelled", "term p50", "term p99", "POST p99"
    );
    for name in &names {
        let _ = write!(out, "{:>w$}", name, w = name.chars().count().max(8) + 2);
    }
    out.push('\n');
    for window in &report.windows {
        let _ = write!(
            out,
            "  {:>8}{:>8}{:>10}{:>10}{:>10}{:>10}{:>10}",
            seconds(window.start_secs),
            window.sent,
            window.completed,
            window.cancelled,
            ms_cell(window.terminal_p50_ms),
            ms_cell(window.terminal_p99_ms),
            ms_cell(window.post_p99_ms)
        );
        for name in &names {
            let _ = write!(
                out,
                "{:>w$}",
                mib_cell(window.rss_bytes.get(*name).copied()),
                w = name.chars().count().max(8) + 2
            );
        }
        out.push('\n');
    }
    out.push('\n');
}

fn verdict(out: &mut String, report: &Report) {
    let c = &report.counts;
    if report.passed {
        let _ = writeln!(
            out,
            "PASS: all {} created orders are terminal with the intended outcome, the completed ones at catalog prices",
            c.created
        );
        return;
    }
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
