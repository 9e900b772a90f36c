//! What the tests of order-svc share: the real service in one process on port 0 with its own
//! database and vhost, driven over HTTP with tokens, with the participants' answers published
//! by the test under their own broker users.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::time::Duration;

use contracts::{
    AnyMessage, CustomerId, MessageType, Money, OrderId, PaymentId, PaymentSucceeded, PricedLine,
    ProductId, Quantity, Service, StockReserved,
};
use order_svc::Config;
use serde_json::{Value, json};
use testkit::bus::TestBus;
use testkit::service::{RunningService, ServiceEnv};
use uuid::Uuid;

pub(crate) const PATIENCE: Duration = Duration::from_secs(20);

/// The re-send pacing of most tests: long enough that no re-send interleaves with what a test
/// expects to hear (the re-send test sets its own).
pub(crate) const SLOW_RESENDS: Duration = Duration::from_secs(60);

/// The service with `saga_timeout`, re-sending unconfirmed commands only after a minute.
pub(crate) async fn start(saga_timeout: Duration) -> RunningService {
    start_with(saga_timeout, SLOW_RESENDS).await
}

/// The service with `saga_timeout`, re-sending an unconfirmed command after `resend_after`.
pub(crate) async fn start_with(saga_timeout: Duration, resend_after: Duration) -> RunningService {
    RunningService::start(Service::Order, true, move |env: ServiceEnv| {
        let config = Config {
            database_url: env.database_url,
            amqp_url: env.amqp_url,
            http_addr: env.listener.local_addr().unwrap(),
            startup_timeout: Duration::from_secs(10),
            database_max_connections: 4,
            saga_timeout,
            resend_after,
            producers: env.producers,
            auth: env.auth,
        };
        order_svc::run_with_listener(config, env.listener, env.shutdown)
    })
    .await
}

pub(crate) async fn listen(service: &RunningService) -> TestBus {
    TestBus::connect(
        &service.vhost,
        &[
            MessageType::OrderCreated,
            MessageType::CommitStock,
            MessageType::ReleaseStock,
            MessageType::RefundPayment,
            MessageType::OrderCompleted,
            MessageType::OrderCancelled,
        ],
    )
    .await
}

/// A `POST /orders` body: for `customer` when given (as an operator must), else for the caller.
pub(crate) fn order_body(customer: Option<Uuid>, lines: &[(&str, i64)]) -> String {
    let items: Vec<Value> = lines
        .iter()
        .map(|(product, quantity)| json!({"product_id": product, "quantity": quantity}))
        .collect();
    match customer {
        Some(customer) => json!({ "customer_id": customer, "items": items }),
        None => json!({ "items": items }),
    }
    .to_string()
}

/// Places an order as an operator for `customer`.
pub(crate) async fn place(
    service: &RunningService,
    customer: Uuid,
    lines: &[(&str, i64)],
) -> Value {
    let body = order_body(Some(customer), lines);
    let response = service.request("POST", "/orders", Some(&body), &[]).await;
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

pub(crate) fn id_of(order: &Value) -> OrderId {
    order["id"].as_str().unwrap().parse().unwrap()
}

pub(crate) async fn wait_status(
    service: &RunningService,
    order_id: OrderId,
    status: &str,
) -> Value {
    service
        .wait_for_json(&format!("/orders/{order_id}"), PATIENCE, |order| {
            order["status"] == status
        })
        .await
}

pub(crate) async fn wait_priced(service: &RunningService, order_id: OrderId) -> Value {
    service
        .wait_for_json(&format!("/orders/{order_id}"), PATIENCE, |order| {
            order["items"]
                .as_array()
                .is_some_and(|items| items.iter().all(|item| item["unit_price"].is_i64()))
        })
        .await
}

/// An order's lines as `(product, quantity, unit price)`, and its total.
pub(crate) type Prices = (Vec<(String, i64, Option<i64>)>, Option<i64>);

/// The order's prices as the API shows them.
pub(crate) fn prices(order: &Value) -> Prices {
    let lines = order["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            (
                item["product_id"].as_str().unwrap().to_owned(),
                item["quantity"].as_i64().unwrap(),
                item["unit_price"].as_i64(),
            )
        })
        .collect();
    (lines, order["total"].as_i64())
}

pub(crate) fn priced_lines(lines: &[(&str, i64, i64)]) -> Vec<PricedLine> {
    lines
        .iter()
        .map(|(product, quantity, unit_price)| PricedLine {
            product_id: ProductId::new((*product).to_owned()).unwrap(),
            quantity: Quantity::new(*quantity).unwrap(),
            unit_price: Money::new(*unit_price).unwrap(),
        })
        .collect()
}

/// What inventory answers when it reserved `lines` at these catalog prices.
pub(crate) fn reserved(
    order_id: OrderId,
    customer: Uuid,
    lines: &[(&str, i64, i64)],
) -> StockReserved {
    StockReserved::new(order_id, CustomerId::from(customer), priced_lines(lines)).unwrap()
}

pub(crate) fn paid(order_id: OrderId, customer: Uuid, amount: i64) -> PaymentSucceeded {
    PaymentSucceeded {
        order_id,
        customer_id: CustomerId::from(customer),
        payment_id: PaymentId::generate(),
        amount: Money::new(amount).unwrap(),
    }
}

pub(crate) async fn expect_created(
    bus: &mut TestBus,
    order_id: OrderId,
) -> contracts::OrderCreated {
    match bus.next(PATIENCE).await.payload {
        AnyMessage::OrderCreated(created) if created.order_id == order_id => created,
        other => panic!("expected OrderCreated of {order_id}, got {other:?}"),
    }
}

pub(crate) fn timeline(order: &Value) -> Vec<(String, String, String)> {
    order["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|step| {
            (
                step["from"].as_str().unwrap().to_owned(),
                step["event"].as_str().unwrap().to_owned(),
                step["to"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

pub(crate) fn steps(expected: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    expected
        .iter()
        .map(|(a, b, c)| ((*a).into(), (*b).into(), (*c).into()))
        .collect()
}

/// The fields a problem+json body names.
pub(crate) fn problem_fields(problem: &Value) -> Vec<(String, String)> {
    problem["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|error| {
                    (
                        error["field"].as_str().unwrap().to_owned(),
                        error["message"].as_str().unwrap().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A request as an operator, its status and the fields its problem names.
pub(crate) struct Case {
    pub(crate) method: &'static str,
    pub(crate) path: String,
    pub(crate) body: Option<String>,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) status: u16,
    pub(crate) fields: Vec<&'static str>,
}

pub(crate) fn case(method: &'static str, path: &str, body: Option<String>, status: u16) -> Case {
    Case {
        method,
        path: path.to_owned(),
        body,
        headers: Vec::new(),
        status,
        fields: Vec::new(),
    }
}

impl Case {
    pub(crate) fn naming(mut self, fields: &[&'static str]) -> Case {
        self.fields = fields.to_vec();
        self
    }

    pub(crate) fn with_header(mut self, name: &'static str, value: String) -> Case {
        self.headers.push((name, value));
        self
    }
}

/// The names of the next `count` messages the bus hears, in order, all about `order_id`.
pub(crate) async fn next_types(bus: &mut TestBus, order_id: OrderId, count: usize) -> Vec<String> {
    let mut heard = Vec::new();
    for _ in 0..count {
        let envelope = bus.next(PATIENCE).await;
        assert_eq!(envelope.payload.order_id(), order_id, "{envelope:?}");
        heard.push(envelope.message_type.name().to_owned());
    }
    heard
}

/// `(effect, attempts)` of each effect the order still awaits the confirmation of.
pub(crate) fn awaiting(order: &Value) -> Vec<(String, u64)> {
    order["awaiting_confirmation"]
        .as_array()
        .unwrap()
        .iter()
        .map(|effect| {
            (
                effect["effect"].as_str().unwrap().to_owned(),
                effect["attempts"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// `POST /orders/{id}/cancel` as `identity`: the status and the body.
pub(crate) async fn cancel(
    service: &RunningService,
    identity: &testkit::auth::Identity,
    order_id: OrderId,
) -> (u16, Value) {
    let response = service
        .request_as(
            identity,
            "POST",
            &format!("/orders/{order_id}/cancel"),
            None,
            &[],
        )
        .await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}
