//! The report built from recorded runs: counts, verdicts, latency origins, windows, memory,
//! the table, the JSON and the SVG.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use chrono::Utc;
use uuid::Uuid;

use super::*;
use crate::ledger::{Attempt, PostError, Snapshot, Terminal, Via};
use crate::rss::{MemoryLog, Sample, Watched};

mod svg;

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
            window_secs: 1.0,
        },
        drive_end: Duration::from_millis(drive_end_ms),
        end: Duration::from_millis(drive_end_ms + 100),
    }
}

/// The same run in the closed loop (no schedule).
fn closed(drive_end_ms: u64) -> RunInfo {
    let mut info = info(drive_end_ms);
    info.load.shape = "closed".to_owned();
    info.load.rate = None;
    info.load.max_in_flight = None;
    info.load.concurrency = Some(4);
    info
}

/// What every test order costs at catalog prices (and is charged, when completed).
const CATALOG_TOTAL: i64 = 2_500;

/// Order `index`, due and sent at `index × 100` ms, answered `5 + index` ms later, terminal
/// `latency_ms` after it was sent.
fn attempt(index: u64, intent: Intent, terminal: Option<(Status, u64, Via)>) -> Attempt {
    let sent_at = Duration::from_millis(index * 100);
    Attempt {
        index,
        intent,
        catalog_total: CATALOG_TOTAL,
        intended_at: Some(sent_at),
        sent_at,
        answered_at: Some(sent_at + Duration::from_millis(5 + index)),
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
        intended_at: Some(Duration::from_millis(2_000)),
        sent_at: Duration::from_millis(2_000),
        answered_at: None,
        result: Err(PostError::Dropped),
        terminal: None,
        lookup_error: None,
    });
    Snapshot {
        attempts,
        ..Snapshot::default()
    }
}

fn report(info: RunInfo, snapshot: Snapshot) -> Report {
    build(info, snapshot, MemoryLog::default()).unwrap()
}

#[test]
fn counts_add_up_and_a_clean_run_passes() {
    let report = report(info(2_050), good_snapshot());
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
    assert_eq!((post.count, post.min, post.max), (20, 5.0, 24.0));
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
fn open_loop_latency_counts_from_the_intended_send() {
    // Order 3 was due at 300 ms but loadgen sent it at 800 ms: answered 5 ms and terminal
    // 40 ms after the send, it waited 505 and 540 ms from when it was meant to go.
    let mut snapshot = Snapshot {
        attempts: (0..4)
            .map(|index| {
                attempt(
                    index,
                    Intent::Complete,
                    Some((Status::Completed, 40, Via::Event)),
                )
            })
            .collect(),
        ..Snapshot::default()
    };
    let late = &mut snapshot.attempts[3];
    late.sent_at = Duration::from_millis(800);
    late.answered_at = Some(Duration::from_millis(805));
    if let Some(terminal) = late.terminal.as_mut() {
        terminal.at = Duration::from_millis(840);
    }
    let open = report(info(900), snapshot.clone());
    assert_eq!(open.latency_origin, LatencyOrigin::IntendedSend);
    assert_eq!(open.post_latency_ms.unwrap().max, 505.0);
    assert_eq!(open.terminal_latency_ms.unwrap().max, 540.0);
    let lag = open.send_lag_ms.unwrap();
    assert_eq!((lag.count, lag.min, lag.max), (4, 0.0, 500.0));
    assert!(
        open.notes
            .iter()
            .any(|note| note.contains("behind its schedule")),
        "{:?}",
        open.notes
    );
    let text = table(&open);
    assert!(
        text.contains("from each order's intended send time"),
        "{text}"
    );
    assert!(text.contains("send lag (loadgen)"), "{text}");
    let json: serde_json::Value = serde_json::from_str(&to_json(&open).unwrap()).unwrap();
    assert_eq!(json["latency_origin"], "intended-send");
    assert_eq!(json["send_lag_ms"]["max"], 500.0);

    // The closed loop has no schedule: latency from the actual send, no lag.
    for attempt in &mut snapshot.attempts {
        attempt.intended_at = None;
    }
    let closed = report(closed(900), snapshot);
    assert_eq!(closed.latency_origin, LatencyOrigin::ActualSend);
    let (post, terminal) = (
        closed.post_latency_ms.unwrap(),
        closed.terminal_latency_ms.unwrap(),
    );
    assert_eq!((post.max, terminal.min, terminal.max), (7.0, 40.0, 40.0));
    assert_eq!(closed.send_lag_ms, None);
    let text = table(&closed);
    assert!(text.contains("from each order's actual send"), "{text}");
    assert!(!text.contains("send lag"), "{text}");
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
    let report = report(info(2_050), snapshot);
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
    let report = report(info(2_050), snapshot);
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
    let report = report(
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
    let report = report(info(1_000), Snapshot::default());
    assert!(!report.passed);
    assert!(report.failures[0].problem.contains("no order was created"));
    assert!(svg(&report).unwrap().contains("no data"));
}

/// Two watched processes, sampled every 500 ms over 2.1 s; the second one went away after 1 s.
fn memory_log() -> MemoryLog {
    let mut samples = Vec::new();
    for tick in 0..5_u32 {
        let at = Duration::from_millis(u64::from(tick) * 500);
        samples.push(Sample {
            at,
            process: 0,
            rss_bytes: u64::from(40 + tick) << 20,
        });
        if tick <= 2 {
            samples.push(Sample {
                at,
                process: 1,
                rss_bytes: u64::from(30 - tick) << 20,
            });
        }
    }
    MemoryLog {
        processes: vec![
            Watched {
                name: "order-svc".into(),
                pid: 101,
            },
            Watched {
                name: "inventory-svc".into(),
                pid: 102,
            },
        ],
        samples,
        warnings: vec!["inventory-svc (pid 102): resident memory not read from 1.5 s on".into()],
    }
}

#[test]
fn windows_and_memory_are_in_the_table_and_the_json() {
    let report = build(info(2_050), good_snapshot(), memory_log()).unwrap();
    // 1 s windows over the 2.15 s run: three, the last one ending with the run.
    let starts: Vec<(f64, f64)> = report
        .windows
        .iter()
        .map(|w| (w.start_secs, w.end_secs))
        .collect();
    assert_eq!(starts, vec![(0.0, 1.0), (1.0, 2.0), (2.0, 2.15)]);
    let sent: Vec<u64> = report.windows.iter().map(|w| w.sent).collect();
    assert_eq!(
        sent,
        vec![10, 10, 1],
        "by intended send time, dropped included"
    );
    let first = &report.windows[0];
    // Orders 0 to 9: POST→terminal 40 + 3i ms, so p50 (rank 5) is order 4's: 52 ms.
    let p50 = first.terminal_p50_ms.unwrap();
    assert!((52.0..=52.052).contains(&p50), "{p50} is 52 ms to 0.1 %");
    assert_eq!(first.terminal_p99_ms, Some(67.0));
    assert_eq!(first.post_p99_ms, Some(14.0));
    let mib = |window: &Window, name: &str| window.rss_bytes.get(name).map(|bytes| bytes >> 20);
    assert_eq!(mib(first, "order-svc"), Some(41));
    assert_eq!(mib(first, "inventory-svc"), Some(29));
    assert_eq!(mib(&report.windows[1], "inventory-svc"), Some(28));
    assert_eq!(mib(&report.windows[2], "order-svc"), Some(44));
    assert_eq!(mib(&report.windows[2], "inventory-svc"), None);

    let names: Vec<&str> = report.memory.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["inventory-svc", "order-svc"]);
    let order = &report.memory[1];
    assert_eq!(
        (
            order.pid,
            order.peak_bytes,
            order.last_bytes,
            order.samples.len()
        ),
        (101, Some(44 << 20), Some(44 << 20), 5)
    );
    assert!(report.notes.iter().any(|note| note.contains("pid 102")));

    let text = table(&report);
    assert!(text.contains("Resident memory (MiB)"), "{text}");
    assert!(text.contains("inventory-svc (pid 102)"), "{text}");
    assert!(text.contains("Per 1 s window"), "{text}");
    let row = text
        .lines()
        .find(|line| line.trim_start().starts_with("0 ") && line.contains("52.0"))
        .unwrap_or_else(|| panic!("no first window row in\n{text}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cells,
        ["0", "10", "6", "4", "52.0", "67.0", "14.0", "29.0", "41.0"],
        "{text}"
    );

    let json: serde_json::Value = serde_json::from_str(&to_json(&report).unwrap()).unwrap();
    assert_eq!(json["windows"][0]["rss_bytes"]["order-svc"], 41_u64 << 20);
    assert_eq!(json["memory"][1]["samples"][4]["at_ms"], 2_000);
    assert_eq!(json["load"]["window_secs"], 1.0);
    // The paths scripts/bench-system.sh reads.
    assert!(json["throughput"]["completed_per_sec"].is_f64());
    assert_eq!(json["counts"]["created"], 20);
    assert_eq!(json["post_latency_ms"]["count"], 20);
    assert_eq!(json["terminal_latency_ms"]["max"], 97.0);
}

#[test]
fn a_single_window_is_not_tabulated() {
    let mut info = info(2_050);
    info.load.window_secs = 60.0;
    let report = report(info, good_snapshot());
    assert_eq!(report.windows.len(), 1);
    assert_eq!(report.windows[0].sent, 21);
    assert!(!table(&report).contains("window"));
}

#[test]
fn json_round_trips() {
    let report = build(info(2_050), good_snapshot(), memory_log()).unwrap();
    let json = to_json(&report).unwrap();
    let back: Report = serde_json::from_str(&json).unwrap();
    // JSON numbers are decimal text: floats may come back a last digit off.
    assert_eq!(back.counts, report.counts);
    assert_eq!(back.outcomes, report.outcomes);
    assert_eq!(back.failures, report.failures);
    assert_eq!(back.memory, report.memory);
    assert_eq!(back.latency_origin, report.latency_origin);
    let (a, b) = (
        back.terminal_latency_ms.unwrap(),
        report.terminal_latency_ms.unwrap(),
    );
    assert!((a.p99 - b.p99).abs() < 1e-9 && a.count == b.count);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["outcomes"][1]["intent"], "fail-stock");
    assert_eq!(value["outcomes"][1]["expected_status"], "Cancelled");
}
