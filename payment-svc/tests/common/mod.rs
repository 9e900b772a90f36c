//! The harness every payment-svc test file shares: the real service on port 0 with its own
//! database (as a non-superuser role) and vhost (as its own broker user), replicas of it, a bus
//! that hears its answers, its accounts and payments read and funded over HTTP as an operator,
//! and the requests it gets.

#![allow(dead_code)]

use std::time::Duration;

use contracts::{
    CustomerId, MessageType, Money, OrderId, PricedLine, ProductId, Quantity, RefundPayment,
    Service, StockReserved,
};
use payment_svc::Config;
use serde_json::{Value, json};
use testkit::bus::TestBus;
use testkit::service::{RunningService, ServiceEnv};
use tokio_util::sync::CancellationToken;

pub(crate) const PATIENCE: Duration = Duration::from_secs(20);
/// The `PAYMENT_DEMO_BALANCE` of the tests that turn the demo balance on.
pub(crate) const DEMO_BALANCE: i64 = 1_000;
/// `PAYMENT_DEMO_BALANCE` off, the default.
pub(crate) const NO_DEMO_BALANCE: i64 = 0;

/// A running payment-svc and the configuration it was started with (for replicas).
pub(crate) struct Fixture {
    pub(crate) running: RunningService,
    config: Config,
}

pub(crate) fn money(minor_units: i64) -> Money {
    Money::new(minor_units).unwrap()
}

impl Fixture {
    /// Starts payment-svc with `PAYMENT_DEMO_BALANCE` = `demo_balance`.
    pub(crate) async fn start(demo_balance: i64) -> Fixture {
        let mut started = None;
        let running = RunningService::start(Service::Payment, true, |env: ServiceEnv| {
            let config = Config {
                database_url: env.database_url,
                amqp_url: env.amqp_url,
                http_addr: env.listener.local_addr().unwrap(),
                startup_timeout: Duration::from_secs(10),
                database_max_connections: 4,
                default_balance: money(demo_balance),
                producers: env.producers,
                auth: env.auth,
            };
            started = Some(config.clone());
            payment_svc::run_with_listener(config, env.listener, env.shutdown)
        })
        .await;
        Fixture {
            running,
            config: started.expect("the service was configured"),
        }
    }

    /// Starts another instance on the same database and vhost; it stops when the token is
    /// cancelled.
    pub(crate) async fn spawn_replica(&self) -> CancellationToken {
        let mut config = self.config.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        config.http_addr = listener.local_addr().unwrap();
        let base = format!("http://{}", config.http_addr);
        let shutdown = CancellationToken::new();
        tokio::spawn(payment_svc::run_with_listener(
            config,
            listener,
            shutdown.clone(),
        ));
        for _ in 0..200 {
            if let Ok(response) = self
                .running
                .http
                .get(format!("{base}/health/ready"))
                .send()
                .await
                && response.status() == 200
            {
                return shutdown;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the replica did not become ready");
    }

    pub(crate) async fn bus(&self) -> TestBus {
        TestBus::connect(
            &self.running.vhost,
            &[
                MessageType::PaymentSucceeded,
                MessageType::PaymentFailed,
                MessageType::PaymentRefunded,
            ],
        )
        .await
    }

    /// The customer's balance as an operator reads it; `None` if there is no account.
    pub(crate) async fn balance(&self, customer_id: CustomerId) -> Option<i64> {
        match self
            .running
            .get_json(&format!("/accounts/{customer_id}"))
            .await
        {
            (status, body) if status == 200 => Some(body["balance"].as_i64().unwrap()),
            (status, _) if status == 404 => None,
            (status, body) => panic!("GET /accounts/{customer_id}: {status} {body}"),
        }
    }

    /// Funds the customer's account, as only an operator may.
    pub(crate) async fn set_balance(&self, customer_id: CustomerId, balance: i64) {
        let body = json!({ "balance": balance }).to_string();
        let response = self
            .running
            .request("PUT", &format!("/accounts/{customer_id}"), Some(&body), &[])
            .await;
        assert!(response.status().is_success(), "{}", response.status());
    }

    /// The order's payment as an operator reads it.
    pub(crate) async fn payment(&self, order_id: OrderId) -> Value {
        let (status, body) = self
            .running
            .get_json(&format!("/payments/{order_id}"))
            .await;
        assert_eq!(status, 200, "GET /payments/{order_id}: {body}");
        body
    }
}

/// A reservation of `lines` (product, quantity, unit price) for `customer_id`.
pub(crate) fn reserved_lines(customer_id: CustomerId, lines: &[(&str, i64, i64)]) -> StockReserved {
    let items = lines
        .iter()
        .map(|&(product, quantity, unit_price)| PricedLine {
            product_id: ProductId::new(product).unwrap(),
            quantity: Quantity::new(quantity).unwrap(),
            unit_price: money(unit_price),
        })
        .collect();
    StockReserved::new(OrderId::generate(), customer_id, items).unwrap()
}

/// A reservation of one item costing `total`.
pub(crate) fn reserved(customer_id: CustomerId, total: i64) -> StockReserved {
    reserved_lines(customer_id, &[("apple", 1, total)])
}

pub(crate) fn refund(order_id: OrderId) -> RefundPayment {
    RefundPayment {
        order_id,
        reason: "order cancelled".into(),
    }
}
