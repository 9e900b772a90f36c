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

/// Payment is down: the orders pass their deadline and are cancelled, their stock released,
/// and the saga asks payment pre-emptively to refund them. Payment comes back to two queues
/// with no order between them, so each order goes one of two ways: the refund first leaves a
/// tombstone and the stale `StockReserved` charges nothing (pre-empted), or the stale
/// `StockReserved` is charged first and the refund gives it back (charged and refunded; the
/// saga hears the late `PaymentSucceeded`). Either way balances end where they began and
/// every compensation is confirmed.
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
    let mut pre_empted = 0;
    for order in &orders {
        let (payment, events) = settled_late_payment(&client, order).await;
        assert!(
            events.starts_with(&["StockReserved".to_owned(), "DeadlinePassed".to_owned()])
                || events.starts_with(&["DeadlinePassed".to_owned()]),
            "{events:?}"
        );
        let heard_charge = events.iter().any(|event| event == "PaymentSucceeded");
        match (payment["amount"].as_i64(), payment["payment_id"].is_null()) {
            (Some(0), true) => {
                assert!(
                    !heard_charge,
                    "a pre-empted charge is never made, nor announced: {events:?}"
                );
                pre_empted += 1;
            }
            (Some(amount), false) => assert_eq!(
                (amount, heard_charge),
                (2 * 700, true),
                "the late charge of {order}, at the catalog price, reached the saga and was \
                 refunded: {payment} {events:?}"
            ),
            _ => panic!("neither pre-empted nor charged and refunded: {order} {payment}"),
        }
    }
    println!(
        "{pre_empted} of {} late charges pre-empted by the refund, the others charged and \
         refunded",
        orders.len()
    );
    assert_eq!(client.balance(&customer).await, 10_000);
}

/// Waits until `order`'s payment is `Refunded`, the order awaits no confirmation and, if money
/// was taken, the saga heard the charge; the payment and the order's timeline events.
async fn settled_late_payment(client: &Client, order: &str) -> (Value, Vec<String>) {
    let mut last = (Value::Null, Value::Null);
    for _ in 0..400 {
        let payment = client.payment(order).await.1;
        let found = client.order(order).await;
        let events: Vec<String> = found["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .map(|step| step["event"].as_str().unwrap().to_owned())
            .collect();
        let refunded = payment["status"] == "Refunded";
        let confirmed = found["awaiting_confirmation"]
            .as_array()
            .is_some_and(Vec::is_empty);
        // A charge made before the refund is announced: wait for the saga to hear it.
        let charge_heard =
            payment["payment_id"].is_null() || events.iter().any(|e| e == "PaymentSucceeded");
        if refunded && confirmed && charge_heard {
            return (payment, events);
        }
        last = (payment, found);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the late payment of {order} did not settle: {last:?}");
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
