//! The operator console: the order system in the browser, for operators.
//!
//! A small service of its own (`:8084`), not a route of order-svc: it is a *client* of the four
//! services' REST APIs, calling them with the signed-in operator's own token, so it needs no
//! database, no broker and no credential of its own, cannot do anything the operator could not
//! do with `curl`, and can be left out of a deployment or scaled apart. Pages:
//!
//! | page                    | what it shows                                                   |
//! |-------------------------|-----------------------------------------------------------------|
//! | `/orders`               | orders newest first, filtered by status, customer, time range, "waiting longer than N s"; paginated; reloads itself |
//! | `/orders/{id}`          | lines, total, status, cancellation reason, the timeline, effects awaiting confirmation, payment and reservation as those services hold them, the trace |
//! | `/saga`                 | the saga table drawn by Mermaid, orders per state now, steps per edge in the last hour |
//! | `/dead-letters`         | every service's dead letters with reason, attempts, payload; redrive and discard |
//!
//! Server-rendered HTML ([`maud`]); the only scripts are Mermaid (vendored from npm, compiled
//! into the binary) and the three lines that start it. Sign-in and CSRF: [`session`].

pub mod config;

mod assets;
mod backend;
mod error;
mod pages;
mod session;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::routing::{get, post};
use service_kit::auth::Authenticator;
use service_kit::entrypoint::RunError;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::{Config, ENVIRONMENT};

/// The Content-Security-Policy of every answer: the console's own scripts and styles only
/// (Mermaid styles its SVG inline), no frames, forms posting only to the console.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// What every page handler shares.
#[derive(Clone)]
pub struct AppState {
    backend: backend::Backend,
    authenticator: Authenticator,
    trace_url: Option<String>,
    insecure_cookie: bool,
}

/// The console's router: its pages, assets, health and metrics.
///
/// # Errors
/// [`RunError`] when the metrics recorder cannot be installed.
pub fn router(config: &Config) -> Result<Router, RunError> {
    let state = AppState {
        backend: backend::Backend::new(config.services.clone()),
        authenticator: config.auth.authenticator.clone(),
        trace_url: config.trace_url.clone(),
        insecure_cookie: config.insecure_cookie,
    };
    let pages = Router::new()
        .route(
            "/",
            get(|| async { axum::response::Redirect::to("/orders") }),
        )
        .route(
            "/sign-in",
            get(pages::sign_in::form).post(pages::sign_in::sign_in),
        )
        .route("/sign-out", post(pages::sign_in::sign_out))
        .route("/orders", get(pages::orders::list))
        .route("/orders/{id}", get(pages::orders::show))
        .route("/saga", get(pages::saga::show))
        .route("/dead-letters", get(pages::dead_letters::list))
        .route(
            "/dead-letters/{service}/{queue}/{id}/{action}",
            post(pages::dead_letters::act),
        )
        .route("/assets/{name}", get(assets::asset))
        .with_state(state)
        .layer(axum::middleware::map_response(secure_headers));
    let metrics = service_kit::metrics_endpoint::metrics_router().map_err(RunError::startup)?;
    let router = pages
        .merge(service_kit::health::health_router(
            service_kit::health::Readiness::new(),
        ))
        .merge(metrics)
        .layer(service_kit::http::metrics_and_logging())
        .layer(service_kit::http::body_limit(64 * 1024));
    Ok(router)
}

/// Headers every page and asset carries.
async fn secure_headers(mut response: axum::response::Response) -> axum::response::Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Not `no-referrer`: with it, browsers send `Origin: null` on the console's own form posts,
    // and the `Origin` check could not tell them from another site's.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        // Pages show live data and an operator's view: never from a cache.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Serves the console on `config.http_addr` until `shutdown`.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), RunError> {
    let listener = service_kit::entrypoint::bind(config.http_addr).await?;
    run_with_listener(config, listener, shutdown).await
}

/// Like [`run`], on a listener the caller bound (tests bind port 0).
pub async fn run_with_listener(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let router = router(&config)?;
    service_kit::entrypoint::serve_then(listener, router, shutdown, async {}).await
}
