//! order-svc's HTTP edge: every invalid request answered with its status and fields, who may
//! call what (and that no customer sees another's orders), idempotency keys, paging and the
//! OpenAPI document.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{case, expect_created, id_of, listen, order_body, place, problem_fields, start};
use contracts::{CustomerId, OrderId};
use serde_json::{Value, json};
use testkit::auth::{self, Identity};
use uuid::Uuid;

#[tokio::test]
async fn every_invalid_request_gets_its_status_and_names_its_fields() {
    let service = start(Duration::from_secs(30)).await;
    let customer = auth::customer();
    let named = |lines: &[(&str, i64)]| Some(order_body(Some(customer), lines));
    let raw = |text: String| Some(text);
    let cases = vec![
        case("POST", "/orders", named(&[("a", 1)]), 201),
        case("POST", "/orders", raw("{".into()), 400).naming(&["body"]),
        case(
            "POST",
            "/orders",
            raw(r#"{"customer_id": 7, "items": []}"#.into()),
            400,
        )
        .naming(&["customer_id"]),
        case(
            "POST",
            "/orders",
            raw(format!(r#"{{"customer_id": "{customer}"}}"#)),
            400,
        )
        .naming(&["items"]),
        case(
            "POST",
            "/orders",
            raw(format!(
                r#"{{"customer_id": "{customer}", "items": [{{"product_id": "a", "quantity": 1.5}}]}}"#
            )),
            400,
        )
        .naming(&["items[0].quantity"]),
        case(
            "POST",
            "/orders",
            raw(json!({"customer_id": "not-a-uuid", "items": []}).to_string()),
            422,
        )
        .naming(&["customer_id", "items"]),
        // An operator names the customer the order is for.
        case("POST", "/orders", Some(order_body(None, &[("a", 1)])), 422).naming(&["customer_id"]),
        case("POST", "/orders", named(&[("a", 0), ("bad id", 10_001)]), 422).naming(&[
            "items[0].quantity",
            "items[1].product_id",
            "items[1].quantity",
        ]),
        case("POST", "/orders", named(&[("a", 1), ("a", 2)]), 422)
            .naming(&["items[1].product_id"]),
        // Prices are the catalog's: a unit price or a total is refused, whatever it holds.
        case(
            "POST",
            "/orders",
            raw(json!({"customer_id": customer, "items": [
                {"product_id": "a", "quantity": 1},
                {"product_id": "b", "quantity": 1, "unit_price": 0},
            ]})
            .to_string()),
            422,
        )
        .naming(&["items[1].unit_price"]),
        case(
            "POST",
            "/orders",
            raw(json!({"customer_id": customer, "total": 100, "items": [
                {"product_id": "a", "quantity": 1, "unit_price": null},
            ]})
            .to_string()),
            422,
        )
        .naming(&["items[0].unit_price", "total"]),
        case("POST", "/orders", named(&[("a", 1)]), 400)
            .with_header("Idempotency-Key", "k".repeat(256))
            .naming(&["Idempotency-Key"]),
        case(
            "POST",
            "/orders",
            raw(format!(
                r#"{{"customer_id": "{customer}", "items": [], "pad": "{}"}}"#,
                "x".repeat(70_000)
            )),
            413,
        ),
        case("GET", "/orders/not-a-uuid", None, 400).naming(&["id"]),
        case(
            "GET",
            "/orders/0199c3e1-0000-7000-8000-000000000001",
            None,
            404,
        ),
        case("GET", "/orders?status=Lost", None, 422).naming(&["status"]),
        case("GET", "/orders?limit=0", None, 422).naming(&["limit"]),
        case("GET", "/orders?customer_id=x", None, 400).naming(&["customer_id"]),
        case("GET", "/orders?cursor=x", None, 400).naming(&["cursor"]),
        case("DELETE", "/orders", None, 405),
        case("GET", "/nowhere", None, 404),
    ];
    for case in cases {
        let headers: Vec<(&str, &str)> = case
            .headers
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        let response = service
            .request(case.method, &case.path, case.body.as_deref(), &headers)
            .await;
        let what = format!("{} {} {:?}", case.method, case.path, case.body);
        assert_eq!(response.status().as_u16(), case.status, "{what}");
        if case.status < 400 {
            continue;
        }
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{what}"
        );
        let problem: Value = response.json().await.unwrap();
        let found: Vec<String> = problem_fields(&problem)
            .into_iter()
            .map(|(field, _)| field)
            .collect();
        assert_eq!(found, case.fields, "{what}: {problem}");
        for (field, message) in problem_fields(&problem) {
            if field.ends_with("unit_price") || field == "total" {
                assert_eq!(message, "prices are set by the catalog, not the client");
            }
        }
    }
    // Not JSON at all.
    let response = service
        .http
        .post(format!("{}/orders", service.base))
        .bearer_auth(auth::token(&Identity::Operator).unwrap())
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
}

/// The callers of the authorisation table, in its columns' order.
const CALLERS: [&str; 6] = ["anonymous", "expired", "forged", "A", "B", "operator"];

/// One endpoint and the status each caller of [`CALLERS`] gets.
struct Endpoint {
    method: &'static str,
    path: String,
    body: Option<String>,
    statuses: [u16; 6],
}

#[tokio::test]
async fn every_endpoint_admits_only_whom_it_should_and_b_never_sees_a_s_orders() {
    let service = start(Duration::from_secs(30)).await;
    let (a, b) = (auth::customer(), auth::customer());
    let (customer_a, customer_b) = (Identity::Customer(a), Identity::Customer(b));
    let callers = [
        Identity::Anonymous,
        auth::expired_token(&customer_a),
        auth::forged_token(&customer_a),
        customer_a.clone(),
        customer_b.clone(),
        Identity::Operator,
    ];
    let own_body = order_body(None, &[("widget", 1)]);
    let response = service
        .request_as(&customer_a, "POST", "/orders", Some(&own_body), &[])
        .await;
    assert_eq!(response.status(), 201);
    let order_a: Value = response.json().await.unwrap();
    assert_eq!(order_a["customer_id"], a.to_string());
    let order_a_id = order_a["id"].as_str().unwrap().to_owned();
    let missing = Uuid::now_v7();

    let endpoint = |method, path: String, body: Option<&String>, statuses| Endpoint {
        method,
        path,
        body: body.cloned(),
        statuses,
    };
    let for_a = order_body(Some(a), &[("widget", 1)]);
    let endpoints = [
        // For oneself: an operator must name the customer.
        endpoint(
            "POST",
            "/orders".into(),
            Some(&own_body),
            [401, 401, 401, 201, 201, 422],
        ),
        // For A: A itself or an operator, never B.
        endpoint(
            "POST",
            "/orders".into(),
            Some(&for_a),
            [401, 401, 401, 201, 403, 201],
        ),
        endpoint(
            "GET",
            format!("/orders/{order_a_id}"),
            None,
            [401, 401, 401, 200, 404, 200],
        ),
        endpoint(
            "GET",
            format!("/orders/{missing}"),
            None,
            [401, 401, 401, 404, 404, 404],
        ),
        endpoint(
            "GET",
            "/orders".into(),
            None,
            [401, 401, 401, 200, 200, 200],
        ),
        endpoint(
            "GET",
            format!("/orders?customer_id={a}"),
            None,
            [401, 401, 401, 200, 403, 200],
        ),
        endpoint(
            "GET",
            format!("/orders?customer_id={b}"),
            None,
            [401, 401, 401, 403, 200, 200],
        ),
        endpoint("GET", "/saga".into(), None, [401, 401, 401, 200, 200, 200]),
        endpoint(
            "POST",
            format!("/orders/{missing}/cancel"),
            None,
            [401, 401, 401, 404, 404, 404],
        ),
        // Last, for it cancels A's order: A itself or an operator (again: idempotent), never B.
        endpoint(
            "POST",
            format!("/orders/{order_a_id}/cancel"),
            None,
            [401, 401, 401, 200, 404, 200],
        ),
    ];
    for endpoint in &endpoints {
        for ((caller, name), status) in callers.iter().zip(CALLERS).zip(endpoint.statuses) {
            let what = format!("{} {} as {name}", endpoint.method, endpoint.path);
            let response = service
                .request_as(
                    caller,
                    endpoint.method,
                    &endpoint.path,
                    endpoint.body.as_deref(),
                    &[],
                )
                .await;
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
            let body: Value = response.json().await.unwrap_or(Value::Null);
            // A customer's answers hold only their own orders.
            let own = match caller {
                Identity::Customer(own) => own.to_string(),
                _ => continue,
            };
            // An order has an id; a page has none, only orders.
            let orders = match (body["id"].is_string(), body["items"].as_array()) {
                (true, _) => vec![body.clone()],
                (false, Some(listed)) => listed.clone(),
                (false, None) => Vec::new(),
            };
            for order in orders {
                assert_eq!(order["customer_id"], own, "{what}: {order}");
            }
        }
    }
    // What B gets for A's order is what it gets for an order that never was, but for the id.
    let problem_as_b = |id: String| {
        let service = &service;
        let customer_b = &customer_b;
        async move {
            let response = service
                .request_as(customer_b, "GET", &format!("/orders/{id}"), None, &[])
                .await;
            let text = response.text().await.unwrap();
            text.replace(&id, "{id}")
        }
    };
    assert_eq!(
        problem_as_b(order_a_id.clone()).await,
        problem_as_b(missing.to_string()).await
    );
    // A's orders are in A's list and the operator's, never in B's.
    let listed = |identity: Identity| {
        let service = &service;
        async move {
            let response = service
                .request_as(&identity, "GET", "/orders?limit=100", None, &[])
                .await;
            let page: Value = response.json().await.unwrap();
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|order| order["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert!(listed(customer_a.clone()).await.contains(&order_a_id));
    assert!(listed(Identity::Operator).await.contains(&order_a_id));
    assert!(!listed(customer_b.clone()).await.contains(&order_a_id));
}

#[tokio::test]
async fn idempotency_keys_are_each_customer_s_own() {
    let service = start(Duration::from_secs(30)).await;
    let mut bus = listen(&service).await;
    let (a, b) = (auth::customer(), auth::customer());
    let body = order_body(None, &[("widget", 3), ("gadget", 1)]);
    let key = [("Idempotency-Key", "checkout-42")];
    let post = |identity: Identity, body: String| {
        let service = &service;
        async move {
            let response = service
                .request_as(&identity, "POST", "/orders", Some(&body), &key)
                .await;
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            (status, text)
        }
    };

    let (status, first) = post(Identity::Customer(a), body.clone()).await;
    assert_eq!(status, 201);
    let first: Value = serde_json::from_str(&first).unwrap();
    let first_id = first["id"].as_str().unwrap().to_owned();
    let created = expect_created(&mut bus, id_of(&first)).await;
    assert_eq!(created.customer_id, CustomerId::from(a));
    assert_eq!(created.items.len(), 2);

    // Who sends which body with the key, and what they get: the status, and whether the
    // answer is A's first order.
    let cases = [
        (Identity::Customer(a), body.clone(), 200, true),
        (
            Identity::Customer(a),
            order_body(None, &[("widget", 4)]),
            409,
            false,
        ),
        // The operator placing for A shares A's keys.
        (
            Identity::Operator,
            order_body(Some(a), &[("widget", 3), ("gadget", 1)]),
            200,
            true,
        ),
        // B's key is B's own: a new order, and nothing of A's in the answer.
        (Identity::Customer(b), body.clone(), 201, false),
        (Identity::Customer(b), body.clone(), 200, false),
        (
            Identity::Customer(b),
            order_body(None, &[("widget", 4)]),
            409,
            false,
        ),
    ];
    let mut b_order = None;
    for (identity, body, status, is_first) in cases {
        let what = format!("{identity:?} {body}");
        let (got, text) = post(identity.clone(), body).await;
        assert_eq!(got, status, "{what}: {text}");
        assert_eq!(text.contains(&first_id), is_first, "{what}: {text}");
        if status != 409 && identity == Identity::Customer(b) {
            let order: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(order["customer_id"], b.to_string());
            let id = order["id"].as_str().unwrap().to_owned();
            assert_eq!(b_order.get_or_insert_with(|| id.clone()), &id, "{what}");
        }
    }
    // One OrderCreated per order, no more.
    let b_order: OrderId = b_order.unwrap().parse().unwrap();
    expect_created(&mut bus, b_order).await;
    bus.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn lists_page_newest_first_and_the_saga_is_served_as_run() {
    let service = start(Duration::from_secs(30)).await;
    let customer = auth::customer();
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(id_of(&place(&service, customer, &[("widget", 1)]).await).to_string());
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
    for path in ["/orders", "/orders/{id}", "/orders/{id}/cancel", "/saga"] {
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
    // Who may be refused where, and that prices may be unknown, are in the document.
    for (path, method, status) in [
        ("/orders", "post", "403"),
        ("/orders", "get", "403"),
        ("/orders/{id}", "get", "404"),
        ("/orders/{id}/cancel", "post", "404"),
        ("/orders/{id}/cancel", "post", "409"),
    ] {
        assert!(
            openapi["paths"][path][method]["responses"][status].is_object(),
            "{method} {path} documents {status}"
        );
    }
    let schemas = &openapi["components"]["schemas"];
    for (schema, field) in [
        ("Order", "total"),
        ("Order", "deadline_at"),
        ("Item", "unit_price"),
    ] {
        let types = &schemas[schema]["properties"][field]["type"];
        assert!(
            types
                .as_array()
                .is_some_and(|types| types.contains(&json!("null"))),
            "{schema}.{field} is nullable: {types}"
        );
    }
    let awaiting = &schemas["AwaitingEffect"]["properties"];
    for field in [
        "effect",
        "attempts",
        "first_sent_at",
        "last_sent_at",
        "next_attempt_at",
    ] {
        assert!(
            awaiting[field].is_object(),
            "AwaitingEffect.{field}: {awaiting}"
        );
    }
    assert!(
        schemas["Order"]["properties"]["awaiting_confirmation"].is_object(),
        "{}",
        schemas["Order"]
    );
    let request = &schemas["PlaceOrderLine"]["properties"];
    assert!(request.get("unit_price").is_none(), "{request}");
}

#[tokio::test]
async fn lists_filter_by_time_and_by_waiting_and_the_activity_counts_states_and_edges() {
    let service = start(Duration::from_secs(30)).await;
    let customer = auth::customer();
    let placed_from = chrono::Utc::now() - chrono::Duration::seconds(1);
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(id_of(&place(&service, customer, &[("widget", 1)]).await).to_string());
    }
    let response = service
        .request("POST", &format!("/orders/{}/cancel", ids[0]), None, &[])
        .await;
    assert_eq!(response.status(), 200);
    let hour_later = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let encoded = |moment: &str| moment.replace('+', "%2B");
    let all: Vec<&str> = ids.iter().map(String::as_str).collect();
    let cases = [
        (
            format!("created_after={}", encoded(&placed_from.to_rfc3339())),
            all.clone(),
        ),
        (format!("created_after={}", encoded(&hour_later)), vec![]),
        (
            format!("created_before={}", encoded(&hour_later)),
            all.clone(),
        ),
        // The cancelled order is done: only the two still pending are waiting.
        (
            "waiting_longer_than_secs=0".to_owned(),
            vec![&ids[1], &ids[2]],
        ),
        ("waiting_longer_than_secs=3600".to_owned(), vec![]),
    ];
    for (query, expected) in cases {
        let (status, page) = service.get_json(&format!("/orders?{query}")).await;
        assert_eq!(status, 200, "{query}: {page}");
        let mut listed: Vec<&str> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|order| order["id"].as_str().unwrap())
            .collect();
        listed.sort_unstable();
        let mut expected = expected;
        expected.sort_unstable();
        assert_eq!(listed, expected, "{query}");
    }

    let (status, activity) = service.get_json("/saga/activity").await;
    assert_eq!(status, 200, "{activity}");
    let in_state = |state: &str| {
        activity["states"]
            .as_array()
            .unwrap()
            .iter()
            .find(|entry| entry["state"] == state)
            .map(|entry| entry["orders"].as_u64().unwrap())
    };
    assert_eq!(
        (
            in_state("Pending"),
            in_state("Cancelled"),
            in_state("Completed")
        ),
        (Some(2), Some(1), Some(0))
    );
    let edges: Vec<(Option<&str>, &str, u64)> = activity["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|edge| {
            (
                edge["from"].as_str(),
                edge["to"].as_str().unwrap(),
                edge["steps"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        edges,
        [(None, "Pending", 3), (Some("Pending"), "Cancelled", 1)]
    );
    let (status, problem) = service.get_json("/saga/activity?window_secs=0").await;
    let fields: Vec<String> = problem_fields(&problem)
        .into_iter()
        .map(|(field, _)| field)
        .collect();
    assert_eq!(
        (status.as_u16(), fields),
        (422, vec!["window_secs".to_owned()])
    );
    let response = service
        .request_as(
            &Identity::Customer(customer),
            "GET",
            "/saga/activity",
            None,
            &[],
        )
        .await;
    assert_eq!(response.status(), 403, "the activity is an operator's");
}
