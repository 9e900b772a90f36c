//! `cargo run -p chaos -- [--orders N] [--rate N] [--kills N] [--replicas order=2] [--seed N]`
//!
//! Runs the whole system under faults and exits non-zero if any invariant fails.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chaos::invariants::{Check, check_all, drain_dead_letters, pending_work};
use chaos::rng::Rng;
use chaos::world::Kind;
use chaos::{Args, drive, faults, world};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use testkit::system::{Svc, System, SystemConfig};
use tokio::sync::Mutex;

#[tokio::main]
async fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("chaos: the run could not complete: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<bool> {
    println!(
        "chaos: seed {}, {} orders at {}/s, {} kills, replicas {:?}, saga timeout {} s",
        args.seed, args.orders, args.rate, args.kills, args.replicas, args.saga_timeout_secs
    );
    let mut rng = Rng::new(args.seed);
    let mut config = SystemConfig {
        saga_timeout_secs: args.saga_timeout_secs,
        profile: args.profile,
        ..SystemConfig::default()
    };
    for (&svc, &count) in &args.replicas {
        config.replicas.insert(svc, count.max(1));
    }
    let system = System::start(config).await;
    println!("system up; logs in {}", system.log_dir().display());
    let order_urls: Vec<String> = (0..system.replicas(Svc::Order))
        .map(|replica| system.instance_url(Svc::Order, replica))
        .collect();
    let http = reqwest::Client::new();
    let setup = world::set_up(
        &http,
        &system.url(Svc::Inventory),
        &system.url(Svc::Payment),
        args.orders,
        &mut rng,
    )
    .await?;
    let mut databases: HashMap<Svc, DatabaseConnection> = HashMap::new();
    for svc in [Svc::Order, Svc::Inventory, Svc::Payment] {
        databases.insert(svc, system.database(svc).connect().await);
    }
    let amqp_url = system.vhost().url().to_owned();
    let system = Arc::new(Mutex::new(system));

    let run_time = Duration::from_secs_f64(args.orders as f64 / args.rate as f64);
    let started = Instant::now();
    let injecting = tokio::spawn(faults::inject(
        Arc::clone(&system),
        databases.clone(),
        run_time,
        args.kills,
        Duration::from_secs(args.saga_timeout_secs + 3),
        Rng::new(rng.next_u64()),
    ));
    let driven = drive::drive(order_urls, &setup, args.orders, args.rate, &mut rng).await;
    let log = injecting.await?;
    println!(
        "orders driven in {:.1}s; waiting for quiescence",
        started.elapsed().as_secs_f64()
    );

    let quiescing = Instant::now();
    let mut depths;
    loop {
        depths = system.lock().await.vhost().queue_depths();
        let (waiting, unpublished, queued) =
            pending_work(&databases, &driven.placed, &depths).await?;
        if waiting == 0 && unpublished == 0 && queued == 0 {
            println!("quiescent after {:.1}s", quiescing.elapsed().as_secs_f64());
            break;
        }
        if quiescing.elapsed() > args.quiesce_timeout {
            println!(
                "NOT quiescent after {:?}: {waiting} orders waiting, {unpublished} outbox rows, {queued} queued messages",
                args.quiesce_timeout
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let dead_letters = drain_dead_letters(&amqp_url, &depths).await?;
    let mut checks = check_all(&databases, &setup, &driven.placed, &dead_letters).await?;
    let injected: u64 = log.poison.values().sum();
    let poison_dead_lettered = dead_letters.total - dead_letters.valid.len();
    checks.push(Check {
        name: "5b. every injected poison message was dead-lettered",
        checked: usize::try_from(injected).unwrap_or(0),
        violations: match poison_dead_lettered as u64 == injected {
            true => Vec::new(),
            false => vec![format!(
                "{injected} injected, {poison_dead_lettered} found in dead-letter queues"
            )],
        },
    });
    checks.push(Check {
        name: "7. the API kept its contract under faults (idempotent replays, no unexpected answers)",
        checked: driven.placed.len() + usize::try_from(driven.replays).unwrap_or(0),
        violations: driven.unexpected.clone(),
    });
    let mut shutdown = Check {
        name: "8. every service exits 0 on SIGTERM",
        checked: 0,
        violations: Vec::new(),
    };
    for (svc, status) in system.lock().await.shutdown().await {
        shutdown.checked += 1;
        if !status.is_some_and(|status| status.success()) {
            shutdown
                .violations
                .push(format!("{} exited with {status:?}", svc.binary()));
        }
    }
    checks.push(shutdown);

    print_report(
        &args,
        &driven,
        &log,
        &databases,
        &dead_letters,
        &checks,
        started.elapsed(),
    )
    .await;
    Ok(checks.iter().all(|check| check.violations.is_empty()))
}

async fn inbox_count(db: &DatabaseConnection) -> i64 {
    let counted = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT count(*) FROM processed_messages",
        ))
        .await;
    match counted {
        Ok(Some(row)) => row.try_get_by_index(0).unwrap_or(0),
        _ => -1,
    }
}

/// How the orders ended, by status and by the first words of the cancellation reason, so that
/// a reader sees which paths the run exercised (completions, stock and payment failures,
/// deadlines).
const ORDER_OUTCOMES: &str = "SELECT status || COALESCE(' (' || split_part(cancellation_reason, ':', 1) || ')', ''), count(*)
                              FROM orders GROUP BY 1 ORDER BY 2 DESC";
/// How the payments ended: refunds are the saga's compensations of late charges (tombstones,
/// refunds of charges never made, are counted apart).
const PAYMENT_OUTCOMES: &str = "SELECT status || CASE WHEN amount = 0 AND customer_id IS NULL THEN ' (tombstone)' ELSE '' END, count(*)
                                FROM payments GROUP BY 1 ORDER BY 2 DESC";

/// `count label, ...` from a query returning (label, count) rows.
async fn counted(db: &DatabaseConnection, sql: &str) -> String {
    let rows = db
        .query_all_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await;
    let Ok(rows) = rows else {
        return "unknown (the database did not answer)".into();
    };
    rows.iter()
        .filter_map(|row| {
            let label: String = row.try_get_by_index(0).ok()?;
            let count: i64 = row.try_get_by_index(1).ok()?;
            Some(format!("{count} {label}"))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

async fn print_report(
    args: &Args,
    driven: &drive::Driven,
    log: &faults::FaultLog,
    databases: &HashMap<Svc, DatabaseConnection>,
    dead_letters: &chaos::invariants::DeadLetters,
    checks: &[Check],
    elapsed: Duration,
) {
    println!("\nFaults injected:");
    for event in &log.events {
        println!("  {event}");
    }
    let by_kind = |kind: Kind| {
        driven
            .placed
            .iter()
            .filter(|order| order.kind == kind)
            .count()
    };
    println!(
        "\nOrders accepted: {} ({} normal, {} unknown product, {} poor customer); {} idempotent replays; {} requests retried",
        driven.placed.len(),
        by_kind(Kind::Normal),
        by_kind(Kind::UnknownProduct),
        by_kind(Kind::PoorCustomer),
        driven.replays,
        driven.retries
    );
    println!(
        "Faults: {} kills, {} payment outage(s), {} broker cut(s), {} database cut(s), {} duplicates, {} poison messages",
        log.kills,
        log.outages,
        log.broker_cuts,
        log.database_cuts,
        log.duplicates,
        log.poison.values().sum::<u64>()
    );
    let mut inboxes = Vec::new();
    for svc in [Svc::Order, Svc::Inventory, Svc::Payment] {
        inboxes.push(format!(
            "{} {}",
            svc.binary(),
            inbox_count(&databases[&svc]).await
        ));
    }
    println!("Inbox records: {}", inboxes.join(", "));
    println!(
        "Outcomes: {}",
        counted(&databases[&Svc::Order], ORDER_OUTCOMES).await
    );
    println!(
        "Payments: {}",
        counted(&databases[&Svc::Payment], PAYMENT_OUTCOMES).await
    );
    println!(
        "Dead letters: {} in {} queues",
        dead_letters.total,
        dead_letters.per_queue.len()
    );

    println!("\n| invariant | checked | violations | result |");
    println!("|---|---:|---:|---|");
    for check in checks {
        let result = if check.violations.is_empty() {
            "PASS"
        } else {
            "FAIL"
        };
        println!(
            "| {} | {} | {} | {} |",
            check.name,
            check.checked,
            check.violations.len(),
            result
        );
    }
    for check in checks.iter().filter(|check| !check.violations.is_empty()) {
        println!("\n{} — evidence:", check.name);
        for violation in check.violations.iter().take(20) {
            println!("  {violation}");
        }
    }
    let failed = checks.iter().any(|check| !check.violations.is_empty());
    println!(
        "\nchaos {} in {:.0}s (seed {}; rerun with --seed {})",
        if failed { "FAILED" } else { "passed" },
        elapsed.as_secs_f64(),
        args.seed,
        args.seed
    );
}
