//! Faults proven one at a time against the system as processes: a participant that is down past
//! the deadline, and poison on every consumer queue.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable};
use serde_json::Value;
use testkit::bus::TestBus;
use testkit::client::{Client, new_customer};
use testkit::system::{Svc, System, SystemConfig};

const PATIENCE: Duration = Duration::from_secs(90);

/// Payment is down: the orders pass their deadline and are cancelled, their stock released.
/// Payment comes back, charges the stale `StockReserved` messages it finds, and the saga refunds
/// every one of those charges: balances end where they began.
#[tokio::test]
async fn a_participant_down_past_the_deadline_is_compensated_when_it_returns() {
    let config = SystemConfig {
        saga_timeout_secs: 2,
        ..SystemConfig::default()
    };
    let mut system = System::start(config).await;
    let client = Client::new(&system);
    let customer = new_customer();
    client.set_product("stale-widget", 10, 700).await;
    client.set_balance(&customer, 10_000).await;
    assert!(
        system
            .terminate(Svc::Payment, 0)
            .await
            .is_some_and(|status| status.success())
    );

    let mut orders = Vec::new();
    for _ in 0..3 {
        let (status, placed) = client.place(&customer, &[("stale-widget", 2)], None).await;
        assert_eq!(status, 201);
        orders.push(placed["id"].as_str().unwrap().to_owned());
    }
    for order in &orders {
        let cancelled = client.wait_terminal(order, PATIENCE).await;
        assert_eq!(cancelled["status"], "Cancelled");
        assert_eq!(cancelled["cancellation_reason"], "not completed within 2 s");
    }
    let mut stock = client.stock("stale-widget").await;
    for _ in 0..200 {
        if stock == (10, 0, 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        stock = client.stock("stale-widget").await;
    }
    assert_eq!(stock, (10, 0, 0), "the deadline released every reservation");

    system.start_instance(Svc::Payment, 0).await;
    let client = Client::new(&system);
    for order in &orders {
        let mut payment = Value::Null;
        for _ in 0..400 {
            payment = client.payment(order).await.1;
            if payment["status"] == "Refunded" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            (payment["status"].as_str(), payment["amount"].as_i64()),
            (Some("Refunded"), Some(2 * 700)),
            "the late charge of {order}, at the catalog price, was refunded: {payment}"
        );
    }
    assert_eq!(client.balance(&customer).await, 10_000);
    for order in &orders {
        let timeline = client.order(order).await["timeline"].clone();
        let events: Vec<&str> = timeline
            .as_array()
            .unwrap()
            .iter()
            .map(|step| step["event"].as_str().unwrap())
            .collect();
        assert!(
            events.starts_with(&["StockReserved", "DeadlinePassed"])
                || events.starts_with(&["DeadlinePassed"]),
            "{events:?}"
        );
        assert!(
            events.contains(&"PaymentSucceeded"),
            "the late charge reached the saga: {events:?}"
        );
    }
}

/// Malformed JSON, wrong field types, unknown type names, a 10 MiB body and missing headers on
/// every consumer queue: each is dead-lettered with its reason, and valid traffic is unaffected.
#[tokio::test]
async fn poison_on_every_consumer_queue_is_dead_lettered_with_its_reason() {
    let system = System::start(SystemConfig::default()).await;
    let client = Client::new(&system);
    let bus = TestBus::connect(system.vhost(), &[]).await;
    let order = uuid::Uuid::now_v7().to_string();
    let properties = |message_type: &str| {
        BasicProperties::default()
            .with_message_id(uuid::Uuid::now_v7().to_string().into())
            .with_type(message_type.into())
            .with_correlation_id(order.as_str().into())
    };
    let huge = vec![b' '; 10 * 1024 * 1024];
    let mut missing_headers = FieldTable::default();
    missing_headers.insert("x-note".into(), AMQPValue::Boolean(true));
    for subscription in contracts::SUBSCRIPTIONS {
        let queue = subscription.queue();
        let message_type = subscription.message_type.name();
        let cases: Vec<(BasicProperties, &[u8])> = vec![
            (properties(message_type), b"{\"order_id\": "),
            (
                properties(message_type),
                br#"{"order_id": 17, "reason": [], "total": "many"}"#,
            ),
            (properties("SelfDestruct"), b"{}"),
            (properties(message_type), &huge),
            (
                BasicProperties::default().with_headers(missing_headers.clone()),
                b"{}",
            ),
        ];
        for (properties, body) in cases {
            bus.publish_raw("", &queue, properties, body).await;
        }
    }
    // Valid traffic flows meanwhile.
    let customer = new_customer();
    client.set_product("unaffected", 5, 100).await;
    client.set_balance(&customer, 5_000).await;
    let (_, placed) = client.place(&customer, &[("unaffected", 1)], None).await;
    let done = client
        .wait_terminal(placed["id"].as_str().unwrap(), PATIENCE)
        .await;
    assert_eq!(done["status"], "Completed");

    for subscription in contracts::SUBSCRIPTIONS {
        let dead_letter_queue = outbox::dead_letter_queue(&subscription.queue());
        let mut depth = 0;
        for _ in 0..400 {
            depth = system.vhost().queue_depth(&dead_letter_queue);
            if depth == 5 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            depth, 5,
            "{dead_letter_queue} holds every poison message of its queue"
        );
    }
}
