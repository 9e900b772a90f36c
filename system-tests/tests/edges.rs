//! Bad input at the edges: hostile HTTP requests generated from each service's own OpenAPI
//! document, sent by every kind of caller (an operator mostly, so that the bodies reach the
//! handlers; customers; and callers without a valid token), and broken configuration at
//! start-up.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::Value;
use testkit::auth::{Identity, authorization, expired_token, forged_token};
use testkit::system::{Profile, Svc, System, SystemConfig, build_binaries};

/// The customer of the customer tokens: also one of the hostile path parameters, so that a
/// customer sometimes asks for what is their own.
const HOSTILE_CUSTOMER: &str = "0199c3e1-0000-7000-8000-000000000001";

/// Who sends a generated request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sender {
    /// A valid operator token.
    Operator,
    /// A valid customer token (of [`HOSTILE_CUSTOMER`]).
    Customer,
    /// No `Authorization` header.
    Anonymous,
    /// Something that is not a JWT.
    Garbage,
    /// An operator token that expired.
    Expired,
    /// An operator token signed with another secret.
    Forged,
}

impl Sender {
    /// Whether the services must refuse the sender with 401 whatever it asks.
    fn is_unauthenticated(self) -> bool {
        !matches!(self, Sender::Operator | Sender::Customer)
    }
}

/// The `Authorization` header of each sender.
struct Credentials(Vec<(Sender, Option<String>)>);

impl Credentials {
    fn mint() -> Credentials {
        let customer = Identity::Customer(HOSTILE_CUSTOMER.parse().unwrap());
        Credentials(vec![
            (Sender::Operator, authorization(&Identity::Operator)),
            (Sender::Customer, authorization(&customer)),
            (Sender::Anonymous, None),
            (Sender::Garbage, Some("Bearer not.a.jwt".to_owned())),
            (
                Sender::Expired,
                authorization(&expired_token(&Identity::Operator)),
            ),
            (
                Sender::Forged,
                authorization(&forged_token(&Identity::Operator)),
            ),
        ])
    }

    fn of(&self, sender: Sender) -> Option<&str> {
        self.0
            .iter()
            .find(|(candidate, _)| *candidate == sender)
            .and_then(|(_, header)| header.as_deref())
    }
}

/// The operations only an operator may use: a customer never gets a 2xx from them. Each must
/// be in its service's document (checked), so that a renamed route cannot make this vacuous.
const OPERATOR_ONLY: [(Svc, &str, &str); 3] = [
    (Svc::Inventory, "PUT", "/products/{product_id}"),
    (Svc::Inventory, "GET", "/reservations/{order_id}"),
    (Svc::Payment, "PUT", "/accounts/{customer_id}"),
];

/// One generated request.
#[derive(Clone, Debug)]
struct Hostile {
    sender: Sender,
    path_parameter: String,
    query: String,
    content_type: Option<String>,
    body: Vec<u8>,
    header: (String, String),
}

fn sender() -> impl Strategy<Value = Sender> {
    prop_oneof![
        5 => Just(Sender::Operator),
        2 => Just(Sender::Customer),
        1 => Just(Sender::Anonymous),
        1 => Just(Sender::Garbage),
        1 => Just(Sender::Expired),
        1 => Just(Sender::Forged),
    ]
}

fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just(HOSTILE_CUSTOMER.to_owned()),
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
                    Just("price".to_owned()),
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
        sender(),
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
        .prop_map(|(sender, path_parameter, query, content_type, body, header)| Hostile {
            sender,
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
/// 5xx, never a hang, every error is problem+json, every status is one the document lists, a
/// caller without a valid token always gets 401 (with `WWW-Authenticate: Bearer`; or 413 for a
/// body over the limit, refused before anything else), a customer
/// never succeeds at an operator's operation, and the services stay healthy.
#[tokio::test]
async fn hostile_requests_get_documented_4xx_problems_and_the_services_stay_healthy() {
    let system = System::start(SystemConfig::default()).await;
    let credentials = Credentials::mint();
    let mut operator_only_found = Vec::new();
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
            let operator_only = OPERATOR_ONLY.contains(&(svc, method.as_str(), template.as_str()));
            if operator_only {
                operator_only_found.push((svc, method.clone(), template.clone()));
            }
            for status in [401, 403] {
                if !documented.contains(&status) {
                    failures.push(format!(
                        "{method} {template}: {status} is not in the OpenAPI document {documented:?}"
                    ));
                }
            }
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
                if let Some(authorization) = credentials.of(case.sender) {
                    request = request.header("authorization", authorization);
                }
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
                            "{method} {url}: no answer ({error:?}; sender {:?}, body of {} bytes, content type {:?}, header {:?})",
                            case.sender,
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
                let challenge = response
                    .headers()
                    .get("www-authenticate")
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or_default();
                // The edge refuses a body over its limit before it looks at anything else:
                // 413 tells an unauthenticated caller nothing.
                let oversized =
                    case.body.len() > 64 * 1024 && (method == "POST" || method == "PUT");
                let refused = match oversized {
                    true => status == 413 || (status == 401 && challenge.starts_with("Bearer")),
                    false => status == 401 && challenge.starts_with("Bearer"),
                };
                if case.sender.is_unauthenticated() && !refused {
                    failures.push(format!(
                        "{method} {template} from {:?}: {status} with WWW-Authenticate {challenge:?}, not 401 with a Bearer challenge",
                        case.sender
                    ));
                }
                if case.sender == Sender::Customer && operator_only && status < 300 {
                    failures.push(format!(
                        "{method} {template}: a customer got {status} from an operator's operation"
                    ));
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
    assert_eq!(
        operator_only_found.len(),
        OPERATOR_ONLY.len(),
        "every operator-only operation is documented: found {operator_only_found:?}"
    );
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
    let secret = ("AUTH_JWT_SECRET", testkit::auth::SECRET);
    let database = (
        "DATABASE_URL",
        "postgres://postgres@127.0.0.1:5432/postgres",
    );
    let broker = ("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f");
    // (environment, text the error must contain)
    let cases: [(&[(&str, &str)], &str); 7] = [
        (&[secret], "DATABASE_URL is required"),
        (&[secret, database], "AMQP_URL is required"),
        (
            &[database, broker],
            "AUTH_JWT_SECRET or AUTH_JWT_PUBLIC_KEY_FILE is required",
        ),
        (
            &[secret, ("DATABASE_URL", "mysql://somewhere/db"), broker],
            "DATABASE_URL is invalid",
        ),
        (
            &[
                secret,
                ("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none"),
                broker,
            ],
            "the database was unreachable",
        ),
        (
            &[
                secret,
                database,
                ("AMQP_URL", "amqp://guest:guest@127.0.0.1:1/%2f"),
            ],
            "the broker was unreachable",
        ),
        (
            &[
                secret,
                database,
                broker,
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
