//! inventory-svc end to end in one process: the real service on port 0 with its own database
//! and vhost, driven over HTTP and through the broker.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use contracts::{
    AnyMessage, CommitStock, CustomerId, Envelope, MessageType, Money, OrderCreated, OrderId,
    OrderLine, ProductId, Quantity, ReleaseStock,
};
use inventory_svc::Config;
use serde_json::{Value, json};
use testkit::bus::TestBus;
use testkit::{TestDatabase, TestVhost};
use tokio_util::sync::CancellationToken;

const PATIENCE: Duration = Duration::from_secs(20);

struct Service {
    base: String,
    amqp_url: String,
    http: reqwest::Client,
    shutdown: CancellationToken,
    _database: TestDatabase,
    _vhost: TestVhost,
}

impl Service {
    async fn start() -> Service {
        let database = TestDatabase::create().await;
        let vhost = TestVhost::create();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let config = Config {
            database_url: database.url().to_owned(),
            amqp_url: vhost.url().to_owned(),
            http_addr: listener.local_addr().unwrap(),
            startup_timeout: Duration::from_secs(10),
            database_max_connections: 4,
        };
        let shutdown = CancellationToken::new();
        tokio::spawn(inventory_svc::run_with_listener(
            config,
            listener,
            shutdown.clone(),
        ));
        let service = Service {
            base,
            amqp_url: vhost.url().to_owned(),
            http: reqwest::Client::new(),
            shutdown,
            _database: database,
            _vhost: vhost,
        };
        for _ in 0..200 {
            if let Ok(response) = service
                .http
                .get(format!("{}/health/ready", service.base))
                .send()
                .await
                && response.status() == 200
            {
                return service;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("inventory-svc did not become ready");
    }

    async fn bus(&self) -> TestBus {
        TestBus::connect(
            &self.amqp_url,
            &[
                MessageType::StockReserved,
                MessageType::StockFailed,
                MessageType::StockCommitted,
                MessageType::StockReleased,
            ],
        )
        .await
    }

    async fn stock(&self, product_id: &str) -> (i64, i64, i64) {
        let body: Value = self
            .http
            .get(format!("{}/products/{product_id}", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (
            body["available"].as_i64().unwrap(),
            body["reserved"].as_i64().unwrap(),
            body["committed"].as_i64().unwrap(),
        )
    }

    async fn set_stock(&self, product_id: &str, available: i64) {
        let response = self
            .http
            .put(format!("{}/products/{product_id}", self.base))
            .json(&json!({ "available": available }))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn order(lines: &[(&str, i64)]) -> OrderCreated {
    let items = lines
        .iter()
        .map(|(product, quantity)| OrderLine {
            product_id: ProductId::new(*product).unwrap(),
            quantity: Quantity::new(*quantity).unwrap(),
            unit_price: Money::new(100).unwrap(),
        })
        .collect();
    OrderCreated::new(OrderId::generate(), CustomerId::generate(), items).unwrap()
}

/// Method, path, body, expected status, expected problem field.
type Case = (
    &'static str,
    &'static str,
    Option<&'static str>,
    u16,
    Option<&'static str>,
);

#[tokio::test]
async fn http_requests_get_their_status_and_problem_fields() {
    let service = Service::start().await;
    let cases: &[Case] = &[
        ("GET", "/products/widget-blue", None, 200, None),
        ("GET", "/products", None, 200, None),
        ("GET", "/products?limit=0", None, 422, Some("limit")),
        ("GET", "/products?limit=x", None, 400, Some("limit")),
        ("GET", "/products?after=widget-a", None, 200, None),
        // A NUL byte reached PostgreSQL as text and came back a 500 (found by schemathesis).
        (
            "GET",
            "/products?after=J%C3%AE%00T",
            None,
            422,
            Some("after"),
        ),
        ("GET", "/products?after=", None, 422, Some("after")),
        ("GET", "/products/no-such-product", None, 404, None),
        ("GET", "/products/bad%20id", None, 400, Some("product_id")),
        (
            "PUT",
            "/products/fresh-product",
            Some(r#"{"available": 5}"#),
            201,
            None,
        ),
        (
            "PUT",
            "/products/fresh-product",
            Some(r#"{"available": 7}"#),
            200,
            None,
        ),
        // JSON Schema counts 7.0 as an integer, and so does the API; 7.5 is not one.
        (
            "PUT",
            "/products/fresh-product",
            Some(r#"{"available": 7.0}"#),
            200,
            None,
        ),
        (
            "PUT",
            "/products/fresh-product",
            Some(r#"{"available": 7.5}"#),
            400,
            Some("available"),
        ),
        (
            "PUT",
            "/products/fresh-product",
            Some(r#"{"available": -1}"#),
            422,
            Some("available"),
        ),
        (
            "PUT",
            "/products/fresh-product",
            Some(r#"{"available": "many"}"#),
            400,
            Some("available"),
        ),
        ("PUT", "/products/fresh-product", Some("{"), 400, None),
        (
            "GET",
            "/reservations/not-a-uuid",
            None,
            400,
            Some("order_id"),
        ),
        (
            "GET",
            "/reservations/0199c3e1-0000-7000-8000-000000000001",
            None,
            404,
            None,
        ),
        ("DELETE", "/products/widget-blue", None, 405, None),
    ];
    for &(method, path, body, status, field) in cases {
        let mut request = service
            .http
            .request(method.parse().unwrap(), format!("{}{path}", service.base));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_owned());
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{method} {path}");
        if status >= 400 {
            assert_eq!(
                response.headers()["content-type"],
                "application/problem+json",
                "{method} {path}"
            );
            let problem: Value = response.json().await.unwrap();
            assert_eq!(problem["status"], status);
            if let Some(field) = field {
                assert_eq!(
                    problem["errors"][0]["field"], field,
                    "{method} {path}: {problem}"
                );
            }
        }
    }
    assert_eq!(service.stock("fresh-product").await, (7, 0, 0));
    let openapi: Value = service
        .http
        .get(format!("{}/openapi.json", service.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(openapi["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(openapi["paths"]["/products/{product_id}"]["put"].is_object());
}

#[tokio::test]
async fn a_reservation_is_held_committed_and_answered_once() {
    let service = Service::start().await;
    let mut bus = service.bus().await;
    service.set_stock("apple", 10).await;
    service.set_stock("pear", 4).await;

    let placed = order(&[("pear", 4), ("apple", 3)]);
    let envelope = bus.publish_message(&placed).await;
    let reply = bus.next(PATIENCE).await;
    match reply.payload {
        AnyMessage::StockReserved(reserved) => {
            assert_eq!(
                (reserved.order_id, reserved.customer_id, reserved.total),
                (placed.order_id, placed.customer_id, placed.total)
            );
        }
        other => panic!("expected StockReserved, got {other:?}"),
    }
    assert_eq!(reply.causation_id, Some(envelope.message_id));
    assert_eq!(service.stock("apple").await, (7, 3, 0));
    assert_eq!(service.stock("pear").await, (0, 4, 0));

    // A redelivery of the same message changes nothing and is not answered.
    bus.publish(&envelope).await;
    bus.expect_silence(Duration::from_millis(500)).await;
    assert_eq!(service.stock("apple").await, (7, 3, 0));

    bus.publish_message(&CommitStock {
        order_id: placed.order_id,
    })
    .await;
    assert!(matches!(
        bus.next(PATIENCE).await.payload,
        AnyMessage::StockCommitted(_)
    ));
    assert_eq!(service.stock("apple").await, (7, 0, 3));
    assert_eq!(service.stock("pear").await, (0, 0, 4));
    let reservation: Value = service
        .http
        .get(format!("{}/reservations/{}", service.base, placed.order_id))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(reservation["status"], "Committed");
    assert_eq!(reservation["lines"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn failures_hold_nothing_and_say_why() {
    let service = Service::start().await;
    let mut bus = service.bus().await;
    service.set_stock("apple", 2).await;
    let cases = [
        (
            order(&[("apple", 3)]),
            "insufficient stock for apple: 3 requested, 2 available",
        ),
        (
            order(&[("apple", 1), ("durian", 1)]),
            "unknown product durian",
        ),
    ];
    for (placed, reason) in cases {
        bus.publish_message(&placed).await;
        match bus.next(PATIENCE).await.payload {
            AnyMessage::StockFailed(failed) => assert_eq!(failed.reason, reason),
            other => panic!("expected StockFailed, got {other:?}"),
        }
        assert_eq!(
            service.stock("apple").await,
            (2, 0, 0),
            "nothing held after {reason}"
        );
    }
}

#[tokio::test]
async fn a_release_returns_stock_and_a_release_before_the_reservation_leaves_a_tombstone() {
    let service = Service::start().await;
    let mut bus = service.bus().await;
    service.set_stock("apple", 5).await;

    let placed = order(&[("apple", 2)]);
    bus.publish_message(&placed).await;
    assert!(matches!(
        bus.next(PATIENCE).await.payload,
        AnyMessage::StockReserved(_)
    ));
    let release = ReleaseStock {
        order_id: placed.order_id,
        reason: "payment failed".into(),
    };
    bus.publish_message(&release).await;
    assert!(matches!(
        bus.next(PATIENCE).await.payload,
        AnyMessage::StockReleased(_)
    ));
    assert_eq!(service.stock("apple").await, (5, 0, 0));

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
    assert_eq!(service.stock("apple").await, (5, 0, 0));
}

#[tokio::test]
async fn concurrent_orders_for_the_last_units_never_oversell() {
    let service = Service::start().await;
    let mut bus = service.bus().await;
    service.set_stock("last-units", 5).await;
    let orders: Vec<Envelope> = {
        let mut published = Vec::new();
        for _ in 0..40 {
            published.push(bus.publish_message(&order(&[("last-units", 1)])).await);
        }
        published
    };
    let (mut reserved, mut failed) = (0, 0);
    for _ in &orders {
        match bus.next(PATIENCE).await.payload {
            AnyMessage::StockReserved(_) => reserved += 1,
            AnyMessage::StockFailed(_) => failed += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((reserved, failed), (5, 35));
    assert_eq!(service.stock("last-units").await, (0, 5, 0));
}

/// Regression: with several messages per transaction, reservations took hot product rows out of
/// order across messages and deadlocked each other under load (each deadlock stalls a second).
/// Concurrent multi-line orders over shared products must not cause a single deadlock.
#[tokio::test]
async fn concurrent_multi_product_orders_never_deadlock() {
    let service = Service::start().await;
    let mut bus = service.bus().await;
    let products = ["hot-a", "hot-b", "hot-c", "hot-d"];
    for product in products {
        service.set_stock(product, 1_000_000).await;
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
    let database = service._database.connect().await;
    let deadlocks = sea_orm::ConnectionTrait::query_one_raw(
        &database,
        sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()",
        ),
    )
    .await
    .unwrap()
    .unwrap()
    .try_get_by_index::<i64>(0)
    .unwrap();
    assert_eq!(deadlocks, 0, "reservations deadlocked");
}
