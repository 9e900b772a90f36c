//! HTTP plumbing: body limit, problem rewriting, metrics and logging middleware, serving with
//! graceful shutdown.
//!
//! [`with_edge_layers`] applies all of it in the right order; the pieces are public for services
//! that need a different arrangement.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::Router;
use axum::body::{Body, HttpBody};
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::Limited;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::{Layer, Service};
use tracing::Instrument;

use crate::problem::{InternalErrorCause, PROBLEM_JSON_CONTENT_TYPE, Problem};

/// The request body limit services use unless they have a reason not to: 64 KiB.
pub const DEFAULT_BODY_LIMIT_BYTES: usize = 64 * 1024;

/// The `route` label of requests no route matched, so random URLs cannot grow the label set.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// The counter of handled requests, labelled `method`, `route` and `status`.
pub const REQUESTS_TOTAL: &str = "http_requests_total";

/// The histogram of request durations in seconds, labelled `method`, `route` and `status`.
pub const REQUEST_DURATION_SECONDS: &str = "http_request_duration_seconds";

/// The counter of requests refused for who sent them: 401 (no valid token) and 403 (a valid
/// token without the right), labelled `route` and `status`.
pub const AUTH_FAILURES_TOTAL: &str = "http_auth_failures_total";

type BoxedResponseFuture<Error> = Pin<Box<dyn Future<Output = Result<Response, Error>> + Send>>;

/// Applies the standard edge to a service's router, outermost first:
///
/// 1. [`metrics_and_logging`]: one metric sample and one log line per request;
/// 2. [`bare_errors_as_problems`]: any error response that is not already a problem becomes one;
/// 3. [`body_limit`]`(body_limit_bytes)`;
///
/// and answers unknown routes with [`crate::extract::fallback`] (404) and known routes with the
/// wrong method with [`crate::extract::method_not_allowed`] (405), both problem+json.
///
/// Call it last, after every route (health and metrics included) has been added: axum applies
/// layers and the 405 fallback only to the routes that exist at the time.
pub fn with_edge_layers<S>(router: Router<S>, body_limit_bytes: usize) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    router
        .fallback(crate::extract::fallback)
        .method_not_allowed_fallback(crate::extract::method_not_allowed)
        .layer(body_limit(body_limit_bytes))
        .layer(bare_errors_as_problems())
        .layer(metrics_and_logging())
}

/// The request body limit in force, as a request extension, so that rejections can say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestBodyLimit(pub usize);

/// A layer limiting request bodies to `bytes`, answering larger ones with a 413 problem.
///
/// A declared `Content-Length` over the limit is refused before the handler runs; a chunked body
/// is cut off while it is read, which [`crate::extract::ApiJson`] turns into the same 413
/// problem. axum's own 2 MB default limit is switched off for these requests, so this limit is
/// the only one, whether it is smaller or larger.
pub fn body_limit(bytes: usize) -> BodyLimitLayer {
    BodyLimitLayer { limit: bytes }
}

/// The layer returned by [`body_limit`].
#[derive(Debug, Clone, Copy)]
pub struct BodyLimitLayer {
    limit: usize,
}

impl<Inner> Layer<Inner> for BodyLimitLayer {
    type Service = BodyLimitService<Inner>;

    fn layer(&self, inner: Inner) -> Self::Service {
        BodyLimitService {
            inner,
            limit: self.limit,
        }
    }
}

/// The service of [`BodyLimitLayer`].
#[derive(Debug, Clone)]
pub struct BodyLimitService<Inner> {
    inner: Inner,
    limit: usize,
}

impl<Inner> Service<Request> for BodyLimitService<Inner>
where
    Inner: Service<Request, Response = Response>,
    Inner::Error: Send + 'static,
    Inner::Future: Send + 'static,
{
    type Response = Response;
    type Error = Inner::Error;
    type Future = BoxedResponseFuture<Inner::Error>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let limit = self.limit;
        if declared_content_length(request.headers()).is_some_and(|length| length > limit as u64) {
            let mut response = payload_too_large(Some(RequestBodyLimit(limit))).into_response();
            // The body is left unread, so the connection cannot carry another request: say so,
            // or a client reusing it sends its next request into a closing socket.
            response.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
            return Box::pin(std::future::ready(Ok(response)));
        }
        DefaultBodyLimit::disable().apply(&mut request);
        request.extensions_mut().insert(RequestBodyLimit(limit));
        let request = request.map(|body| Body::new(Limited::new(body, limit)));
        Box::pin(self.inner.call(request))
    }
}

fn declared_content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

pub(crate) fn payload_too_large(limit: Option<RequestBodyLimit>) -> Problem {
    let problem = Problem::from_status(StatusCode::PAYLOAD_TOO_LARGE);
    match limit {
        Some(RequestBodyLimit(bytes)) => problem.with_detail(format!(
            "the request body exceeds the limit of {bytes} bytes"
        )),
        None => problem.with_detail("the request body is too large"),
    }
}

/// A layer turning error responses that are not problem+json into problems.
///
/// It catches what handlers and extractors outside this crate produce: axum's empty 404 and 405,
/// the plain-text rejections of axum's own `Json`, `Path` or `Bytes`, a bare `StatusCode`.
/// Only responses with status 400 or above, no `Content-Type` or a `text/plain` one, and a body
/// of known size up to 4 KiB are rewritten; other headers (`Allow`, `Retry-After`, ...) are kept.
/// A 4xx body's text becomes the detail; a 5xx body stays opaque and its text becomes the
/// [`InternalErrorCause`] for the log.
pub fn bare_errors_as_problems() -> BareErrorsAsProblemsLayer {
    BareErrorsAsProblemsLayer
}

/// The layer returned by [`bare_errors_as_problems`].
#[derive(Debug, Clone, Copy, Default)]
pub struct BareErrorsAsProblemsLayer;

impl<Inner> Layer<Inner> for BareErrorsAsProblemsLayer {
    type Service = BareErrorsAsProblemsService<Inner>;

    fn layer(&self, inner: Inner) -> Self::Service {
        BareErrorsAsProblemsService { inner }
    }
}

/// The service of [`BareErrorsAsProblemsLayer`].
#[derive(Debug, Clone)]
pub struct BareErrorsAsProblemsService<Inner> {
    inner: Inner,
}

impl<Inner> Service<Request> for BareErrorsAsProblemsService<Inner>
where
    Inner: Service<Request, Response = Response>,
    Inner::Error: Send + 'static,
    Inner::Future: Send + 'static,
{
    type Response = Response;
    type Error = Inner::Error;
    type Future = BoxedResponseFuture<Inner::Error>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let response_future = self.inner.call(request);
        Box::pin(async move {
            let response = response_future.await?;
            Ok(rewrite_bare_error(response).await)
        })
    }
}

const MAX_REWRITTEN_BODY_BYTES: u64 = 4096;

async fn rewrite_bare_error(response: Response) -> Response {
    let status = response.status();
    if !status.is_client_error() && !status.is_server_error() {
        return response;
    }
    if !is_bare_content_type(response.headers()) {
        return response;
    }
    // Only small bodies of known length are read; a streaming body is left alone rather than
    // buffered or cut.
    match response.body().size_hint().exact() {
        Some(length) if length <= MAX_REWRITTEN_BODY_BYTES => {}
        Some(_) | None => return response,
    }
    let (mut parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, MAX_REWRITTEN_BODY_BYTES as usize).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_owned(),
        Err(_) => String::new(),
    };
    let problem = match (status.is_server_error(), text.is_empty()) {
        (true, _) => {
            let cause = match parts.extensions.get::<InternalErrorCause>() {
                Some(InternalErrorCause(cause)) => cause.clone(),
                None if text.is_empty() => format!("a handler answered {status} without a body"),
                None => text,
            };
            Problem::from_status(status).with_internal_cause(cause)
        }
        (false, true) => Problem::from_status(status),
        (false, false) => Problem::from_status(status).with_detail(text),
    };
    let (problem_parts, problem_body) = problem.into_response().into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(PROBLEM_JSON_CONTENT_TYPE),
    );
    parts.extensions.extend(problem_parts.extensions);
    Response::from_parts(parts, problem_body)
}

fn is_bare_content_type(headers: &HeaderMap) -> bool {
    let Some(content_type) = headers.get(header::CONTENT_TYPE) else {
        return true;
    };
    match content_type.to_str() {
        Ok(content_type) => content_type
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("text/plain"),
        Err(_) => false,
    }
}

/// A layer recording metrics and one log line per request.
///
/// Metrics, through the `metrics` facade (see [`crate::metrics_endpoint`] for the exporter):
/// [`REQUESTS_TOTAL`] and [`REQUEST_DURATION_SECONDS`], labelled `method` (unknown methods as
/// `OTHER`), `route` (axum's [`MatchedPath`], such as `/orders/{id}`, or [`UNMATCHED_ROUTE`]) and
/// `status`.
///
/// Logs: the handler runs inside an `http_request` span with `method` and `route`; afterwards one
/// event with `method`, `route`, `path`, `status` and `latency_ms` is logged at `debug` for
/// success and redirects, `info` for 4xx and `error` for 5xx, the last with the
/// [`InternalErrorCause`] from the response extensions as `cause`.
///
/// Add it with `Router::layer` (as [`with_edge_layers`] does), so `MatchedPath` is known.
pub fn metrics_and_logging() -> MetricsAndLoggingLayer {
    MetricsAndLoggingLayer
}

/// The layer returned by [`metrics_and_logging`].
#[derive(Debug, Clone, Copy, Default)]
pub struct MetricsAndLoggingLayer;

impl<Inner> Layer<Inner> for MetricsAndLoggingLayer {
    type Service = MetricsAndLoggingService<Inner>;

    fn layer(&self, inner: Inner) -> Self::Service {
        MetricsAndLoggingService { inner }
    }
}

/// The service of [`MetricsAndLoggingLayer`].
#[derive(Debug, Clone)]
pub struct MetricsAndLoggingService<Inner> {
    inner: Inner,
}

impl<Inner> Service<Request> for MetricsAndLoggingService<Inner>
where
    Inner: Service<Request, Response = Response>,
    Inner::Error: Send + 'static,
    Inner::Future: Send + 'static,
{
    type Response = Response;
    type Error = Inner::Error;
    type Future = BoxedResponseFuture<Inner::Error>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let started = Instant::now();
        let method = method_label(request.method());
        let route = match request.extensions().get::<MatchedPath>() {
            Some(matched_path) => matched_path.as_str().to_owned(),
            None => UNMATCHED_ROUTE.to_owned(),
        };
        let path = request.uri().path().to_owned();
        let span = request_span(&request, method, &route);
        let response_future = span.in_scope(|| self.inner.call(request));
        Box::pin(async move {
            let response = response_future.instrument(span.clone()).await?;
            let status = response.status();
            span.record("http.response.status_code", status.as_u16());
            let latency = started.elapsed();
            let labels = [
                ("method", method.to_owned()),
                ("route", route.clone()),
                ("status", status.as_str().to_owned()),
            ];
            metrics::counter!(REQUESTS_TOTAL, &labels).increment(1);
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                let labels = [
                    ("route", route.clone()),
                    ("status", status.as_str().to_owned()),
                ];
                metrics::counter!(AUTH_FAILURES_TOTAL, &labels).increment(1);
            }
            metrics::histogram!(REQUEST_DURATION_SECONDS, &labels).record(latency.as_secs_f64());
            span.in_scope(|| {
                log_request(
                    &response,
                    method,
                    &route,
                    &path,
                    latency.as_secs_f64() * 1000.0,
                )
            });
            Ok(response)
        })
    }
}

/// The span a request is handled in: an OpenTelemetry `server` span named `<method> <route>`,
/// continuing the caller's trace when the request carries a `traceparent`. Health checks and
/// `/metrics` get a `debug` span, which the trace exporter leaves out (probes would bury the
/// traces that matter).
fn request_span(request: &Request, method: &'static str, route: &str) -> tracing::Span {
    let probe = route.starts_with("/health/") || route == "/metrics";
    let span = match probe {
        true => tracing::debug_span!("http_request", method, route = %route),
        false => tracing::info_span!(
            "http_request",
            method,
            route = %route,
            otel.name = %format!("{method} {route}"),
            otel.kind = "server",
            http.request.method = method,
            http.route = %route,
            http.response.status_code = tracing::field::Empty,
        ),
    };
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
    };
    let caller = outbox::trace::TraceContext::parse(
        header(outbox::trace::TRACEPARENT),
        header(outbox::trace::TRACESTATE),
    );
    outbox::trace::adopt(&span, caller.as_ref());
    span
}

fn log_request(response: &Response, method: &str, route: &str, path: &str, latency_ms: f64) {
    let status = response.status().as_u16();
    if response.status().is_server_error() {
        let cause = match response.extensions().get::<InternalErrorCause>() {
            Some(InternalErrorCause(cause)) => cause.as_str(),
            None => "none recorded",
        };
        tracing::error!(
            method,
            route,
            path,
            status,
            latency_ms,
            cause,
            "request failed"
        );
        return;
    }
    if response.status().is_client_error() {
        tracing::info!(method, route, path, status, latency_ms, "request rejected");
        return;
    }
    tracing::debug!(method, route, path, status, latency_ms, "request handled");
}

// Methods are a fixed vocabulary for the metrics; anything invented by a client is "OTHER".
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "OTHER",
    }
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then stops accepting
/// connections and returns once the requests in flight are answered.
///
/// # Errors
/// An I/O error from the listener.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    match listener.local_addr() {
        Ok(address) => tracing::info!(%address, "listening for HTTP requests"),
        Err(error) => tracing::warn!(%error, "listening for HTTP requests on an unknown address"),
    }
    let shutdown_requested = async move {
        shutdown.cancelled().await;
        tracing::info!("shutdown requested; finishing the requests in flight");
    };
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown_requested)
        .await
}

/// A token cancelled when the process receives SIGTERM or SIGINT (Ctrl-C on other platforms);
/// the signal is logged.
///
/// Must be called inside a Tokio runtime: it registers the signal handlers at once, so that a
/// failure is an error here rather than a silently ignored signal later, and spawns the task
/// that waits for them. The task ends when the token is cancelled, whoever cancels it.
///
/// # Errors
/// When called outside a Tokio runtime, or when the signal handlers cannot be registered.
pub fn shutdown_token() -> std::io::Result<CancellationToken> {
    let runtime = match tokio::runtime::Handle::try_current() {
        Ok(runtime) => runtime,
        Err(error) => {
            return Err(std::io::Error::other(format!(
                "shutdown_token must be called inside a Tokio runtime: {error}"
            )));
        }
    };
    let token = CancellationToken::new();
    let signal_arrived = signal_arrival()?;
    let cancel = token.clone();
    runtime.spawn(async move {
        tokio::select! {
            signal_name = signal_arrived => {
                tracing::info!(signal = signal_name, "received {signal_name}; shutting down");
                cancel.cancel();
            }
            () = cancel.cancelled() => {}
        }
    });
    Ok(token)
}

#[cfg(unix)]
fn signal_arrival() -> std::io::Result<impl Future<Output = &'static str> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};

    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        }
    })
}

#[cfg(not(unix))]
fn signal_arrival() -> std::io::Result<impl Future<Output = &'static str> + Send + 'static> {
    Ok(async move {
        match tokio::signal::ctrl_c().await {
            Ok(()) => "Ctrl-C",
            // Without a working handler no signal will come; wait for cancellation instead.
            Err(_) => std::future::pending().await,
        }
    })
}
