//! inventory-svc's HTTP API, driven as each kind of caller: statuses, problem fields, who may
//! read and write what, and the OpenAPI document.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{bus, expect_reserved, order_for, product, set_product, start, stock};
use contracts::CustomerId;
use serde_json::{Value, json};
use testkit::auth::{self, Identity, expired_token, forged_token};
use testkit::service::RunningService;

/// Sends a request as an operator and checks its status and, for a problem, its content type
/// and the field it names first.
async fn check(
    service: &RunningService,
    (method, path, body): (&str, &str, Option<&str>),
    status: u16,
    field: Option<&str>,
) {
    let response = service.request(method, path, body, &[]).await;
    let what = format!("{method} {path} {body:?}");
    assert_eq!(response.status().as_u16(), status, "{what}");
    if status < 400 {
        return;
    }
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json",
        "{what}"
    );
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["status"], status, "{what}");
    if let Some(field) = field {
        assert_eq!(problem["errors"][0]["field"], field, "{what}: {problem}");
    }
}

#[tokio::test]
async fn http_requests_get_their_status_and_problem_fields() {
    let service = start().await;
    // (method, path, expected status, expected problem field).
    let requests: &[(&str, &str, u16, Option<&str>)] = &[
        ("GET", "/products/widget-blue", 200, None),
        ("GET", "/products", 200, None),
        ("GET", "/products?limit=0", 422, Some("limit")),
        ("GET", "/products?limit=x", 400, Some("limit")),
        ("GET", "/products?after=widget-a", 200, None),
        // A NUL byte reached PostgreSQL as text and came back a 500 (found by schemathesis).
        ("GET", "/products?after=J%C3%AE%00T", 422, Some("after")),
        ("GET", "/products?after=", 422, Some("after")),
        ("GET", "/products/no-such-product", 404, None),
        ("GET", "/products/bad%20id", 400, Some("product_id")),
        ("GET", "/reservations/not-a-uuid", 400, Some("order_id")),
        (
            "GET",
            "/reservations/0199c3e1-0000-7000-8000-000000000001",
            404,
            None,
        ),
        ("DELETE", "/products/widget-blue", 405, None),
    ];
    for &(method, path, status, field) in requests {
        check(&service, (method, path, None), status, field).await;
    }
    // Bodies of `PUT /products/fresh-product`, in order: (body, expected status, field).
    let bodies: &[(&str, u16, Option<&str>)] = &[
        (r#"{"available": 5, "price": 250}"#, 201, None),
        (r#"{"available": 7, "price": 300}"#, 200, None),
        // JSON Schema counts 7.0 as an integer, and so does the API; 7.5 is not one.
        (r#"{"available": 7.0, "price": 300.0}"#, 200, None),
        (
            r#"{"available": 7.5, "price": 300}"#,
            400,
            Some("available"),
        ),
        (r#"{"available": 7, "price": 2.5}"#, 400, Some("price")),
        (r#"{"available": -1, "price": 300}"#, 422, Some("available")),
        (r#"{"available": 7, "price": -1}"#, 422, Some("price")),
        (
            r#"{"available": "many", "price": 300}"#,
            400,
            Some("available"),
        ),
        (r#"{"available": 7, "price": "free"}"#, 400, Some("price")),
        (r#"{"available": 7, "price": null}"#, 400, Some("price")),
        (
            r#"{"available": 7, "price": 9223372036854775808}"#,
            400,
            Some("price"),
        ),
        // Both fields are required: the old body without a price is refused, naming it.
        (r#"{"available": 7}"#, 400, Some("price")),
        (r#"{"price": 300}"#, 400, Some("available")),
        ("{", 400, None),
    ];
    for &(body, status, field) in bodies {
        let request = ("PUT", "/products/fresh-product", Some(body));
        check(&service, request, status, field).await;
    }
    let stored = product(&service, "fresh-product").await;
    assert_eq!(
        (stored["available"].clone(), stored["price"].clone()),
        (json!(7), json!(300))
    );
    assert_eq!(stock(&service, "fresh-product").await, (7, 0, 0));

    let (_, openapi) = service.get_json("/openapi.json").await;
    assert!(openapi["openapi"].as_str().unwrap().starts_with("3.1"));
    let put = &openapi["paths"]["/products/{product_id}"]["put"];
    assert_eq!(
        put["responses"]["403"]["description"], "The caller is not an operator",
        "{put}"
    );
    let schemas = &openapi["components"]["schemas"];
    assert_eq!(
        schemas["SetProduct"]["required"],
        json!(["available", "price"])
    );
    assert_eq!(schemas["SetProduct"]["properties"]["price"]["minimum"], 0);
    assert_eq!(schemas["ProductStock"]["properties"]["price"]["minimum"], 0);
}

/// Every endpoint × every kind of caller. Reservations are inventory's bookkeeping: no customer
/// reads them, not even for their own order (order-svc shows customers their orders), so
/// customer B cannot see customer A's any more than A can.
#[tokio::test]
async fn every_endpoint_answers_each_kind_of_caller() {
    let service = start().await;
    let mut bus = bus(&service).await;
    let customer_a = auth::customer();
    let customer_b = auth::customer();
    let callers = [
        ("no token", Identity::Anonymous),
        // An operator's token, expired or forged, must grant nothing at all.
        ("expired token", expired_token(&Identity::Operator)),
        ("wrong signature", forged_token(&Identity::Operator)),
        ("customer A", Identity::Customer(customer_a)),
        ("customer B", Identity::Customer(customer_b)),
        ("operator", Identity::Operator),
    ];
    set_product(&service, "apple", 10, 250).await;
    let placed_by_a = order_for(CustomerId::from(customer_a), &[("apple", 2)]);
    bus.publish_message(&placed_by_a).await;
    expect_reserved(&mut bus, &placed_by_a, &[("apple", 2, 250)], 500).await;
    let reservation_of_a = format!("/reservations/{}", placed_by_a.order_id);

    let valid_product = r#"{"available": 3, "price": 100}"#;
    // (method, path, body, status for each of `callers`, in order).
    let cases: &[(&str, &str, Option<&str>, [u16; 6])] = &[
        ("GET", "/products", None, [401, 401, 401, 200, 200, 200]),
        (
            "GET",
            "/products/apple",
            None,
            [401, 401, 401, 200, 200, 200],
        ),
        (
            "GET",
            "/products/no-such-product",
            None,
            [401, 401, 401, 404, 404, 404],
        ),
        // The operator comes last: its 201 proves nobody before it created the product.
        (
            "PUT",
            "/products/created-by-operator",
            Some(valid_product),
            [401, 401, 401, 403, 403, 201],
        ),
        (
            "PUT",
            "/products/apple",
            Some(valid_product),
            [401, 401, 401, 403, 403, 200],
        ),
        // The caller is checked before the request is read: a customer learns nothing from
        // validation.
        (
            "PUT",
            "/products/apple",
            Some(r#"{"available": -1}"#),
            [401, 401, 401, 403, 403, 400],
        ),
        (
            "PUT",
            "/products/bad%20id",
            Some(valid_product),
            [401, 401, 401, 403, 403, 400],
        ),
        (
            "GET",
            &reservation_of_a,
            None,
            [401, 401, 401, 403, 403, 200],
        ),
        (
            "GET",
            "/reservations/0199c3e1-0000-7000-8000-000000000001",
            None,
            [401, 401, 401, 403, 403, 404],
        ),
        (
            "GET",
            "/reservations/not-a-uuid",
            None,
            [401, 401, 401, 403, 403, 400],
        ),
        // What stays public: probes, metrics and the API's description.
        ("GET", "/health/live", None, [200; 6]),
        ("GET", "/health/ready", None, [200; 6]),
        ("GET", "/metrics", None, [200; 6]),
        ("GET", "/openapi.json", None, [200; 6]),
    ];
    for &(method, path, body, statuses) in cases {
        for ((caller, identity), status) in callers.iter().zip(statuses) {
            let response = service.request_as(identity, method, path, body, &[]).await;
            let what = format!("{method} {path} as {caller}");
            assert_eq!(response.status().as_u16(), status, "{what}");
            if status == 401 {
                let challenge = response.headers()["www-authenticate"].to_str().unwrap();
                assert!(challenge.starts_with("Bearer"), "{what}: {challenge}");
            }
            if status >= 400 {
                assert_eq!(
                    response.headers()["content-type"],
                    "application/problem+json",
                    "{what}"
                );
            }
        }
    }
    // Only the operator's PUT took effect on apple: still reserved for A's order, now priced
    // as the operator set it.
    let apple = product(&service, "apple").await;
    assert_eq!(
        (
            apple["available"].clone(),
            apple["reserved"].clone(),
            apple["price"].clone()
        ),
        (json!(3), json!(2), json!(100))
    );
    let metrics = service
        .request("GET", "/metrics", None, &[])
        .await
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("http_auth_failures_total"),
        "401 and 403 are counted"
    );
}
