//! One order, one trace, across the four services: an order placed through the API yields spans
//! from order-svc, inventory-svc, payment-svc and notify-svc under one trace id, every span's
//! parent in the same trace and the `POST /orders` its one root, received by an OTLP/HTTP
//! endpoint this test runs (decoding the real protobuf payloads the services export); the
//! messaging spans follow OpenTelemetry's conventions for RabbitMQ and the saga's steps carry
//! the saga's attributes; and every service's log lines about the order carry the trace id.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::routing::post;
use common::{PATIENCE, id};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;
use testkit::client::{Client, new_customer};
use testkit::system::{Svc, System, SystemConfig};

/// One exported span, as the test reads it.
#[derive(Clone, Debug)]
struct Exported {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    attributes: BTreeMap<String, String>,
}

/// Every span exported to the receiver so far.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<Exported>>>);

impl Received {
    fn spans(&self) -> Vec<Exported> {
        self.0.lock().unwrap().clone()
    }

    fn record(&self, request: ExportTraceServiceRequest) {
        let hex = |bytes: &[u8]| bytes.iter().map(|byte| format!("{byte:02x}")).collect();
        let text = |value: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>| match value
            .as_ref()
            .and_then(|value| value.value.as_ref())
        {
            Some(AnyValue::StringValue(text)) => text.clone(),
            Some(AnyValue::IntValue(number)) => number.to_string(),
            Some(AnyValue::BoolValue(flag)) => flag.to_string(),
            Some(other) => format!("{other:?}"),
            None => String::new(),
        };
        let mut spans = self.0.lock().unwrap();
        for resource_spans in request.resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|resource| &resource.attributes)
                .find(|attribute| attribute.key == "service.name")
                .map(|attribute| text(&attribute.value))
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    spans.push(Exported {
                        service: service.clone(),
                        name: span.name.clone(),
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                        attributes: span
                            .attributes
                            .iter()
                            .map(|attribute| (attribute.key.clone(), text(&attribute.value)))
                            .collect(),
                    });
                }
            }
        }
    }
}

/// An OTLP/HTTP endpoint on a port of its own: `POST /v1/traces` with protobuf bodies.
async fn receiver() -> (String, Received) {
    let received = Received::default();
    let store = received.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| {
            let store = store.clone();
            async move {
                match ExportTraceServiceRequest::decode(body) {
                    Ok(request) => {
                        store.record(request);
                        (
                            axum::http::StatusCode::OK,
                            [("content-type", "application/x-protobuf")],
                            Vec::new(),
                        )
                    }
                    Err(_) => (
                        axum::http::StatusCode::BAD_REQUEST,
                        [("content-type", "text/plain")],
                        b"not an ExportTraceServiceRequest".to_vec(),
                    ),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (endpoint, received)
}

#[tokio::test]
async fn an_order_is_one_trace_across_the_four_services_and_their_logs() {
    let (endpoint, received) = receiver().await;
    let config = SystemConfig {
        extra_environment: vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY".into(), "200".into()),
        ],
        ..SystemConfig::default()
    };
    let system = System::start(config).await;
    let client = Client::new(&system);
    let customer = new_customer();
    client.set_product("traced-widget", 10, 300).await;
    client.set_balance(&customer, 10_000).await;

    let (status, order) = client.place(&customer, &[("traced-widget", 2)], None).await;
    assert_eq!(status, 201, "{order}");
    let order_id = id(&order);
    let completed = client.wait_terminal(&order_id, PATIENCE).await;
    assert_eq!(completed["status"], "Completed", "{completed}");

    // The trace: the one that starts with the order's POST.
    let everyone: BTreeSet<&str> = ["order-svc", "inventory-svc", "payment-svc", "notify-svc"]
        .into_iter()
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let (trace_id, trace) = loop {
        let spans = received.spans();
        let root = spans
            .iter()
            .find(|span| span.service == "order-svc" && span.name == "POST /orders");
        if let Some(root) = root {
            let trace: Vec<Exported> = spans
                .iter()
                .filter(|span| span.trace_id == root.trace_id)
                .cloned()
                .collect();
            let services: BTreeSet<&str> = trace.iter().map(|span| span.service.as_str()).collect();
            let completed_step = trace.iter().any(|span| {
                span.attributes.get("saga.state.after").map(String::as_str) == Some("Completed")
            });
            if services == everyone && completed_step {
                break (root.trace_id.clone(), trace);
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no trace with all four services and the completing step; spans: {:#?}",
            spans
                .iter()
                .map(|span| (&span.service, &span.name, &span.trace_id))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // The order names its trace (what the console links to).
    assert_eq!(
        client.order(&order_id).await["trace_id"].as_str(),
        Some(trace_id.as_str()),
        "GET /orders/{{id}} names the order's trace"
    );

    // Parented correctly: one root, the POST; every other span's parent is in the trace.
    let ids: BTreeSet<&str> = trace.iter().map(|span| span.span_id.as_str()).collect();
    let roots: Vec<&Exported> = trace
        .iter()
        .filter(|span| span.parent_span_id.is_empty())
        .collect();
    assert_eq!(roots.len(), 1, "one root: {roots:#?}");
    assert_eq!(roots[0].name, "POST /orders");
    for span in &trace {
        assert!(
            span.parent_span_id.is_empty() || ids.contains(span.parent_span_id.as_str()),
            "{} of {} has its parent in the trace",
            span.name,
            span.service
        );
    }

    // Messaging spans by the conventions, each service's consumer among them.
    let messaging = |operation: &str| -> Vec<&Exported> {
        trace
            .iter()
            .filter(|span| {
                span.attributes
                    .get("messaging.operation.type")
                    .map(String::as_str)
                    == Some(operation)
            })
            .collect()
    };
    for operation in ["send", "receive", "process"] {
        let spans = messaging(operation);
        assert!(!spans.is_empty(), "{operation} spans");
        for span in spans {
            let attribute = |key: &str| span.attributes.get(key).cloned().unwrap_or_default();
            assert_eq!(attribute("messaging.system"), "rabbitmq", "{span:?}");
            assert_eq!(
                attribute("messaging.message.conversation_id"),
                order_id,
                "{span:?}"
            );
            assert!(
                !attribute("messaging.destination.name").is_empty(),
                "{span:?}"
            );
            assert!(!attribute("messaging.rabbitmq.destination.routing_key").is_empty());
            assert!(!attribute("messaging.message.id").is_empty(), "{span:?}");
        }
    }
    let processing: BTreeSet<&str> = messaging("process")
        .iter()
        .map(|span| span.service.as_str())
        .collect();
    assert_eq!(
        processing, everyone,
        "every service processed a message of the order"
    );

    // The saga's steps, with what they decided.
    let steps: Vec<(String, String, String)> = trace
        .iter()
        .filter(|span| span.attributes.get("saga.name").map(String::as_str) == Some("OrderSaga"))
        .filter_map(|span| {
            Some((
                span.attributes.get("saga.state.before")?.clone(),
                span.attributes.get("saga.event")?.clone(),
                span.attributes.get("saga.state.after")?.clone(),
            ))
        })
        .collect();
    for expected in [
        ("Pending", "StockReserved", "Reserved"),
        ("Reserved", "PaymentSucceeded", "Paid"),
        ("Paid", "StockCommitted", "Completed"),
    ] {
        let expected = (
            expected.0.to_owned(),
            expected.1.to_owned(),
            expected.2.to_owned(),
        );
        assert!(steps.contains(&expected), "{expected:?} in {steps:?}");
    }

    // Every service's log lines about the order carry the trace id.
    let (trace_ids, lines_by_service) = logged_trace_ids(&system, &order_id);
    assert_eq!(trace_ids, BTreeSet::from([trace_id.clone()]));
    for service in &everyone {
        assert!(
            lines_by_service.get(service).copied().unwrap_or(0) > 0,
            "{service} logged something about the order: {lines_by_service:?}"
        );
    }
}

/// The trace ids in every service's log lines about the order (each line must carry one, and a
/// span id), and how many such lines each service wrote.
fn logged_trace_ids(
    system: &System,
    order_id: &str,
) -> (BTreeSet<String>, HashMap<&'static str, usize>) {
    let mut trace_ids = BTreeSet::new();
    let mut lines_by_service: HashMap<&'static str, usize> = HashMap::new();
    for svc in Svc::ALL {
        let log = std::fs::read_to_string(system.log_dir().join(format!("{}-0.log", svc.binary())))
            .unwrap();
        let about_the_order = |line: &&str| {
            line.contains(&format!("\"correlation_id\":\"{order_id}\""))
                || line.contains(&format!("\"instance_id\":\"{order_id}\""))
        };
        for line in log.lines().filter(about_the_order) {
            let line: serde_json::Value = serde_json::from_str(line).unwrap();
            let trace_id = line["trace_id"].as_str();
            assert!(
                trace_id.is_some_and(|trace| trace.len() == 32),
                "{}: {line}",
                svc.binary()
            );
            assert!(
                line["span_id"]
                    .as_str()
                    .is_some_and(|span| span.len() == 16),
                "{}: {line}",
                svc.binary()
            );
            trace_ids.extend(trace_id.map(str::to_owned));
            *lines_by_service.entry(svc.binary()).or_default() += 1;
        }
    }
    (trace_ids, lines_by_service)
}

/// Without an exporter the spans carry their ids and nothing else, and the context still
/// travels: one order's log lines in all four services name one trace.
#[tokio::test]
async fn without_an_exporter_an_order_is_still_one_trace_in_the_logs() {
    let system = System::start(SystemConfig::default()).await;
    let client = Client::new(&system);
    let customer = new_customer();
    client.set_product("logged-widget", 10, 300).await;
    client.set_balance(&customer, 10_000).await;
    let (status, order) = client.place(&customer, &[("logged-widget", 2)], None).await;
    assert_eq!(status, 201, "{order}");
    let order_id = id(&order);
    let completed = client.wait_terminal(&order_id, PATIENCE).await;
    assert_eq!(completed["status"], "Completed", "{completed}");

    let (trace_ids, lines_by_service) = logged_trace_ids(&system, &order_id);
    assert_eq!(trace_ids.len(), 1, "{trace_ids:?}");
    for svc in Svc::ALL {
        assert!(
            lines_by_service.get(svc.binary()).copied().unwrap_or(0) > 0,
            "{} logged something about the order: {lines_by_service:?}",
            svc.binary()
        );
    }
}
