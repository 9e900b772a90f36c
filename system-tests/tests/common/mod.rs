//! Helpers shared by the system tests: any request to any service as any caller, and waiting
//! for an eventually consistent answer. Each test file uses a part of them.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use testkit::auth::{Identity, authorization};
use testkit::client::{Client, TERMINAL};
use testkit::system::{Svc, System};

/// How long an eventually consistent answer may take.
pub(crate) const PATIENCE: Duration = Duration::from_secs(60);

/// `method path` on `svc` as `identity`, with an optional JSON body; the status and the body
/// (`Null` if it is not JSON).
pub(crate) async fn call(
    system: &System,
    identity: &Identity,
    svc: Svc,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new().request(
        method.parse().expect("an HTTP method"),
        format!("{}{path}", system.url(svc)),
    );
    if let Some(value) = authorization(identity) {
        request = request.header("authorization", value);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("the service answers");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Polls `probe` every 50 ms until it returns `Some`; panics with `what` after [`PATIENCE`].
pub(crate) async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {PATIENCE:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The catalog price of `product_id` (`GET /products/{id}` as an operator).
pub(crate) async fn catalog_price(system: &System, product_id: &str) -> i64 {
    let (status, product) = call(
        system,
        &Identity::Operator,
        Svc::Inventory,
        "GET",
        &format!("/products/{product_id}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{product_id}: {product}");
    product["price"].as_i64().expect("a price")
}

/// An order's lines as `(product, quantity, unit price)`, sorted by product.
pub(crate) fn lines(order: &Value) -> Vec<(String, i64, Option<i64>)> {
    let mut found: Vec<_> = order["items"]
        .as_array()
        .expect("order lines")
        .iter()
        .map(|line| {
            (
                line["product_id"].as_str().expect("a product").to_owned(),
                line["quantity"].as_i64().expect("a quantity"),
                line["unit_price"].as_i64(),
            )
        })
        .collect();
    found.sort();
    found
}

/// `(product, quantity, unit price)` rows for comparing with [`lines`], sorted alike.
pub(crate) fn priced(expected: &[(&str, i64, Option<i64>)]) -> Vec<(String, i64, Option<i64>)> {
    let mut rows: Vec<_> = expected
        .iter()
        .map(|(product, quantity, price)| ((*product).to_owned(), *quantity, *price))
        .collect();
    rows.sort();
    rows
}

/// The id of an order as returned by the API.
pub(crate) fn id(order: &Value) -> String {
    order["id"].as_str().expect("an order id").to_owned()
}

/// Polls `order_id` every 100 ms until it is terminal with no effect awaiting its
/// confirmation (every compensation confirmed); the order. Panics with the last answer after
/// `patience`.
pub(crate) async fn settled(client: &Client, order_id: &str, patience: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let order = client.order(order_id).await;
        let terminal = TERMINAL.iter().any(|status| order["status"] == *status);
        // Absent (not a detailed view) counts as unsettled: the check must see the list.
        let confirmed = order["awaiting_confirmation"]
            .as_array()
            .is_some_and(Vec::is_empty);
        if terminal && confirmed {
            return order;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "order {order_id} not settled within {patience:?}: {order}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How settled orders ended: `(completed, cancelled)`.
pub(crate) type Outcomes = (usize, usize);

/// Asserts that settled `orders` conserved stock and money. `stock` is each product's units
/// as set (and never changed since), `balances` each customer's balance as set.
///
/// Stock: available + reserved + committed is the units set, nothing stays reserved, and
/// committed is the units of the completed orders. Money: a completed order was charged its
/// total; a cancelled one was never charged or was refunded; each balance is its opening
/// balance less the totals of its completed orders.
pub(crate) async fn assert_conserved(
    client: &Client,
    orders: &[Value],
    stock: &[(&str, i64)],
    balances: &[(&str, i64)],
) -> Outcomes {
    let completed: Vec<&Value> = orders
        .iter()
        .filter(|order| order["status"] == "Completed")
        .collect();
    for (product, units) in stock {
        let sold: i64 = completed
            .iter()
            .flat_map(|order| lines(order))
            .filter(|(line_product, _, _)| line_product == product)
            .map(|(_, quantity, _)| quantity)
            .sum();
        let (available, reserved, committed) = client.stock(product).await;
        assert_eq!(
            (available + reserved + committed, reserved, committed),
            (*units, 0, sold),
            "{product}: (available + reserved + committed, reserved, committed) with \
             available {available}"
        );
    }
    for order in orders {
        let (status, payment) = client.payment(&id(order)).await;
        if order["status"] == "Completed" {
            assert_eq!(
                (payment["status"].as_str(), payment["amount"].as_i64()),
                (Some("Charged"), order["total"].as_i64()),
                "a completed order is charged its total: {order} {payment}"
            );
            continue;
        }
        assert!(
            status == StatusCode::NOT_FOUND
                || ["Failed", "Refunded"].contains(&payment["status"].as_str().unwrap_or("")),
            "a cancelled order was never charged or was refunded: {order} {payment}"
        );
    }
    for (customer, opening) in balances {
        let spent: i64 = completed
            .iter()
            .filter(|order| order["customer_id"] == *customer)
            .map(|order| order["total"].as_i64().expect("a completed order's total"))
            .sum();
        assert_eq!(
            client.balance(customer).await,
            opening - spent,
            "customer {customer}: the opening balance less the completed orders"
        );
    }
    (completed.len(), orders.len() - completed.len())
}
