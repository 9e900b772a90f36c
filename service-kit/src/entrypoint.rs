//! The parts of a service's start that are the same everywhere: the thin `main`, the error of
//! `run`, and the assembly of the HTTP router around the service's own API.

use std::fmt::Display;
use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;

use axum::Router;
use axum::routing::get;
use tokio_util::sync::CancellationToken;
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::auth::{Authenticator, SECURITY_SCHEME, authenticate};
use crate::config::ConfigError;
use crate::extract::ApiJson;
use crate::health::{Readiness, health_router};
use crate::http::{DEFAULT_BODY_LIMIT_BYTES, with_edge_layers};
use crate::metrics_endpoint::{MetricsError, metrics_router};

/// The path of the OpenAPI document every service serves.
pub const OPENAPI_PATH: &str = "/openapi.json";

/// Why a service stopped with a failure.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The configuration is missing or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database or the broker could not be reached or prepared.
    #[error("start-up failed: {0}")]
    Startup(Box<dyn std::error::Error + Send + Sync>),
    /// The HTTP address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The metrics recorder could not be installed.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// The HTTP server failed.
    #[error("HTTP server failed: {0}")]
    Serve(std::io::Error),
}

impl RunError {
    /// A start-up failure with its cause.
    pub fn startup(cause: impl std::error::Error + Send + Sync + 'static) -> RunError {
        RunError::Startup(Box::new(cause))
    }
}

/// Binds `address`, naming it in the error.
pub async fn bind(address: SocketAddr) -> Result<tokio::net::TcpListener, RunError> {
    tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| RunError::Bind { address, source })
}

/// Serves `router` until `shutdown`, then runs `then` (stopping the service's background
/// work: consumers first, the relay last) before returning.
pub async fn serve_then(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: CancellationToken,
    then: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let served = crate::http::serve(listener, router, shutdown).await;
    then.await;
    served.map_err(RunError::Serve)
}

/// The whole `main` of a service: telemetry, configuration, signals, `run`; every failure is
/// logged (and printed, in case logging is what failed) and turns into a non-zero exit code.
pub async fn main<C, E, F, Fut>(
    service: &'static str,
    configure: impl FnOnce() -> Result<C, ConfigError>,
    run: F,
) -> ExitCode
where
    F: FnOnce(C, CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    if let Err(error) = crate::telemetry::init(service) {
        eprintln!("{service}: cannot set up logging: {error}");
        return ExitCode::FAILURE;
    }
    let config = match configure() {
        Ok(config) => config,
        Err(error) => return fail(service, &error),
    };
    let shutdown = match crate::http::shutdown_token() {
        Ok(token) => token,
        Err(error) => return fail(service, &error),
    };
    let ended = run(config, shutdown).await;
    // Spans still buffered are exported before the process goes (a blocking flush: off the
    // async workers).
    let _ = tokio::task::spawn_blocking(crate::traces::shutdown).await;
    match ended {
        Ok(()) => {
            tracing::info!("{service} stopped");
            ExitCode::SUCCESS
        }
        Err(error) => fail(service, &error),
    }
}

fn fail(service: &str, error: &dyn Display) -> ExitCode {
    tracing::error!(%error, "{service} cannot run");
    eprintln!("{service}: {error}");
    ExitCode::FAILURE
}

/// The service's complete router: its API (documented through utoipa) behind bearer-token
/// authentication, `/openapi.json` generated from it, health, metrics, and the edge layers (body
/// limit, problem+json errors, metrics and logging per request). Only the API's routes require a
/// token; the document declares the bearer scheme and the 401 and 403 answers on each of them.
pub fn service_router(
    api: OpenApiRouter,
    readiness: Readiness,
    title: &str,
    authenticator: Authenticator,
) -> Result<Router, MetricsError> {
    let (routes, mut openapi): (Router, OpenApi) = api.split_for_parts();
    // axum refuses (panics on) a route layer over no routes: an API without routes has nothing
    // to authenticate.
    let routes = if routes.has_routes() {
        routes.route_layer(axum::middleware::from_fn_with_state(
            authenticator,
            authenticate,
        ))
    } else {
        routes
    };
    declare_bearer_security(&mut openapi);
    openapi.info.title = title.to_owned();
    openapi.info.description = Some(format!(
        "The HTTP API of {title}, generated from its handlers."
    ));
    openapi.info.license = None;
    openapi.info.contact = None;
    openapi.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let document = openapi.clone();
    let routes = routes
        .route(
            OPENAPI_PATH,
            get(move || std::future::ready(ApiJson(document.clone()))),
        )
        .merge(health_router(readiness))
        .merge(metrics_router()?);
    Ok(with_edge_layers(routes, DEFAULT_BODY_LIMIT_BYTES))
}

/// Declares the bearer scheme, and on every operation its requirement and the 401 and 403
/// problems it may answer.
fn declare_bearer_security(openapi: &mut OpenApi) {
    use utoipa::openapi::security::{
        HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
    };
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};

    openapi
        .components
        .get_or_insert_with(Default::default)
        .add_security_scheme(
        SECURITY_SCHEME,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description(Some(
                    "A JWT with `sub` (a customer's UUID) and `scope` (`operator` for operators)",
                ))
                .build(),
        ),
    );
    let problem = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                crate::problem::PROBLEM_JSON_CONTENT_TYPE,
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build(),
            )
            .build()
    };
    for item in openapi.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            operation.security = Some(vec![SecurityRequirement::new(
                SECURITY_SCHEME,
                Vec::<String>::new(),
            )]);
            let responses = &mut operation.responses.responses;
            responses
                .entry("401".into())
                .or_insert_with(|| problem("No valid bearer token").into());
            responses
                .entry("403".into())
                .or_insert_with(|| problem("The token does not grant this").into());
        }
    }
}
