//! payment-svc end to end in one process: the real service on port 0 with its own database
//! and vhost, driven over HTTP and through the broker; and the store's races, decided by the
//! real PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::time::Duration;

use contracts::{
    AnyMessage, CustomerId, Envelope, MessageType, Money, OrderId, RefundPayment, StockReserved,
};
use payment_svc::Config;
use payment_svc::store::{self, ChargeOutcome};
use sea_orm::{DatabaseConnection, TransactionTrait};
use serde_json::{Value, json};
use testkit::bus::TestBus;
use testkit::{TestDatabase, TestVhost};
use tokio_util::sync::CancellationToken;

const PATIENCE: Duration = Duration::from_secs(20);
/// The test configuration's `PAYMENT_DEFAULT_BALANCE`.
const DEFAULT_BALANCE: i64 = 1_000;

struct Service {
    base: String,
    config: Config,
    http: reqwest::Client,
    shutdown: CancellationToken,
    _database: TestDatabase,
    _vhost: TestVhost,
}

/// Starts an instance of the service on port 0; it stops when the token is cancelled.
async fn spawn_instance(mut config: Config) -> (String, CancellationToken) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    config.http_addr = listener.local_addr().unwrap();
    let base = format!("http://{}", config.http_addr);
    let shutdown = CancellationToken::new();
    tokio::spawn(payment_svc::run_with_listener(
        config,
        listener,
        shutdown.clone(),
    ));
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(response) = http.get(format!("{base}/health/ready")).send().await
            && response.status() == 200
        {
            return (base, shutdown);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("payment-svc did not become ready");
}

impl Service {
    async fn start() -> Service {
        let database = TestDatabase::create().await;
        let vhost = TestVhost::create();
        let config = Config {
            database_url: database.url().to_owned(),
            amqp_url: vhost.url().to_owned(),
            http_addr: "127.0.0.1:0".parse().unwrap(),
            startup_timeout: Duration::from_secs(10),
            database_max_connections: 4,
            default_balance: Money::new(DEFAULT_BALANCE).unwrap(),
        };
        let (base, shutdown) = spawn_instance(config.clone()).await;
        Service {
            base,
            config,
            http: reqwest::Client::new(),
            shutdown,
            _database: database,
            _vhost: vhost,
        }
    }

    async fn bus(&self) -> TestBus {
        TestBus::connect(
            &self.config.amqp_url,
            &[
                MessageType::PaymentSucceeded,
                MessageType::PaymentFailed,
                MessageType::PaymentRefunded,
            ],
        )
        .await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    /// The customer's balance; `None` if payment has no account for them.
    async fn balance(&self, customer_id: CustomerId) -> Option<i64> {
        match self.get(&format!("/accounts/{customer_id}")).await {
            (200, body) => Some(body["balance"].as_i64().unwrap()),
            (404, _) => None,
            (status, body) => panic!("GET /accounts/{customer_id}: {status} {body}"),
        }
    }

    async fn set_balance(&self, customer_id: CustomerId, balance: i64) {
        let response = self
            .http
            .put(format!("{}/accounts/{customer_id}", self.base))
            .json(&json!({ "balance": balance }))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
    }

    async fn payment(&self, order_id: OrderId) -> Value {
        let (status, body) = self.get(&format!("/payments/{order_id}")).await;
        assert_eq!(status, 200, "GET /payments/{order_id}: {body}");
        body
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn reserved(customer_id: CustomerId, total: i64) -> StockReserved {
    StockReserved {
        order_id: OrderId::generate(),
        customer_id,
        total: Money::new(total).unwrap(),
    }
}

fn refund(order_id: OrderId) -> RefundPayment {
    RefundPayment {
        order_id,
        reason: "order cancelled".into(),
    }
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
    const CUSTOMER: &str = "/accounts/0199c3e1-0000-7000-8000-0000000000c1";
    let cases: &[Case] = &[
        ("GET", CUSTOMER, None, 404, None),
        ("PUT", CUSTOMER, Some(r#"{"balance": 500}"#), 201, None),
        ("GET", CUSTOMER, None, 200, None),
        ("PUT", CUSTOMER, Some(r#"{"balance": 0}"#), 200, None),
        ("PUT", CUSTOMER, Some(r#"{"balance": 700}"#), 200, None),
        (
            "PUT",
            CUSTOMER,
            Some(r#"{"balance": -1}"#),
            422,
            Some("balance"),
        ),
        (
            "PUT",
            CUSTOMER,
            Some(r#"{"balance": "lots"}"#),
            400,
            Some("balance"),
        ),
        (
            "PUT",
            CUSTOMER,
            Some(r#"{"balance": 12.5}"#),
            400,
            Some("balance"),
        ),
        ("PUT", CUSTOMER, Some("{}"), 400, Some("balance")),
        ("PUT", CUSTOMER, Some("{"), 400, None),
        (
            "PUT",
            "/accounts/not-a-uuid",
            Some(r#"{"balance": 1}"#),
            400,
            Some("customer_id"),
        ),
        (
            "GET",
            "/accounts/not-a-uuid",
            None,
            400,
            Some("customer_id"),
        ),
        ("GET", "/payments/not-a-uuid", None, 400, Some("order_id")),
        (
            "GET",
            "/payments/0199c3e1-0000-7000-8000-000000000001",
            None,
            404,
            None,
        ),
        ("DELETE", CUSTOMER, None, 405, None),
        (
            "POST",
            "/payments/0199c3e1-0000-7000-8000-000000000001",
            None,
            405,
            None,
        ),
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
        assert_eq!(
            response.status().as_u16(),
            status,
            "{method} {path} {body:?}"
        );
        if status == 201 {
            assert_eq!(response.headers()["location"], path);
        }
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
    let (_, account) = service.get(CUSTOMER).await;
    assert_eq!(
        account,
        json!({"customer_id": "0199c3e1-0000-7000-8000-0000000000c1", "balance": 700})
    );
    let (_, openapi) = service.get("/openapi.json").await;
    assert!(openapi["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(openapi["paths"]["/accounts/{customer_id}"]["put"].is_object());
    assert!(openapi["paths"]["/payments/{order_id}"]["get"].is_object());
}

#[tokio::test]
async fn a_first_time_customer_is_charged_from_the_default_balance_once() {
    let service = Service::start().await;
    let mut bus = service.bus().await;
    let customer = CustomerId::generate();
    assert_eq!(service.balance(customer).await, None);

    let request = reserved(customer, 300);
    let envelope = bus.publish_message(&request).await;
    let reply = bus.next(PATIENCE).await;
    let payment_id = match reply.payload {
        AnyMessage::PaymentSucceeded(succeeded) => {
            assert_eq!(
                (succeeded.order_id, succeeded.amount),
                (request.order_id, request.total)
            );
            succeeded.payment_id
        }
        other => panic!("expected PaymentSucceeded, got {other:?}"),
    };
    assert_eq!(reply.causation_id, Some(envelope.message_id));
    assert_eq!(reply.correlation_id, request.order_id);
    assert_eq!(service.balance(customer).await, Some(DEFAULT_BALANCE - 300));
    let payment = service.payment(request.order_id).await;
    assert_eq!(payment["status"], "Charged");
    assert_eq!(payment["amount"], 300);
    assert_eq!(payment["payment_id"], payment_id.to_string());
    assert_eq!(payment["customer_id"], customer.to_string());
    assert_eq!(payment["reason"], Value::Null);

    // A redelivery of the same message changes nothing and is not answered.
    bus.publish(&envelope).await;
    bus.expect_silence(Duration::from_millis(500)).await;
    // Neither is another message about the same order (a different message id).
    bus.publish_message(&request).await;
    bus.expect_silence(Duration::from_millis(500)).await;
    assert_eq!(service.balance(customer).await, Some(DEFAULT_BALANCE - 300));
    assert_eq!(
        service.payment(request.order_id).await["payment_id"],
        payment_id.to_string()
    );
}

#[tokio::test]
async fn an_insufficient_balance_charges_nothing_and_says_why() {
    let service = Service::start().await;
    let mut bus = service.bus().await;
    let (known, poor, new) = (
        CustomerId::generate(),
        CustomerId::generate(),
        CustomerId::generate(),
    );
    service.set_balance(known, 250).await;
    service.set_balance(poor, 0).await;
    // Customer, total, expected reason, expected balance afterwards.
    let cases = [
        (
            known,
            300,
            "insufficient balance: 300 needed, 250 available",
            250,
        ),
        (poor, 1, "insufficient balance: 1 needed, 0 available", 0),
        (
            new,
            DEFAULT_BALANCE + 1,
            "insufficient balance: 1001 needed, 1000 available",
            DEFAULT_BALANCE,
        ),
    ];
    for (customer, total, reason, balance) in cases {
        let request = reserved(customer, total);
        bus.publish_message(&request).await;
        match bus.next(PATIENCE).await.payload {
            AnyMessage::PaymentFailed(failed) => {
                assert_eq!(
                    (failed.order_id, failed.reason.as_str()),
                    (request.order_id, reason)
                );
            }
            other => panic!("expected PaymentFailed, got {other:?}"),
        }
        assert_eq!(service.balance(customer).await, Some(balance), "{reason}");
        let payment = service.payment(request.order_id).await;
        assert_eq!(payment["status"], "Failed");
        assert_eq!(payment["amount"], total);
        assert_eq!(payment["reason"], reason);
        assert_eq!(payment["payment_id"], Value::Null);
    }
}

#[tokio::test]
async fn a_refund_gives_the_money_back_once_and_is_answered_every_time() {
    let service = Service::start().await;
    let mut bus = service.bus().await;
    let customer = CustomerId::generate();

    let request = reserved(customer, 400);
    bus.publish_message(&request).await;
    assert!(matches!(
        bus.next(PATIENCE).await.payload,
        AnyMessage::PaymentSucceeded(_)
    ));
    assert_eq!(service.balance(customer).await, Some(DEFAULT_BALANCE - 400));

    for attempt in ["first refund", "second refund"] {
        let command = bus.publish_message(&refund(request.order_id)).await;
        let reply = bus.next(PATIENCE).await;
        match reply.payload {
            AnyMessage::PaymentRefunded(refunded) => assert_eq!(
                (refunded.order_id, refunded.amount),
                (request.order_id, request.total),
                "{attempt}"
            ),
            other => panic!("{attempt}: expected PaymentRefunded, got {other:?}"),
        }
        assert_eq!(reply.causation_id, Some(command.message_id));
        assert_eq!(
            service.balance(customer).await,
            Some(DEFAULT_BALANCE),
            "{attempt}"
        );
        let payment = service.payment(request.order_id).await;
        assert_eq!(payment["status"], "Refunded", "{attempt}");
        assert_eq!(payment["amount"], 400, "{attempt}");
        assert_eq!(payment["reason"], "order cancelled", "{attempt}");
    }

    // A failed charge is "refunded" with nothing, and stays failed.
    let too_much = reserved(customer, DEFAULT_BALANCE + 1);
    bus.publish_message(&too_much).await;
    assert!(matches!(
        bus.next(PATIENCE).await.payload,
        AnyMessage::PaymentFailed(_)
    ));
    bus.publish_message(&refund(too_much.order_id)).await;
    match bus.next(PATIENCE).await.payload {
        AnyMessage::PaymentRefunded(refunded) => assert_eq!(refunded.amount, Money::ZERO),
        other => panic!("expected PaymentRefunded, got {other:?}"),
    }
    assert_eq!(service.payment(too_much.order_id).await["status"], "Failed");
    assert_eq!(service.balance(customer).await, Some(DEFAULT_BALANCE));
}

#[tokio::test]
async fn a_refund_before_the_charge_leaves_a_tombstone() {
    let service = Service::start().await;
    let mut bus = service.bus().await;
    let customer = CustomerId::generate();
    let late = reserved(customer, 100);

    bus.publish_message(&refund(late.order_id)).await;
    match bus.next(PATIENCE).await.payload {
        AnyMessage::PaymentRefunded(refunded) => {
            assert_eq!(
                (refunded.order_id, refunded.amount),
                (late.order_id, Money::ZERO)
            );
        }
        other => panic!("expected PaymentRefunded, got {other:?}"),
    }
    let tombstone = service.payment(late.order_id).await;
    assert_eq!(tombstone["status"], "Refunded");
    assert_eq!(tombstone["amount"], 0);
    assert_eq!(tombstone["customer_id"], Value::Null);
    assert_eq!(tombstone["payment_id"], Value::Null);

    // The saga refunded an order payment had not seen yet; its late StockReserved charges
    // nothing, is not answered, and does not even open the customer's account.
    bus.publish_message(&late).await;
    bus.expect_silence(Duration::from_millis(500)).await;
    assert_eq!(service.balance(customer).await, None);
    assert_eq!(service.payment(late.order_id).await, tombstone);

    // Refunding it again answers again, with nothing.
    bus.publish_message(&refund(late.order_id)).await;
    match bus.next(PATIENCE).await.payload {
        AnyMessage::PaymentRefunded(refunded) => assert_eq!(refunded.amount, Money::ZERO),
        other => panic!("expected PaymentRefunded, got {other:?}"),
    }
}

#[tokio::test]
async fn concurrent_orders_for_one_customer_never_overdraw() {
    let service = Service::start().await;
    let mut bus = service.bus().await;
    let customer = CustomerId::generate();
    service.set_balance(customer, 1_000).await;
    let orders: Vec<Envelope> = {
        let mut published = Vec::new();
        for _ in 0..30 {
            published.push(bus.publish_message(&reserved(customer, 100)).await);
        }
        published
    };
    let (mut succeeded, mut failed) = (0, 0);
    for _ in &orders {
        match bus.next(PATIENCE).await.payload {
            AnyMessage::PaymentSucceeded(_) => succeeded += 1,
            AnyMessage::PaymentFailed(failed_payment) => {
                assert!(
                    failed_payment
                        .reason
                        .starts_with("insufficient balance: 100 needed, "),
                    "{}",
                    failed_payment.reason
                );
                failed += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((succeeded, failed), (10, 20));
    assert_eq!(service.balance(customer).await, Some(0));
}

#[tokio::test]
async fn two_replicas_decide_each_order_once() {
    let service = Service::start().await;
    let (_, replica_shutdown) = spawn_instance(service.config.clone()).await;
    let _replica = replica_shutdown.drop_guard();
    let mut bus = service.bus().await;
    let customer = CustomerId::generate();
    service.set_balance(customer, 100_000).await;

    // Two different messages about each order, racing across the replicas.
    let requests: Vec<StockReserved> = (0..20).map(|_| reserved(customer, 100)).collect();
    for request in &requests {
        bus.publish_message(request).await;
        bus.publish_message(request).await;
    }
    let mut answered = HashSet::new();
    for _ in &requests {
        match bus.next(PATIENCE).await.payload {
            AnyMessage::PaymentSucceeded(succeeded) => {
                assert!(answered.insert(succeeded.order_id), "answered twice");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    bus.expect_silence(Duration::from_secs(1)).await;
    assert_eq!(service.balance(customer).await, Some(100_000 - 20 * 100));
}

/// A decision the store's race test runs.
#[derive(Clone, Copy, Debug)]
enum Op {
    Charge,
    Refund,
}

/// Runs `op` in a transaction of its own and describes what it came to.
async fn apply(db: &DatabaseConnection, op: Op, request: &StockReserved) -> String {
    let transaction = db.begin().await.unwrap();
    let outcome = match op {
        Op::Charge => {
            let default_balance = Money::new(DEFAULT_BALANCE).unwrap();
            match store::charge(&transaction, request, default_balance)
                .await
                .unwrap()
            {
                ChargeOutcome::Charged(_) => "Charged".to_owned(),
                other => format!("{other:?}"),
            }
        }
        Op::Refund => format!(
            "{:?}",
            store::refund(&transaction, request.order_id, "race")
                .await
                .unwrap()
        ),
    };
    transaction.commit().await.unwrap();
    outcome
}

async fn balance_in(db: &DatabaseConnection, customer_id: CustomerId) -> Option<i64> {
    store::account(db, customer_id)
        .await
        .unwrap()
        .map(|account| account.balance)
}

#[tokio::test]
async fn racing_decisions_for_one_order_wait_for_each_other_and_agree() {
    let database = TestDatabase::create().await;
    let db = sea_orm::Database::connect(database.url()).await.unwrap();
    outbox::migrate::<payment_svc::migration::Migrator>(&db)
        .await
        .unwrap();
    // Done before, done in a transaction held open, the racing decision, what the racing one
    // must come to, the balance afterwards (`None`: no account).
    type RaceCase = (&'static [Op], Op, Op, &'static str, Option<i64>);
    let cases: &[RaceCase] = &[
        (
            &[],
            Op::Charge,
            Op::Charge,
            "AlreadyDecided(Charged)",
            Some(DEFAULT_BALANCE - 300),
        ),
        (
            &[],
            Op::Charge,
            Op::Refund,
            "Planned(GiveBack(Money(300)))",
            Some(DEFAULT_BALANCE),
        ),
        (
            &[],
            Op::Refund,
            Op::Charge,
            "AlreadyDecided(Refunded)",
            None,
        ),
        (
            &[],
            Op::Refund,
            Op::Refund,
            "Planned(AlreadyRefunded(Money(0)))",
            None,
        ),
        (
            &[Op::Charge],
            Op::Refund,
            Op::Refund,
            "Planned(AlreadyRefunded(Money(300)))",
            Some(DEFAULT_BALANCE),
        ),
    ];
    for &(before, held, racing, expected, balance) in cases {
        let request = reserved(CustomerId::generate(), 300);
        for &op in before {
            apply(&db, op, &request).await;
        }
        let holder = db.begin().await.unwrap();
        match held {
            Op::Charge => {
                let default_balance = Money::new(DEFAULT_BALANCE).unwrap();
                store::charge(&holder, &request, default_balance)
                    .await
                    .unwrap();
            }
            Op::Refund => {
                store::refund(&holder, request.order_id, "race")
                    .await
                    .unwrap();
            }
        }
        let race = tokio::spawn({
            let (db, request) = (db.clone(), request.clone());
            async move { apply(&db, racing, &request).await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let case = format!("{before:?} then {held:?} racing {racing:?}");
        assert!(!race.is_finished(), "{case}: the racer did not wait");
        holder.commit().await.unwrap();
        assert_eq!(race.await.unwrap(), expected, "{case}");
        assert_eq!(
            balance_in(&db, request.customer_id).await,
            balance,
            "{case}"
        );
    }
    db.close().await.unwrap();
}
