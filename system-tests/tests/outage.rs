//! A long database outage: inventory's database refuses every connection for longer than the
//! consumers' whole retry budget (1 s + 5 s + 30 s of delays) while orders flow. A consumer
//! that cannot reach its database keeps the message rather than spending its attempts, so
//! nothing is dead-lettered; once the database is back every order settles and stock and
//! money are conserved.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{assert_conserved, id, settled};
use testkit::client::{Client, new_customer};
use testkit::system::{Svc, System, SystemConfig};

/// Longer than the retry budget (36 s) with room to spare.
const OUTAGE: Duration = Duration::from_secs(45);

/// The saga timeout: orders placed early in the outage pass it while inventory is still away
/// (and are cancelled with pre-emptive compensations); orders placed late in the outage may
/// still complete once it ends.
const SAGA_TIMEOUT_SECS: u64 = 20;

/// How long an order may take to settle once the database is back.
const PATIENCE: Duration = Duration::from_secs(60);

/// Places `count` orders of 2 units, one every `pause`, every fourth by the poor customer; returns `(order id, placed by the rich customer)`.
async fn place(
    client: &Client,
    (rich, poor): (&str, &str),
    count: usize,
    pause: Duration,
) -> Vec<(String, bool)> {
    let mut placed = Vec::new();
    for index in 0..count {
        let pays = index % 4 != 3;
        let customer = if pays { rich } else { poor };
        let (status, order) = client.place(customer, &[("outage-widget", 2)], None).await;
        assert_eq!(status, 201, "{order}");
        placed.push((id(&order), pays));
        tokio::time::sleep(pause).await;
    }
    placed
}

/// Orders before, early in and late in a 45 s outage of inventory's database: those before
/// complete (or fail on payment), those early are cancelled by their deadline while inventory
/// cannot answer, those late end either way; all settle, no message is dead-lettered, and
/// stock and money are conserved.
#[tokio::test]
async fn inventory_s_database_away_past_the_retry_budget_loses_nothing() {
    let config = SystemConfig {
        saga_timeout_secs: SAGA_TIMEOUT_SECS,
        resend_after_ms: 1_000,
        ..SystemConfig::default()
    };
    let system = System::start(config).await;
    let client = Client::new(&system);
    let rich = new_customer();
    let poor = new_customer();
    client.set_product("outage-widget", 200, 250).await;
    client.set_balance(&rich, 1_000_000).await;
    // Less than one order costs (2 × 250).
    client.set_balance(&poor, 400).await;
    let customers = (rich.as_str(), poor.as_str());

    let before = place(&client, customers, 4, Duration::from_millis(100)).await;
    for (order_id, pays) in &before {
        let order = client.wait_terminal(order_id, PATIENCE).await;
        let expected = if *pays { "Completed" } else { "Cancelled" };
        assert_eq!(order["status"], expected, "{order}");
    }

    let outage_began = tokio::time::Instant::now();
    system.take_database_away(Svc::Inventory).await;
    let early = place(&client, customers, 8, Duration::from_secs(1)).await;
    // None of them can be reserved while inventory has no database.
    for (order_id, _) in &early {
        let order = client.order(order_id).await;
        assert_eq!(order["status"], "Pending", "{order}");
    }
    tokio::time::sleep_until(outage_began + OUTAGE - Duration::from_secs(8)).await;
    let late = place(&client, customers, 4, Duration::from_secs(1)).await;
    tokio::time::sleep_until(outage_began + OUTAGE).await;
    system.give_database_back(Svc::Inventory).await;
    println!(
        "inventory's database was away for {:?}",
        outage_began.elapsed()
    );

    let mut orders = Vec::new();
    for (order_id, _) in before.iter().chain(&early).chain(&late) {
        orders.push(settled(&client, order_id, PATIENCE).await);
    }
    let deadline_reason = format!("not completed within {SAGA_TIMEOUT_SECS} s");
    for order in &orders[before.len()..before.len() + early.len()] {
        assert_eq!(
            (
                order["status"].as_str(),
                order["cancellation_reason"].as_str()
            ),
            (Some("Cancelled"), Some(deadline_reason.as_str())),
            "placed early in the outage, the order passed its deadline before inventory \
             could answer: {order}"
        );
    }
    let (completed, cancelled) = assert_conserved(
        &client,
        &orders,
        &[("outage-widget", 200)],
        &[(&rich, 1_000_000), (&poor, 400)],
    )
    .await;
    println!("{completed} completed, {cancelled} cancelled");

    // One listing: each `rabbitmqctl` call starts a whole Erlang VM.
    let dead_letter_queues: Vec<String> = contracts::SUBSCRIPTIONS
        .iter()
        .map(|subscription| outbox::dead_letter_queue(&subscription.queue()))
        .collect();
    let depths = system.vhost().queue_depths();
    assert!(
        dead_letter_queues
            .iter()
            .all(|queue| depths.iter().any(|(name, _)| name == queue)),
        "every dead-letter queue is listed: {depths:?}"
    );
    let dead_lettered: Vec<&(String, u64)> = depths
        .iter()
        .filter(|(name, depth)| dead_letter_queues.contains(name) && *depth > 0)
        .collect();
    assert!(
        dead_lettered.is_empty(),
        "nothing is dead-lettered: {dead_lettered:?}"
    );
}
