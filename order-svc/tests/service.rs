//! order-svc in one process: the real service on port 0 with its own database and vhost, driven
//! over HTTP with tokens, with the participants' answers published by the test under their own
//! broker users.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use contracts::{
    AnyMessage, CustomerId, Envelope, MessageType, Money, OrderId, PaymentFailed, PaymentId,
    PaymentSucceeded, PricedLine, ProductId, Quantity, Service, StockCommitted, StockFailed,
    StockReserved,
};
use order_svc::Config;
use serde_json::{Value, json};
use testkit::auth::{self, Identity};
use testkit::bus::TestBus;
use testkit::service::{RunningService, ServiceEnv};
use uuid::Uuid;

const PATIENCE: Duration = Duration::from_secs(20);

async fn start(saga_timeout: Duration) -> RunningService {
    RunningService::start(Service::Order, true, move |env: ServiceEnv| {
        let config = Config {
            database_url: env.database_url,
            amqp_url: env.amqp_url,
            http_addr: env.listener.local_addr().unwrap(),
            startup_timeout: Duration::from_secs(10),
            database_max_connections: 4,
            saga_timeout,
            producers: env.producers,
            auth: env.auth,
        };
        order_svc::run_with_listener(config, env.listener, env.shutdown)
    })
    .await
}

async fn listen(service: &RunningService) -> TestBus {
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
fn order_body(customer: Option<Uuid>, lines: &[(&str, i64)]) -> String {
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
async fn place(service: &RunningService, customer: Uuid, lines: &[(&str, i64)]) -> Value {
    let body = order_body(Some(customer), lines);
    let response = service.request("POST", "/orders", Some(&body), &[]).await;
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

fn id_of(order: &Value) -> OrderId {
    order["id"].as_str().unwrap().parse().unwrap()
}

async fn wait_status(service: &RunningService, order_id: OrderId, status: &str) -> Value {
    service
        .wait_for_json(&format!("/orders/{order_id}"), PATIENCE, |order| {
            order["status"] == status
        })
        .await
}

async fn wait_priced(service: &RunningService, order_id: OrderId) -> Value {
    service
        .wait_for_json(&format!("/orders/{order_id}"), PATIENCE, |order| {
            order["items"]
                .as_array()
                .is_some_and(|items| items.iter().all(|item| item["unit_price"].is_i64()))
        })
        .await
}

/// An order's lines as `(product, quantity, unit price)`, and its total.
type Prices = (Vec<(String, i64, Option<i64>)>, Option<i64>);

/// The order's prices as the API shows them.
fn prices(order: &Value) -> Prices {
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

fn priced_lines(lines: &[(&str, i64, i64)]) -> Vec<PricedLine> {
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
fn reserved(order_id: OrderId, customer: Uuid, lines: &[(&str, i64, i64)]) -> StockReserved {
    StockReserved::new(order_id, CustomerId::from(customer), priced_lines(lines)).unwrap()
}

fn paid(order_id: OrderId, customer: Uuid, amount: i64) -> PaymentSucceeded {
    PaymentSucceeded {
        order_id,
        customer_id: CustomerId::from(customer),
        payment_id: PaymentId::generate(),
        amount: Money::new(amount).unwrap(),
    }
}

async fn expect_created(bus: &mut TestBus, order_id: OrderId) -> contracts::OrderCreated {
    match bus.next(PATIENCE).await.payload {
        AnyMessage::OrderCreated(created) if created.order_id == order_id => created,
        other => panic!("expected OrderCreated of {order_id}, got {other:?}"),
    }
}

fn timeline(order: &Value) -> Vec<(String, String, String)> {
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

fn steps(expected: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    expected
        .iter()
        .map(|(a, b, c)| ((*a).into(), (*b).into(), (*c).into()))
        .collect()
}

/// The fields a problem+json body names.
fn problem_fields(problem: &Value) -> Vec<(String, String)> {
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
struct Case {
    method: &'static str,
    path: String,
    body: Option<String>,
    headers: Vec<(&'static str, String)>,
    status: u16,
    fields: Vec<&'static str>,
}

fn case(method: &'static str, path: &str, body: Option<String>, status: u16) -> Case {
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
    fn naming(mut self, fields: &[&'static str]) -> Case {
        self.fields = fields.to_vec();
        self
    }

    fn with_header(mut self, name: &'static str, value: String) -> Case {
        self.headers.push((name, value));
        self
    }
}

#[tokio::test]
async fn every_invalid_request_gets_its_status_and_names_its_fields() {
    let service = start(Duration::from_secs(30)).await;
    let customer = auth::customer();
    let named = |lines: &[(&str, i64)]| Some(order_body(Some(customer), lines));
    let raw = |text: String| Some(text);
    let cases = vec![
        case("POST", "/orders", named(&[("a", 1)]), 201),
        case("POST", "/orders", raw("{".into()), 400).naming(&["body"]),
        case(
            "POST",
            "/orders",
            raw(r#"{"customer_id": 7, "items": []}"#.into()),
            400,
        )
        .naming(&["customer_id"]),
        case(
            "POST",
            "/orders",
            raw(format!(r#"{{"customer_id": "{customer}"}}"#)),
            400,
        )
        .naming(&["items"]),
        case(
            "POST",
            "/orders",
            raw(format!(
                r#"{{"customer_id": "{customer}", "items": [{{"product_id": "a", "quantity": 1.5}}]}}"#
            )),
            400,
        )
        .naming(&["items[0].quantity"]),
        case(
            "POST",
            "/orders",
            raw(json!({"customer_id": "not-a-uuid", "items": []}).to_string()),
            422,
        )
        .naming(&["customer_id", "items"]),
        // An operator names the customer the order is for.
        case("POST", "/orders", Some(order_body(None, &[("a", 1)])), 422).naming(&["customer_id"]),
        case("POST", "/orders", named(&[("a", 0), ("bad id", 10_001)]), 422).naming(&[
            "items[0].quantity",
            "items[1].product_id",
            "items[1].quantity",
        ]),
        case("POST", "/orders", named(&[("a", 1), ("a", 2)]), 422)
            .naming(&["items[1].product_id"]),
        // Prices are the catalog's: a unit price or a total is refused, whatever it holds.
        case(
            "POST",
            "/orders",
            raw(json!({"customer_id": customer, "items": [
                {"product_id": "a", "quantity": 1},
                {"product_id": "b", "quantity": 1, "unit_price": 0},
            ]})
            .to_string()),
            422,
        )
        .naming(&["items[1].unit_price"]),
        case(
            "POST",
            "/orders",
            raw(json!({"customer_id": customer, "total": 100, "items": [
                {"product_id": "a", "quantity": 1, "unit_price": null},
            ]})
            .to_string()),
            422,
        )
        .naming(&["items[0].unit_price", "total"]),
        case("POST", "/orders", named(&[("a", 1)]), 400)
            .with_header("Idempotency-Key", "k".repeat(256))
            .naming(&["Idempotency-Key"]),
        case(
            "POST",
            "/orders",
            raw(format!(
                r#"{{"customer_id": "{customer}", "items": [], "pad": "{}"}}"#,
                "x".repeat(70_000)
            )),
            413,
        ),
        case("GET", "/orders/not-a-uuid", None, 400).naming(&["id"]),
        case(
            "GET",
            "/orders/0199c3e1-0000-7000-8000-000000000001",
            None,
            404,
        ),
        case("GET", "/orders?status=Lost", None, 422).naming(&["status"]),
        case("GET", "/orders?limit=0", None, 422).naming(&["limit"]),
        case("GET", "/orders?customer_id=x", None, 400).naming(&["customer_id"]),
        case("GET", "/orders?cursor=x", None, 400).naming(&["cursor"]),
        case("DELETE", "/orders", None, 405),
        case("GET", "/nowhere", None, 404),
    ];
    for case in cases {
        let headers: Vec<(&str, &str)> = case
            .headers
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        let response = service
            .request(case.method, &case.path, case.body.as_deref(), &headers)
            .await;
        let what = format!("{} {} {:?}", case.method, case.path, case.body);
        assert_eq!(response.status().as_u16(), case.status, "{what}");
        if case.status < 400 {
            continue;
        }
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{what}"
        );
        let problem: Value = response.json().await.unwrap();
        let found: Vec<String> = problem_fields(&problem)
            .into_iter()
            .map(|(field, _)| field)
            .collect();
        assert_eq!(found, case.fields, "{what}: {problem}");
        for (field, message) in problem_fields(&problem) {
            if field.ends_with("unit_price") || field == "total" {
                assert_eq!(message, "prices are set by the catalog, not the client");
            }
        }
    }
    // Not JSON at all.
    let response = service
        .http
        .post(format!("{}/orders", service.base))
        .bearer_auth(auth::token(&Identity::Operator).unwrap())
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
}

/// The callers of the authorisation table, in its columns' order.
const CALLERS: [&str; 6] = ["anonymous", "expired", "forged", "A", "B", "operator"];

/// One endpoint and the status each caller of [`CALLERS`] gets.
struct Endpoint {
    method: &'static str,
    path: String,
    body: Option<String>,
    statuses: [u16; 6],
}

#[tokio::test]
async fn every_endpoint_admits_only_whom_it_should_and_b_never_sees_a_s_orders() {
    let service = start(Duration::from_secs(30)).await;
    let (a, b) = (auth::customer(), auth::customer());
    let (customer_a, customer_b) = (Identity::Customer(a), Identity::Customer(b));
    let callers = [
        Identity::Anonymous,
        auth::expired_token(&customer_a),
        auth::forged_token(&customer_a),
        customer_a.clone(),
        customer_b.clone(),
        Identity::Operator,
    ];
    let own_body = order_body(None, &[("widget", 1)]);
    let response = service
        .request_as(&customer_a, "POST", "/orders", Some(&own_body), &[])
        .await;
    assert_eq!(response.status(), 201);
    let order_a: Value = response.json().await.unwrap();
    assert_eq!(order_a["customer_id"], a.to_string());
    let order_a_id = order_a["id"].as_str().unwrap().to_owned();
    let missing = Uuid::now_v7();

    let endpoint = |method, path: String, body: Option<&String>, statuses| Endpoint {
        method,
        path,
        body: body.cloned(),
        statuses,
    };
    let for_a = order_body(Some(a), &[("widget", 1)]);
    let endpoints = [
        // For oneself: an operator must name the customer.
        endpoint(
            "POST",
            "/orders".into(),
            Some(&own_body),
            [401, 401, 401, 201, 201, 422],
        ),
        // For A: A itself or an operator, never B.
        endpoint(
            "POST",
            "/orders".into(),
            Some(&for_a),
            [401, 401, 401, 201, 403, 201],
        ),
        endpoint(
            "GET",
            format!("/orders/{order_a_id}"),
            None,
            [401, 401, 401, 200, 404, 200],
        ),
        endpoint(
            "GET",
            format!("/orders/{missing}"),
            None,
            [401, 401, 401, 404, 404, 404],
        ),
        endpoint(
            "GET",
            "/orders".into(),
            None,
            [401, 401, 401, 200, 200, 200],
        ),
        endpoint(
            "GET",
            format!("/orders?customer_id={a}"),
            None,
            [401, 401, 401, 200, 403, 200],
        ),
        endpoint(
            "GET",
            format!("/orders?customer_id={b}"),
            None,
            [401, 401, 401, 403, 200, 200],
        ),
        endpoint("GET", "/saga".into(), None, [401, 401, 401, 200, 200, 200]),
    ];
    for endpoint in &endpoints {
        for ((caller, name), status) in callers.iter().zip(CALLERS).zip(endpoint.statuses) {
            let what = format!("{} {} as {name}", endpoint.method, endpoint.path);
            let response = service
                .request_as(
                    caller,
                    endpoint.method,
                    &endpoint.path,
                    endpoint.body.as_deref(),
                    &[],
                )
                .await;
            assert_eq!(response.status().as_u16(), status, "{what}");
            if status == 401 {
                let challenge = response.headers()["www-authenticate"].to_str().unwrap();
                assert!(challenge.starts_with("Bearer"), "{what}: {challenge}");
            }
            if status >= 400 {
                assert_eq!(
                    response.headers()["content-type"],
                    "application/problem+json",
                    "{what}"
                );
            }
            let body: Value = response.json().await.unwrap_or(Value::Null);
            // A customer's answers hold only their own orders.
            let own = match caller {
                Identity::Customer(own) => own.to_string(),
                _ => continue,
            };
            // An order has an id; a page has none, only orders.
            let orders = match (body["id"].is_string(), body["items"].as_array()) {
                (true, _) => vec![body.clone()],
                (false, Some(listed)) => listed.clone(),
                (false, None) => Vec::new(),
            };
            for order in orders {
                assert_eq!(order["customer_id"], own, "{what}: {order}");
            }
        }
    }
    // What B gets for A's order is what it gets for an order that never was, but for the id.
    let problem_as_b = |id: String| {
        let service = &service;
        let customer_b = &customer_b;
        async move {
            let response = service
                .request_as(customer_b, "GET", &format!("/orders/{id}"), None, &[])
                .await;
            let text = response.text().await.unwrap();
            text.replace(&id, "{id}")
        }
    };
    assert_eq!(
        problem_as_b(order_a_id.clone()).await,
        problem_as_b(missing.to_string()).await
    );
    // A's orders are in A's list and the operator's, never in B's.
    let listed = |identity: Identity| {
        let service = &service;
        async move {
            let response = service
                .request_as(&identity, "GET", "/orders?limit=100", None, &[])
                .await;
            let page: Value = response.json().await.unwrap();
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|order| order["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert!(listed(customer_a.clone()).await.contains(&order_a_id));
    assert!(listed(Identity::Operator).await.contains(&order_a_id));
    assert!(!listed(customer_b.clone()).await.contains(&order_a_id));
}

#[tokio::test]
async fn idempotency_keys_are_each_customer_s_own() {
    let service = start(Duration::from_secs(30)).await;
    let mut bus = listen(&service).await;
    let (a, b) = (auth::customer(), auth::customer());
    let body = order_body(None, &[("widget", 3), ("gadget", 1)]);
    let key = [("Idempotency-Key", "checkout-42")];
    let post = |identity: Identity, body: String| {
        let service = &service;
        async move {
            let response = service
                .request_as(&identity, "POST", "/orders", Some(&body), &key)
                .await;
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            (status, text)
        }
    };

    let (status, first) = post(Identity::Customer(a), body.clone()).await;
    assert_eq!(status, 201);
    let first: Value = serde_json::from_str(&first).unwrap();
    let first_id = first["id"].as_str().unwrap().to_owned();
    let created = expect_created(&mut bus, id_of(&first)).await;
    assert_eq!(created.customer_id, CustomerId::from(a));
    assert_eq!(created.items.len(), 2);

    // Who sends which body with the key, and what they get: the status, and whether the
    // answer is A's first order.
    let cases = [
        (Identity::Customer(a), body.clone(), 200, true),
        (
            Identity::Customer(a),
            order_body(None, &[("widget", 4)]),
            409,
            false,
        ),
        // The operator placing for A shares A's keys.
        (
            Identity::Operator,
            order_body(Some(a), &[("widget", 3), ("gadget", 1)]),
            200,
            true,
        ),
        // B's key is B's own: a new order, and nothing of A's in the answer.
        (Identity::Customer(b), body.clone(), 201, false),
        (Identity::Customer(b), body.clone(), 200, false),
        (
            Identity::Customer(b),
            order_body(None, &[("widget", 4)]),
            409,
            false,
        ),
    ];
    let mut b_order = None;
    for (identity, body, status, is_first) in cases {
        let what = format!("{identity:?} {body}");
        let (got, text) = post(identity.clone(), body).await;
        assert_eq!(got, status, "{what}: {text}");
        assert_eq!(text.contains(&first_id), is_first, "{what}: {text}");
        if status != 409 && identity == Identity::Customer(b) {
            let order: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(order["customer_id"], b.to_string());
            let id = order["id"].as_str().unwrap().to_owned();
            assert_eq!(b_order.get_or_insert_with(|| id.clone()), &id, "{what}");
        }
    }
    // One OrderCreated per order, no more.
    let b_order: OrderId = b_order.unwrap().parse().unwrap();
    expect_created(&mut bus, b_order).await;
    bus.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn an_order_for_a_named_customer_shows_catalog_prices_once_reserved_and_completes_with_them()
{
    let service = start(Duration::from_secs(30)).await;
    let mut bus = listen(&service).await;
    let customer = auth::customer();
    let order = place(&service, customer, &[("widget", 2), ("gadget", 1)]).await;
    let order_id = id_of(&order);
    assert_eq!(order["customer_id"], customer.to_string());
    assert_eq!(order["status"], "Pending");
    // Unknown until inventory prices the lines from its catalog.
    assert_eq!(
        prices(&order),
        (
            vec![("widget".into(), 2, None), ("gadget".into(), 1, None)],
            None
        )
    );
    assert!(order["total"].is_null() && order["items"][0]["unit_price"].is_null());
    let created = expect_created(&mut bus, order_id).await;
    assert_eq!(created.customer_id, CustomerId::from(customer));
    let ordered: Vec<(String, i64)> = created
        .items
        .iter()
        .map(|line| {
            (
                line.product_id.as_str().to_owned(),
                i64::from(line.quantity.get()),
            )
        })
        .collect();
    assert_eq!(ordered, vec![("widget".into(), 2), ("gadget".into(), 1)]);

    let reservation = reserved(
        order_id,
        customer,
        &[("widget", 2, 500), ("gadget", 1, 250)],
    );
    assert_eq!(reservation.total, Money::new(1_250).unwrap());
    bus.publish_message(&reservation).await;
    let reserved_order = wait_status(&service, order_id, "Reserved").await;
    assert_eq!(
        prices(&reserved_order),
        (
            vec![
                ("widget".into(), 2, Some(500)),
                ("gadget".into(), 1, Some(250))
            ],
            Some(1_250)
        )
    );
    let payment = bus.publish_message(&paid(order_id, customer, 1_250)).await;
    wait_status(&service, order_id, "Paid").await;
    let commit = bus.next(PATIENCE).await;
    assert!(matches!(commit.payload, AnyMessage::CommitStock(_)));
    assert_eq!(commit.causation_id, Some(payment.message_id));
    // A redelivered payment changes nothing and asks for nothing.
    bus.publish(&payment).await;
    bus.publish_message(&StockCommitted { order_id }).await;
    let completed = wait_status(&service, order_id, "Completed").await;
    match bus.next(PATIENCE).await.payload {
        AnyMessage::OrderCompleted(announced) => {
            assert_eq!(announced.total, reservation.total);
            assert_eq!(announced.customer_id, CustomerId::from(customer));
        }
        other => panic!("expected OrderCompleted, got {other:?}"),
    }
    bus.expect_silence(Duration::from_millis(300)).await;
    assert_eq!(prices(&completed).1, Some(1_250));
    assert_eq!(
        timeline(&completed),
        steps(&[
            ("Pending", "StockReserved", "Reserved"),
            ("Reserved", "PaymentSucceeded", "Paid"),
            ("Paid", "StockCommitted", "Completed"),
        ])
    );
}

#[tokio::test]
async fn failures_cancel_with_their_reason_and_the_compensations_they_need() {
    let service = start(Duration::from_secs(30)).await;
    let mut bus = listen(&service).await;
    let customer = auth::customer();

    // Stock failure: nothing to compensate.
    let order_id = id_of(&place(&service, customer, &[("widget", 2)]).await);
    expect_created(&mut bus, order_id).await;
    bus.publish_message(&StockFailed {
        order_id,
        customer_id: CustomerId::from(customer),
        reason: "unknown product widget".into(),
    })
    .await;
    let cancelled = wait_status(&service, order_id, "Cancelled").await;
    assert_eq!(
        cancelled["cancellation_reason"],
        "stock not reserved: unknown product widget"
    );
    assert!(cancelled["total"].is_null());
    assert!(matches!(
        bus.next(PATIENCE).await.payload,
        AnyMessage::OrderCancelled(_)
    ));

    // Payment failure after the reservation: the reservation is released.
    let order_id = id_of(&place(&service, customer, &[("widget", 2)]).await);
    expect_created(&mut bus, order_id).await;
    bus.publish_message(&reserved(order_id, customer, &[("widget", 2, 500)]))
        .await;
    wait_status(&service, order_id, "Reserved").await;
    bus.publish_message(&PaymentFailed {
        order_id,
        customer_id: CustomerId::from(customer),
        reason: "insufficient balance".into(),
    })
    .await;
    let cancelled = wait_status(&service, order_id, "Cancelled").await;
    assert_eq!(
        cancelled["cancellation_reason"],
        "payment failed: insufficient balance"
    );
    match bus.next(PATIENCE).await.payload {
        AnyMessage::ReleaseStock(release) => {
            assert_eq!(release.reason, "payment failed: insufficient balance")
        }
        other => panic!("expected ReleaseStock, got {other:?}"),
    }
    assert!(matches!(
        bus.next(PATIENCE).await.payload,
        AnyMessage::OrderCancelled(_)
    ));
}

#[tokio::test]
async fn a_deadline_cancels_a_waiting_order_and_late_answers_are_compensated_and_priced() {
    let service = start(Duration::from_secs(1)).await;
    let mut bus = listen(&service).await;
    let customer = auth::customer();
    let order_id = id_of(&place(&service, customer, &[("widget", 1)]).await);
    expect_created(&mut bus, order_id).await;
    let cancelled = wait_status(&service, order_id, "Cancelled").await;
    assert_eq!(cancelled["cancellation_reason"], "not completed within 1 s");
    assert!(matches!(
        bus.next(PATIENCE).await.payload,
        AnyMessage::OrderCancelled(_)
    ));

    bus.publish_message(&reserved(order_id, customer, &[("widget", 1, 700)]))
        .await;
    assert!(matches!(
        bus.next(PATIENCE).await.payload,
        AnyMessage::ReleaseStock(_)
    ));
    // The late reservation still tells what the stock was reserved at.
    let priced = wait_priced(&service, order_id).await;
    assert_eq!(
        prices(&priced),
        (vec![("widget".into(), 1, Some(700))], Some(700))
    );
    bus.publish_message(&paid(order_id, customer, 700)).await;
    assert!(matches!(
        bus.next(PATIENCE).await.payload,
        AnyMessage::RefundPayment(_)
    ));
    let settled = service
        .wait_for_json(&format!("/orders/{order_id}"), PATIENCE, |order| {
            order["timeline"].as_array().is_some_and(|t| t.len() == 3)
        })
        .await;
    assert_eq!(
        timeline(&settled),
        steps(&[
            ("Pending", "DeadlinePassed", "Cancelled"),
            ("Cancelled", "StockReserved", "Cancelled"),
            ("Cancelled", "PaymentSucceeded", "Cancelled"),
        ])
    );
}

#[tokio::test]
async fn a_payment_that_overtakes_the_reservation_completes_the_order_with_the_reserved_prices() {
    let service = start(Duration::from_secs(30)).await;
    let mut bus = listen(&service).await;
    let customer = auth::customer();

    // The reservation arrives before the completion, or only after it: either way the order
    // ends priced, announcing the total charged.
    for reservation_first in [true, false] {
        let order_id = id_of(&place(&service, customer, &[("widget", 3)]).await);
        expect_created(&mut bus, order_id).await;
        bus.publish_message(&paid(order_id, customer, 900)).await;
        let paid_order = wait_status(&service, order_id, "Paid").await;
        // The charge tells the total before the lines' prices are known.
        assert_eq!(
            prices(&paid_order),
            (vec![("widget".into(), 3, None)], Some(900))
        );
        assert!(matches!(
            bus.next(PATIENCE).await.payload,
            AnyMessage::CommitStock(_)
        ));
        let reservation = reserved(order_id, customer, &[("widget", 3, 300)]);
        if reservation_first {
            bus.publish_message(&reservation).await;
            wait_priced(&service, order_id).await;
        }
        bus.publish_message(&StockCommitted { order_id }).await;
        wait_status(&service, order_id, "Completed").await;
        match bus.next(PATIENCE).await.payload {
            AnyMessage::OrderCompleted(announced) => {
                assert_eq!(announced.total, Money::new(900).unwrap())
            }
            other => panic!("expected OrderCompleted, got {other:?}"),
        }
        if !reservation_first {
            bus.publish_message(&reservation).await;
        }
        let completed = wait_priced(&service, order_id).await;
        assert_eq!(
            prices(&completed),
            (vec![("widget".into(), 3, Some(300))], Some(900)),
            "reservation first: {reservation_first}"
        );
        assert_eq!(
            timeline(&completed),
            steps(&[
                ("Pending", "PaymentSucceeded", "Paid"),
                ("Paid", "StockCommitted", "Completed")
            ])
        );
    }
    bus.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_message_the_saga_cannot_apply_is_dead_lettered_and_the_order_does_not_move() {
    let service = start(Duration::from_secs(30)).await;
    let customer = auth::customer();
    let bus = listen(&service).await;
    // Each message is for a fresh `Pending` order, named by the queue it arrives on.
    type Build = fn(OrderId, Uuid) -> Envelope;
    let cases: [(&str, Build); 3] = [
        // The saga has no decision for it.
        ("order-svc.StockCommitted", |order_id, _| {
            Envelope::new(&StockCommitted { order_id }, None).unwrap()
        }),
        // A reservation of other quantities than were ordered cannot price the order.
        ("order-svc.StockReserved", |order_id, customer| {
            Envelope::new(&reserved(order_id, customer, &[("widget", 2, 100)]), None).unwrap()
        }),
        // Nor one for another customer.
        ("order-svc.StockReserved", |order_id, _| {
            Envelope::new(
                &reserved(order_id, auth::customer(), &[("widget", 1, 100)]),
                None,
            )
            .unwrap()
        }),
    ];
    let mut dead = std::collections::HashMap::<&str, u64>::new();
    for (queue, build) in cases {
        let order_id = id_of(&place(&service, customer, &[("widget", 1)]).await);
        bus.publish(&build(order_id, customer)).await;
        let depth = dead.entry(queue).or_default();
        *depth += 1;
        let dlq = outbox::dead_letter_queue(queue);
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while service.vhost.queue_depth(&dlq) < *depth {
            assert!(
                tokio::time::Instant::now() < deadline,
                "nothing dead-lettered on {dlq}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (_, unchanged) = service.get_json(&format!("/orders/{order_id}")).await;
        assert_eq!(unchanged["status"], "Pending", "{queue}");
        assert_eq!(prices(&unchanged), (vec![("widget".into(), 1, None)], None));
    }
}

#[tokio::test]
async fn lists_page_newest_first_and_the_saga_is_served_as_run() {
    let service = start(Duration::from_secs(30)).await;
    let customer = auth::customer();
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(id_of(&place(&service, customer, &[("widget", 1)]).await).to_string());
    }
    ids.reverse();
    let (_, first) = service.get_json("/orders?limit=2").await;
    let (_, second) = service
        .get_json(&format!(
            "/orders?limit=2&cursor={}",
            first["next_cursor"].as_str().unwrap()
        ))
        .await;
    let (_, third) = service
        .get_json(&format!(
            "/orders?limit=2&cursor={}",
            second["next_cursor"].as_str().unwrap()
        ))
        .await;
    let listed: Vec<String> = [&first, &second, &third]
        .iter()
        .flat_map(|page| {
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["id"].as_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(listed, ids);
    assert!(third.get("next_cursor").is_none());
    let (_, pending) = service.get_json("/orders?status=Pending&limit=100").await;
    assert_eq!(pending["items"].as_array().unwrap().len(), 5);

    let (status, saga) = service.get_json("/saga").await;
    assert_eq!(status, 200);
    assert_eq!(saga["mermaid"], saga_core::order::ORDER_SAGA.to_mermaid());
    assert_eq!(
        saga["rows"].as_array().unwrap().len(),
        saga_core::order::ORDER_SAGA.rows.len()
    );
    let (_, openapi) = service.get_json("/openapi.json").await;
    for path in ["/orders", "/orders/{id}", "/saga"] {
        assert!(openapi["paths"][path].is_object(), "{path} is documented");
    }
    // The document states the rules the handlers apply (utoipa takes literals, so the copies
    // are checked here).
    let key = &openapi["paths"]["/orders"]["post"]["parameters"][0];
    assert_eq!(key["name"], "Idempotency-Key");
    assert_eq!(
        key["schema"]["pattern"],
        order_svc::validation::IDEMPOTENCY_KEY_PATTERN
    );
    let states: Vec<&str> = <saga_core::order::OrderState as saga_core::Label>::ALL
        .iter()
        .map(|&state| saga_core::Label::name(state))
        .collect();
    let status = &openapi["paths"]["/orders"]["get"]["parameters"][0];
    assert_eq!(status["name"], "status");
    assert_eq!(status["schema"]["enum"], serde_json::json!(states));
    // Who may be refused where, and that prices may be unknown, are in the document.
    for (path, method, status) in [
        ("/orders", "post", "403"),
        ("/orders", "get", "403"),
        ("/orders/{id}", "get", "404"),
    ] {
        assert!(
            openapi["paths"][path][method]["responses"][status].is_object(),
            "{method} {path} documents {status}"
        );
    }
    let schemas = &openapi["components"]["schemas"];
    for (schema, field) in [("Order", "total"), ("Item", "unit_price")] {
        let types = &schemas[schema]["properties"][field]["type"];
        assert!(
            types
                .as_array()
                .is_some_and(|types| types.contains(&json!("null"))),
            "{schema}.{field} is nullable: {types}"
        );
    }
    let request = &schemas["PlaceOrderLine"]["properties"];
    assert!(request.get("unit_price").is_none(), "{request}");
}
