//! The harness every inventory-svc test file shares: the real service on port 0 with its own
//! database (as a non-superuser role) and vhost (as its own broker user), a bus that hears its
//! answers, and readers of its stock and reservations over HTTP as an operator.

#![allow(dead_code)]

use std::time::Duration;

use contracts::{
    AnyMessage, CustomerId, Envelope, MessageType, OrderCreated, OrderId, OrderLine, ProductId,
    Quantity, Service, StockReserved,
};
use inventory_svc::Config;
use serde_json::{Value, json};
use testkit::bus::TestBus;
use testkit::service::{RunningService, ServiceEnv};

pub(crate) const PATIENCE: Duration = Duration::from_secs(20);

pub(crate) async fn start() -> RunningService {
    RunningService::start(Service::Inventory, true, |env: ServiceEnv| {
        let config = Config {
            database_url: env.database_url,
            amqp_url: env.amqp_url,
            http_addr: env.listener.local_addr().unwrap(),
            startup_timeout: Duration::from_secs(10),
            database_max_connections: 4,
            producers: env.producers,
            auth: env.auth,
        };
        inventory_svc::run_with_listener(config, env.listener, env.shutdown)
    })
    .await
}

pub(crate) async fn bus(service: &RunningService) -> TestBus {
    TestBus::connect(
        &service.vhost,
        &[
            MessageType::StockReserved,
            MessageType::StockFailed,
            MessageType::StockCommitted,
            MessageType::StockReleased,
        ],
    )
    .await
}

/// A product as an operator reads it.
pub(crate) async fn product(service: &RunningService, product_id: &str) -> Value {
    let (status, body) = service.get_json(&format!("/products/{product_id}")).await;
    assert_eq!(status, 200, "GET /products/{product_id}: {body}");
    body
}

/// (available, reserved, committed).
pub(crate) async fn stock(service: &RunningService, product_id: &str) -> (i64, i64, i64) {
    let body = product(service, product_id).await;
    (
        body["available"].as_i64().unwrap(),
        body["reserved"].as_i64().unwrap(),
        body["committed"].as_i64().unwrap(),
    )
}

pub(crate) async fn set_product(
    service: &RunningService,
    product_id: &str,
    available: i64,
    price: i64,
) {
    let body = json!({ "available": available, "price": price }).to_string();
    let response = service
        .request("PUT", &format!("/products/{product_id}"), Some(&body), &[])
        .await;
    assert!(response.status().is_success(), "PUT {product_id}: {body}");
}

/// An order of `lines` (product, quantity) by a fresh customer.
pub(crate) fn order(lines: &[(&str, i64)]) -> OrderCreated {
    order_for(CustomerId::generate(), lines)
}

pub(crate) fn order_for(customer_id: CustomerId, lines: &[(&str, i64)]) -> OrderCreated {
    let items = lines
        .iter()
        .map(|(product, quantity)| OrderLine {
            product_id: ProductId::new(*product).unwrap(),
            quantity: Quantity::new(*quantity).unwrap(),
        })
        .collect();
    OrderCreated::new(OrderId::generate(), customer_id, items).unwrap()
}

/// An order's lines: (product, quantity).
pub(crate) type Lines = &'static [(&'static str, i64)];

/// A reservation's lines: (product, quantity, unit price).
pub(crate) type PricedLines = &'static [(&'static str, i64, i64)];

/// The published reservation's lines as (product, quantity, unit price), and its total.
pub(crate) fn priced(reserved: &StockReserved) -> (Vec<(String, i64, i64)>, i64) {
    let lines = reserved
        .items
        .iter()
        .map(|line| {
            (
                line.product_id.to_string(),
                i64::from(line.quantity.get()),
                line.unit_price.minor_units(),
            )
        })
        .collect();
    (lines, reserved.total.minor_units())
}

pub(crate) fn lines(expected: &[(&str, i64, i64)]) -> Vec<(String, i64, i64)> {
    expected
        .iter()
        .map(|(product, quantity, price)| ((*product).to_owned(), *quantity, *price))
        .collect()
}

/// The reply to `placed` must be a reservation of it, priced as `expected`, with `total`.
pub(crate) async fn expect_reserved(
    bus: &mut TestBus,
    placed: &OrderCreated,
    expected: &[(&str, i64, i64)],
    total: i64,
) -> Envelope<AnyMessage> {
    let reply = bus.next(PATIENCE).await;
    match &reply.payload {
        AnyMessage::StockReserved(reserved) => {
            assert_eq!(
                (reserved.order_id, reserved.customer_id),
                (placed.order_id, placed.customer_id)
            );
            assert_eq!(priced(reserved), (lines(expected), total));
        }
        other => panic!("expected StockReserved, got {other:?}"),
    }
    reply
}

/// The lines of the order's reservation as (product, quantity, unit price), as an operator
/// reads them.
pub(crate) async fn reservation_lines(
    service: &RunningService,
    order_id: OrderId,
) -> Vec<(String, i64, i64)> {
    let (status, body) = service.get_json(&format!("/reservations/{order_id}")).await;
    assert_eq!(status, 200, "{body}");
    body["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|line| {
            (
                line["product_id"].as_str().unwrap().to_owned(),
                line["quantity"].as_i64().unwrap(),
                line["unit_price"].as_i64().unwrap(),
            )
        })
        .collect()
}
