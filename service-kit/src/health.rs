//! Liveness and readiness endpoints.
//!
//! * `GET /health/live`: 200 `{"status":"live"}` while the process can answer at all.
//! * `GET /health/ready`: 200 `{"status":"ready","checks":{"database":"ok",...}}` when every
//!   check passes; otherwise 503 problem+json whose detail lists the failing checks with their
//!   reasons (`not ready: database: connection refused`) and whose `errors` hold one entry per
//!   failing check (`{"field":"database","message":"connection refused"}`).
//!
//! Checks run concurrently, each in its own task (a panicking check fails, it does not take the
//! endpoint down) and under a timeout ([`DEFAULT_CHECK_TIMEOUT`]); a timeout fails the check
//! with "timed out after 2s".

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

use crate::extract::ApiJson;
use crate::problem::Problem;

/// How long one check may take before it counts as failed.
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The path of the liveness endpoint.
pub const LIVE_PATH: &str = "/health/live";

/// The path of the readiness endpoint.
pub const READY_PATH: &str = "/health/ready";

/// The future a [`ReadinessCheck`] returns: `Err` carries the reason, such as "connection
/// refused".
pub type CheckFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// A named dependency the service needs before it can take traffic (a database, a broker).
pub trait ReadinessCheck: Send + Sync + 'static {
    /// The name reported with the outcome, such as `database`.
    fn name(&self) -> &'static str;
    /// Checks the dependency once; `Err` carries the reason it is not usable.
    fn check(&self) -> CheckFuture<'_>;
}

struct ClosureCheck<F> {
    name: &'static str,
    check: F,
}

impl<F, Fut> ReadinessCheck for ClosureCheck<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    fn name(&self) -> &'static str {
        self.name
    }

    fn check(&self) -> CheckFuture<'_> {
        Box::pin((self.check)())
    }
}

/// The set of checks behind `/health/ready`.
#[derive(Clone)]
pub struct Readiness {
    checks: Vec<Arc<dyn ReadinessCheck>>,
    timeout: Duration,
}

impl Default for Readiness {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&'static str> = self.checks.iter().map(|check| check.name()).collect();
        formatter
            .debug_struct("Readiness")
            .field("checks", &names)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Readiness {
    /// No checks (always ready) and the [`DEFAULT_CHECK_TIMEOUT`].
    pub fn new() -> Self {
        Self {
            checks: Vec::new(),
            timeout: DEFAULT_CHECK_TIMEOUT,
        }
    }

    /// Adds a check written as a closure returning a future:
    /// `.with_check("database", move || { let pool = pool.clone(); async move { ... } })`.
    #[must_use]
    pub fn with_check<F, Fut>(self, name: &'static str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.with_readiness_check(ClosureCheck { name, check })
    }

    /// Adds a check implemented as a [`ReadinessCheck`].
    #[must_use]
    pub fn with_readiness_check(mut self, check: impl ReadinessCheck) -> Self {
        self.checks.push(Arc::new(check));
        self
    }

    /// Sets how long each check may take.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Runs every check concurrently and collects the outcomes, ordered by name.
    pub async fn evaluate(&self) -> ReadinessReport {
        let running: Vec<_> = self
            .checks
            .iter()
            .map(|check| {
                let check = Arc::clone(check);
                let timeout = self.timeout;
                let name = check.name();
                let task = tokio::spawn(async move {
                    match tokio::time::timeout(timeout, check.check()).await {
                        Ok(outcome) => outcome,
                        Err(_elapsed) => Err(format!("timed out after {timeout:?}")),
                    }
                });
                (name, task)
            })
            .collect();
        let mut outcomes = BTreeMap::new();
        for (name, task) in running {
            let outcome = match task.await {
                Ok(outcome) => outcome,
                Err(join_error) => Err(format!("the check did not complete: {join_error}")),
            };
            outcomes.insert(name, outcome);
        }
        ReadinessReport { outcomes }
    }
}

/// The outcome of every readiness check, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadinessReport {
    /// `Ok(())` or the reason the check failed.
    pub outcomes: BTreeMap<&'static str, Result<(), String>>,
}

impl ReadinessReport {
    /// Whether every check passed.
    pub fn is_ready(&self) -> bool {
        self.outcomes.values().all(Result::is_ok)
    }

    /// The failing checks and their reasons.
    pub fn failures(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.outcomes
            .iter()
            .filter_map(|(name, outcome)| match outcome {
                Ok(()) => None,
                Err(reason) => Some((*name, reason.as_str())),
            })
    }
}

impl IntoResponse for ReadinessReport {
    fn into_response(self) -> Response {
        if self.is_ready() {
            let checks = self.outcomes.keys().map(|name| (*name, "ok")).collect();
            return ApiJson(ReadyBody {
                status: "ready",
                checks,
            })
            .into_response();
        }
        let reasons: Vec<String> = self
            .failures()
            .map(|(name, reason)| format!("{name}: {reason}"))
            .collect();
        let detail = format!("not ready: {}", reasons.join("; "));
        // The cause repeats the detail so the logging middleware's 5xx line says why.
        let mut problem = Problem::from_status(StatusCode::SERVICE_UNAVAILABLE)
            .with_internal_cause(&detail)
            .with_detail(detail);
        for (name, reason) in self.failures() {
            problem = problem.with_field_error(name, reason);
        }
        problem.into_response()
    }
}

#[derive(Serialize)]
struct ReadyBody {
    status: &'static str,
    checks: BTreeMap<&'static str, &'static str>,
}

#[derive(Serialize)]
struct LiveBody {
    status: &'static str,
}

/// The routes `GET /health/live` and `GET /health/ready`, the latter running `readiness`.
///
/// Generic over the state so it merges into any service's router.
pub fn health_router<S>(readiness: Readiness) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route(LIVE_PATH, get(live))
        .route(READY_PATH, get(ready))
        .with_state(readiness)
}

async fn live() -> ApiJson<LiveBody> {
    ApiJson(LiveBody { status: "live" })
}

async fn ready(State(readiness): State<Readiness>) -> ReadinessReport {
    readiness.evaluate().await
}
