//! loadgen against the real system: the four services as processes with fresh databases and a
//! fresh vhost (one least-privilege broker user per service; every API call authenticated).
//! Asserts on behaviour only (never on timings): every order terminal with its intended outcome
//! and the completed ones charged at catalog prices, counts that add up, ordered percentiles, the
//! latency origin, windows that account for every order, the services' resident memory (watched
//! through a directory of pid files, as `scripts/run-local.sh` writes them, and the test process
//! itself by `--watch-process`), the JSON and SVG files.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use clap::Parser;
use loadgen::report::LatencyOrigin;
use loadgen::{Config, Intent, Report, Status};
use testkit::system::{Svc, System, SystemConfig};

/// The names the services' memory is reported under (their pid files'), and this process's.
const WATCHED: [&str; 5] = [
    "inventory-svc",
    "loadgen-test",
    "notify-svc",
    "order-svc",
    "payment-svc",
];

/// Writes `<binary>.pid` into `dir` for each of `system`'s service processes: this process's
/// children that run a service binary with the system's vhost in their environment.
fn write_pid_files(system: &System, dir: &std::path::Path) {
    std::fs::create_dir_all(dir).unwrap();
    let me = std::process::id().to_string();
    let mut written = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap() {
        let path = entry.unwrap().path();
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid …`; the command name may hold spaces, so split after `)`.
        let Some((head, tail)) = stat.rsplit_once(") ") else {
            continue;
        };
        let comm = head.split_once(" (").map_or("", |(_, comm)| comm);
        let fields: Vec<&str> = tail.split_whitespace().collect();
        let (state, ppid) = (fields.first().copied(), fields.get(1).copied());
        let service = Svc::ALL.iter().any(|svc| svc.binary() == comm);
        if !service || ppid != Some(me.as_str()) || matches!(state, Some("Z" | "X")) {
            continue;
        }
        let environ = std::fs::read(path.join("environ")).unwrap_or_default();
        if !String::from_utf8_lossy(&environ).contains(system.vhost().name()) {
            continue;
        }
        let pid = path.file_name().unwrap().to_string_lossy().into_owned();
        std::fs::write(dir.join(format!("{comm}.pid")), pid).unwrap();
        written.push(comm.to_owned());
    }
    written.sort();
    assert_eq!(
        written,
        ["inventory-svc", "notify-svc", "order-svc", "payment-svc"],
        "one process per service"
    );
}

/// A scratch directory for the output files, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        let dir = std::env::temp_dir().join(format!("loadgen-smoke-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// loadgen's configuration for `load` (shape and limit) against `system`, writing into
/// `scratch`, with the system's JWT secret and its vhost's administrator as the observer.
fn config(system: &System, scratch: &Scratch, load: &[&str]) -> Config {
    let (order, inventory, payment) = (
        system.url(Svc::Order),
        system.url(Svc::Inventory),
        system.url(Svc::Payment),
    );
    let (json, svg) = (scratch.path("report.json"), scratch.path("report.svg"));
    let pids = scratch.path("pids");
    write_pid_files(system, &pids);
    let mut args = vec![
        "loadgen".to_owned(),
        "--order-url".to_owned(),
        order,
        "--inventory-url".to_owned(),
        inventory,
        "--payment-url".to_owned(),
        payment,
        "--amqp-url".to_owned(),
        system.vhost().url().to_owned(),
        "--jwt-secret".to_owned(),
        testkit::auth::SECRET.to_owned(),
        "--json".to_owned(),
        json.display().to_string(),
        "--svg".to_owned(),
        svg.display().to_string(),
        "--quiet".to_owned(),
        "--window-secs".to_owned(),
        "0.5".to_owned(),
        "--watch-pid-dir".to_owned(),
        pids.display().to_string(),
        "--watch-process".to_owned(),
        format!("loadgen-test={}", std::process::id()),
    ];
    args.extend(load.iter().map(|arg| (*arg).to_owned()));
    Config::try_parse_from(args).unwrap()
}

/// Runs loadgen with `load` (shape and limit) against `system`, writing into `scratch`.
async fn run(system: &System, scratch: &Scratch, load: &[&str]) -> Report {
    loadgen::run(config(system, scratch, load)).await.unwrap()
}

/// Everything a correct run of `expected_attempts` orders against a healthy system shows.
fn check(report: &Report, scratch: &Scratch, expected_attempts: u64) {
    let table = loadgen::report::table(report);
    println!("{table}");
    let counts = report.counts;
    assert!(report.passed, "the run failed:\n{table}");
    assert!(report.failures.is_empty() && report.failure_count == 0);

    // Counts add up.
    assert_eq!(counts.attempted, expected_attempts, "{table}");
    assert_eq!(counts.http_errors, 0, "{table}");
    assert_eq!(counts.created, counts.attempted - counts.http_errors);
    assert_eq!(counts.unobserved, 0);
    assert_eq!(counts.wrong_outcome, 0);
    assert_eq!(counts.wrong_total, 0, "{table}");
    assert_eq!(counts.created, counts.completed + counts.cancelled);
    assert_eq!(
        counts.completed + counts.cancelled,
        counts.terminal_by_event + counts.terminal_by_lookup
    );

    // Every intent was exercised and every order of it ended as intended.
    let mut created = 0;
    for row in &report.outcomes {
        assert!(row.expected > 0, "no order meant to {}", row.intent);
        assert_eq!(row.as_expected, row.expected, "{table}");
        assert_eq!(row.not_terminal, 0);
        assert_eq!(row.completed + row.cancelled, row.expected);
        created += row.expected;
        match row.intent {
            Intent::Complete => assert_eq!(row.expected_status, Status::Completed),
            Intent::FailStock | Intent::FailPayment => {
                assert_eq!(row.expected_status, Status::Cancelled);
            }
        }
    }
    assert_eq!(created, counts.created);
    let complete = report
        .outcomes
        .iter()
        .find(|row| row.intent == Intent::Complete)
        .unwrap();
    assert_eq!(complete.expected, counts.completed);

    // Percentiles are ordered; the per-second and histogram data account for every sample.
    for summary in [report.post_latency_ms, report.terminal_latency_ms] {
        let summary = summary.expect("latency samples");
        assert!(summary.min <= summary.p50, "{summary:?}");
        assert!(summary.p50 <= summary.p95, "{summary:?}");
        assert!(summary.p95 <= summary.p99, "{summary:?}");
        assert!(summary.p99 <= summary.max, "{summary:?}");
        assert!(summary.min >= 0.0);
    }
    assert_eq!(report.post_latency_ms.unwrap().count as u64, counts.created);
    assert_eq!(
        report.terminal_latency_ms.unwrap().count as u64,
        counts.terminal_by_event
    );
    let histogram: u64 = report
        .terminal_latency_histogram_ms
        .iter()
        .map(|bin| bin.count)
        .sum();
    assert_eq!(histogram, counts.terminal_by_event);
    let sent: u64 = report.per_second.iter().map(|second| second.sent).sum();
    assert_eq!(sent, counts.attempted);
    let ended: u64 = report
        .per_second
        .iter()
        .map(|second| second.completed + second.cancelled)
        .sum();
    assert_eq!(ended, counts.terminal_by_event);
    assert!(report.throughput.completed_per_sec > 0.0);
    assert!(report.throughput.terminal_per_sec >= report.throughput.completed_per_sec);
    assert!(report.phases.send_secs <= report.phases.drive_secs);
    assert!(report.phases.drive_secs <= report.phases.span_secs);
    assert!(report.phases.span_secs <= report.phases.total_secs);

    // Latency from the intended send in the open loop (and how late loadgen sent), from the
    // actual send in the closed loop.
    let open = report.load.shape == "open";
    let origin = match open {
        true => LatencyOrigin::IntendedSend,
        false => LatencyOrigin::ActualSend,
    };
    assert_eq!(report.latency_origin, origin);
    assert_eq!(report.send_lag_ms.is_some(), open);
    if let Some(lag) = report.send_lag_ms {
        assert_eq!(lag.count as u64, counts.attempted);
        assert!(lag.min >= 0.0 && lag.p99 <= lag.max);
    }
    assert!(table.contains(origin.describe()), "{table}");

    // Windows of 0.5 s cover the run and account for every order and every event.
    assert!(report.windows.len() >= 2, "{table}");
    let windows = &report.windows;
    assert_eq!(windows[0].start_secs, 0.0);
    assert!(
        windows
            .windows(2)
            .all(|pair| pair[0].end_secs == pair[1].start_secs)
    );
    assert_eq!(windows.last().unwrap().end_secs, report.phases.total_secs);
    assert_eq!(
        windows.iter().map(|w| w.sent).sum::<u64>(),
        counts.attempted
    );
    let ended: u64 = windows.iter().map(|w| w.completed + w.cancelled).sum();
    assert_eq!(ended, counts.terminal_by_event);
    assert!(windows.iter().any(|w| w.terminal_p99_ms.is_some()));
    assert!(table.contains("Per 0.5 s window"), "{table}");

    // Every service's resident memory, and this process's, sampled once a second.
    let names: Vec<&str> = report.memory.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, WATCHED, "{table}");
    assert!(
        report
            .notes
            .iter()
            .all(|note| !note.contains("resident memory")),
        "{table}"
    );
    for process in &report.memory {
        assert!(!process.samples.is_empty(), "{process:?}");
        let (peak, last) = (process.peak_bytes.unwrap(), process.last_bytes.unwrap());
        assert!(last > 1024 * 1024 && last <= peak, "{process:?}");
        assert!(windows[0].rss_bytes.contains_key(&process.name), "{table}");
    }
    assert!(table.contains("Resident memory (MiB)"), "{table}");
    assert!(table.contains("order-svc (pid "), "{table}");

    // The JSON file is the report (floats compared to their last digit: JSON text is decimal).
    let json = std::fs::read_to_string(scratch.path("report.json")).unwrap();
    let parsed: Report = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed.counts, report.counts);
    assert_eq!(parsed.outcomes, report.outcomes);
    assert_eq!(parsed.run_id, report.run_id);
    assert_eq!(parsed.per_second.len(), report.per_second.len());
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_close(&value, &serde_json::to_value(report).unwrap(), "report");
    assert_eq!(value["passed"], true);
    // The paths scripts/bench-system.sh reads.
    assert_eq!(value["counts"]["created"], counts.created);
    assert!(value["throughput"]["completed_per_sec"].as_f64().unwrap() > 0.0);
    assert!(value["post_latency_ms"]["p99"].is_number());
    assert!(value["terminal_latency_ms"]["p99"].is_number());
    assert_eq!(value["memory"].as_array().unwrap().len(), WATCHED.len());

    // The SVG file is one self-contained SVG document.
    let svg = std::fs::read_to_string(scratch.path("report.svg")).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(200)]);
    assert!(svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("<svg").count(), 1);
    assert!(svg.contains(&report.run_id));
    for title in [
        "Throughput per second",
        "Latency per second",
        "Latency per 0.5 s window",
        "POST → terminal latency distribution",
        "Resident memory (VmRSS)",
    ] {
        assert!(svg.contains(title), "no {title:?} in the SVG");
    }
    for name in WATCHED {
        assert!(
            svg.contains(&format!(">\n{name}\n</text>")),
            "no legend for {name}"
        );
    }
    assert!(svg.matches("<polyline").count() >= 10, "no data drawn");
    assert!(svg.contains("<rect"), "no histogram bar");
    assert!(!svg.contains("<script") && !svg.contains("href="));
}

/// `actual` equals `expected`, numbers within a relative 1e-12.
fn assert_close(actual: &serde_json::Value, expected: &serde_json::Value, path: &str) {
    use serde_json::Value;
    match (actual, expected) {
        (Value::Number(a), Value::Number(b)) => {
            let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
            assert!(
                (a - b).abs() <= 1e-12 * a.abs().max(b.abs()),
                "{path}: {a} != {b}"
            );
        }
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "{path}");
            for (index, (a, b)) in a.iter().zip(b).enumerate() {
                assert_close(a, b, &format!("{path}[{index}]"));
            }
        }
        (Value::Object(a), Value::Object(b)) => {
            assert_eq!(
                a.keys().collect::<Vec<_>>(),
                b.keys().collect::<Vec<_>>(),
                "{path}"
            );
            for (key, a) in a {
                assert_close(a, &b[key], &format!("{path}.{key}"));
            }
        }
        (a, b) => assert_eq!(a, b, "{path}"),
    }
}

/// The two scenarios start a system each; one at a time keeps the machine (2 cores) from
/// being the bottleneck.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The load's data: the defaults (several products and customers shared by all orders), so
/// that concurrent sagas contend for the same stock and account rows as in production.
const DATA: [&str; 0] = [];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn open_loop_orders_all_end_as_intended() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let system = System::start(SystemConfig::default()).await;
    let scratch = Scratch::new();
    let report = run(
        &system,
        &scratch,
        &[&["--rate", "20", "--duration", "3"][..], &DATA].concat(),
    )
    .await;
    // Orders are due at k / 20 s for k / 20 < 3: exactly 60, whatever the timing.
    check(&report, &scratch, 60);
    assert_eq!(report.load.shape, "open");
    assert_eq!(report.counts.dropped, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn closed_loop_orders_all_end_as_intended() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let system = System::start(SystemConfig::default()).await;
    let scratch = Scratch::new();
    let report = run(
        &system,
        &scratch,
        &[&["--concurrency", "4", "--orders", "30"][..], &DATA].concat(),
    )
    .await;
    check(&report, &scratch, 30);
    assert_eq!(report.load.shape, "closed");

    // Tokens signed with another secret are refused at the first setup call, with the likely
    // cause said plainly and the secret not shown.
    let wrong_secret = "not the secret the services were started with";
    let mut config = config(&system, &scratch, &["--concurrency", "1", "--orders", "1"]);
    config.jwt_secret = Some(wrong_secret.parse().unwrap());
    let error = loadgen::run(config).await.unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, loadgen::Error::Status { status: 401, .. }),
        "{message}"
    );
    assert!(message.contains("--jwt-secret"), "{message}");
    assert!(!message.contains(wrong_secret), "{message}");
}

/// A vhost with nothing in it (no topology, no service users), deleted when dropped.
struct BareVhost(String);

impl BareVhost {
    fn create() -> BareVhost {
        let name = testkit::unique_name("loadgen_bare");
        for args in [
            vec!["-q", "add_vhost", name.as_str()],
            vec![
                "-q",
                "set_permissions",
                "-p",
                name.as_str(),
                "guest",
                ".*",
                ".*",
                ".*",
            ],
        ] {
            let status = std::process::Command::new("rabbitmqctl")
                .args(&args)
                .status()
                .unwrap();
            assert!(status.success(), "rabbitmqctl {args:?}");
        }
        BareVhost(name)
    }

    fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:5672/{}", self.0)
    }
}

impl Drop for BareVhost {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl")
            .args(["-q", "delete_vhost", &self.0])
            .status();
    }
}

#[tokio::test]
async fn a_vhost_without_the_services_is_refused_at_once() {
    let vhost = BareVhost::create();
    let config = Config::try_parse_from([
        "loadgen",
        "--amqp-url",
        &vhost.url(),
        "--jwt-secret",
        testkit::auth::SECRET,
        "--rate",
        "1",
        "--orders",
        "1",
        "--quiet",
    ])
    .unwrap();
    let error = loadgen::run(config).await.unwrap_err();
    assert!(
        matches!(error, loadgen::Error::NoExchange { .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("is --amqp-url the vhost"),
        "{error}"
    );
    assert!(!error.to_string().contains("guest:guest"), "{error}");
}
