//! The mission end to end: the four services as separate processes against the real PostgreSQL
//! and RabbitMQ, each test with its own databases and vhost. An operator sets the catalog
//! (stock and prices) and funds the accounts; orders name products and quantities, and are
//! charged the catalog's prices.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;

use common::{PATIENCE, catalog_price, id, lines, priced};
use testkit::client::{Client, new_customer, timeline};
use testkit::system::{Svc, System, SystemConfig};

fn steps(expected: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    expected
        .iter()
        .map(|(a, b, c)| ((*a).into(), (*b).into(), (*c).into()))
        .collect()
}

/// 1. Happy path: charged exactly Σ catalog price × quantity, priced when inventory reserved.
#[tokio::test]
async fn an_order_completes_at_catalog_prices_and_every_service_shows_it() {
    let system = System::start(SystemConfig::default()).await;
    let client = Client::new(&system);
    let customer = new_customer();
    client.set_product("happy-widget", 10, 500).await;
    client.set_product("happy-gadget", 4, 1_250).await;
    client.set_balance(&customer, 10_000).await;

    let (status, placed) = client
        .place(&customer, &[("happy-widget", 3), ("happy-gadget", 2)], None)
        .await;
    assert_eq!(status, 201);
    assert_eq!(placed["status"], "Pending");
    assert_eq!(
        (lines(&placed), &placed["total"]),
        (
            priced(&[("happy-widget", 3, None), ("happy-gadget", 2, None)]),
            &Value::Null
        ),
        "unpriced until inventory reserves the stock: {placed}"
    );
    let order = client.wait_terminal(&id(&placed), PATIENCE).await;
    assert_eq!(order["status"], "Completed", "{order}");
    let total = 3 * 500 + 2 * 1_250;
    assert_eq!(
        (lines(&order), order["total"].as_i64()),
        (
            priced(&[
                ("happy-widget", 3, Some(500)),
                ("happy-gadget", 2, Some(1_250))
            ]),
            Some(total)
        ),
        "{order}"
    );
    assert_eq!(
        timeline(&order),
        steps(&[
            ("Pending", "StockReserved", "Reserved"),
            ("Reserved", "PaymentSucceeded", "Paid"),
            ("Paid", "StockCommitted", "Completed"),
        ])
    );
    assert_eq!(client.stock("happy-widget").await, (7, 0, 3));
    assert_eq!(client.stock("happy-gadget").await, (2, 0, 2));
    let (status, payment) = client.payment(&id(&placed)).await;
    assert_eq!(
        (
            status.as_u16(),
            payment["status"].as_str(),
            payment["amount"].as_i64()
        ),
        (200, Some("Charged"), Some(total))
    );
    assert_eq!(client.balance(&customer).await, 10_000 - total);
    // The order keeps the prices of its reservation when the catalog changes later.
    client.set_product("happy-widget", 7, 9_999).await;
    assert_eq!(
        lines(&client.order(&id(&placed)).await),
        lines(&order),
        "a later price is not this order's"
    );
    // Notifications travel on their own queue: wait for them.
    let mut kinds = Vec::new();
    for _ in 0..200 {
        kinds = client
            .notifications(&id(&placed))
            .await
            .iter()
            .map(|n| n["kind"].as_str().unwrap_or("").to_owned())
            .collect();
        if kinds.contains(&"OrderCompleted".to_owned()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(kinds.contains(&"OrderCompleted".to_owned()), "{kinds:?}");
}

/// Who orders, the order lines, a fragment of the expected cancellation reason, the expected
/// payment status.
type FailureCase<'a> = (
    &'a str,
    &'static [(&'static str, i64)],
    String,
    Option<&'static str>,
);

/// 2. and 3. Stock and payment failures cancel, with a reason, holding nothing and charging
/// nothing; a stranger (a customer no operator funded) has no account and pays nothing.
#[tokio::test]
async fn failures_cancel_with_a_reason_and_leave_nothing_held_or_charged() {
    let system = System::start(SystemConfig::default()).await;
    let client = Client::new(&system);
    client.set_product("fail-widget", 5, 600).await;
    let customer = new_customer();
    client.set_balance(&customer, 1_000).await;
    let stranger = new_customer();

    let cases: [FailureCase; 4] = [
        (
            &customer,
            &[("no-such-product", 1)],
            "unknown product no-such-product".into(),
            None,
        ),
        (
            &customer,
            &[("fail-widget", 6)],
            "insufficient stock for fail-widget: 6 requested, 5 available".into(),
            None,
        ),
        (
            &customer,
            &[("fail-widget", 2)],
            "payment failed: insufficient balance: 1200 needed, 1000 available".into(),
            Some("Failed"),
        ),
        (
            &stranger,
            &[("fail-widget", 1)],
            format!("payment failed: customer {stranger} has no account"),
            Some("Failed"),
        ),
    ];
    for (orderer, lines, reason, payment_status) in cases {
        let (_, placed) = client.place(orderer, lines, None).await;
        let order = client.wait_terminal(&id(&placed), PATIENCE).await;
        assert_eq!(order["status"], "Cancelled", "{order}");
        let cancellation = order["cancellation_reason"].as_str().unwrap();
        assert!(
            cancellation.contains(&reason),
            "{cancellation:?} lacks {reason:?}"
        );
        let (status, payment) = client.payment(&id(&placed)).await;
        match payment_status {
            None => assert_eq!(status, 404, "no payment for a stock failure"),
            Some(expected) => assert_eq!(payment["status"], expected),
        }
    }
    // The payment failure released its reservation: stock is where it started.
    let mut stock = client.stock("fail-widget").await;
    for _ in 0..200 {
        if stock == (5, 0, 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        stock = client.stock("fail-widget").await;
    }
    assert_eq!(stock, (5, 0, 0));
    assert_eq!(client.balance(&customer).await, 1_000);
    let (status, _) = common::call(
        &system,
        &testkit::auth::Identity::Operator,
        Svc::Payment,
        "GET",
        &format!("/accounts/{stranger}"),
        None,
    )
    .await;
    assert_eq!(status, 404, "no account was opened for the stranger");
}

/// 4. and 6. Idempotency keys, and invalid requests against the running binary.
#[tokio::test]
async fn idempotency_keys_and_invalid_requests_behave_as_documented() {
    let system = System::start(SystemConfig::default()).await;
    let client = Client::new(&system);
    let customer = new_customer();
    let (first_status, first) = client
        .place(&customer, &[("any", 1)], Some("retry-me"))
        .await;
    let (second_status, second) = client
        .place(&customer, &[("any", 1)], Some("retry-me"))
        .await;
    let (third_status, _) = client
        .place(&customer, &[("any", 2)], Some("retry-me"))
        .await;
    assert_eq!(
        (
            first_status.as_u16(),
            second_status.as_u16(),
            third_status.as_u16()
        ),
        (201, 200, 409)
    );
    assert_eq!(first["id"], second["id"]);
    let page = client
        .raw("GET", &format!("/orders?customer_id={customer}"), None, &[])
        .await;
    let page: Value = page.json().await.unwrap();
    assert_eq!(
        page["items"].as_array().unwrap().len(),
        1,
        "one order for two requests"
    );

    let priced_by_the_client = format!(
        r#"{{"customer_id": "{customer}", "items": [{{"product_id": "any", "quantity": 1, "unit_price": 0}}]}}"#
    );
    let cases: [(&str, &str, Option<&str>, u16, &str); 7] = [
        ("POST", "/orders", Some("{"), 400, "body"),
        (
            "POST",
            "/orders",
            Some(&priced_by_the_client),
            422,
            "items[0].unit_price",
        ),
        (
            "POST",
            "/orders",
            Some(r#"{"customer_id": "x", "items": []}"#),
            422,
            "customer_id",
        ),
        (
            "POST",
            "/orders",
            Some(r#"{"customer_id": 1, "items": []}"#),
            400,
            "customer_id",
        ),
        ("GET", "/orders/not-a-uuid", None, 400, "id"),
        ("GET", "/orders?limit=1000", None, 422, "limit"),
        ("GET", "/orders?status=Lost", None, 422, "status"),
    ];
    for (method, path, body, status, field) in cases {
        let response = client.raw(method, path, body, &[]).await;
        assert_eq!(response.status().as_u16(), status, "{method} {path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
}

/// 5. 200 concurrent orders compete for 50 units: exactly 50 complete, stock is conserved,
/// no balance goes negative.
#[tokio::test]
async fn concurrent_orders_for_scarce_stock_never_oversell() {
    let system = System::start(SystemConfig::default()).await;
    let client = Client::new(&system);
    client.set_product("scarce", 50, 250).await;
    let customers: Vec<String> = (0..20).map(|_| new_customer()).collect();
    for customer in &customers {
        client.set_balance(customer, 100_000).await;
    }
    let placing = (0..200).map(|index| {
        let client = &client;
        let customer = &customers[index % customers.len()];
        async move { client.place(customer, &[("scarce", 1)], None).await }
    });
    let placed = futures::future::join_all(placing).await;
    let mut outcomes: HashMap<String, usize> = HashMap::new();
    for (status, order) in &placed {
        assert_eq!(*status, 201);
        let order = client.wait_terminal(&id(order), PATIENCE).await;
        *outcomes
            .entry(order["status"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(outcomes.get("Completed"), Some(&50), "{outcomes:?}");
    assert_eq!(outcomes.get("Cancelled"), Some(&150), "{outcomes:?}");
    let (available, reserved, committed) = client.stock("scarce").await;
    assert_eq!((available, reserved, committed), (0, 0, 50));
    let mut charged = 0;
    for customer in &customers {
        let balance = client.balance(customer).await;
        assert!(balance >= 0);
        charged += 100_000 - balance;
    }
    assert_eq!(
        charged,
        50 * 250,
        "exactly the completed orders were paid for"
    );
}

/// 7. Two replicas each of order-, inventory- and payment-svc: every order reaches the right
/// terminal state, charged and committed exactly once.
#[tokio::test]
async fn replicas_share_the_work_without_doing_anything_twice() {
    let mut config = SystemConfig::default();
    for svc in [Svc::Order, Svc::Inventory, Svc::Payment] {
        config.replicas.insert(svc, 2);
    }
    let system = System::start(config).await;
    let client = Client::new(&system);
    let second = Client::new_for_replica(&system, 1);
    client.set_product("replicated", 1_000, 100).await;
    let customer = new_customer();
    client.set_balance(&customer, 1_000_000).await;
    let placing = (0..100).map(|index| {
        let client = if index % 2 == 0 { &client } else { &second };
        let customer = &customer;
        async move { client.place(customer, &[("replicated", 2)], None).await }
    });
    let placed = futures::future::join_all(placing).await;
    for (status, order) in &placed {
        assert_eq!(*status, 201);
        let order = client.wait_terminal(&id(order), PATIENCE).await;
        assert_eq!(order["status"], "Completed", "{order}");
        let (_, payment) = client.payment(&id(&order)).await;
        assert_eq!(
            (payment["status"].as_str(), payment["amount"].as_i64()),
            (Some("Charged"), Some(200))
        );
    }
    assert_eq!(client.stock("replicated").await, (800, 0, 200));
    assert_eq!(client.balance(&customer).await, 1_000_000 - 100 * 200);
}

/// 8. A subscriber that starts late misses nothing: orders placed while inventory-svc has never
/// run wait in its queue (the provisioning declared the whole topology) and proceed when it
/// starts, charged the price of its (seeded) catalog.
#[tokio::test]
async fn a_late_subscriber_finds_every_message_waiting() {
    let mut config = SystemConfig::default();
    config.replicas.insert(Svc::Inventory, 0);
    let mut system = System::start(config).await;
    let customer = new_customer();
    let mut orders = Vec::new();
    {
        let client = Client::new(&system);
        client.set_balance(&customer, 100_000).await;
        for _ in 0..10 {
            let (status, placed) = client.place(&customer, &[("widget-blue", 1)], None).await;
            assert_eq!(status, 201);
            orders.push(id(&placed));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        for order in &orders {
            assert_eq!(client.order(order).await["status"], "Pending");
        }
    }
    system.add_instance(Svc::Inventory).await;
    let client = Client::new(&system);
    let price = catalog_price(&system, "widget-blue").await;
    for order in &orders {
        let done = client.wait_terminal(order, PATIENCE).await;
        assert_eq!(
            (done["status"].as_str(), done["total"].as_i64()),
            (Some("Completed"), Some(price)),
            "{done}"
        );
    }
    assert_eq!(
        client.balance(&customer).await,
        100_000 - 10 * price,
        "each order paid the catalog price"
    );
}
