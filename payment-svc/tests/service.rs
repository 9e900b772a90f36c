//! payment-svc end to end in one process: the real service on port 0 with its own database (as
//! a non-superuser role) and vhost (as its own broker user), driven over HTTP with bearer tokens
//! and through the broker; and the store's races, decided by the real PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::time::Duration;

use contracts::{
    AnyMessage, CustomerId, Envelope, MessageType, Money, OrderId, PricedLine, ProductId, Quantity,
    RefundPayment, Service, StockReserved,
};
use payment_svc::Config;
use payment_svc::store::{self, ChargeOutcome};
use sea_orm::{DatabaseConnection, TransactionTrait};
use serde_json::{Value, json};
use testkit::TestDatabase;
use testkit::auth::{self, Identity, expired_token, forged_token};
use testkit::bus::TestBus;
use testkit::service::{RunningService, ServiceEnv};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const PATIENCE: Duration = Duration::from_secs(20);
/// The `PAYMENT_DEMO_BALANCE` of the tests that turn the demo balance on.
const DEMO_BALANCE: i64 = 1_000;
/// `PAYMENT_DEMO_BALANCE` off, the default.
const NO_DEMO_BALANCE: i64 = 0;

/// A running payment-svc and the configuration it was started with (for replicas).
struct Fixture {
    running: RunningService,
    config: Config,
}

fn money(minor_units: i64) -> Money {
    Money::new(minor_units).unwrap()
}

impl Fixture {
    /// Starts payment-svc with `PAYMENT_DEMO_BALANCE` = `demo_balance`.
    async fn start(demo_balance: i64) -> Fixture {
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
    async fn spawn_replica(&self) -> CancellationToken {
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

    async fn bus(&self) -> TestBus {
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
    async fn balance(&self, customer_id: CustomerId) -> Option<i64> {
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
    async fn set_balance(&self, customer_id: CustomerId, balance: i64) {
        let body = json!({ "balance": balance }).to_string();
        let response = self
            .running
            .request("PUT", &format!("/accounts/{customer_id}"), Some(&body), &[])
            .await;
        assert!(response.status().is_success(), "{}", response.status());
    }

    /// The order's payment as an operator reads it.
    async fn payment(&self, order_id: OrderId) -> Value {
        let (status, body) = self
            .running
            .get_json(&format!("/payments/{order_id}"))
            .await;
        assert_eq!(status, 200, "GET /payments/{order_id}: {body}");
        body
    }
}

/// A reservation of `lines` (product, quantity, unit price) for `customer_id`.
fn reserved_lines(customer_id: CustomerId, lines: &[(&str, i64, i64)]) -> StockReserved {
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
fn reserved(customer_id: CustomerId, total: i64) -> StockReserved {
    reserved_lines(customer_id, &[("apple", 1, total)])
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
    let service = Fixture::start(NO_DEMO_BALANCE).await;
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
        let response = service.running.request(method, path, body, &[]).await;
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
    let (_, account) = service.running.get_json(CUSTOMER).await;
    assert_eq!(
        account,
        json!({"customer_id": "0199c3e1-0000-7000-8000-0000000000c1", "balance": 700})
    );
    let (_, openapi) = service.running.get_json("/openapi.json").await;
    assert!(openapi["openapi"].as_str().unwrap().starts_with("3.1"));
    let put = &openapi["paths"]["/accounts/{customer_id}"]["put"];
    assert_eq!(
        put["responses"]["403"]["description"], "The caller is not an operator",
        "{put}"
    );
    assert_eq!(put["security"], json!([{"bearer": []}]), "{put}");
    let get_account = &openapi["paths"]["/accounts/{customer_id}"]["get"];
    assert_eq!(
        get_account["responses"]["404"]["description"],
        "No account for the customer, or it is another customer's"
    );
    let get_payment = &openapi["paths"]["/payments/{order_id}"]["get"];
    assert_eq!(
        get_payment["responses"]["404"]["description"],
        "No payment for the order, or it belongs to another customer"
    );
    assert!(get_payment["responses"]["401"].is_object(), "{get_payment}");
}

/// Sends `method path body` as `caller` and checks the answer: `expected` status, a
/// problem+json body for every error (with a bearer challenge on 401), and a 404 that is the
/// answer an operator gets for a resource that does not exist — nothing tells a customer that
/// another customer's account or payment is there. A 2xx answer is returned for its body.
async fn check(
    service: &RunningService,
    (caller, identity): &(&str, Identity),
    method: &str,
    path: &str,
    body: Option<&str>,
    expected: u16,
) -> Option<Value> {
    let case = format!("{caller}: {method} {path} {body:?}");
    let response = service.request_as(identity, method, path, body, &[]).await;
    let status = response.status().as_u16();
    assert_eq!(status, expected, "{case}");
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    if status < 400 {
        return serde_json::from_str(&text).ok();
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
    if status == 404 {
        let id = path.rsplit('/').next().unwrap();
        let nobody = Uuid::now_v7().to_string();
        let missing = path.replace(id, &nobody);
        let response = service.request("GET", &missing, None, &[]).await;
        assert_eq!(response.status(), 404, "{case}: {missing}");
        let absent = response.text().await.unwrap();
        assert_eq!(
            text.replace(id, &nobody),
            absent,
            "{case}: a hint of existence"
        );
    }
    None
}

/// Method, path, body, the status for each kind of caller (in the order of the test's
/// `callers`), and what every 2xx answer carries.
type CallerCase<'a> = (
    &'a str,
    &'a str,
    Option<&'a str>,
    [u16; 6],
    Option<&'a Value>,
);

/// Every endpoint × every kind of caller. A customer reads their own account and the payments of
/// their own orders; customer B gets for A's exactly what nobody's would give; only operators
/// fund accounts.
#[tokio::test]
async fn every_endpoint_answers_each_kind_of_caller() {
    let fixture = Fixture::start(NO_DEMO_BALANCE).await;
    let service = &fixture.running;
    let mut bus = fixture.bus().await;
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
    fixture.set_balance(customer_a.into(), 1_000).await;
    let order_of_a = reserved(customer_a.into(), 300);
    bus.publish_message(&order_of_a).await;
    let payment_id = match bus.next(PATIENCE).await.payload {
        AnyMessage::PaymentSucceeded(succeeded) => succeeded.payment_id,
        other => panic!("expected PaymentSucceeded, got {other:?}"),
    };
    // A refund before any charge: a payment that belongs to no customer.
    let refunded_first = OrderId::generate();
    bus.publish_message(&refund(refunded_first)).await;
    assert!(matches!(
        bus.next(PATIENCE).await.payload,
        AnyMessage::PaymentRefunded(_)
    ));

    let account_of_a = format!("/accounts/{customer_a}");
    let account_of_b = format!("/accounts/{customer_b}");
    let opened_by_operator = format!("/accounts/{}", auth::customer());
    let payment_of_a = format!("/payments/{}", order_of_a.order_id);
    let tombstone = format!("/payments/{refunded_first}");
    let no_payment = format!("/payments/{}", OrderId::generate());
    let account_json = json!({"customer_id": customer_a, "balance": 700});
    let payment_json = json!({
        "order_id": order_of_a.order_id,
        "status": "Charged",
        "amount": 300,
        "payment_id": payment_id,
        "customer_id": customer_a,
        "reason": null,
    });
    let valid_balance = r#"{"balance": 700}"#;
    let cases: &[CallerCase] = &[
        (
            "GET",
            &account_of_a,
            None,
            [401, 401, 401, 200, 404, 200],
            Some(&account_json),
        ),
        // B has no account: A learns that no more than B does of A's.
        (
            "GET",
            &account_of_b,
            None,
            [401, 401, 401, 404, 404, 404],
            None,
        ),
        (
            "GET",
            &payment_of_a,
            None,
            [401, 401, 401, 200, 404, 200],
            Some(&payment_json),
        ),
        (
            "GET",
            &tombstone,
            None,
            [401, 401, 401, 404, 404, 200],
            None,
        ),
        (
            "GET",
            &no_payment,
            None,
            [401, 401, 401, 404, 404, 404],
            None,
        ),
        (
            "GET",
            "/accounts/not-a-uuid",
            None,
            [401, 401, 401, 400, 400, 400],
            None,
        ),
        // Only an operator funds accounts, their own customers' included.
        (
            "PUT",
            &account_of_a,
            Some(valid_balance),
            [401, 401, 401, 403, 403, 200],
            Some(&account_json),
        ),
        (
            "PUT",
            &account_of_b,
            Some(r#"{"balance": 1000000}"#),
            [401, 401, 401, 403, 403, 201],
            None,
        ),
        // The operator comes last: its 201 proves that nobody before it opened the account.
        (
            "PUT",
            &opened_by_operator,
            Some(valid_balance),
            [401, 401, 401, 403, 403, 201],
            None,
        ),
        (
            "GET",
            &opened_by_operator,
            None,
            [401, 401, 401, 404, 404, 200],
            None,
        ),
        // The caller is checked before the request is read: a customer learns nothing from
        // validation.
        (
            "PUT",
            &account_of_a,
            Some(r#"{"balance": -1}"#),
            [401, 401, 401, 403, 403, 422],
            None,
        ),
        (
            "PUT",
            "/accounts/not-a-uuid",
            Some(valid_balance),
            [401, 401, 401, 403, 403, 400],
            None,
        ),
        // What stays public: probes, metrics and the API's description.
        ("GET", "/health/live", None, [200; 6], None),
        ("GET", "/health/ready", None, [200; 6], None),
        ("GET", "/metrics", None, [200; 6], None),
        ("GET", "/openapi.json", None, [200; 6], None),
    ];
    for &(method, path, body, statuses, answer) in cases {
        for (caller, status) in callers.iter().zip(statuses) {
            let answered = check(service, caller, method, path, body, status).await;
            if let (Some(expected), 200..=299) = (answer, status) {
                assert_eq!(
                    answered.as_ref(),
                    Some(expected),
                    "{}: {method} {path}",
                    caller.0
                );
            }
        }
    }
    // Nothing a refused caller sent changed A's money; B's account holds what the operator put.
    assert_eq!(fixture.balance(customer_a.into()).await, Some(700));
    assert_eq!(fixture.balance(customer_b.into()).await, Some(1_000_000));
}

#[tokio::test]
async fn a_funded_customer_is_charged_the_reserved_total_once() {
    let service = Fixture::start(NO_DEMO_BALANCE).await;
    let mut bus = service.bus().await;
    let customer = CustomerId::generate();
    service.set_balance(customer, 1_000).await;

    // 2 × 150 + 1 × 100: payment charges the total inventory priced, nothing else.
    let request = reserved_lines(customer, &[("apple", 2, 150), ("pear", 1, 100)]);
    assert_eq!(request.total, money(400));
    let envelope = bus.publish_message(&request).await;
    let reply = bus.next(PATIENCE).await;
    let payment_id = match reply.payload {
        AnyMessage::PaymentSucceeded(succeeded) => {
            assert_eq!(
                (succeeded.order_id, succeeded.customer_id, succeeded.amount),
                (request.order_id, customer, request.total)
            );
            succeeded.payment_id
        }
        other => panic!("expected PaymentSucceeded, got {other:?}"),
    };
    assert_eq!(reply.causation_id, Some(envelope.message_id));
    assert_eq!(reply.correlation_id, request.order_id);
    assert_eq!(service.balance(customer).await, Some(600));
    let payment = service.payment(request.order_id).await;
    assert_eq!(payment["status"], "Charged");
    assert_eq!(payment["amount"], 400);
    assert_eq!(payment["payment_id"], payment_id.to_string());
    assert_eq!(payment["customer_id"], customer.to_string());
    assert_eq!(payment["reason"], Value::Null);

    // A redelivery of the same message changes nothing and is not answered.
    bus.publish(&envelope).await;
    bus.expect_silence(Duration::from_millis(500)).await;
    // Neither is another message about the same order (a different message id).
    bus.publish_message(&request).await;
    bus.expect_silence(Duration::from_millis(500)).await;
    assert_eq!(service.balance(customer).await, Some(600));
    assert_eq!(
        service.payment(request.order_id).await["payment_id"],
        payment_id.to_string()
    );
}

/// A charge case: the demo balance, the customer's balance before (`None`: no account), the
/// total, the reason it fails (`None`: charged; `{customer}` stands for the customer's id), and
/// the balance after.
type ChargeCase = (i64, Option<i64>, i64, Option<&'static str>, Option<i64>);

/// What a customer without an account gets, and what a demo balance changes: without one, no
/// money from nowhere — the order fails payment and no account is opened; with one, the
/// stranger's account opens with it (and an existing account is not topped up).
#[tokio::test]
async fn a_charge_is_decided_by_the_account_and_the_demo_balance() {
    let without_demo = Fixture::start(NO_DEMO_BALANCE).await;
    let with_demo = Fixture::start(DEMO_BALANCE).await;
    let mut buses = [without_demo.bus().await, with_demo.bus().await];
    let cases: &[ChargeCase] = &[
        (NO_DEMO_BALANCE, Some(300), 300, None, Some(0)),
        (
            NO_DEMO_BALANCE,
            Some(250),
            300,
            Some("insufficient balance: 300 needed, 250 available"),
            Some(250),
        ),
        (
            NO_DEMO_BALANCE,
            Some(0),
            1,
            Some("insufficient balance: 1 needed, 0 available"),
            Some(0),
        ),
        (
            NO_DEMO_BALANCE,
            None,
            1,
            Some("customer {customer} has no account; an operator must fund one"),
            None,
        ),
        (DEMO_BALANCE, None, 300, None, Some(DEMO_BALANCE - 300)),
        (
            DEMO_BALANCE,
            None,
            DEMO_BALANCE + 1,
            Some("insufficient balance: 1001 needed, 1000 available"),
            Some(DEMO_BALANCE),
        ),
        (
            DEMO_BALANCE,
            Some(50),
            100,
            Some("insufficient balance: 100 needed, 50 available"),
            Some(50),
        ),
    ];
    for &(demo_balance, before, total, failure, after) in cases {
        let (service, bus) = match demo_balance {
            NO_DEMO_BALANCE => (&without_demo, &mut buses[0]),
            _ => (&with_demo, &mut buses[1]),
        };
        let customer = CustomerId::generate();
        if let Some(balance) = before {
            service.set_balance(customer, balance).await;
        }
        let case = format!("demo {demo_balance}, balance {before:?}, total {total}");
        let request = reserved(customer, total);
        bus.publish_message(&request).await;
        let payment = match (bus.next(PATIENCE).await.payload, failure) {
            (AnyMessage::PaymentSucceeded(succeeded), None) => {
                assert_eq!(
                    (succeeded.order_id, succeeded.customer_id, succeeded.amount),
                    (request.order_id, customer, request.total),
                    "{case}"
                );
                json!({
                    "order_id": request.order_id,
                    "status": "Charged",
                    "amount": total,
                    "payment_id": succeeded.payment_id,
                    "customer_id": customer,
                    "reason": null,
                })
            }
            (AnyMessage::PaymentFailed(failed), Some(reason)) => {
                let reason = reason.replace("{customer}", &customer.to_string());
                assert_eq!(
                    (failed.order_id, failed.customer_id, failed.reason.as_str()),
                    (request.order_id, customer, reason.as_str()),
                    "{case}"
                );
                json!({
                    "order_id": request.order_id,
                    "status": "Failed",
                    "amount": total,
                    "payment_id": null,
                    "customer_id": customer,
                    "reason": reason,
                })
            }
            (other, _) => panic!("{case}: expected {failure:?}, got {other:?}"),
        };
        assert_eq!(service.balance(customer).await, after, "{case}");
        assert_eq!(service.payment(request.order_id).await, payment, "{case}");
    }
}

#[tokio::test]
async fn a_refund_gives_the_money_back_once_and_is_answered_every_time() {
    let service = Fixture::start(NO_DEMO_BALANCE).await;
    let mut bus = service.bus().await;
    let customer = CustomerId::generate();
    service.set_balance(customer, 1_000).await;

    let request = reserved(customer, 400);
    bus.publish_message(&request).await;
    assert!(matches!(
        bus.next(PATIENCE).await.payload,
        AnyMessage::PaymentSucceeded(_)
    ));
    assert_eq!(service.balance(customer).await, Some(600));

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
        assert_eq!(service.balance(customer).await, Some(1_000), "{attempt}");
        let payment = service.payment(request.order_id).await;
        assert_eq!(payment["status"], "Refunded", "{attempt}");
        assert_eq!(payment["amount"], 400, "{attempt}");
        assert_eq!(payment["reason"], "order cancelled", "{attempt}");
    }

    // A failed charge is "refunded" with nothing, and stays failed.
    let too_much = reserved(customer, 1_001);
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
    assert_eq!(service.balance(customer).await, Some(1_000));
}

#[tokio::test]
async fn a_refund_before_the_charge_leaves_a_tombstone() {
    // With a demo balance, so that a charge would open an account: the tombstone prevents it.
    let service = Fixture::start(DEMO_BALANCE).await;
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
    let service = Fixture::start(NO_DEMO_BALANCE).await;
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
    let service = Fixture::start(NO_DEMO_BALANCE).await;
    let _replica = service.spawn_replica().await.drop_guard();
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

/// Runs `op` in `transaction` and describes what it came to.
async fn run_op(
    transaction: &sea_orm::DatabaseTransaction,
    op: Op,
    request: &StockReserved,
    demo_balance: i64,
) -> String {
    match op {
        Op::Charge => match store::charge(transaction, request, money(demo_balance))
            .await
            .unwrap()
        {
            ChargeOutcome::Charged(_) => "Charged".to_owned(),
            other => format!("{other:?}"),
        },
        Op::Refund => format!(
            "{:?}",
            store::refund(transaction, request.order_id, "race")
                .await
                .unwrap()
        ),
    }
}

/// Runs `op` in a transaction of its own and describes what it came to.
async fn apply(
    db: &DatabaseConnection,
    op: Op,
    request: &StockReserved,
    demo_balance: i64,
) -> String {
    let transaction = db.begin().await.unwrap();
    let outcome = run_op(&transaction, op, request, demo_balance).await;
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
    let db = database.connect().await;
    outbox::migrate::<payment_svc::migration::Migrator>(&db)
        .await
        .unwrap();
    // The demo balance, done before, done in a transaction held open, the racing decision, what
    // the racing one must come to, the balance afterwards (`None`: no account).
    type RaceCase = (i64, &'static [Op], Op, Op, &'static str, Option<i64>);
    let cases: &[RaceCase] = &[
        (
            DEMO_BALANCE,
            &[],
            Op::Charge,
            Op::Charge,
            "AlreadyDecided(Charged)",
            Some(DEMO_BALANCE - 300),
        ),
        (
            DEMO_BALANCE,
            &[],
            Op::Charge,
            Op::Refund,
            "Planned(GiveBack(Money(300)))",
            Some(DEMO_BALANCE),
        ),
        (
            DEMO_BALANCE,
            &[],
            Op::Refund,
            Op::Charge,
            "AlreadyDecided(Refunded)",
            None,
        ),
        (
            DEMO_BALANCE,
            &[],
            Op::Refund,
            Op::Refund,
            "Planned(AlreadyRefunded(Money(0)))",
            None,
        ),
        (
            DEMO_BALANCE,
            &[Op::Charge],
            Op::Refund,
            Op::Refund,
            "Planned(AlreadyRefunded(Money(300)))",
            Some(DEMO_BALANCE),
        ),
        // Without an account or a demo balance the held charge fails; the racer still waits
        // for its decision instead of taking one of its own.
        (
            NO_DEMO_BALANCE,
            &[],
            Op::Charge,
            Op::Charge,
            "AlreadyDecided(Failed)",
            None,
        ),
        (
            NO_DEMO_BALANCE,
            &[],
            Op::Charge,
            Op::Refund,
            "Planned(NothingCharged)",
            None,
        ),
    ];
    for &(demo_balance, before, held, racing, expected, balance) in cases {
        let request = reserved(CustomerId::generate(), 300);
        for &op in before {
            apply(&db, op, &request, demo_balance).await;
        }
        let holder = db.begin().await.unwrap();
        run_op(&holder, held, &request, demo_balance).await;
        let race = tokio::spawn({
            let (db, request) = (db.clone(), request.clone());
            async move { apply(&db, racing, &request, demo_balance).await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let case = format!("demo {demo_balance}: {before:?} then {held:?} racing {racing:?}");
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
