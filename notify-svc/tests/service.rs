//! notify-svc end to end in one process: the real service on port 0 with its own vhost, fed
//! through the broker and read over HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::num::NonZeroUsize;
use std::time::Duration;

use contracts::{
    CustomerId, Envelope, Message, Money, OrderCancelled, OrderCompleted, OrderId, PaymentFailed,
    PaymentId, PaymentSucceeded, StockFailed, StockReserved,
};
use notify_svc::Config;
use serde_json::Value;
use testkit::TestVhost;
use testkit::bus::TestBus;
use tokio_util::sync::CancellationToken;

const PATIENCE: Duration = Duration::from_secs(20);

struct Service {
    base: String,
    http: reqwest::Client,
    shutdown: CancellationToken,
    vhost: TestVhost,
}

impl Service {
    async fn start() -> Service {
        let vhost = TestVhost::create();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let config = Config {
            amqp_url: vhost.url().to_owned(),
            http_addr: listener.local_addr().unwrap(),
            startup_timeout: Duration::from_secs(10),
            max_notifications: NonZeroUsize::new(1_000).unwrap(),
        };
        let shutdown = CancellationToken::new();
        tokio::spawn(notify_svc::run_with_listener(
            config,
            listener,
            shutdown.clone(),
        ));
        let service = Service {
            base,
            http: reqwest::Client::new(),
            shutdown,
            vhost,
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
        panic!("notify-svc did not become ready");
    }

    async fn bus(&self) -> TestBus {
        TestBus::connect(self.vhost.url(), &[]).await
    }

    async fn notifications(&self, order_id: OrderId) -> Vec<Value> {
        let response = self
            .http
            .get(format!("{}/notifications?order_id={order_id}", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response
            .json::<Value>()
            .await
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }

    /// The order's notifications once there are at least `count`.
    async fn await_notifications(&self, order_id: OrderId, count: usize) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let listed = self.notifications(order_id).await;
            if listed.len() >= count {
                return listed;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "order {order_id} has {} notifications, expected {count}: {listed:?}",
                listed.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn money(minor_units: i64) -> Money {
    Money::new(minor_units).unwrap()
}

fn envelope<M: Message>(message: &M) -> Envelope {
    Envelope::new(message, None).unwrap()
}

fn paid(order_id: OrderId, minor_units: i64) -> Envelope {
    envelope(&PaymentSucceeded {
        order_id,
        payment_id: PaymentId::generate(),
        amount: money(minor_units),
    })
}

#[tokio::test]
async fn every_consumed_type_notifies_the_customer_of_its_order() {
    let service = Service::start().await;
    let bus = service.bus().await;
    let customer_id = CustomerId::generate();
    let order = OrderId::generate;
    let cases: Vec<(Envelope, &str, String)> = [
        {
            let order_id = order();
            (
                envelope(&StockFailed {
                    order_id,
                    reason: "unknown product durian".into(),
                }),
                "StockFailed",
                format!(
                    "The items of your order {order_id} could not be reserved: unknown product durian"
                ),
            )
        },
        {
            let order_id = order();
            (
                envelope(&PaymentFailed {
                    order_id,
                    reason: "insufficient balance: 1500 needed, 900 available".into(),
                }),
                "PaymentFailed",
                format!(
                    "Payment for your order {order_id} failed: insufficient balance: 1500 needed, 900 available"
                ),
            )
        },
        {
            let order_id = order();
            (
                paid(order_id, 2_500),
                "PaymentSucceeded",
                format!("Payment of 25.00 received for order {order_id}"),
            )
        },
        {
            let order_id = order();
            (
                envelope(&OrderCompleted {
                    order_id,
                    customer_id,
                    total: money(1_999),
                }),
                "OrderCompleted",
                format!("Your order {order_id} is complete; 19.99 was charged"),
            )
        },
        {
            let order_id = order();
            (
                envelope(&OrderCancelled {
                    order_id,
                    customer_id,
                    reason: "deadline passed".into(),
                }),
                "OrderCancelled",
                format!("Your order {order_id} was cancelled: deadline passed"),
            )
        },
    ]
    .into();
    for (published, _, _) in &cases {
        bus.publish(published).await;
    }
    for (published, kind, text) in &cases {
        let listed = service
            .await_notifications(published.correlation_id, 1)
            .await;
        assert_eq!(listed.len(), 1, "{kind}: {listed:?}");
        let notification = &listed[0];
        assert_eq!(notification["kind"], *kind);
        assert_eq!(notification["message"], text.as_str());
        assert_eq!(
            notification["order_id"],
            published.correlation_id.to_string()
        );
        assert_eq!(notification["message_id"], published.message_id.to_string());
        assert!(notification["sent_at"].as_str().unwrap().ends_with('Z'));
    }
}

#[tokio::test]
async fn an_order_lists_its_notifications_in_sending_order_and_a_redelivery_once() {
    let service = Service::start().await;
    let bus = service.bus().await;
    let order_id = OrderId::generate();
    let (first, second) = (paid(order_id, 100), paid(order_id, 200));
    // One queue, so the broker delivers them in this order.
    bus.publish(&first).await;
    bus.publish(&first).await;
    bus.publish(&second).await;
    let listed = service.await_notifications(order_id, 2).await;
    let ids: Vec<&str> = listed
        .iter()
        .map(|notification| notification["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [first.message_id.to_string(), second.message_id.to_string()]
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(service.notifications(order_id).await.len(), 2);
}

#[tokio::test]
async fn messages_notify_does_not_subscribe_to_are_not_consumed() {
    let service = Service::start().await;
    let bus = service.bus().await;
    let order_id = OrderId::generate();
    let reserved = envelope(&StockReserved {
        order_id,
        customer_id: CustomerId::generate(),
        total: money(100),
    });

    // Through the exchange: no queue of notify's is bound to it.
    bus.publish(&reserved).await;
    // Put straight onto one of notify's queues: rejected into that queue's dead letters.
    let queue = "notify-svc.StockFailed";
    let outgoing = outbox::wire::outgoing_envelope(&reserved);
    bus.publish_raw("", queue, outgoing.properties, &outgoing.body)
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
    assert_eq!(service.vhost.queue_depth(&dead_letters), 1);

    // A message that is notified for the same order comes through alone.
    let sentinel = paid(order_id, 300);
    bus.publish(&sentinel).await;
    let listed = service.await_notifications(order_id, 1).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["kind"], "PaymentSucceeded");
}

#[tokio::test]
async fn http_requests_get_their_status_and_problem_fields() {
    let service = Service::start().await;
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
        let response = service
            .http
            .get(format!("{}{path}", service.base))
            .send()
            .await
            .unwrap();
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
    let unknown = service
        .notifications("0199c3e1-0000-7000-8000-000000000001".parse().unwrap())
        .await;
    assert!(unknown.is_empty());

    let response = service
        .http
        .delete(format!("{}/notifications", service.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);

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
    let list = &openapi["paths"]["/notifications"]["get"];
    assert!(list.is_object(), "{openapi}");
    assert_eq!(list["parameters"][0]["name"], "order_id");
    assert_eq!(list["parameters"][0]["required"], true);
    assert!(list["responses"]["400"].is_object());
}
