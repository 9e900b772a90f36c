//! inventory-svc end to end in one process: the real service on port 0 with its own database
//! (as a non-superuser role) and vhost (as its own broker user), driven over HTTP with bearer
//! tokens and through the broker.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use contracts::{
    AnyMessage, CommitStock, CustomerId, Envelope, MessageType, OrderCreated, OrderId, OrderLine,
    ProductId, Quantity, ReleaseStock, Service, StockReserved,
};
use inventory_svc::Config;
use sea_orm::{ConnectionTrait, TransactionTrait};
use serde_json::{Value, json};
use testkit::auth::{self, Identity, expired_token, forged_token};
use testkit::bus::TestBus;
use testkit::service::{RunningService, ServiceEnv};

const PATIENCE: Duration = Duration::from_secs(20);

async fn start() -> RunningService {
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

async fn bus(service: &RunningService) -> TestBus {
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
async fn product(service: &RunningService, product_id: &str) -> Value {
    let (status, body) = service.get_json(&format!("/products/{product_id}")).await;
    assert_eq!(status, 200, "GET /products/{product_id}: {body}");
    body
}

/// (available, reserved, committed).
async fn stock(service: &RunningService, product_id: &str) -> (i64, i64, i64) {
    let body = product(service, product_id).await;
    (
        body["available"].as_i64().unwrap(),
        body["reserved"].as_i64().unwrap(),
        body["committed"].as_i64().unwrap(),
    )
}

async fn set_product(service: &RunningService, product_id: &str, available: i64, price: i64) {
    let body = json!({ "available": available, "price": price }).to_string();
    let response = service
        .request("PUT", &format!("/products/{product_id}"), Some(&body), &[])
        .await;
    assert!(response.status().is_success(), "PUT {product_id}: {body}");
}

/// An order of `lines` (product, quantity) by a fresh customer.
fn order(lines: &[(&str, i64)]) -> OrderCreated {
    order_for(CustomerId::generate(), lines)
}

fn order_for(customer_id: CustomerId, lines: &[(&str, i64)]) -> OrderCreated {
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
type Lines = &'static [(&'static str, i64)];

/// A reservation's lines: (product, quantity, unit price).
type PricedLines = &'static [(&'static str, i64, i64)];

/// The published reservation's lines as (product, quantity, unit price), and its total.
fn priced(reserved: &StockReserved) -> (Vec<(String, i64, i64)>, i64) {
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

fn lines(expected: &[(&str, i64, i64)]) -> Vec<(String, i64, i64)> {
    expected
        .iter()
        .map(|(product, quantity, price)| ((*product).to_owned(), *quantity, *price))
        .collect()
}

/// The reply to `placed` must be a reservation of it, priced as `expected`, with `total`.
async fn expect_reserved(
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
async fn reservation_lines(service: &RunningService, order_id: OrderId) -> Vec<(String, i64, i64)> {
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

/// Sends a request as an operator and checks its status and, for a problem, its content type
/// and the field it names first.
async fn check(
    service: &RunningService,
    (method, path, body): (&str, &str, Option<&str>),
    status: u16,
    field: Option<&str>,
) {
    let response = service.request(method, path, body, &[]).await;
    let what = format!("{method} {path} {body:?}");
    assert_eq!(response.status().as_u16(), status, "{what}");
    if status < 400 {
        return;
    }
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json",
        "{what}"
    );
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["status"], status, "{what}");
    if let Some(field) = field {
        assert_eq!(problem["errors"][0]["field"], field, "{what}: {problem}");
    }
}

#[tokio::test]
async fn http_requests_get_their_status_and_problem_fields() {
    let service = start().await;
    // (method, path, expected status, expected problem field).
    let requests: &[(&str, &str, u16, Option<&str>)] = &[
        ("GET", "/products/widget-blue", 200, None),
        ("GET", "/products", 200, None),
        ("GET", "/products?limit=0", 422, Some("limit")),
        ("GET", "/products?limit=x", 400, Some("limit")),
        ("GET", "/products?after=widget-a", 200, None),
        // A NUL byte reached PostgreSQL as text and came back a 500 (found by schemathesis).
        ("GET", "/products?after=J%C3%AE%00T", 422, Some("after")),
        ("GET", "/products?after=", 422, Some("after")),
        ("GET", "/products/no-such-product", 404, None),
        ("GET", "/products/bad%20id", 400, Some("product_id")),
        ("GET", "/reservations/not-a-uuid", 400, Some("order_id")),
        (
            "GET",
            "/reservations/0199c3e1-0000-7000-8000-000000000001",
            404,
            None,
        ),
        ("DELETE", "/products/widget-blue", 405, None),
    ];
    for &(method, path, status, field) in requests {
        check(&service, (method, path, None), status, field).await;
    }
    // Bodies of `PUT /products/fresh-product`, in order: (body, expected status, field).
    let bodies: &[(&str, u16, Option<&str>)] = &[
        (r#"{"available": 5, "price": 250}"#, 201, None),
        (r#"{"available": 7, "price": 300}"#, 200, None),
        // JSON Schema counts 7.0 as an integer, and so does the API; 7.5 is not one.
        (r#"{"available": 7.0, "price": 300.0}"#, 200, None),
        (
            r#"{"available": 7.5, "price": 300}"#,
            400,
            Some("available"),
        ),
        (r#"{"available": 7, "price": 2.5}"#, 400, Some("price")),
        (r#"{"available": -1, "price": 300}"#, 422, Some("available")),
        (r#"{"available": 7, "price": -1}"#, 422, Some("price")),
        (
            r#"{"available": "many", "price": 300}"#,
            400,
            Some("available"),
        ),
        (r#"{"available": 7, "price": "free"}"#, 400, Some("price")),
        (r#"{"available": 7, "price": null}"#, 400, Some("price")),
        (
            r#"{"available": 7, "price": 9223372036854775808}"#,
            400,
            Some("price"),
        ),
        // Both fields are required: the old body without a price is refused, naming it.
        (r#"{"available": 7}"#, 400, Some("price")),
        (r#"{"price": 300}"#, 400, Some("available")),
        ("{", 400, None),
    ];
    for &(body, status, field) in bodies {
        let request = ("PUT", "/products/fresh-product", Some(body));
        check(&service, request, status, field).await;
    }
    let stored = product(&service, "fresh-product").await;
    assert_eq!(
        (stored["available"].clone(), stored["price"].clone()),
        (json!(7), json!(300))
    );
    assert_eq!(stock(&service, "fresh-product").await, (7, 0, 0));

    let (_, openapi) = service.get_json("/openapi.json").await;
    assert!(openapi["openapi"].as_str().unwrap().starts_with("3.1"));
    let put = &openapi["paths"]["/products/{product_id}"]["put"];
    assert_eq!(
        put["responses"]["403"]["description"], "The caller is not an operator",
        "{put}"
    );
    let schemas = &openapi["components"]["schemas"];
    assert_eq!(
        schemas["SetProduct"]["required"],
        json!(["available", "price"])
    );
    assert_eq!(schemas["SetProduct"]["properties"]["price"]["minimum"], 0);
    assert_eq!(schemas["ProductStock"]["properties"]["price"]["minimum"], 0);
}

/// Every endpoint × every kind of caller. Reservations are inventory's bookkeeping: no customer
/// reads them, not even for their own order (order-svc shows customers their orders), so
/// customer B cannot see customer A's any more than A can.
#[tokio::test]
async fn every_endpoint_answers_each_kind_of_caller() {
    let service = start().await;
    let mut bus = bus(&service).await;
    let customer_a = auth::customer();
    let customer_b = auth::customer();
    let callers = [
        ("no token", Identity::Anonymous),
        // An operator's token, expired or forged, must grant nothing at all.
        ("expired token", expired_token(&Identity::Operator)),
        ("wrong signature", forged_token(&Identity::Operator)),
        ("customer A", Identity::Customer(customer_a)),
        ("customer B", Identity::Customer(customer_b)),
        ("operator", Identity::Operator),
    ];
    set_product(&service, "apple", 10, 250).await;
    let placed_by_a = order_for(CustomerId::from(customer_a), &[("apple", 2)]);
    bus.publish_message(&placed_by_a).await;
    expect_reserved(&mut bus, &placed_by_a, &[("apple", 2, 250)], 500).await;
    let reservation_of_a = format!("/reservations/{}", placed_by_a.order_id);

    let valid_product = r#"{"available": 3, "price": 100}"#;
    // (method, path, body, status for each of `callers`, in order).
    let cases: &[(&str, &str, Option<&str>, [u16; 6])] = &[
        ("GET", "/products", None, [401, 401, 401, 200, 200, 200]),
        (
            "GET",
            "/products/apple",
            None,
            [401, 401, 401, 200, 200, 200],
        ),
        (
            "GET",
            "/products/no-such-product",
            None,
            [401, 401, 401, 404, 404, 404],
        ),
        // The operator comes last: its 201 proves nobody before it created the product.
        (
            "PUT",
            "/products/created-by-operator",
            Some(valid_product),
            [401, 401, 401, 403, 403, 201],
        ),
        (
            "PUT",
            "/products/apple",
            Some(valid_product),
            [401, 401, 401, 403, 403, 200],
        ),
        // The caller is checked before the request is read: a customer learns nothing from
        // validation.
        (
            "PUT",
            "/products/apple",
            Some(r#"{"available": -1}"#),
            [401, 401, 401, 403, 403, 400],
        ),
        (
            "PUT",
            "/products/bad%20id",
            Some(valid_product),
            [401, 401, 401, 403, 403, 400],
        ),
        (
            "GET",
            &reservation_of_a,
            None,
            [401, 401, 401, 403, 403, 200],
        ),
        (
            "GET",
            "/reservations/0199c3e1-0000-7000-8000-000000000001",
            None,
            [401, 401, 401, 403, 403, 404],
        ),
        (
            "GET",
            "/reservations/not-a-uuid",
            None,
            [401, 401, 401, 403, 403, 400],
        ),
        // What stays public: probes, metrics and the API's description.
        ("GET", "/health/live", None, [200; 6]),
        ("GET", "/health/ready", None, [200; 6]),
        ("GET", "/metrics", None, [200; 6]),
        ("GET", "/openapi.json", None, [200; 6]),
    ];
    for &(method, path, body, statuses) in cases {
        for ((caller, identity), status) in callers.iter().zip(statuses) {
            let response = service.request_as(identity, method, path, body, &[]).await;
            let what = format!("{method} {path} as {caller}");
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
        }
    }
    // Only the operator's PUT took effect on apple: still reserved for A's order, now priced
    // as the operator set it.
    let apple = product(&service, "apple").await;
    assert_eq!(
        (
            apple["available"].clone(),
            apple["reserved"].clone(),
            apple["price"].clone()
        ),
        (json!(3), json!(2), json!(100))
    );
    let metrics = service
        .request("GET", "/metrics", None, &[])
        .await
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("http_auth_failures_total"),
        "401 and 403 are counted"
    );
}

/// Orders of `lines` against products priced `catalog` (product, available, price): what the
/// reservation published and what the reservation keeps are the catalog's prices.
#[tokio::test]
async fn reservations_price_every_line_from_the_catalog() {
    let service = start().await;
    let mut bus = bus(&service).await;
    set_product(&service, "apple", 10, 250).await;
    set_product(&service, "pear", 4, 1000).await;
    set_product(&service, "free-sample", 5, 0).await;
    // (order lines, published lines, total).
    let cases: &[(Lines, PricedLines, i64)] = &[
        // Lines keep the order's order, each at its own product's price.
        (
            &[("pear", 4), ("apple", 3)],
            &[("pear", 4, 1000), ("apple", 3, 250)],
            4750,
        ),
        (&[("apple", 1)], &[("apple", 1, 250)], 250),
        // An operator may give a product away.
        (
            &[("free-sample", 2), ("apple", 1)],
            &[("free-sample", 2, 0), ("apple", 1, 250)],
            250,
        ),
        // The demo products come priced.
        (&[("widget-blue", 2)], &[("widget-blue", 2, 1999)], 3998),
    ];
    for &(order_lines, expected, total) in cases {
        let placed = order(order_lines);
        let envelope = bus.publish_message(&placed).await;
        let reply = expect_reserved(&mut bus, &placed, expected, total).await;
        assert_eq!(reply.causation_id, Some(envelope.message_id));
        let mut kept = lines(expected);
        kept.sort();
        assert_eq!(reservation_lines(&service, placed.order_id).await, kept);
    }
}

/// A price set after a reservation does not touch it: neither what was published nor what the
/// reservation keeps, through redelivery, commit and release; the next order pays the new price.
#[tokio::test]
async fn a_price_change_applies_to_later_reservations_only() {
    let service = start().await;
    let mut bus = bus(&service).await;
    set_product(&service, "apple", 10, 250).await;
    let committed = order(&[("apple", 2)]);
    let committed_envelope = bus.publish_message(&committed).await;
    expect_reserved(&mut bus, &committed, &[("apple", 2, 250)], 500).await;
    let released = order(&[("apple", 1)]);
    bus.publish_message(&released).await;
    expect_reserved(&mut bus, &released, &[("apple", 1, 250)], 250).await;

    set_product(&service, "apple", 7, 999).await;
    // A redelivered OrderCreated is not priced again, nor answered.
    bus.publish(&committed_envelope).await;
    bus.expect_silence(Duration::from_millis(500)).await;
    bus.publish_message(&CommitStock {
        order_id: committed.order_id,
    })
    .await;
    assert!(matches!(
        bus.next(PATIENCE).await.payload,
        AnyMessage::StockCommitted(_)
    ));
    bus.publish_message(&ReleaseStock {
        order_id: released.order_id,
        reason: "payment failed".into(),
    })
    .await;
    assert!(matches!(
        bus.next(PATIENCE).await.payload,
        AnyMessage::StockReleased(_)
    ));
    for (placed, kept) in [
        (&committed, ("apple", 2, 250)),
        (&released, ("apple", 1, 250)),
    ] {
        assert_eq!(
            reservation_lines(&service, placed.order_id).await,
            lines(&[kept])
        );
    }

    let later = order(&[("apple", 3)]);
    bus.publish_message(&later).await;
    expect_reserved(&mut bus, &later, &[("apple", 3, 999)], 2997).await;
    assert_eq!(stock(&service, "apple").await, (5, 3, 2));
}

/// A price change in flight when an order arrives holds the product's row: the reservation
/// waits for it and pays the price in force when it takes the stock, not the one before.
#[tokio::test]
async fn a_reservation_pays_the_price_in_force_when_it_holds_the_stock() {
    let service = start().await;
    let mut bus = bus(&service).await;
    set_product(&service, "apple", 10, 250).await;
    let database = service.database.as_ref().unwrap().connect().await;
    let price_change = database.begin().await.unwrap();
    price_change
        .execute_unprepared("UPDATE products SET price = 777 WHERE product_id = 'apple'")
        .await
        .unwrap();
    let placed = order(&[("apple", 2)]);
    bus.publish_message(&placed).await;
    // The reservation queues on the row lock while the change is uncommitted.
    bus.expect_silence(Duration::from_millis(500)).await;
    price_change.commit().await.unwrap();
    expect_reserved(&mut bus, &placed, &[("apple", 2, 777)], 1554).await;
    assert_eq!(stock(&service, "apple").await, (8, 2, 0));
}

#[tokio::test]
async fn a_reservation_is_held_committed_and_answered_once() {
    let service = start().await;
    let mut bus = bus(&service).await;
    set_product(&service, "apple", 10, 250).await;
    set_product(&service, "pear", 4, 1000).await;

    let placed = order(&[("pear", 4), ("apple", 3)]);
    let envelope = bus.publish_message(&placed).await;
    let reply = expect_reserved(
        &mut bus,
        &placed,
        &[("pear", 4, 1000), ("apple", 3, 250)],
        4750,
    )
    .await;
    assert_eq!(reply.causation_id, Some(envelope.message_id));
    assert_eq!(stock(&service, "apple").await, (7, 3, 0));
    assert_eq!(stock(&service, "pear").await, (0, 4, 0));

    // A redelivery of the same message changes nothing and is not answered.
    bus.publish(&envelope).await;
    bus.expect_silence(Duration::from_millis(500)).await;
    assert_eq!(stock(&service, "apple").await, (7, 3, 0));

    bus.publish_message(&CommitStock {
        order_id: placed.order_id,
    })
    .await;
    assert!(matches!(
        bus.next(PATIENCE).await.payload,
        AnyMessage::StockCommitted(_)
    ));
    assert_eq!(stock(&service, "apple").await, (7, 0, 3));
    assert_eq!(stock(&service, "pear").await, (0, 0, 4));
    let (_, reservation) = service
        .get_json(&format!("/reservations/{}", placed.order_id))
        .await;
    assert_eq!(reservation["status"], "Committed");
    assert_eq!(
        reservation_lines(&service, placed.order_id).await,
        lines(&[("apple", 3, 250), ("pear", 4, 1000)])
    );
}

#[tokio::test]
async fn failures_hold_nothing_and_say_why() {
    let service = start().await;
    let mut bus = bus(&service).await;
    set_product(&service, "apple", 2, 250).await;
    // The largest price there is: two of it do not fit in the money type.
    set_product(&service, "priceless", 5, i64::MAX).await;
    let cases = [
        (
            order(&[("apple", 3)]),
            "insufficient stock for apple: 3 requested, 2 available",
        ),
        (
            order(&[("apple", 1), ("durian", 1)]),
            "unknown product durian",
        ),
        (
            order(&[("apple", 1), ("priceless", 2)]),
            "the order total overflows",
        ),
    ];
    for (placed, reason) in cases {
        bus.publish_message(&placed).await;
        match bus.next(PATIENCE).await.payload {
            AnyMessage::StockFailed(failed) => {
                assert_eq!(
                    (failed.order_id, failed.customer_id, failed.reason.as_str()),
                    (placed.order_id, placed.customer_id, reason)
                );
            }
            other => panic!("expected StockFailed, got {other:?}"),
        }
        for product_id in ["apple", "priceless"] {
            let (available, reserved, _) = stock(&service, product_id).await;
            assert_eq!(
                reserved, 0,
                "{product_id}: nothing held after {reason} ({available} available)"
            );
        }
    }
    assert_eq!(stock(&service, "apple").await, (2, 0, 0));
}

#[tokio::test]
async fn a_release_returns_stock_and_a_release_before_the_reservation_leaves_a_tombstone() {
    let service = start().await;
    let mut bus = bus(&service).await;
    set_product(&service, "apple", 5, 250).await;

    let placed = order(&[("apple", 2)]);
    bus.publish_message(&placed).await;
    expect_reserved(&mut bus, &placed, &[("apple", 2, 250)], 500).await;
    let release = ReleaseStock {
        order_id: placed.order_id,
        reason: "payment failed".into(),
    };
    bus.publish_message(&release).await;
    assert!(matches!(
        bus.next(PATIENCE).await.payload,
        AnyMessage::StockReleased(_)
    ));
    assert_eq!(stock(&service, "apple").await, (5, 0, 0));

    // The saga released an order inventory had not seen yet; its late OrderCreated holds nothing.
    let late = order(&[("apple", 1)]);
    bus.publish_message(&ReleaseStock {
        order_id: late.order_id,
        reason: "deadline".into(),
    })
    .await;
    assert!(matches!(
        bus.next(PATIENCE).await.payload,
        AnyMessage::StockReleased(_)
    ));
    bus.publish_message(&late).await;
    bus.expect_silence(Duration::from_millis(500)).await;
    assert_eq!(stock(&service, "apple").await, (5, 0, 0));
}

#[tokio::test]
async fn concurrent_orders_for_the_last_units_never_oversell() {
    let service = start().await;
    let mut bus = bus(&service).await;
    set_product(&service, "last-units", 5, 100).await;
    let mut orders = Vec::new();
    for _ in 0..40 {
        orders.push(bus.publish_message(&order(&[("last-units", 1)])).await);
    }
    let (mut reserved, mut failed) = (0, 0);
    for _ in &orders {
        match bus.next(PATIENCE).await.payload {
            AnyMessage::StockReserved(_) => reserved += 1,
            AnyMessage::StockFailed(_) => failed += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((reserved, failed), (5, 35));
    assert_eq!(stock(&service, "last-units").await, (0, 5, 0));
}

/// Regression: with several messages per transaction, reservations took hot product rows out of
/// order across messages and deadlocked each other under load (each deadlock stalls a second).
/// Concurrent multi-line orders over shared products must not cause a single deadlock.
#[tokio::test]
async fn concurrent_multi_product_orders_never_deadlock() {
    let service = start().await;
    let mut bus = bus(&service).await;
    let products = ["hot-a", "hot-b", "hot-c", "hot-d"];
    for product in products {
        set_product(&service, product, 1_000_000, 100).await;
    }
    let mut orders = 0;
    for index in 0..240usize {
        // Every order takes two or three products, in rotating order.
        let lines: Vec<(&str, i64)> = (0..2 + index % 2)
            .map(|offset| (products[(index + offset * 3) % 4], 1))
            .collect();
        bus.publish_message(&order(&lines)).await;
        orders += 1;
    }
    for _ in 0..orders {
        assert!(matches!(
            bus.next(PATIENCE).await.payload,
            AnyMessage::StockReserved(_)
        ));
    }
    let database = service.database.as_ref().unwrap().connect().await;
    let deadlocks = database
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<i64>(0)
        .unwrap();
    assert_eq!(deadlocks, 0, "reservations deadlocked");
}
