//! The Prometheus exporter behind `GET /metrics`.
//!
//! The recorder is process-global (the `metrics` facade has one slot), so installing it is
//! idempotent: the first call installs it, later calls return the same handle. Tests that start
//! several services in one process therefore share one registry.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

use crate::http::{REQUEST_DURATION_SECONDS, REQUESTS_TOTAL};

/// The path of the metrics endpoint.
pub const METRICS_PATH: &str = "/metrics";

/// The content type of the Prometheus text exposition format.
pub const PROMETHEUS_TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Histogram buckets for request durations, in seconds: 1 ms to 10 s, roughly 1-2.5-5 per decade.
pub const REQUEST_DURATION_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

// How often histogram samples are folded into their buckets when nobody scrapes; rendering does
// the same, so this only bounds memory between scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

static HANDLE: Mutex<Option<PrometheusHandle>> = Mutex::new(None);

/// The Prometheus recorder cannot be installed.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// Building or installing the recorder failed, typically because another `metrics` recorder
    /// (not installed by this crate) already holds the global slot.
    #[error("cannot install the Prometheus metrics recorder: {0}")]
    Install(#[source] BuildError),
}

/// Installs the Prometheus recorder as the global `metrics` recorder, once per process, and
/// returns its handle.
///
/// [`REQUEST_DURATION_SECONDS`] gets the [`REQUEST_DURATION_BUCKETS`]. Inside a Tokio runtime the
/// first call also spawns the exporter's periodic upkeep on it.
///
/// # Errors
/// [`MetricsError::Install`] when another recorder already holds the global slot.
pub fn install_recorder() -> Result<PrometheusHandle, MetricsError> {
    let mut installed = HANDLE.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(handle) = installed.as_ref() {
        return Ok(handle.clone());
    }
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(REQUEST_DURATION_SECONDS.to_owned()),
            &REQUEST_DURATION_BUCKETS,
        )
        .map_err(MetricsError::Install)?;
    let handle = builder.install_recorder().map_err(MetricsError::Install)?;
    metrics::describe_counter!(
        REQUESTS_TOTAL,
        metrics::Unit::Count,
        "HTTP requests handled, by method, route and status"
    );
    metrics::describe_counter!(
        crate::http::AUTH_FAILURES_TOTAL,
        metrics::Unit::Count,
        "HTTP requests refused with 401 or 403, by route and status"
    );
    metrics::describe_histogram!(
        REQUEST_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "HTTP request durations, by method, route and status"
    );
    spawn_upkeep(&handle);
    *installed = Some(handle.clone());
    Ok(handle)
}

fn spawn_upkeep(handle: &PrometheusHandle) {
    // Without a runtime there is nowhere to run it; scrapes still fold the samples in.
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let handle = handle.clone();
    runtime.spawn(async move {
        let mut interval = tokio::time::interval(UPKEEP_INTERVAL);
        loop {
            interval.tick().await;
            handle.run_upkeep();
        }
    });
}

/// The route `GET /metrics`, serving the Prometheus text format; installs the recorder (see
/// [`install_recorder`]) if that has not happened yet.
///
/// Generic over the state so it merges into any service's router.
///
/// # Errors
/// [`MetricsError::Install`] when another recorder already holds the global slot.
pub fn metrics_router<S>() -> Result<Router<S>, MetricsError>
where
    S: Clone + Send + Sync + 'static,
{
    let handle = install_recorder()?;
    Ok(Router::new()
        .route(METRICS_PATH, get(render))
        .with_state(handle))
}

async fn render(State(handle): State<PrometheusHandle>) -> Response {
    let mut response = handle.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(PROMETHEUS_TEXT_CONTENT_TYPE),
    );
    response
}
