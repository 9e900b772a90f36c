//! The request log line, captured from a global subscriber (its own test binary, so the global
//! default is this file's alone).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::get;
use serde_json::Value;
use service_kit::http::{DEFAULT_BODY_LIMIT_BYTES, serve, with_edge_layers};
use service_kit::problem::Problem;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Default)]
struct CapturedLines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLines {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn explode() -> Problem {
    Problem::internal("connection to db:5432 refused")
}

async fn teapot() -> Problem {
    Problem::new(axum::http::StatusCode::IM_A_TEAPOT, "Teapot")
}

#[tokio::test]
async fn each_request_is_logged_once_by_the_middleware_with_the_cause_of_a_5xx() {
    let captured = CapturedLines::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let router = Router::new()
        .route("/orders/{id}/explode", get(explode))
        .route("/teapot", get(teapot));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve(
        listener,
        with_edge_layers(router, DEFAULT_BODY_LIMIT_BYTES),
        shutdown.clone(),
    ));
    let client = reqwest::Client::new();
    for (path, status) in [("/orders/o-1/explode", 500), ("/teapot", 418)] {
        let response = client
            .get(format!("{base_url}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status);
    }
    shutdown.cancel();
    server.await.unwrap().unwrap();

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let request_lines: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|line| line["route"].is_string())
        .collect();
    let cases = [
        (
            "/orders/{id}/explode",
            "ERROR",
            500,
            Some("connection to db:5432 refused"),
        ),
        ("/teapot", "INFO", 418, None),
    ];
    for (route, level, status, cause) in cases {
        let lines: Vec<&Value> = request_lines
            .iter()
            .filter(|line| line["route"] == route)
            .collect();
        assert_eq!(lines.len(), 1, "one line for {route}: {text}");
        let line = lines[0];
        assert_eq!(line["level"], level, "{line}");
        assert_eq!(line["status"], status, "{line}");
        assert_eq!(line["method"], "GET", "{line}");
        assert!(line["latency_ms"].is_number(), "{line}");
        match cause {
            Some(cause) => assert_eq!(line["cause"], cause, "{line}"),
            None => assert!(line.get("cause").is_none(), "{line}"),
        }
    }
}
