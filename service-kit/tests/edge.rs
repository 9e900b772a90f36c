//! The HTTP edge end to end: a small router served by `service_kit::http::serve` on loopback,
//! hit with a real HTTP client.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use service_kit::extract::{ApiJson, ApiPath, ApiQuery};
use service_kit::health::{CheckFuture, Readiness, ReadinessCheck, health_router};
use service_kit::http::{DEFAULT_BODY_LIMIT_BYTES, serve, with_edge_layers};
use service_kit::metrics_endpoint::metrics_router;
use service_kit::problem::Problem;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

// --- the service under test --------------------------------------------------------------------

#[derive(Debug, Serialize, Deserialize)]
struct Order {
    customer: String,
    items: Vec<Line>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Line {
    product_id: String,
    quantity: u32,
}

#[derive(Debug, Deserialize)]
struct Page {
    limit: u32,
    #[allow(dead_code)]
    after: Option<String>,
}

async fn create_order(ApiJson(order): ApiJson<Order>) -> ApiJson<Order> {
    ApiJson(order)
}

async fn get_order(ApiPath(id): ApiPath<Uuid>) -> ApiJson<Value> {
    ApiJson(json!({ "id": id }))
}

async fn list_orders(ApiQuery(page): ApiQuery<Page>) -> ApiJson<Value> {
    ApiJson(json!({ "limit": page.limit }))
}

async fn explode() -> Result<ApiJson<Value>, Problem> {
    Err(Problem::internal(
        "connection to db:5432 refused; password hunter2",
    ))
}

// axum's own extractor, to show that its plain-text rejections become problems too.
async fn legacy(axum::Json(order): axum::Json<Order>) -> ApiJson<Order> {
    ApiJson(order)
}

async fn slow() -> ApiJson<Value> {
    tokio::time::sleep(Duration::from_millis(400)).await;
    ApiJson(json!({ "slept": true }))
}

fn test_router(readiness: Readiness) -> Router {
    let routes = Router::new()
        .route("/orders", post(create_order).get(list_orders))
        .route("/orders/{id}", get(get_order))
        .route("/explode", get(explode))
        .route("/legacy", post(legacy))
        .route("/slow", get(slow))
        .merge(health_router(readiness))
        .merge(metrics_router().unwrap());
    with_edge_layers(routes, DEFAULT_BODY_LIMIT_BYTES)
}

struct TestService {
    base_url: String,
    address: std::net::SocketAddr,
    client: reqwest::Client,
    shutdown: CancellationToken,
    server: JoinHandle<std::io::Result<()>>,
}

async fn spawn_service(readiness: Readiness) -> TestService {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve(listener, test_router(readiness), shutdown.clone()));
    TestService {
        base_url: format!("http://{address}"),
        address,
        client: reqwest::Client::new(),
        shutdown,
        server,
    }
}

impl TestService {
    async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base_url))
            .send()
            .await
            .unwrap()
    }
}

// --- one table, one check ----------------------------------------------------------------------

const VALID_ORDER: &str = r#"{"customer":"c-1","items":[{"product_id":"p-1","quantity":2}]}"#;

struct Case {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    content_type: Option<&'static str>,
    body: Option<String>,
    status: u16,
    /// For problems: the `field` of every entry in `errors`, in order.
    fields: &'static [&'static str],
    /// For problems: a piece of the detail (empty: not checked).
    detail_contains: &'static str,
}

impl Case {
    fn new(name: &'static str, method: &'static str, path: &'static str, status: u16) -> Self {
        Self {
            name,
            method,
            path,
            content_type: None,
            body: None,
            status,
            fields: &[],
            detail_contains: "",
        }
    }

    fn json(mut self, body: &str) -> Self {
        self.content_type = Some("application/json");
        self.body = Some(body.to_owned());
        self
    }

    fn content_type(mut self, content_type: Option<&'static str>) -> Self {
        self.content_type = content_type;
        self
    }

    fn fields(mut self, fields: &'static [&'static str]) -> Self {
        self.fields = fields;
        self
    }

    fn detail(mut self, detail_contains: &'static str) -> Self {
        self.detail_contains = detail_contains;
        self
    }
}

/// Sends the case's request and checks status, content type and, for errors, the problem's
/// shape; returns the JSON body.
async fn check(service: &TestService, case: &Case) -> Value {
    let method = reqwest::Method::from_bytes(case.method.as_bytes()).unwrap();
    let mut request = service
        .client
        .request(method, format!("{}{}", service.base_url, case.path));
    if let Some(content_type) = case.content_type {
        request = request.header("content-type", content_type);
    }
    if let Some(body) = &case.body {
        request = request.body(body.clone());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = response.text().await.unwrap();
    let name = case.name;
    assert_eq!(status, case.status, "{name}: status; body {text}");
    let body: Value = serde_json::from_str(&text)
        .map_err(|error| format!("{name}: body is not JSON ({error}): {text}"))
        .unwrap();
    if status < 400 {
        assert_eq!(content_type, "application/json", "{name}: content type");
        return body;
    }
    assert_eq!(
        content_type, "application/problem+json",
        "{name}: content type"
    );
    let problem: Problem = serde_json::from_value(body.clone())
        .map_err(|error| format!("{name}: not a problem ({error}): {text}"))
        .unwrap();
    assert_eq!(problem.status, status, "{name}: status in the body");
    assert_eq!(body["type"], "about:blank", "{name}: type");
    assert!(
        body["errors"].is_array(),
        "{name}: errors always present: {text}"
    );
    let fields: Vec<&str> = problem
        .errors
        .iter()
        .map(|error| error.field.as_str())
        .collect();
    assert_eq!(fields, case.fields, "{name}: fields; body {text}");
    let detail = problem.detail.unwrap_or_default();
    assert!(
        detail.contains(case.detail_contains),
        "{name}: detail {detail:?} lacks {:?}",
        case.detail_contains
    );
    body
}

#[tokio::test]
async fn requests_are_answered_or_rejected_with_problems() {
    let service = spawn_service(Readiness::new()).await;
    let order_id = Uuid::now_v7();
    let order_path: &'static str = format!("/orders/{order_id}").leak();
    let seventy_kib = format!(r#"{{"customer":"{}","items":[]}}"#, "x".repeat(70 * 1024));
    let cases = [
        Case::new("valid body", "POST", "/orders", 200).json(VALID_ORDER),
        Case::new("charset parameter", "POST", "/orders", 200)
            .json(VALID_ORDER)
            .content_type(Some("application/json; charset=utf-8")),
        Case::new("structured +json suffix", "POST", "/orders", 200)
            .json(VALID_ORDER)
            .content_type(Some("application/vnd.order+json")),
        Case::new("malformed JSON", "POST", "/orders", 400)
            .json(r#"{"customer": "c-1", "items": [}"#)
            .fields(&["body"])
            .detail("line 1 column 31"),
        Case::new("truncated JSON", "POST", "/orders", 400)
            .json(r#"{"customer": "c-1""#)
            .fields(&["body"])
            .detail("EOF"),
        Case::new("trailing garbage", "POST", "/orders", 400)
            .json(&format!("{VALID_ORDER} extra"))
            .fields(&["body"])
            .detail("trailing characters"),
        Case::new("wrong type deep inside", "POST", "/orders", 400)
            .json(r#"{"customer":"c-1","items":[{"product_id":"p-1","quantity":"two"}]}"#)
            .fields(&["items[0].quantity"])
            .detail("invalid type"),
        Case::new("missing field deep inside", "POST", "/orders", 400)
            .json(r#"{"customer":"c-1","items":[{"product_id":"p-1"}]}"#)
            .fields(&["items[0].quantity"])
            .detail("missing field `quantity`"),
        Case::new("missing field at the top", "POST", "/orders", 400)
            .json(r#"{"items":[]}"#)
            .fields(&["customer"]),
        Case::new("wrong type at the root", "POST", "/orders", 400)
            .json("42")
            .fields(&["body"])
            .detail("expected struct Order"),
        // serde alone would read the struct from its fields' values in an array.
        Case::new("an array where the object belongs", "POST", "/orders", 400)
            .json(r#" [ "c-1", [] ]"#)
            .fields(&["body"])
            .detail("must be a JSON object"),
        Case::new("text/plain is not JSON", "POST", "/orders", 415)
            .json(VALID_ORDER)
            .content_type(Some("text/plain"))
            .fields(&["Content-Type"]),
        Case::new("no content type", "POST", "/orders", 415)
            .json(VALID_ORDER)
            .content_type(None)
            .fields(&["Content-Type"]),
        Case::new("70 KiB body", "POST", "/orders", 413)
            .json(&seventy_kib)
            .detail("65536 bytes"),
        Case::new("70 KiB body to axum's own Json", "POST", "/legacy", 413)
            .json(&seventy_kib)
            .detail("65536 bytes"),
        Case::new("axum's own Json rejection", "POST", "/legacy", 422)
            .json(r#"{"customer":"c-1"}"#)
            .detail("missing field `items`"),
        Case::new("valid path parameter", "GET", order_path, 200),
        Case::new(
            "path parameter that is no UUID",
            "GET",
            "/orders/not-a-uuid",
            400,
        )
        .fields(&["id"])
        .detail("invalid id"),
        Case::new("valid query", "GET", "/orders?limit=10&after=x", 200),
        Case::new(
            "query parameter of the wrong type",
            "GET",
            "/orders?limit=ten",
            400,
        )
        .fields(&["limit"]),
        Case::new("missing query parameter", "GET", "/orders?after=x", 400).fields(&["limit"]),
        Case::new("unknown route", "GET", "/no/such/route", 404).detail("/no/such/route"),
        Case::new("wrong method", "DELETE", "/orders", 405).detail("DELETE"),
        Case::new("internal error", "GET", "/explode", 500),
        Case::new("live", "GET", "/health/live", 200),
        Case::new("ready without checks", "GET", "/health/ready", 200),
    ];
    for case in &cases {
        check(&service, case).await;
    }
    let body = check(
        &service,
        &Case::new("echo", "POST", "/orders", 200).json(VALID_ORDER),
    )
    .await;
    assert_eq!(body["items"][0]["quantity"], 2);
    let body = check(&service, &Case::new("id", "GET", order_path, 200)).await;
    assert_eq!(body["id"], order_id.to_string());
    let body = check(&service, &Case::new("live", "GET", "/health/live", 200)).await;
    assert_eq!(body, json!({ "status": "live" }));
}

#[tokio::test]
async fn wrong_method_keeps_the_allow_header() {
    let service = spawn_service(Readiness::new()).await;
    let response = service
        .client
        .delete(format!("{}/orders", service.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    let allow = response.headers().get("allow").unwrap().to_str().unwrap();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
}

#[tokio::test]
async fn internal_errors_are_opaque() {
    let service = spawn_service(Readiness::new()).await;
    let response = service.get("/explode").await;
    assert_eq!(response.status(), 500);
    let text = response.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["title"], "Internal Server Error");
    assert!(body.get("detail").is_none(), "{text}");
    for secret in ["hunter2", "5432", "refused"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
}

/// Without `Content-Length` the limit can only bite while the body is read; this sends a
/// chunked body by hand, as no extractor sees the size up front.
#[tokio::test]
async fn chunked_body_over_the_limit_is_413() {
    let service = spawn_service(Readiness::new()).await;
    let chunk = "x".repeat(10 * 1024);
    let mut request = String::from(
        "POST /orders HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\nconnection: close\r\n\r\n",
    );
    request.push_str("d\r\n{\"customer\":\"\r\n");
    for _ in 0..7 {
        request.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    request.push_str("0\r\n\r\n");
    let mut stream = TcpStream::connect(service.address).await.unwrap();
    // The server may answer and close before reading everything; a failed write is fine.
    let _ = stream.write_all(request.as_bytes()).await;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(
        response.contains("content-type: application/problem+json"),
        "{response}"
    );
    assert!(response.contains("65536 bytes"), "{response}");
}

// --- health ------------------------------------------------------------------------------------

struct Broker {
    reachable: bool,
}

impl ReadinessCheck for Broker {
    fn name(&self) -> &'static str {
        "broker"
    }

    fn check(&self) -> CheckFuture<'_> {
        Box::pin(async move {
            match self.reachable {
                true => Ok(()),
                false => Err("no route to host".to_owned()),
            }
        })
    }
}

#[tokio::test]
async fn readiness_reports_each_check() {
    struct HealthCase {
        name: &'static str,
        readiness: Readiness,
        status: u16,
        fields: &'static [&'static str],
        detail_contains: &'static str,
    }
    let cases = [
        HealthCase {
            name: "all pass",
            readiness: Readiness::new()
                .with_check("database", || async { Ok(()) })
                .with_readiness_check(Broker { reachable: true }),
            status: 200,
            fields: &[],
            detail_contains: "",
        },
        HealthCase {
            name: "database down",
            readiness: Readiness::new()
                .with_check("database", || async {
                    Err("connection refused".to_owned())
                })
                .with_readiness_check(Broker { reachable: true }),
            status: 503,
            fields: &["database"],
            detail_contains: "database: connection refused",
        },
        HealthCase {
            name: "both down",
            readiness: Readiness::new()
                .with_check("database", || async {
                    Err("connection refused".to_owned())
                })
                .with_readiness_check(Broker { reachable: false }),
            status: 503,
            fields: &["broker", "database"],
            detail_contains: "broker: no route to host; database: connection refused",
        },
        HealthCase {
            name: "slow check times out",
            readiness: Readiness::new()
                .with_timeout(Duration::from_millis(100))
                .with_check("database", || async { Ok(()) })
                .with_check("search", || async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    Ok(())
                }),
            status: 503,
            fields: &["search"],
            detail_contains: "search: timed out after 100ms",
        },
        HealthCase {
            name: "panicking check fails alone",
            readiness: Readiness::new().with_check("cache", || async {
                panic!("cache client bug");
            }),
            status: 503,
            fields: &["cache"],
            detail_contains: "cache: the check did not complete",
        },
    ];
    for case in cases {
        let service = spawn_service(case.readiness).await;
        let started = std::time::Instant::now();
        let body = check(
            &service,
            &Case::new(case.name, "GET", "/health/ready", case.status)
                .fields(case.fields)
                .detail(case.detail_contains),
        )
        .await;
        assert!(started.elapsed() < Duration::from_secs(5), "{}", case.name);
        if case.status == 200 {
            assert_eq!(
                body,
                json!({"status": "ready", "checks": {"broker": "ok", "database": "ok"}}),
                "{}",
                case.name
            );
        }
        let live = service.get("/health/live").await;
        assert_eq!(
            live.status(),
            200,
            "{}: live even when not ready",
            case.name
        );
    }
}

// --- metrics -----------------------------------------------------------------------------------

#[tokio::test]
async fn metrics_count_requests_by_route() {
    let service = spawn_service(Readiness::new()).await;
    let order_id = Uuid::now_v7();
    assert_eq!(
        service.get(&format!("/orders/{order_id}")).await.status(),
        200
    );
    assert_eq!(service.get("/some/random/scanner/path").await.status(), 404);

    let response = service.get("/metrics").await;
    assert_eq!(response.status(), 200);
    let content_type = response
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    let has_line = |metric: &str, labels: &[&str]| {
        text.lines()
            .any(|line| line.starts_with(metric) && labels.iter().all(|label| line.contains(label)))
    };
    assert!(
        has_line(
            "http_requests_total{",
            &[
                r#"method="GET""#,
                r#"route="/orders/{id}""#,
                r#"status="200""#
            ]
        ),
        "{text}"
    );
    assert!(
        has_line(
            "http_requests_total{",
            &[r#"route="unmatched""#, r#"status="404""#]
        ),
        "{text}"
    );
    assert!(
        has_line(
            "http_request_duration_seconds_bucket{",
            &[r#"route="/orders/{id}""#, r#"le="0.001""#]
        ),
        "{text}"
    );
    assert!(
        has_line("http_request_duration_seconds_bucket{", &[r#"le="10""#]),
        "{text}"
    );
    assert!(
        !text.contains("scanner"),
        "raw paths must not become labels: {text}"
    );
}

// --- shutdown ----------------------------------------------------------------------------------

#[tokio::test]
async fn cancelling_the_token_finishes_in_flight_requests_and_returns() {
    let service = spawn_service(Readiness::new()).await;
    let client = service.client.clone();
    let slow_url = format!("{}/slow", service.base_url);
    let in_flight = tokio::spawn(async move { client.get(slow_url).send().await });
    tokio::time::sleep(Duration::from_millis(100)).await;

    service.shutdown.cancel();
    let served = tokio::time::timeout(Duration::from_secs(5), service.server)
        .await
        .expect("serve returns after cancellation")
        .unwrap();
    assert!(served.is_ok(), "{served:?}");

    let response = in_flight.await.unwrap().unwrap();
    assert_eq!(response.status(), 200, "the in-flight request is answered");
    assert!(
        TcpStream::connect(service.address).await.is_err(),
        "no longer accepting connections"
    );
}

#[test]
fn shutdown_token_needs_a_runtime() {
    let error = service_kit::http::shutdown_token().unwrap_err();
    assert!(error.to_string().contains("Tokio runtime"), "{error}");
}

#[cfg(unix)]
#[tokio::test]
async fn sigterm_cancels_the_shutdown_token() {
    let token = service_kit::http::shutdown_token().unwrap();
    assert!(!token.is_cancelled());
    // Tokio's handler is installed by now, so the signal cancels the token instead of ending
    // the test process.
    let status = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    tokio::time::timeout(Duration::from_secs(5), token.cancelled())
        .await
        .expect("SIGTERM cancels the token");
}
