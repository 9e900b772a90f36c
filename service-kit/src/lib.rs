//! What every service of the order system shares at its edge.
//!
//! * [`auth`]: bearer tokens (JWT), the [`auth::Caller`] of every API request, 401/403;
//! * [`config`]: environment variables, every error naming the variable;
//! * [`telemetry`]: `tracing` set up from `RUST_LOG` and `LOG_FORMAT` (text or JSON lines);
//! * [`traces`]: OpenTelemetry spans from `tracing`'s, exported over OTLP when configured;
//! * [`problem`]: RFC 9457 problem details, the one error body of every service;
//! * [`extract`]: `ApiJson`, `ApiPath`, `ApiQuery` extractors that reject with problems, and the
//!   404/405 fallbacks;
//! * [`http`]: body limit, metrics and logging middleware, serving with graceful shutdown;
//! * [`health`]: `/health/live` and `/health/ready` with named, concurrent, timed checks;
//! * [`dead_letters`]: the operator's endpoints to list, redrive and discard a service's dead
//!   letters;
//! * [`metrics_endpoint`]: the Prometheus recorder and `GET /metrics`;
//! * [`entrypoint`]: the thin `main`, `RunError`, the router around a service's API;
//! * [`launch`]: a service's whole start and stop around its own parts (migrator, handler,
//!   batching, background producers, API), one builder for every service.
//!
//! Apart from [`launch`], the crate knows nothing of databases or brokers: services bring those
//! in as readiness checks and handlers. [`launch`] reaches them only through `outbox`'s generic
//! runtime, never through the system's message types (`contracts`).
//!
//! # Wiring a service
//!
//! ```
//! use axum::Router;
//! use axum::http::StatusCode;
//! use axum::routing::post;
//! use serde::{Deserialize, Serialize};
//! use service_kit::extract::ApiJson;
//! use service_kit::health::{Readiness, health_router};
//! use service_kit::http::{DEFAULT_BODY_LIMIT_BYTES, with_edge_layers};
//! use service_kit::metrics_endpoint::metrics_router;
//! use service_kit::problem::Problem;
//!
//! #[derive(Deserialize)]
//! struct PlaceOrder {
//!     quantity: u32,
//! }
//!
//! #[derive(Serialize)]
//! struct OrderPlaced {
//!     quantity: u32,
//! }
//!
//! async fn place_order(
//!     ApiJson(request): ApiJson<PlaceOrder>,
//! ) -> Result<(StatusCode, ApiJson<OrderPlaced>), Problem> {
//!     if request.quantity > 100 {
//!         return Err(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "Too many")
//!             .with_field_error("quantity", "at most 100"));
//!     }
//!     Ok((StatusCode::CREATED, ApiJson(OrderPlaced { quantity: request.quantity })))
//! }
//!
//! fn router() -> Result<Router, anyhow::Error> {
//!     let readiness = Readiness::new().with_check("database", || async {
//!         // A real service pings its pool here.
//!         Ok(())
//!     });
//!     let routes = Router::new()
//!         .route("/orders", post(place_order))
//!         .merge(health_router(readiness))
//!         .merge(metrics_router()?);
//!     // Last, so the layers and fallbacks cover every route above.
//!     Ok(with_edge_layers(routes, DEFAULT_BODY_LIMIT_BYTES))
//! }
//!
//! # fn main() -> Result<(), anyhow::Error> {
//! service_kit::telemetry::init("order-svc")?;
//! let router = router()?;
//! // In `main`: bind the configured `HTTP_ADDR`, then
//! // `http::serve(listener, router, http::shutdown_token()?).await?`.
//! # drop(router);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

pub mod auth;
pub mod config;
pub mod dead_letters;
pub mod entrypoint;
pub mod extract;
pub mod health;
pub mod http;
pub mod launch;
pub mod metrics_endpoint;
pub mod problem;
pub mod telemetry;
pub mod traces;

/// An error with its causes, as `outer: inner: innermost`, each cause once (clients' own
/// messages often say little: reqwest's "error sending request for url (…)").
///
/// ```
/// let error = std::io::Error::other("connection refused");
/// assert_eq!(service_kit::error_chain(&error), "connection refused");
/// ```
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
