//! payment-svc's HTTP API, driven as each kind of caller: statuses, problem fields, who may
//! read and fund which account and read which payment, and the OpenAPI document.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Fixture, NO_DEMO_BALANCE, PATIENCE, refund, reserved};
use contracts::{AnyMessage, OrderId};
use serde_json::{Value, json};
use testkit::auth::{self, Identity, expired_token, forged_token};
use testkit::service::RunningService;
use uuid::Uuid;

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
