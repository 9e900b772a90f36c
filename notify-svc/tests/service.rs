//! notify-svc end to end in one process: the real service on port 0 with its own vhost (as its
//! own broker user), fed through the broker and read over HTTP with bearer tokens.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{PATIENCE, await_notifications, bus, envelope, money, notifications, paid, start};
use contracts::{
    CustomerId, EXCHANGE, Envelope, MessageId, OrderCancelled, OrderCompleted, OrderId,
    PaymentFailed, PricedLine, ProductId, Quantity, StockFailed, StockReserved,
};
use serde_json::{Value, json};
use testkit::auth::{self, Identity, expired_token, forged_token};
use testkit::service::RunningService;

#[tokio::test]
async fn every_consumed_type_notifies_the_customer_of_its_order() {
    let service = start().await;
    let bus = bus(&service).await;
    let order = OrderId::generate;
    let customer = CustomerId::generate;
    let cases: Vec<(Envelope, CustomerId, &str, String)> = [
        {
            let (order_id, customer_id) = (order(), customer());
            (
                envelope(&StockFailed {
                    order_id,
                    customer_id,
                    reason: "unknown product durian".into(),
                }),
                customer_id,
                "StockFailed",
                format!(
                    "The items of your order {order_id} could not be reserved: unknown product durian"
                ),
            )
        },
        {
            let (order_id, customer_id) = (order(), customer());
            (
                envelope(&PaymentFailed {
                    order_id,
                    customer_id,
                    reason: "insufficient balance: 1500 needed, 900 available".into(),
                }),
                customer_id,
                "PaymentFailed",
                format!(
                    "Payment for your order {order_id} failed: insufficient balance: 1500 needed, 900 available"
                ),
            )
        },
        {
            let (order_id, customer_id) = (order(), customer());
            (
                paid(order_id, customer_id, 2_500),
                customer_id,
                "PaymentSucceeded",
                format!("Payment of 25.00 received for order {order_id}"),
            )
        },
        {
            let (order_id, customer_id) = (order(), customer());
            (
                envelope(&OrderCompleted {
                    order_id,
                    customer_id,
                    total: money(1_999),
                }),
                customer_id,
                "OrderCompleted",
                format!("Your order {order_id} is complete; 19.99 was charged"),
            )
        },
        {
            let (order_id, customer_id) = (order(), customer());
            (
                envelope(&OrderCancelled {
                    order_id,
                    customer_id,
                    reason: "deadline passed".into(),
                }),
                customer_id,
                "OrderCancelled",
                format!("Your order {order_id} was cancelled: deadline passed"),
            )
        },
    ]
    .into();
    for (published, ..) in &cases {
        bus.publish(published).await;
    }
    for (published, customer_id, kind, text) in &cases {
        let listed = await_notifications(&service, published.correlation_id, 1).await;
        assert_eq!(listed.len(), 1, "{kind}: {listed:?}");
        let notification = &listed[0];
        assert_eq!(notification["kind"], *kind);
        assert_eq!(notification["message"], text.as_str());
        assert_eq!(
            notification["order_id"],
            published.correlation_id.to_string()
        );
        assert_eq!(notification["customer_id"], customer_id.to_string());
        assert_eq!(notification["message_id"], published.message_id.to_string());
        assert!(notification["sent_at"].as_str().unwrap().ends_with('Z'));
    }
}

/// Only messages of the types notify subscribes to, from the service that produces each, are
/// ever notified: a type it does not hear passes it by, and a message put on its queues by
/// anyone else (here the broker's administrator, with no `user_id`) is dead-lettered unread.
#[tokio::test]
async fn only_subscribed_messages_from_their_producers_notify_anyone() {
    let service = start().await;
    let bus = bus(&service).await;
    let (order_id, customer_id) = (OrderId::generate(), CustomerId::generate());
    let reserved = envelope(
        &StockReserved::new(
            order_id,
            customer_id,
            vec![PricedLine {
                product_id: ProductId::new("apple").unwrap(),
                quantity: Quantity::new(1).unwrap(),
                unit_price: money(100),
            }],
        )
        .unwrap(),
    );
    // Through the exchange, from inventory: no queue of notify's is bound to it.
    bus.publish(&reserved).await;

    // (exchange, routing key, envelope, the queue whose dead letters receive it).
    let forged_payment = paid(order_id, customer_id, 1_000);
    let cases: &[(&str, &str, &Envelope, &str)] = &[
        // Straight onto one of notify's queues, of a type that queue does not even carry.
        (
            "",
            "notify-svc.StockFailed",
            &reserved,
            "notify-svc.StockFailed",
        ),
        // Through the exchange, of a type notify hears, but not from payment-svc.
        (
            EXCHANGE,
            "PaymentSucceeded",
            &forged_payment,
            "notify-svc.PaymentSucceeded",
        ),
    ];
    for &(exchange, routing_key, published, queue) in cases {
        let outgoing = outbox::wire::outgoing(&outbox::NewMessage::from(published));
        bus.publish_raw(exchange, routing_key, outgoing.properties, &outgoing.body)
            .await;
        let dead_letters = outbox::dead_letter_queue(queue);
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while service.vhost.queue_depth(&dead_letters) == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "nothing reached {dead_letters}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(service.vhost.queue_depth(&dead_letters), 1, "{queue}");
    }

    // A message that is notified for the same order comes through alone.
    let sentinel = paid(order_id, customer_id, 300);
    bus.publish(&sentinel).await;
    let listed = await_notifications(&service, order_id, 1).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["message_id"], sentinel.message_id.to_string());
}

#[tokio::test]
async fn http_requests_get_their_status_and_problem_fields() {
    let service = start().await;
    // Path, expected status, expected problem field.
    let cases: &[(&str, u16, Option<&str>)] = &[
        (
            "/notifications?order_id=0199c3e1-0000-7000-8000-000000000001",
            200,
            None,
        ),
        ("/notifications", 400, Some("order_id")),
        ("/notifications?other=1", 400, Some("order_id")),
        ("/notifications?order_id=", 400, Some("order_id")),
        ("/notifications?order_id=not-a-uuid", 400, Some("order_id")),
        ("/health/ready", 200, None),
        ("/health/live", 200, None),
        ("/nowhere", 404, None),
    ];
    for &(path, status, field) in cases {
        let response = service.request("GET", path, None, &[]).await;
        assert_eq!(response.status().as_u16(), status, "{path}");
        if status >= 400 {
            assert_eq!(
                response.headers()["content-type"],
                "application/problem+json",
                "{path}"
            );
            let problem: Value = response.json().await.unwrap();
            assert_eq!(problem["status"], status);
            if let Some(field) = field {
                assert_eq!(problem["errors"][0]["field"], field, "{path}: {problem}");
            }
        }
    }
    let unknown = notifications(
        &service,
        "0199c3e1-0000-7000-8000-000000000001".parse().unwrap(),
    )
    .await;
    assert!(unknown.is_empty());

    let response = service.request("DELETE", "/notifications", None, &[]).await;
    assert_eq!(response.status(), 405);

    let (_, openapi) = service.get_json("/openapi.json").await;
    assert!(openapi["openapi"].as_str().unwrap().starts_with("3.1"));
    let list = &openapi["paths"]["/notifications"]["get"];
    assert!(list.is_object(), "{openapi}");
    assert_eq!(list["parameters"][0]["name"], "order_id");
    assert_eq!(list["parameters"][0]["required"], true);
    assert!(list["responses"]["400"].is_object());
    assert!(list["responses"]["401"].is_object(), "{list}");
    assert_eq!(list["security"], json!([{"bearer": []}]), "{list}");
    assert_eq!(
        list["responses"]["200"]["description"],
        "The order's notifications the caller may read"
    );
    let schema = &openapi["components"]["schemas"]["Notification"];
    assert!(
        schema["required"]
            .as_array()
            .unwrap()
            .contains(&json!("customer_id")),
        "{schema}"
    );
}

/// What a caller gets: a list of exactly these notifications (by message id, in order), or an
/// answer of this status.
#[derive(Clone, Copy)]
enum Answer<'a> {
    Lists(&'a [MessageId]),
    Status(u16),
}

/// Sends `GET path` as `caller` and checks the answer: the notifications `expected` lists, or
/// its status with a problem+json body for every error (with a bearer challenge on 401).
async fn check(
    service: &RunningService,
    (caller, identity): &(&str, Identity),
    path: &str,
    expected: &Answer<'_>,
) {
    let case = format!("{caller}: GET {path}");
    let response = service.request_as(identity, "GET", path, None, &[]).await;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let expected_status = match expected {
        Answer::Lists(_) => 200,
        Answer::Status(status) => *status,
    };
    assert_eq!(status, expected_status, "{case}: {text}");
    if let Answer::Lists(message_ids) = expected {
        let listed: Vec<Value> = serde_json::from_str(&text).unwrap();
        let ids: Vec<String> = listed
            .iter()
            .map(|notification| notification["message_id"].as_str().unwrap().to_owned())
            .collect();
        let expected_ids: Vec<String> = message_ids.iter().map(ToString::to_string).collect();
        assert_eq!(ids, expected_ids, "{case}");
    }
    if status < 400 {
        return;
    }
    assert_eq!(
        headers["content-type"], "application/problem+json",
        "{case}"
    );
    let problem: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(problem["status"], status, "{case}");
    if status == 401 {
        let challenge = headers["www-authenticate"].to_str().unwrap();
        assert!(challenge.starts_with("Bearer"), "{case}: {challenge}");
    }
}

/// Every endpoint × every kind of caller. An operator reads every order's notifications; a
/// customer only those sent to them: customer B's view of A's order is the empty list that an
/// order nothing was sent about gives, so B cannot tell that it exists.
#[tokio::test]
async fn every_endpoint_answers_each_kind_of_caller() {
    let service = start().await;
    let bus = bus(&service).await;
    let customer_a = auth::customer();
    let customer_b = auth::customer();
    let callers = [
        ("no token", Identity::Anonymous),
        // A's own token, expired, and an operator's, forged: neither grants anything.
        (
            "expired token",
            expired_token(&Identity::Customer(customer_a)),
        ),
        ("wrong signature", forged_token(&Identity::Operator)),
        ("customer A", Identity::Customer(customer_a)),
        ("customer B", Identity::Customer(customer_b)),
        ("operator", Identity::Operator),
    ];
    let (order_of_a, order_of_b) = (OrderId::generate(), OrderId::generate());
    let paid_a = paid(order_of_a, customer_a.into(), 500);
    let completed_a = envelope(&OrderCompleted {
        order_id: order_of_a,
        customer_id: customer_a.into(),
        total: money(500),
    });
    let failed_b = envelope(&PaymentFailed {
        order_id: order_of_b,
        customer_id: customer_b.into(),
        reason: "insufficient balance: 500 needed, 0 available".into(),
    });
    // One queue per type, so the two of A's order may arrive in either order: one at a time.
    bus.publish(&paid_a).await;
    await_notifications(&service, order_of_a, 1).await;
    bus.publish(&completed_a).await;
    await_notifications(&service, order_of_a, 2).await;
    bus.publish(&failed_b).await;
    await_notifications(&service, order_of_b, 1).await;

    let of_a = [paid_a.message_id, completed_a.message_id];
    let of_b = [failed_b.message_id];
    let none: &[MessageId] = &[];
    const DENIED: Answer<'static> = Answer::Status(401);
    let public = [Answer::Status(200); 6];
    // (path, the answer for each of `callers`, in order).
    let cases: Vec<(String, [Answer<'_>; 6])> = vec![
        (
            format!("/notifications?order_id={order_of_a}"),
            [
                DENIED,
                DENIED,
                DENIED,
                Answer::Lists(&of_a),
                Answer::Lists(none),
                Answer::Lists(&of_a),
            ],
        ),
        (
            format!("/notifications?order_id={order_of_b}"),
            [
                DENIED,
                DENIED,
                DENIED,
                Answer::Lists(none),
                Answer::Lists(&of_b),
                Answer::Lists(&of_b),
            ],
        ),
        (
            format!("/notifications?order_id={}", OrderId::generate()),
            [
                DENIED,
                DENIED,
                DENIED,
                Answer::Lists(none),
                Answer::Lists(none),
                Answer::Lists(none),
            ],
        ),
        // The order stays required, for customers too: order-svc lists their orders.
        (
            "/notifications".to_owned(),
            [
                DENIED,
                DENIED,
                DENIED,
                Answer::Status(400),
                Answer::Status(400),
                Answer::Status(400),
            ],
        ),
        (
            "/notifications?order_id=not-a-uuid".to_owned(),
            [
                DENIED,
                DENIED,
                DENIED,
                Answer::Status(400),
                Answer::Status(400),
                Answer::Status(400),
            ],
        ),
        // What stays public: probes, metrics and the API's description.
        ("/health/live".to_owned(), public),
        ("/health/ready".to_owned(), public),
        ("/metrics".to_owned(), public),
        ("/openapi.json".to_owned(), public),
    ];
    for (path, answers) in &cases {
        for (caller, answer) in callers.iter().zip(answers) {
            check(&service, caller, path, answer).await;
        }
    }
}
