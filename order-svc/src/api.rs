//! The REST order API: place orders, read them with their saga timeline, list them, and show
//! the saga table the running binary uses.
//!
//! Every route is behind the service's authentication layer; the handlers decide what the
//! [`Caller`] may do. A customer places and reads only their own orders, and another
//! customer's order is answered exactly like a missing one (404): its existence is not theirs
//! to learn. An operator may do everything.

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use contracts::OrderId;
use saga_core::Label;
use saga_core::order::{ORDER_SAGA, OrderState};
use sea_orm::{DatabaseConnection, DbErr};
use serde::{Deserialize, Serialize};
use service_kit::auth::{Caller, Forbidden};
use service_kit::extract::{ApiJson, ApiPath, ApiQuery};
use service_kit::problem::Problem;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::saga::EffectError;
use crate::store::{self, ListFilter, OrderRecord, PlaceError, Placed};
use crate::validation::{PlaceOrder, Refusal, Violation, idempotency_key, validate};

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
    /// The database failed (opaque to clients).
    #[error("database: {0}")]
    Database(#[from] DbErr),
    /// A message could not be built (opaque to clients).
    #[error("message: {0}")]
    Effect(#[from] EffectError),
    /// A message could not be encoded (opaque to clients).
    #[error("encoding: {0}")]
    Encode(#[from] serde_json::Error),
}

impl From<PlaceError> for ApiError {
    fn from(error: PlaceError) -> Self {
        match error {
            PlaceError::Database(cause) => ApiError::Database(cause),
            PlaceError::Effect(cause) => ApiError::Effect(cause),
            PlaceError::Encode(cause) => ApiError::Encode(cause),
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
            ApiError::Database(cause) => Problem::internal(cause),
            ApiError::Effect(cause) => Problem::internal(cause),
            ApiError::Encode(cause) => Problem::internal(cause),
        };
        problem.into_response()
    }
}

/// One line of an order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Item {
    /// The product.
    pub product_id: String,
    /// How many.
    pub quantity: i32,
    /// The catalog price of one unit when inventory reserved the stock, in minor units; `null`
    /// until then.
    #[schema(minimum = 0)]
    pub unit_price: Option<i64>,
}

/// One step of an order's saga: a row of the saga table that applied.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Step {
    /// State before.
    pub from: String,
    /// State after (equal to `from` for the compensation of a late event).
    pub to: String,
    /// The event.
    pub event: String,
    /// When it applied.
    pub at: DateTime<Utc>,
    /// What the saga asked for.
    pub effects: Vec<String>,
}

/// An order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Order {
    /// The order.
    pub id: Uuid,
    /// Who placed it.
    pub customer_id: Uuid,
    /// `Pending`, `Reserved`, `Paid`, `Completed` or `Cancelled`.
    pub status: String,
    /// What was ordered.
    pub items: Vec<Item>,
    /// What is charged: Σ quantity × unit price at the catalog prices of the reservation, in
    /// minor units; `null` until the stock is reserved (or the payment heard).
    #[schema(minimum = 0)]
    pub total: Option<i64>,
    /// When it was placed.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// When it is cancelled if still `Pending` or `Reserved`.
    pub deadline_at: DateTime<Utc>,
    /// Why it was cancelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancellation_reason: Option<String>,
    /// Every saga step, in order (left out of lists).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<Vec<Step>>,
}

impl Order {
    fn from_record(record: OrderRecord, with_timeline: bool) -> Order {
        let timeline = with_timeline.then(|| {
            record
                .timeline
                .into_iter()
                .map(|step| Step {
                    from: step.from_state,
                    to: step.to_state,
                    event: step.event,
                    at: step.at,
                    effects: serde_json::from_value(step.effects).unwrap_or_default(),
                })
                .collect()
        });
        Order {
            id: record.order.id,
            customer_id: record.order.customer_id,
            status: record.order.status,
            items: record
                .lines
                .into_iter()
                .map(|line| Item {
                    product_id: line.product_id,
                    quantity: line.quantity,
                    unit_price: line.unit_price,
                })
                .collect(),
            total: record.order.total,
            created_at: record.order.created_at,
            updated_at: record.order.updated_at,
            deadline_at: record.order.deadline_at,
            cancellation_reason: record.order.cancellation_reason,
            timeline,
        }
    }
}

/// A page of orders, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OrderPage {
    /// The orders, without timelines.
    pub items: Vec<Order>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<Uuid>,
}

/// An order's state, as the API names it (the order saga's states).
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // Only its schema is used: the handler validates the text itself.
pub enum OrderStatus {
    /// Placed; stock not reserved yet.
    Pending,
    /// Stock reserved; payment not taken yet.
    Reserved,
    /// Paid; the reserved stock not committed yet.
    Paid,
    /// Stock committed: the order is done.
    Completed,
    /// Cancelled, with the compensations its progress required.
    Cancelled,
}

/// Filters and paging of `GET /orders`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListOrders {
    /// Only orders in this state.
    #[param(value_type = Option<OrderStatus>, inline)]
    pub status: Option<String>,
    /// Only this customer's orders (a customer may name only themselves, and sees only their
    /// own either way).
    pub customer_id: Option<Uuid>,
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<Uuid>,
}

/// One row of the saga table.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SagaRow {
    /// In this state…
    pub from: String,
    /// …on this event…
    pub event: String,
    /// …go here…
    pub to: String,
    /// …and ask for these.
    pub effects: Vec<String>,
}

/// A `(state, event)` pair that changes nothing (a duplicate, or an event the saga moved past).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IgnoredPair {
    /// The state.
    pub state: String,
    /// The event.
    pub event: String,
}

/// The order saga exactly as this binary runs it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SagaDefinition {
    /// The table's name.
    pub name: String,
    /// Where every order starts.
    pub initial: String,
    /// What the start asks for.
    pub start_effects: Vec<String>,
    /// States never left.
    pub terminal: Vec<String>,
    /// The decisions.
    pub rows: Vec<SagaRow>,
    /// Pairs that change nothing; every other pair is invalid.
    pub ignored: Vec<IgnoredPair>,
    /// The table as a Mermaid `stateDiagram-v2`.
    pub mermaid: String,
    /// The table as Graphviz DOT.
    pub dot: String,
}

/// The handlers' shared state.
#[derive(Clone)]
pub struct AppState {
    /// The order database.
    pub db: DatabaseConnection,
    /// Wakes the relay after an order is committed.
    pub signal: outbox::OutboxSignal,
    /// `ORDER_SAGA_TIMEOUT_SECS`.
    pub saga_timeout: Duration,
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
    let placed = store::place(&state.db, &order, key.as_deref(), state.saga_timeout).await?;
    match placed {
        Placed::Created(record) => {
            state.signal.wake();
            let location = [(header::LOCATION, format!("/orders/{}", record.order.id))];
            tracing::info!(order_id = %record.order.id, %caller, "order placed");
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

/// An order with its saga timeline: the caller's own, or any for an operator.
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
    match store::find(&state.db, order_id).await? {
        Some(record) if caller.may_act_for(record.order.customer_id) => {
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
    if let Some(status) = &query.status
        && OrderState::from_name(status).is_none()
    {
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
    if !violations.is_empty() {
        return Err(ApiError::Invalid(violations));
    }
    let filter = ListFilter {
        status: query.status,
        customer_id,
        before: query.cursor,
        limit: limit.unsigned_abs(),
    };
    let records = store::list(&state.db, &filter).await?;
    let full_page = records.len() as u64 == filter.limit;
    let next_cursor = records
        .last()
        .filter(|_| full_page)
        .map(|record| record.order.id);
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
    let names = |effects: &[saga_core::order::OrderEffect]| {
        effects
            .iter()
            .map(|effect| effect.name().to_owned())
            .collect()
    };
    ApiJson(SagaDefinition {
        name: ORDER_SAGA.name.to_owned(),
        initial: ORDER_SAGA.initial.name().to_owned(),
        start_effects: names(ORDER_SAGA.start_effects),
        terminal: ORDER_SAGA
            .terminal
            .iter()
            .map(|state| state.name().to_owned())
            .collect(),
        rows: ORDER_SAGA
            .rows
            .iter()
            .map(|row| SagaRow {
                from: row.from.name().to_owned(),
                event: row.event.name().to_owned(),
                to: row.to.name().to_owned(),
                effects: names(row.effects),
            })
            .collect(),
        ignored: ORDER_SAGA
            .ignored
            .iter()
            .map(|(state, event)| IgnoredPair {
                state: state.name().to_owned(),
                event: event.name().to_owned(),
            })
            .collect(),
        mermaid: ORDER_SAGA.to_mermaid(),
        dot: ORDER_SAGA.to_dot(),
    })
}

/// The API routes, documented.
pub fn routes(state: AppState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(place_order, list_orders))
        .routes(routes!(get_order))
        .routes(routes!(saga))
        .with_state(state)
}
