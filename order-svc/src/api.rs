//! The REST order API: place orders, read them with their saga timeline and the effects
//! awaiting confirmation, list them, cancel them, and show the saga table the running binary
//! uses. The bodies are in [`crate::representation`].
//!
//! Every route is behind the service's authentication layer; the handlers decide what the
//! [`Caller`] may do. A customer places and reads only their own orders, and another
//! customer's order is answered exactly like a missing one (404): its existence is not theirs
//! to learn. An operator may do everything.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use contracts::OrderId;
use saga_core::Label;
use saga_core::order::OrderState;
use saga_runtime::RuntimeError;
use sea_orm::{DatabaseConnection, DbErr};
use service_kit::auth::{Caller, Forbidden};
use service_kit::extract::{ApiJson, ApiPath, ApiQuery};
use service_kit::problem::Problem;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::cancel::{self, Cancellation};
use crate::representation::{
    ActivityWindow, ListOrders, Order, OrderPage, SagaActivity, SagaDefinition,
};
use crate::store::{self, ListFilter, OrderRuntime, Placed};
use crate::validation::{PlaceOrder, Refusal, Violation, idempotency_key, validate};

/// The longest wait `GET /orders?waiting_longer_than_secs=` takes: a year.
const MAX_WAITING_SECS: u32 = 31_536_000;

/// The header that makes `POST /orders` safe to retry.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// The API's one error type; every failure becomes problem+json here and nowhere else.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The order breaks one or more rules.
    #[error("the order is invalid")]
    Invalid(Vec<Violation>),
    /// A header or query parameter is malformed.
    #[error("{}: {}", .0.field, .0.message)]
    BadRequest(Violation),
    /// A valid caller without the right to do what it asked.
    #[error("{0}")]
    Forbidden(#[from] Forbidden),
    /// No such order, or (for a customer) another customer's.
    #[error("order {0} not found")]
    NotFound(OrderId),
    /// The `Idempotency-Key` was used with another request.
    #[error("the Idempotency-Key was already used with a different request")]
    KeyReused,
    /// A cancellation of an order that is paid for (`Paid`, `Completed`).
    #[error("order {order_id} is {state}: a paid order can no longer be cancelled")]
    NotCancellable {
        /// The order.
        order_id: OrderId,
        /// Its state.
        state: &'static str,
    },
    /// The database failed (opaque to clients).
    #[error("database: {0}")]
    Database(#[from] DbErr),
    /// The saga runtime failed: a stored order it cannot read, a message it cannot build, a
    /// race lost too often (opaque to clients).
    #[error("saga: {0}")]
    Saga(RuntimeError),
}

impl From<RuntimeError> for ApiError {
    fn from(error: RuntimeError) -> Self {
        match error {
            RuntimeError::Database(cause) => ApiError::Database(cause),
            other => ApiError::Saga(other),
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Invalid(violations) => ApiError::Invalid(violations),
            Refusal::Forbidden(forbidden) => ApiError::Forbidden(forbidden),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = match &self {
            ApiError::Invalid(violations) => violations.iter().fold(
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "Validation failed")
                    .with_detail(format!("{} field(s) failed validation", violations.len())),
                |problem, violation| {
                    problem.with_field_error(violation.field.clone(), violation.message.clone())
                },
            ),
            ApiError::BadRequest(violation) => Problem::new(StatusCode::BAD_REQUEST, "Bad request")
                .with_detail(self.to_string())
                .with_field_error(violation.field.clone(), violation.message.clone()),
            ApiError::Forbidden(forbidden) => forbidden.problem(),
            ApiError::NotFound(_) => {
                Problem::new(StatusCode::NOT_FOUND, "Not found").with_detail(self.to_string())
            }
            ApiError::KeyReused => Problem::new(StatusCode::CONFLICT, "Idempotency-Key reused")
                .with_detail(self.to_string())
                .with_field_error(
                    IDEMPOTENCY_KEY,
                    "already used with a different request body",
                ),
            ApiError::NotCancellable { .. } => {
                Problem::new(StatusCode::CONFLICT, "Not cancellable").with_detail(self.to_string())
            }
            ApiError::Database(cause) => Problem::database(cause),
            ApiError::Saga(cause) => Problem::internal(cause),
        };
        problem.into_response()
    }
}

/// The handlers' shared state.
#[derive(Clone)]
pub struct AppState {
    /// The order database.
    pub db: DatabaseConnection,
    /// Wakes the relay after an order or a cancellation is committed.
    pub signal: outbox::OutboxSignal,
    /// The order saga's runtime.
    pub runtime: Arc<OrderRuntime>,
}

/// Places an order: `Pending`, with `OrderCreated` in the outbox, in one transaction. A
/// customer places orders for themselves; an operator for the customer it names. The prices
/// come from the catalog when the stock is reserved: until then the order shows none.
#[utoipa::path(
    post, path = "/orders",
    request_body = PlaceOrder,
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]([ -~]{0,253}[!-~])?$",
        description = "1–255 printable ASCII characters, not starting or ending with a space; the same key with the same body returns the original order. Keys are the customer's own: another customer's key names another order")),
    responses(
        (status = 201, description = "Placed", body = Order, headers(("Location" = String, description = "/orders/{id}"))),
        (status = 200, description = "Already placed with this Idempotency-Key", body = Order),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A customer named another customer", body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid: a rule broken, a price sent, or an operator naming no customer", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn place_order(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(request): ApiJson<PlaceOrder>,
) -> Result<Response, ApiError> {
    let key = match headers.get(IDEMPOTENCY_KEY) {
        None => None,
        Some(value) => {
            let text = value.to_str().map_err(|_| {
                ApiError::BadRequest(Violation {
                    field: IDEMPOTENCY_KEY.into(),
                    message: "must be visible ASCII".into(),
                })
            })?;
            Some(
                idempotency_key(text)
                    .map_err(ApiError::BadRequest)?
                    .to_owned(),
            )
        }
    };
    let order = validate(&request, &caller)?;
    let placed = store::place(&state.db, &state.runtime, &order, key.as_deref()).await?;
    match placed {
        Placed::Created(record) => {
            state.signal.wake();
            let location = [(header::LOCATION, format!("/orders/{}", record.id))];
            tracing::info!(order_id = %record.id, %caller, "order placed");
            Ok((
                StatusCode::CREATED,
                location,
                ApiJson(Order::from_record(record, true)),
            )
                .into_response())
        }
        Placed::Existing(record) => {
            Ok((StatusCode::OK, ApiJson(Order::from_record(record, true))).into_response())
        }
        Placed::KeyReused => Err(ApiError::KeyReused),
    }
}

/// An order with its saga timeline and the effects still awaiting confirmation: the caller's
/// own, or any for an operator.
#[utoipa::path(
    get, path = "/orders/{id}",
    params(("id" = Uuid, Path, description = "The order")),
    responses(
        (status = 200, body = Order),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order, or another customer's (answered alike)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_order(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<ApiJson<Order>, ApiError> {
    let order_id = OrderId::from(id);
    match store::find(&state.db, &state.runtime, order_id).await? {
        Some(record) if caller.may_act_for(record.customer_id) => {
            Ok(ApiJson(Order::from_record(record, true)))
        }
        // Another customer's order is answered exactly like a missing one.
        Some(_) | None => Err(ApiError::NotFound(order_id)),
    }
}

/// Orders, newest first, with cursor paging: a customer's own, or everyone's for an operator.
#[utoipa::path(
    get, path = "/orders",
    params(ListOrders),
    responses(
        (status = 200, body = OrderPage),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A customer asked for another customer's orders", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_orders(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ListOrders>,
) -> Result<ApiJson<OrderPage>, ApiError> {
    let customer_id = listed_customer(&caller, query.customer_id)?;
    let mut violations = Vec::new();
    let status = query.status.as_deref().map(OrderState::from_name);
    if let Some(None) = status {
        let names: Vec<&str> = OrderState::ALL.iter().map(|state| state.name()).collect();
        violations.push(Violation {
            field: "status".into(),
            message: format!("must be one of {}", names.join(", ")),
        });
    }
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        violations.push(Violation {
            field: "limit".into(),
            message: format!("must be between 1 and 100, got {limit}"),
        });
    }
    if let Some(waiting) = query.waiting_longer_than_secs
        && waiting > MAX_WAITING_SECS
    {
        violations.push(Violation {
            field: "waiting_longer_than_secs".into(),
            message: format!("must be at most {MAX_WAITING_SECS} (a year), got {waiting}"),
        });
    }
    if !violations.is_empty() {
        return Err(ApiError::Invalid(violations));
    }
    let filter = ListFilter {
        status: status.flatten(),
        customer_id,
        before: query.cursor,
        created_after: query.created_after,
        created_before: query.created_before,
        waiting_longer_than: query
            .waiting_longer_than_secs
            .map(|seconds| std::time::Duration::from_secs(u64::from(seconds))),
        limit: limit.unsigned_abs(),
    };
    let records = store::list(&state.db, &state.runtime, &filter).await?;
    let full_page = records.len() as u64 == filter.limit;
    let next_cursor = records.last().filter(|_| full_page).map(|record| record.id);
    Ok(ApiJson(OrderPage {
        items: records
            .into_iter()
            .map(|record| Order::from_record(record, false))
            .collect(),
        next_cursor,
    }))
}

/// Whose orders a list shows: a customer sees only their own, and asking for someone else's
/// is refused; an operator sees whom it asks for, or everyone.
fn listed_customer(caller: &Caller, asked: Option<Uuid>) -> Result<Option<Uuid>, Forbidden> {
    let Some(own) = caller.customer() else {
        return Ok(asked);
    };
    match asked {
        Some(other) if other != own => {
            Err(Forbidden::new("a customer may list only their own orders"))
        }
        Some(_) | None => Ok(Some(own)),
    }
}

/// The order saga's definition, generated from the table this binary runs; for any
/// authenticated caller.
#[utoipa::path(get, path = "/saga", responses((status = 200, body = SagaDefinition)))]
async fn saga(_caller: Caller) -> ApiJson<SagaDefinition> {
    ApiJson(SagaDefinition::of_the_order_saga())
}

/// The order saga at work: how many orders each state holds now and how many steps took each
/// edge of the table in the last `window_secs` (default: the last hour). Operators only.
#[utoipa::path(
    get, path = "/saga/activity",
    params(ActivityWindow),
    responses(
        (status = 200, body = SagaActivity),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller is not an operator", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn saga_activity(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ActivityWindow>,
) -> Result<ApiJson<SagaActivity>, ApiError> {
    caller.require_operator()?;
    let window_secs = query.window_secs.unwrap_or(3_600);
    if !(1..=86_400).contains(&window_secs) {
        return Err(ApiError::Invalid(vec![Violation {
            field: "window_secs".into(),
            message: format!("must be between 1 and 86400, got {window_secs}"),
        }]));
    }
    let since = chrono::Utc::now() - chrono::Duration::seconds(i64::from(window_secs));
    let activity = state.runtime.activity(&state.db, since).await?;
    Ok(ApiJson(SagaActivity::from_activity(activity)))
}

/// Cancels an order that is not paid yet, through the saga table: a `Pending` or `Reserved`
/// order is cancelled, asking inventory to release and payment to refund whatever they did so
/// far, and the cancellation is announced; a `Cancelled` one stays as it is (asking again is
/// fine). A `Paid` or `Completed` order is paid for and on its way: 409. The caller's own
/// order, or any for an operator.
#[utoipa::path(
    post, path = "/orders/{id}/cancel",
    params(("id" = Uuid, Path, description = "The order")),
    responses(
        (status = 200, description = "Cancelled (now, or already before)", body = Order),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order, or another customer's (answered alike)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The order is Paid or Completed (the detail names its state): it can no longer be cancelled", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "A body (none is read) over the limit", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn cancel_order(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<ApiJson<Order>, ApiError> {
    let order_id = OrderId::from(id);
    match cancel::cancel(&state.db, &state.runtime, order_id, &caller).await? {
        Cancellation::Cancelled(record) => {
            // Whether or not this request wrote the cancellation, a wake costs one claim.
            state.signal.wake();
            Ok(ApiJson(Order::from_record(*record, true)))
        }
        Cancellation::Refused { order_id, state } => {
            Err(ApiError::NotCancellable { order_id, state })
        }
        Cancellation::NotFound => Err(ApiError::NotFound(order_id)),
    }
}

/// The API routes, documented.
pub fn routes(state: AppState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(place_order, list_orders))
        .routes(routes!(get_order))
        .routes(routes!(cancel_order))
        .routes(routes!(saga))
        .routes(routes!(saga_activity))
        .with_state(state)
}
