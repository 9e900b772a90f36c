//! Bad input at the edges: hostile HTTP requests generated from each service's own OpenAPI
//! document, and broken configuration at start-up.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::Value;
use testkit::system::{Profile, Svc, System, SystemConfig, build_binaries};

/// One generated request.
#[derive(Clone, Debug)]
struct Hostile {
    path_parameter: String,
    query: String,
    content_type: Option<String>,
    body: Vec<u8>,
    header: (String, String),
}

fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("0199c3e1-0000-7000-8000-000000000001".to_owned()),
        Just("../../etc/passwd".to_owned()),
        Just("%00%ff%fe".to_owned()),
        Just("a".repeat(5_000)),
        "[A-Za-z0-9_-]{1,80}",
        any::<String>(),
    ]
}

fn hostile_json() -> impl Strategy<Value = Vec<u8>> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(
            |number| serde_json::Number::from_f64(number).map_or(Value::Null, Value::Number)
        ),
        hostile_text().prop_map(Value::String),
    ];
    let tree = leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("customer_id".to_owned()),
                    Just("items".to_owned()),
                    Just("available".to_owned()),
                    Just("balance".to_owned()),
                    Just("quantity".to_owned()),
                    "[a-z_]{1,12}",
                ],
                inner,
                0..6
            )
            .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    });
    prop_oneof![
        tree.prop_map(|value| value.to_string().into_bytes()),
        proptest::collection::vec(any::<u8>(), 0..300),
        Just(b"{\"customer_id\": \"0199c3e1-0000-7000-8000-000000000001\", \"items\": [{\"product_id\": \"x\", \"quantity\": 99999999999999999999, \"unit_price\": 1}]}".to_vec()),
        Just(vec![b'{'; 70_000]),
    ]
}

fn hostile() -> impl Strategy<Value = Hostile> {
    (
        hostile_text(),
        // Printable characters only: a raw control character is not HTTP, and hyper drops such
        // a request before any service code runs.
        prop_oneof![Just(String::new()), "[a-z_]{1,10}=[^&#\\x00-\\x20\\x7f]{0,20}(&[a-z_]{1,10}=[^&#\\x00-\\x20\\x7f]{0,20}){0,3}"],
        prop_oneof![
            Just(None),
            Just(Some("application/json".to_owned())),
            Just(Some("application/json; charset=utf-8".to_owned())),
            Just(Some("text/plain".to_owned())),
            Just(Some("application/x-www-form-urlencoded".to_owned())),
        ],
        hostile_json(),
        prop_oneof![
            Just(("Idempotency-Key".to_owned(), "k".repeat(300))),
            Just(("Idempotency-Key".to_owned(), "key".to_owned())),
            Just(("X-Forwarded-For".to_owned(), "not an address".to_owned())),
            Just(("Accept".to_owned(), "application/xml".to_owned())),
        ],
    )
        .prop_map(|(path_parameter, query, content_type, body, header)| Hostile {
            path_parameter,
            query,
            content_type,
            body,
            header,
        })
}

fn encode_path_segment(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Every documented operation of a service: `(method, path template, documented statuses)`.
fn operations(openapi: &Value) -> Vec<(String, String, BTreeSet<u16>)> {
    let mut found = Vec::new();
    for (path, methods) in openapi["paths"].as_object().into_iter().flatten() {
        for (method, operation) in methods.as_object().into_iter().flatten() {
            let statuses = operation["responses"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(status, _)| status.parse().ok())
                .collect();
            found.push((method.to_uppercase(), path.clone(), statuses));
        }
    }
    found
}

/// Generated hostile requests against every documented operation of every service: never a
/// 5xx, never a hang, every error is problem+json, every status is one the document lists, and
/// the services stay healthy.
#[tokio::test]
async fn hostile_requests_get_documented_4xx_problems_and_the_services_stay_healthy() {
    let system = System::start(SystemConfig::default()).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut runner = TestRunner::deterministic();
    let mut failures = Vec::new();
    let mut sent = 0;
    for svc in Svc::ALL {
        let base = system.url(svc);
        let openapi: Value = http
            .get(format!("{base}/openapi.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            openapi["openapi"].as_str().unwrap().starts_with("3.1"),
            "{} serves OpenAPI 3.1",
            svc.binary()
        );
        for (method, template, documented) in operations(&openapi) {
            for _ in 0..40 {
                let case = hostile().new_tree(&mut runner).unwrap().current();
                // An empty segment would address another route (`/products/` is not `/products/{id}`).
                if case.path_parameter.is_empty() && template.contains('{') {
                    continue;
                }
                let path = template
                    .split('/')
                    .map(|segment| match segment.starts_with('{') {
                        true => encode_path_segment(&case.path_parameter),
                        false => segment.to_owned(),
                    })
                    .collect::<Vec<_>>()
                    .join("/");
                let url = match case.query.is_empty() {
                    true => format!("{base}{path}"),
                    false => format!("{base}{path}?{}", case.query),
                };
                let mut request = http
                    .request(method.parse().unwrap(), &url)
                    .header(&case.header.0, &case.header.1);
                if method == "POST" || method == "PUT" {
                    if let Some(content_type) = &case.content_type {
                        request = request.header("content-type", content_type);
                    }
                    request = request.body(case.body.clone());
                }
                sent += 1;
                let started = Instant::now();
                let response = match request.send().await {
                    Ok(response) => response,
                    // Over the body limit the service answers 413 at once and may close the
                    // connection before the client has finished sending: that is HTTP.
                    Err(_)
                        if case.body.len() > 64 * 1024 && (method == "POST" || method == "PUT") =>
                    {
                        continue;
                    }
                    Err(error) => {
                        failures.push(format!(
                            "{method} {url}: no answer ({error:?}; body of {} bytes, content type {:?}, header {:?})",
                            case.body.len(),
                            case.content_type,
                            case.header.0
                        ));
                        continue;
                    }
                };
                let status = response.status().as_u16();
                let content_type = response
                    .headers()
                    .get("content-type")
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                if status >= 500 {
                    failures.push(format!(
                        "{method} {url}: {status} after {:?}",
                        started.elapsed()
                    ));
                } else if status >= 400 && content_type != "application/problem+json" {
                    failures.push(format!(
                        "{method} {url}: {status} with content type {content_type:?}"
                    ));
                }
                if !documented.contains(&status) {
                    failures.push(format!("{method} {template}: status {status} is not in the OpenAPI document {documented:?}"));
                }
            }
        }
    }
    for svc in Svc::ALL {
        let ready = http
            .get(format!("{}/health/ready", system.url(svc)))
            .send()
            .await
            .unwrap();
        assert_eq!(
            ready.status(),
            200,
            "{} is healthy after the barrage",
            svc.binary()
        );
    }
    failures.sort();
    failures.dedup();
    assert!(
        failures.is_empty(),
        "{} of {sent} requests broke the contract:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A missing or invalid variable, or a server that never answers: the service says which and
/// exits non-zero, after retrying for `STARTUP_TIMEOUT_SECS` when the server may come back.
#[tokio::test]
async fn broken_configuration_stops_a_service_with_a_clear_message() {
    let binaries = build_binaries(Profile::Debug);
    let order_svc = binaries.join("order-svc");
    let base = [
        ("HTTP_ADDR", "127.0.0.1:0"),
        ("STARTUP_TIMEOUT_SECS", "2"),
        ("RUST_LOG", "warn"),
    ];
    // (environment, text the error must contain)
    let cases: [(&[(&str, &str)], &str); 6] = [
        (&[], "DATABASE_URL is required"),
        (
            &[(
                "DATABASE_URL",
                "postgres://postgres@127.0.0.1:5432/postgres",
            )],
            "AMQP_URL is required",
        ),
        (
            &[
                ("DATABASE_URL", "mysql://somewhere/db"),
                ("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
            ],
            "DATABASE_URL is invalid",
        ),
        (
            &[
                ("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none"),
                ("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
            ],
            "the database was unreachable",
        ),
        (
            &[
                (
                    "DATABASE_URL",
                    "postgres://postgres@127.0.0.1:5432/postgres",
                ),
                ("AMQP_URL", "amqp://guest:guest@127.0.0.1:1/%2f"),
            ],
            "the broker was unreachable",
        ),
        (
            &[
                (
                    "DATABASE_URL",
                    "postgres://postgres@127.0.0.1:5432/postgres",
                ),
                ("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
                ("ORDER_SAGA_TIMEOUT_SECS", "soon"),
            ],
            "ORDER_SAGA_TIMEOUT_SECS has an invalid value",
        ),
    ];
    for (environment, expected) in cases {
        let output = tokio::time::timeout(
            Duration::from_secs(60),
            tokio::process::Command::new(&order_svc)
                .env_clear()
                .envs(base)
                .envs(environment.iter().copied())
                .output(),
        )
        .await
        .expect("the service gives up within the timeout")
        .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{environment:?} must not start");
        assert!(
            stderr.contains(expected),
            "{environment:?}: {stderr:?} lacks {expected:?}"
        );
    }
}
