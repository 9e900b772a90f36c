//! A database that drops every connection every few seconds, for minutes: every backend of the
//! three services' databases is terminated every 3 s for 2 minutes while orders flow. Each cut
//! lands wherever it lands — mid-handler, mid-commit, in the relay's claim, in the sweeper, in
//! an HTTP request. A consumer blames the infrastructure, not the message, for every one of
//! them: nothing is dead-lettered, no attempt is spent, every order settles, and stock and
//! money are conserved.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{assert_conserved, id, settled};
use testkit::client::{Client, new_customer};
use testkit::system::{Svc, System, SystemConfig};

/// How long the databases keep dropping connections.
const FLAPPING: Duration = Duration::from_secs(120);

/// Time between two cuts.
const CUT_EVERY: Duration = Duration::from_secs(3);

/// How long an order may take to settle once the cuts stop.
const PATIENCE: Duration = Duration::from_secs(90);

#[tokio::test]
async fn databases_dropping_every_connection_every_few_seconds_for_minutes_dead_letter_nothing() {
    let config = SystemConfig {
        // Longer than any order takes under the cuts: what ends an order here is its own
        // course (completed, or cancelled for lack of money), never the deadline.
        saga_timeout_secs: 60,
        resend_after_ms: 2_000,
        ..SystemConfig::default()
    };
    let system = System::start(config).await;
    let client = Client::new(&system);
    let rich = new_customer();
    let poor = new_customer();
    client.set_product("flapping-widget", 1_000, 250).await;
    client.set_balance(&rich, 10_000_000).await;
    client.set_balance(&poor, 400).await;

    let databases: Vec<String> = [Svc::Order, Svc::Inventory, Svc::Payment]
        .iter()
        .map(|&svc| system.database(svc).name().to_owned())
        .collect();
    let cutting = tokio_util::sync::CancellationToken::new();
    let cutter = {
        let cutting = cutting.clone();
        tokio::spawn(async move {
            let mut cuts = 0_u32;
            while !cutting.is_cancelled() {
                tokio::time::sleep(CUT_EVERY).await;
                for database in &databases {
                    testkit::terminate_connections_of(database).await;
                }
                cuts += 1;
            }
            cuts
        })
    };

    // Orders all along the cuts; a request that a cut fails (5xx) is sent again with its key,
    // as a client would.
    let started = tokio::time::Instant::now();
    let mut placed = Vec::new();
    let mut index = 0;
    while started.elapsed() < FLAPPING {
        let pays = index % 5 != 4;
        let customer = if pays { &rich } else { &poor };
        let key = uuid::Uuid::now_v7().to_string();
        loop {
            let (status, order) = client
                .place(customer, &[("flapping-widget", 1)], Some(&key))
                .await;
            match status.as_u16() {
                200 | 201 => {
                    placed.push(id(&order));
                    break;
                }
                500..=599 => tokio::time::sleep(Duration::from_millis(200)).await,
                other => panic!("POST /orders answered {other}: {order}"),
            }
        }
        index += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    cutting.cancel();
    let cuts = cutter.await.unwrap();
    println!(
        "{} orders placed under {cuts} cuts of the three databases",
        placed.len()
    );
    assert!(cuts >= 30, "the databases were cut again and again: {cuts}");

    let mut orders = Vec::new();
    for order_id in &placed {
        orders.push(settled(&client, order_id, PATIENCE).await);
    }
    let (completed, cancelled) = assert_conserved(
        &client,
        &orders,
        &[("flapping-widget", 1_000)],
        &[(&rich, 10_000_000), (&poor, 400)],
    )
    .await;
    println!("{completed} completed, {cancelled} cancelled");
    assert!(completed > 0, "orders completed under the cuts");
    for order in &orders {
        assert_ne!(
            order["cancellation_reason"].as_str(),
            Some("not completed within 60 s"),
            "no order waited past its deadline: {order}"
        );
    }

    let depths = system.vhost().queue_depths();
    let dead_lettered: Vec<&(String, u64)> = depths
        .iter()
        .filter(|(name, depth)| name.ends_with(".dlq") && *depth > 0)
        .collect();
    assert!(
        dead_lettered.is_empty(),
        "nothing is dead-lettered: {dead_lettered:?}"
    );
}
