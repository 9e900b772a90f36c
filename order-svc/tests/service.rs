//! order-svc in one process: the real service on port 0 with its own database and vhost, driven
//! over HTTP, with the participants' answers published by the test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use contracts::{
    AnyMessage, CustomerId, MessageType, Money, OrderId, PaymentFailed, PaymentId,
    PaymentSucceeded, StockCommitted, StockFailed, StockReserved,
};
use order_svc::Config;
use serde_json::{Value, json};
use testkit::bus::TestBus;
use testkit::service::{RunningService, ServiceEnv};

const PATIENCE: Duration = Duration::from_secs(20);
const CUSTOMER: &str = "0199c3e1-0000-7000-8000-0000000000c1";

async fn start(saga_timeout: Duration) -> RunningService {
    RunningService::start(true, move |env: ServiceEnv| {
        let config = Config {
            database_url: env.database_url,
            amqp_url: env.amqp_url,
            http_addr: env.listener.local_addr().unwrap(),
            startup_timeout: Duration::from_secs(10),
            database_max_connections: 4,
            saga_timeout,
        };
        order_svc::run_with_listener(config, env.listener, env.shutdown)
    })
    .await
}

async fn listen(service: &RunningService) -> TestBus {
    TestBus::connect(
        &service.amqp_url,
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

fn order_body(lines: &[(&str, i64, i64)]) -> String {
    let items: Vec<Value> = lines
        .iter()
        .map(|(product, quantity, price)| json!({"product_id": product, "quantity": quantity, "unit_price": price}))
        .collect();
    json!({ "customer_id": CUSTOMER, "items": items }).to_string()
}

async fn place(service: &RunningService, body: &str) -> Value {
    let response = service.request("POST", "/orders", Some(body), &[]).await;
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

async fn wait_status(service: &RunningService, id: &str, status: &str) -> Value {
    service
        .wait_for_json(&format!("/orders/{id}"), PATIENCE, |order| {
            order["status"] == status
        })
        .await
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

/// Method, path, body, headers, status, problem fields.
type Case = (
    &'static str,
    &'static str,
    Option<String>,
    Vec<(&'static str, &'static str)>,
    u16,
    Vec<&'static str>,
);

#[tokio::test]
async fn every_invalid_request_gets_its_status_and_names_its_fields() {
    let service = start(Duration::from_secs(30)).await;
    let long_key: &'static str = Box::leak("k".repeat(256).into_boxed_str());
    let cases: Vec<Case> = vec![
        (
            "POST",
            "/orders",
            Some(order_body(&[("a", 1, 100)])),
            vec![],
            201,
            vec![],
        ),
        (
            "POST",
            "/orders",
            Some("{".into()),
            vec![],
            400,
            vec!["body"],
        ),
        (
            "POST",
            "/orders",
            Some(r#"{"customer_id": 7, "items": []}"#.into()),
            vec![],
            400,
            vec!["customer_id"],
        ),
        (
            "POST",
            "/orders",
            Some(format!(r#"{{"customer_id": "{CUSTOMER}"}}"#)),
            vec![],
            400,
            vec!["items"],
        ),
        (
            "POST",
            "/orders",
            Some(format!(
                r#"{{"customer_id": "{CUSTOMER}", "items": [{{"product_id": "a", "quantity": 1.5, "unit_price": 1}}]}}"#
            )),
            vec![],
            400,
            vec!["items[0].quantity"],
        ),
        (
            "POST",
            "/orders",
            Some(json!({"customer_id": "not-a-uuid", "items": []}).to_string()),
            vec![],
            422,
            vec!["customer_id", "items"],
        ),
        (
            "POST",
            "/orders",
            Some(order_body(&[
                ("a", 0, -1),
                ("bad id", 10_001, 1_000_000_001),
            ])),
            vec![],
            422,
            vec![
                "items[0].quantity",
                "items[0].unit_price",
                "items[1].product_id",
                "items[1].quantity",
                "items[1].unit_price",
            ],
        ),
        (
            "POST",
            "/orders",
            Some(order_body(&[("a", 1, 1), ("a", 2, 1)])),
            vec![],
            422,
            vec!["items[1].product_id"],
        ),
        (
            "POST",
            "/orders",
            Some(order_body(&[("a", 1, 1)])),
            vec![("Idempotency-Key", long_key)],
            400,
            vec!["Idempotency-Key"],
        ),
        (
            "POST",
            "/orders",
            Some(format!(
                r#"{{"customer_id": "{CUSTOMER}", "items": [], "pad": "{}"}}"#,
                "x".repeat(70_000)
            )),
            vec![],
            413,
            vec![],
        ),
        ("GET", "/orders/not-a-uuid", None, vec![], 400, vec!["id"]),
        (
            "GET",
            "/orders/0199c3e1-0000-7000-8000-000000000001",
            None,
            vec![],
            404,
            vec![],
        ),
        (
            "GET",
            "/orders?status=Lost",
            None,
            vec![],
            422,
            vec!["status"],
        ),
        ("GET", "/orders?limit=0", None, vec![], 422, vec!["limit"]),
        (
            "GET",
            "/orders?customer_id=x",
            None,
            vec![],
            400,
            vec!["customer_id"],
        ),
        ("GET", "/orders?cursor=x", None, vec![], 400, vec!["cursor"]),
        ("DELETE", "/orders", None, vec![], 405, vec![]),
        ("GET", "/nowhere", None, vec![], 404, vec![]),
    ];
    for (method, path, body, headers, status, fields) in cases {
        let response = service
            .request(method, path, body.as_deref(), &headers)
            .await;
        assert_eq!(
            response.status().as_u16(),
            status,
            "{method} {path} {body:?}"
        );
        if status < 400 {
            continue;
        }
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{method} {path}"
        );
        let problem: Value = response.json().await.unwrap();
        let found: Vec<&str> = problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert_eq!(found, fields, "{method} {path}: {problem}");
    }
    // Not JSON at all.
    let response = service
        .http
        .post(format!("{}/orders", service.base))
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
}

#[tokio::test]
async fn an_order_is_placed_with_its_first_message_and_an_idempotency_key_makes_it_once() {
    let service = start(Duration::from_secs(30)).await;
    let mut bus = listen(&service).await;
    let body = order_body(&[("widget", 3, 1_250), ("gadget", 1, 9_999)]);
    let key = [("Idempotency-Key", "checkout-42")];
    let first = service.request("POST", "/orders", Some(&body), &key).await;
    assert_eq!(first.status(), 201);
    let location = first.headers()["location"].to_str().unwrap().to_owned();
    let order: Value = first.json().await.unwrap();
    assert_eq!(
        location,
        format!("/orders/{}", order["id"].as_str().unwrap())
    );
    assert_eq!(
        (order["status"].as_str(), order["total"].as_i64()),
        (Some("Pending"), Some(13_749))
    );

    let created = bus.next(PATIENCE).await;
    match created.payload {
        AnyMessage::OrderCreated(message) => {
            assert_eq!(message.order_id.to_string(), order["id"].as_str().unwrap());
            assert_eq!(message.total, Money::new(13_749).unwrap());
            assert_eq!(message.items.len(), 2);
        }
        other => panic!("expected OrderCreated, got {other:?}"),
    }

    let again = service.request("POST", "/orders", Some(&body), &key).await;
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], order["id"]);
    let different = service
        .request(
            "POST",
            "/orders",
            Some(&order_body(&[("widget", 4, 1_250)])),
            &key,
        )
        .await;
    assert_eq!(different.status(), 409);
    bus.expect_silence(Duration::from_millis(300)).await;

    let (status, page) = service
        .get_json(&format!("/orders?customer_id={CUSTOMER}"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn the_saga_carries_an_order_to_completed_and_announces_it() {
    let service = start(Duration::from_secs(30)).await;
    let mut bus = listen(&service).await;
    let order = place(&service, &order_body(&[("widget", 2, 500)])).await;
    let id = order["id"].as_str().unwrap().to_owned();
    let order_id: OrderId = id.parse().unwrap();
    assert!(matches!(
        bus.next(PATIENCE).await.payload,
        AnyMessage::OrderCreated(_)
    ));

    let customer_id: CustomerId = CUSTOMER.parse().unwrap();
    let total = Money::new(1_000).unwrap();
    bus.publish_message(&StockReserved {
        order_id,
        customer_id,
        total,
    })
    .await;
    wait_status(&service, &id, "Reserved").await;
    let paid = bus
        .publish_message(&PaymentSucceeded {
            order_id,
            payment_id: PaymentId::generate(),
            amount: total,
        })
        .await;
    wait_status(&service, &id, "Paid").await;
    let commit = bus.next(PATIENCE).await;
    assert!(matches!(commit.payload, AnyMessage::CommitStock(_)));
    assert_eq!(commit.causation_id, Some(paid.message_id));
    // A redelivered payment changes nothing and asks for nothing.
    bus.publish(&paid).await;
    bus.publish_message(&StockCommitted { order_id }).await;
    let completed = wait_status(&service, &id, "Completed").await;
    assert!(matches!(
        bus.next(PATIENCE).await.payload,
        AnyMessage::OrderCompleted(_)
    ));
    bus.expect_silence(Duration::from_millis(300)).await;
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
    let customer_id: CustomerId = CUSTOMER.parse().unwrap();

    // Stock failure: nothing to compensate.
    let order = place(&service, &order_body(&[("widget", 2, 500)])).await;
    let id = order["id"].as_str().unwrap().to_owned();
    let order_id: OrderId = id.parse().unwrap();
    assert!(matches!(
        bus.next(PATIENCE).await.payload,
        AnyMessage::OrderCreated(_)
    ));
    bus.publish_message(&StockFailed {
        order_id,
        reason: "unknown product widget".into(),
    })
    .await;
    let cancelled = wait_status(&service, &id, "Cancelled").await;
    assert_eq!(
        cancelled["cancellation_reason"],
        "stock not reserved: unknown product widget"
    );
    assert!(matches!(
        bus.next(PATIENCE).await.payload,
        AnyMessage::OrderCancelled(_)
    ));

    // Payment failure after the reservation: the reservation is released.
    let order = place(&service, &order_body(&[("widget", 2, 500)])).await;
    let id = order["id"].as_str().unwrap().to_owned();
    let order_id: OrderId = id.parse().unwrap();
    assert!(matches!(
        bus.next(PATIENCE).await.payload,
        AnyMessage::OrderCreated(_)
    ));
    bus.publish_message(&StockReserved {
        order_id,
        customer_id,
        total: Money::new(1_000).unwrap(),
    })
    .await;
    wait_status(&service, &id, "Reserved").await;
    bus.publish_message(&PaymentFailed {
        order_id,
        reason: "insufficient balance".into(),
    })
    .await;
    let cancelled = wait_status(&service, &id, "Cancelled").await;
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
async fn a_deadline_cancels_a_waiting_order_and_late_answers_are_compensated() {
    let service = start(Duration::from_secs(1)).await;
    let mut bus = listen(&service).await;
    let order = place(&service, &order_body(&[("widget", 1, 700)])).await;
    let id = order["id"].as_str().unwrap().to_owned();
    let order_id: OrderId = id.parse().unwrap();
    assert!(matches!(
        bus.next(PATIENCE).await.payload,
        AnyMessage::OrderCreated(_)
    ));
    let cancelled = wait_status(&service, &id, "Cancelled").await;
    assert_eq!(cancelled["cancellation_reason"], "not completed within 1 s");
    assert!(matches!(
        bus.next(PATIENCE).await.payload,
        AnyMessage::OrderCancelled(_)
    ));

    let total = Money::new(700).unwrap();
    bus.publish_message(&StockReserved {
        order_id,
        customer_id: CUSTOMER.parse().unwrap(),
        total,
    })
    .await;
    assert!(matches!(
        bus.next(PATIENCE).await.payload,
        AnyMessage::ReleaseStock(_)
    ));
    bus.publish_message(&PaymentSucceeded {
        order_id,
        payment_id: PaymentId::generate(),
        amount: total,
    })
    .await;
    assert!(matches!(
        bus.next(PATIENCE).await.payload,
        AnyMessage::RefundPayment(_)
    ));
    let settled = service
        .wait_for_json(&format!("/orders/{id}"), PATIENCE, |order| {
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
async fn a_payment_answer_that_overtakes_the_reservation_still_completes_the_order() {
    let service = start(Duration::from_secs(30)).await;
    let mut bus = listen(&service).await;
    let order = place(&service, &order_body(&[("widget", 1, 300)])).await;
    let id = order["id"].as_str().unwrap().to_owned();
    let order_id: OrderId = id.parse().unwrap();
    assert!(matches!(
        bus.next(PATIENCE).await.payload,
        AnyMessage::OrderCreated(_)
    ));
    let total = Money::new(300).unwrap();
    bus.publish_message(&PaymentSucceeded {
        order_id,
        payment_id: PaymentId::generate(),
        amount: total,
    })
    .await;
    wait_status(&service, &id, "Paid").await;
    bus.publish_message(&StockReserved {
        order_id,
        customer_id: CUSTOMER.parse().unwrap(),
        total,
    })
    .await;
    assert!(matches!(
        bus.next(PATIENCE).await.payload,
        AnyMessage::CommitStock(_)
    ));
    bus.publish_message(&StockCommitted { order_id }).await;
    let completed = wait_status(&service, &id, "Completed").await;
    assert_eq!(
        timeline(&completed),
        steps(&[
            ("Pending", "PaymentSucceeded", "Paid"),
            ("Paid", "StockCommitted", "Completed")
        ])
    );
}

#[tokio::test]
async fn an_event_the_saga_cannot_decide_is_dead_lettered_with_its_reason() {
    let service = start(Duration::from_secs(30)).await;
    let bus = listen(&service).await;
    let order = place(&service, &order_body(&[("widget", 1, 300)])).await;
    let order_id: OrderId = order["id"].as_str().unwrap().parse().unwrap();
    bus.publish_message(&StockCommitted { order_id }).await;
    let dlq = outbox::dead_letter_queue("order-svc.StockCommitted");
    for _ in 0..400 {
        if service.vhost.queue_depth(&dlq) == 1 {
            let (_, unchanged) = service.get_json(&format!("/orders/{order_id}")).await;
            assert_eq!(unchanged["status"], "Pending");
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("StockCommitted in Pending was not dead-lettered");
}

#[tokio::test]
async fn lists_page_newest_first_and_the_saga_is_served_as_run() {
    let service = start(Duration::from_secs(30)).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(
            place(&service, &order_body(&[("widget", 1, 1)])).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
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
}
