//! `cargo run -p chaos -- [--orders N] [--rate N] [--kills N] [--replicas order=2] [--seed N]`
//!
//! Runs the whole system under faults and exits non-zero if any invariant fails.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chaos::bus::{BrokerAccess, Published};
use chaos::invariants::{
    Check, check_all, check_forgeries, check_poison, drain_dead_letters, pending_work,
};
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
        "chaos: seed {}, {} orders at {}/s, {} kills, replicas {:?}, saga timeout {} s, broker {:?}",
        args.seed,
        args.orders,
        args.rate,
        args.kills,
        args.replicas,
        args.saga_timeout_secs,
        args.broker
    );
    let mut rng = Rng::new(args.seed);
    let mut config = SystemConfig {
        saga_timeout_secs: args.saga_timeout_secs,
        profile: args.profile,
        broker: args.broker,
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
    let run_time = Duration::from_secs_f64(args.orders as f64 / args.rate as f64);
    let http = reqwest::Client::new();
    // The tokens outlive the run however slow it is: an expiring token would turn a slow run
    // into a run of 401s.
    let token_lifetime = run_time * 2 + args.quiesce_timeout + Duration::from_secs(3600);
    let setup = world::set_up(
        &http,
        &system.url(Svc::Inventory),
        &system.url(Svc::Payment),
        args.orders,
        token_lifetime,
        &mut rng,
    )
    .await?;
    let mut databases: HashMap<Svc, DatabaseConnection> = HashMap::new();
    for svc in [Svc::Order, Svc::Inventory, Svc::Payment] {
        databases.insert(svc, system.database(svc).connect().await);
    }
    let broker = BrokerAccess::of(system.vhost());
    let system = Arc::new(Mutex::new(system));

    let started = Instant::now();
    let injecting = tokio::spawn(faults::inject(
        Arc::clone(&system),
        broker.clone(),
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
                "NOT quiescent after {:?}: {waiting} orders or commands waiting, {unpublished} outbox rows, {queued} queued messages",
                args.quiesce_timeout
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let dead_letters = drain_dead_letters(&broker.admin_url, &depths).await?;
    let mut checks = check_all(&databases, &setup, &driven.placed, &dead_letters).await?;
    checks.push(check_poison(&log.poison, &dead_letters));
    checks.push(check_forgeries(&log.forgeries, &dead_letters, &databases).await?);
    checks.push(Check {
        name: "7. the API kept its contract under faults (idempotent replays, hostile requests refused with their status, no unexpected answers)",
        checked: driven.placed.len()
            + usize::try_from(driven.replays + driven.refused).unwrap_or(0),
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

    // In the order of their numbers, whichever code checked them.
    checks.sort_by(|a, b| a.name.cmp(b.name));
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
const ORDER_OUTCOMES: &str = "SELECT state || COALESCE(' (' || split_part(data->>'cancellation_reason', ':', 1) || ')', ''), count(*)
                              FROM saga_instances WHERE saga = 'OrderSaga' GROUP BY 1 ORDER BY 2 DESC";
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
        "\nOrders accepted: {} ({} normal, {} unknown product, {} poor customer, {} customer without an account; {} placed by an operator); {} idempotent replays; {} hostile requests refused; {} requests retried",
        driven.placed.len(),
        by_kind(Kind::Normal),
        by_kind(Kind::UnknownProduct),
        by_kind(Kind::PoorCustomer),
        by_kind(Kind::Stranger),
        driven
            .placed
            .iter()
            .filter(|order| order.by_operator)
            .count(),
        driven.replays,
        driven.refused,
        driven.retries
    );
    let forgeries = |matches: fn(&Published) -> bool| {
        log.forgeries
            .iter()
            .filter(|forgery| matches(&forgery.published))
            .count()
    };
    println!(
        "Faults: {} kills ({} crash loop(s)), {} payment outage(s), {} database outage(s) past the retry budget, {} broker restart(s), {} cluster node(s) stopped, {} broker alarm(s), {} broker cut(s), {} database cut(s), {} duplicates, {} poison messages, {} forgeries ({} taken by the broker, {} refused by it, {} undelivered)",
        log.kills,
        log.crash_loops,
        log.outages,
        log.database_outages,
        log.broker_restarts,
        log.nodes_stopped,
        log.broker_alarms,
        log.broker_cuts,
        log.database_cuts,
        log.duplicates,
        log.poison.values().sum::<u64>(),
        log.forgeries.len(),
        forgeries(|published| *published == Published::Accepted),
        forgeries(|published| matches!(published, Published::Refused(_))),
        forgeries(|published| matches!(published, Published::Failed(_))),
    );
    // What the broker said to each kind of forgery (user names vary from run to run, the
    // outcomes must not).
    let mut senders: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for forgery in &log.forgeries {
        let outcome = match &forgery.published {
            Published::Accepted => "taken by the broker".to_owned(),
            Published::Refused(reason) => format!("refused: {reason}"),
            Published::Failed(reason) => format!("undelivered: {reason}"),
        };
        let outcomes = senders.entry(forgery.sender.clone()).or_default();
        if !outcomes.contains(&outcome) {
            outcomes.push(outcome);
        }
    }
    for (sender, outcomes) in senders {
        println!("  forged {sender}: {}", outcomes.join("; "));
    }
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
        "Dead letters: {} in {} queues ({} poison cases, {} second copies of one, {} forged, {} other)",
        dead_letters.total,
        dead_letters.per_queue.len(),
        dead_letters.poison,
        dead_letters.poison_copies,
        dead_letters.forged.len(),
        dead_letters.valid.len()
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
