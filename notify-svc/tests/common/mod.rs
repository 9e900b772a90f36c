//! The harness every notify-svc test file shares: the real service on port 0 with its own vhost
//! (as its own broker user), a bus that publishes as each type's producer, and the
//! notifications read over HTTP as an operator.

#![allow(dead_code)]

use std::num::NonZeroUsize;
use std::time::Duration;

use contracts::{
    CustomerId, Envelope, Message, Money, OrderId, PaymentId, PaymentSucceeded, Service,
};
use notify_svc::Config;
use serde_json::Value;
use testkit::bus::TestBus;
use testkit::service::{RunningService, ServiceEnv};

pub(crate) const PATIENCE: Duration = Duration::from_secs(20);

pub(crate) async fn start() -> RunningService {
    RunningService::start(Service::Notify, false, |env: ServiceEnv| {
        let config = Config {
            amqp_url: env.amqp_url,
            http_addr: env.listener.local_addr().unwrap(),
            startup_timeout: Duration::from_secs(10),
            max_notifications: NonZeroUsize::new(1_000).unwrap(),
            producers: env.producers,
            auth: env.auth,
        };
        notify_svc::run_with_listener(config, env.listener, env.shutdown)
    })
    .await
}

pub(crate) async fn bus(service: &RunningService) -> TestBus {
    TestBus::connect(&service.vhost, &[]).await
}

/// The order's notifications as an operator lists them.
pub(crate) async fn notifications(service: &RunningService, order_id: OrderId) -> Vec<Value> {
    let (status, body) = service
        .get_json(&format!("/notifications?order_id={order_id}"))
        .await;
    assert_eq!(status, 200, "{body}");
    body.as_array().unwrap().clone()
}

/// The order's notifications once there are at least `count`.
pub(crate) async fn await_notifications(
    service: &RunningService,
    order_id: OrderId,
    count: usize,
) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let listed = notifications(service, order_id).await;
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

pub(crate) fn money(minor_units: i64) -> Money {
    Money::new(minor_units).unwrap()
}

pub(crate) fn envelope<M: Message>(message: &M) -> Envelope {
    Envelope::new(message, None).unwrap()
}

pub(crate) fn paid(order_id: OrderId, customer_id: CustomerId, minor_units: i64) -> Envelope {
    envelope(&PaymentSucceeded {
        order_id,
        customer_id,
        payment_id: PaymentId::generate(),
        amount: money(minor_units),
    })
}

/// Waits until notify took every message published so far off its queues: each handled and
/// acknowledged, none waiting for a retry (the vhost's retry queues, `saga.retry.…`, are notify's
/// alone here) nor dead-lettered (`notify-svc.….dlq`). Other services' queues hold copies nobody
/// consumes in these tests.
pub(crate) async fn await_drained(service: &RunningService) {
    let own = format!("{}.", Service::Notify.name());
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let waiting: Vec<(String, u64)> = service
            .vhost
            .queue_depths()
            .into_iter()
            .filter(|(queue, depth)| {
                (queue.starts_with(&own) || queue.starts_with("saga.retry.")) && *depth > 0
            })
            .collect();
        if waiting.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "messages still on notify's queues: {waiting:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
