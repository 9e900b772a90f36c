//! Dead letters as an operator's tool, on the real service: listed with their reason,
//! attempts, sender and payload; counted in `/metrics`; redriven (one, or by filter) back to
//! their queue — where one that was in fact applied before changes nothing and one that was not
//! is handled — and discarded. Operators only.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{PATIENCE, bus, order, set_product, start, stock};
use contracts::{AnyMessage, Envelope, Service};
use serde_json::{Value, json};
use testkit::auth::Identity;
use testkit::service::RunningService;

const QUEUE: &str = "inventory-svc.OrderCreated";

/// `GET /dead-letters?query` as an operator.
async fn listing(service: &RunningService, query: &str) -> Value {
    let (status, body) = service.get_json(&format!("/dead-letters?{query}")).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The ids listed for `QUEUE`.
async fn listed_ids(service: &RunningService) -> Vec<String> {
    let body = listing(service, &format!("queue={QUEUE}")).await;
    body["dead_letters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|letter| letter["id"].as_str().unwrap().to_owned())
        .collect()
}

/// `method path` with `body` as `identity`: the status and the JSON answered.
async fn call(
    service: &RunningService,
    identity: &Identity,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let text = body.map(|body| body.to_string());
    let response = service
        .request_as(identity, method, path, text.as_deref(), &[])
        .await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn operators_list_redrive_and_discard_dead_letters_and_a_redriven_message_applies_once() {
    let service = start().await;
    let mut bus = bus(&service).await;
    set_product(&service, "dl-widget", 10, 250).await;

    // An order handled normally...
    let applied_order = order(&[("dl-widget", 2)]);
    let applied = bus.publish_message(&applied_order).await;
    let answer = bus.next(PATIENCE).await;
    assert!(
        matches!(answer.payload, AnyMessage::StockReserved(_)),
        "{answer:?}"
    );
    assert_eq!(stock(&service, "dl-widget").await, (8, 2, 0));
    // ...whose message also ended in the dead-letter queue (a copy the consumer died holding
    // after it committed, say); another order's message that never was handled; and poison.
    bus.dead_letter(
        Service::Inventory,
        QUEUE,
        &applied,
        "gave up after 5 attempts: database: connection reset",
    )
    .await;
    let waiting = Envelope::new(&order(&[("dl-widget", 3)]), None).unwrap();
    bus.dead_letter(
        Service::Inventory,
        QUEUE,
        &waiting,
        "gave up after 5 attempts: database: connection reset",
    )
    .await;
    bus.dead_letter_poison(
        QUEUE,
        "poison-1",
        "undecodable: expected value at line 1 column 1",
    )
    .await;

    // Listed with what an operator needs, and counted.
    let body = listing(&service, "").await;
    let depth = body["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|queue| queue["queue"] == QUEUE)
        .unwrap()["dead_letters"]
        .clone();
    assert_eq!(depth, 3, "{body}");
    let letters = body["dead_letters"].as_array().unwrap();
    assert_eq!(letters.len(), 3, "{body}");
    let first = &letters[0];
    assert_eq!(first["id"], applied.message_id.to_string());
    assert_eq!(first["type"], "OrderCreated");
    assert_eq!(first["correlation_id"], applied.correlation_id.to_string());
    assert_eq!(
        first["reason"],
        "gave up after 5 attempts: database: connection reset"
    );
    assert_eq!(first["attempts"], 1);
    assert_eq!(first["sender"], bus.user_of(Service::Order));
    assert_eq!(
        first["payload"]["order_id"],
        applied.correlation_id.to_string()
    );
    assert_eq!(letters[2]["payload"], "not json");
    let metrics = service
        .http
        .get(format!("{}/metrics", service.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.lines().any(|line| line.starts_with("dead_letters{")
            && line.contains(QUEUE)
            && line.ends_with(" 3")),
        "dead_letters gauge: {metrics}"
    );

    // Filters narrow the listing; one can be read alone.
    let cases = [
        ("type=OrderCreated", 2),
        ("reason=UNDECODABLE", 1),
        ("reason=connection%20reset&limit=1", 1),
        ("type=StockReserved", 0),
    ];
    for (query, expected) in cases {
        let body = listing(&service, query).await;
        assert_eq!(
            body["dead_letters"].as_array().unwrap().len(),
            expected,
            "{query}: {body}"
        );
    }
    let (status, one) = service
        .get_json(&format!("/dead-letters/{QUEUE}/{}", waiting.message_id))
        .await;
    assert_eq!(
        (status.as_u16(), &one["id"]),
        (200, &json!(waiting.message_id.to_string()))
    );

    // Only operators, and only with a selection that says what it selects.
    let refusals = [
        (
            Identity::Anonymous,
            "GET",
            "/dead-letters".to_owned(),
            None,
            401,
        ),
        (
            Identity::Customer(uuid::Uuid::now_v7()),
            "GET",
            "/dead-letters".to_owned(),
            None,
            403,
        ),
        (
            Identity::Customer(uuid::Uuid::now_v7()),
            "POST",
            "/dead-letters/redrive".to_owned(),
            Some(json!({"all": true})),
            403,
        ),
        (
            Identity::Customer(uuid::Uuid::now_v7()),
            "DELETE",
            format!("/dead-letters/{QUEUE}/poison-1"),
            None,
            403,
        ),
        (
            Identity::Operator,
            "POST",
            "/dead-letters/discard".to_owned(),
            Some(json!({})),
            422,
        ),
        (
            Identity::Operator,
            "POST",
            "/dead-letters/redrive".to_owned(),
            Some(json!({"queue": "order-svc.StockReserved"})),
            422,
        ),
        (
            Identity::Operator,
            "GET",
            format!("/dead-letters/{QUEUE}/no-such-id"),
            None,
            404,
        ),
        (
            Identity::Operator,
            "GET",
            "/dead-letters?limit=0".to_owned(),
            None,
            422,
        ),
    ];
    for (identity, method, path, body, expected) in refusals {
        let (status, answer) = call(&service, &identity, method, &path, body).await;
        assert_eq!(status, expected, "{identity:?} {method} {path}: {answer}");
    }
    assert_eq!(
        listed_ids(&service).await.len(),
        3,
        "refusals moved nothing"
    );

    // The applied message, redriven, changes nothing: the inbox knows it.
    let (status, moved) = call(
        &service,
        &Identity::Operator,
        "POST",
        &format!("/dead-letters/{QUEUE}/{}/redrive", applied.message_id),
        None,
    )
    .await;
    assert_eq!((status, moved["count"].clone()), (200, json!(1)));
    bus.expect_silence(Duration::from_secs(3)).await;
    assert_eq!(stock(&service, "dl-widget").await, (8, 2, 0));

    // The message that never was handled, redriven by filter, is handled now.
    let (status, moved) = call(
        &service,
        &Identity::Operator,
        "POST",
        "/dead-letters/redrive",
        Some(json!({"type": "OrderCreated"})),
    )
    .await;
    assert_eq!((status, moved["count"].clone()), (200, json!(1)));
    let answer = bus.next(PATIENCE).await;
    assert_eq!(answer.correlation_id, waiting.correlation_id);
    assert!(
        matches!(answer.payload, AnyMessage::StockReserved(_)),
        "{answer:?}"
    );
    assert_eq!(stock(&service, "dl-widget").await, (5, 5, 0));

    // Poison redriven comes back with its reason; discarded, it is gone.
    let (status, moved) = call(
        &service,
        &Identity::Operator,
        "POST",
        "/dead-letters/redrive",
        Some(json!({"ids": ["poison-1"]})),
    )
    .await;
    assert_eq!((status, moved["count"].clone()), (200, json!(1)));
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while listed_ids(&service).await != ["poison-1"] {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the poison came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let back = listing(&service, "").await;
    let poison = &back["dead_letters"][0];
    assert_eq!(poison["redriven"], 1, "{back}");
    assert!(
        poison["reason"]
            .as_str()
            .is_some_and(|reason| !reason.is_empty()),
        "dead-lettered again with the consumer's reason: {back}"
    );
    let (status, moved) = call(
        &service,
        &Identity::Operator,
        "DELETE",
        &format!("/dead-letters/{QUEUE}/poison-1"),
        None,
    )
    .await;
    assert_eq!((status, moved["count"].clone()), (200, json!(1)));
    assert!(listed_ids(&service).await.is_empty());
}
