//! The HTTP API: the notifications sent about an order.
//!
//! Every notification names the customer it was sent to. An operator reads every order's; a
//! customer only those sent to them, so another customer's order lists as empty, exactly like an
//! order nothing was sent about. The order id stays required for everyone: a customer finds
//! their orders in order-svc (`GET /orders`), and a listing across orders would need a second
//! index and paging in this bounded in-memory store for no new information.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use contracts::OrderId;
use serde::{Deserialize, Serialize};
use service_kit::auth::Caller;
use service_kit::extract::{ApiJson, ApiQuery};
use service_kit::problem::Problem;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::notification;
use crate::store::NotificationStore;

/// The API's one error type; every failure becomes problem+json here and nowhere else.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A required query parameter is absent.
    #[error("query parameter {0} is required")]
    Missing(&'static str),
    /// A query parameter does not parse.
    #[error("invalid {field}: {message}")]
    Invalid {
        /// The parameter.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = match &self {
            ApiError::Missing(field) => Problem::new(StatusCode::BAD_REQUEST, "Bad Request")
                .with_detail(self.to_string())
                .with_field_error(*field, "is required"),
            ApiError::Invalid { field, message } => {
                Problem::new(StatusCode::BAD_REQUEST, "Bad Request")
                    .with_detail(self.to_string())
                    .with_field_error(*field, message.clone())
            }
        };
        problem.into_response()
    }
}

/// A notification sent to the customer of an order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Notification {
    /// The order.
    pub order_id: Uuid,
    /// The customer it was sent to.
    pub customer_id: Uuid,
    /// What happened: `StockFailed`, `PaymentFailed`, `PaymentSucceeded`, `OrderCompleted` or
    /// `OrderCancelled`.
    pub kind: String,
    /// The text the customer reads.
    pub message: String,
    /// When it was sent (UTC).
    pub sent_at: DateTime<Utc>,
    /// The id of the message that caused it.
    pub message_id: Uuid,
}

impl From<notification::Notification> for Notification {
    fn from(sent: notification::Notification) -> Self {
        Notification {
            order_id: sent.order_id.as_uuid(),
            customer_id: sent.customer_id.as_uuid(),
            kind: sent.kind.name().to_owned(),
            message: sent.message,
            sent_at: sent.sent_at,
            message_id: sent.message_id.as_uuid(),
        }
    }
}

/// The query of `GET /notifications`, checked by hand so that every failure names the field.
#[derive(Debug, Deserialize)]
struct NotificationFilter {
    order_id: Option<String>,
}

/// The notifications sent about an order, oldest first (an empty list if none were, or they
/// were dropped from memory).
///
/// An operator sees all of them; a customer only those sent to them: another customer's order
/// lists as empty, never hinting that it exists.
#[utoipa::path(
    get, path = "/notifications",
    params(("order_id" = Uuid, Query, description = "The order (required)")),
    responses(
        (status = 200, description = "The order's notifications the caller may read", body = Vec<Notification>),
        (status = 400, body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_notifications(
    State(store): State<NotificationStore>,
    caller: Caller,
    ApiQuery(filter): ApiQuery<NotificationFilter>,
) -> Result<ApiJson<Vec<Notification>>, ApiError> {
    let Some(raw) = filter.order_id else {
        return Err(ApiError::Missing("order_id"));
    };
    let order_id: OrderId = raw
        .parse()
        .map_err(|error: uuid::Error| ApiError::Invalid {
            field: "order_id",
            message: format!("not a UUID: {error}"),
        })?;
    Ok(ApiJson(
        store
            .for_order(order_id)
            .into_iter()
            .filter(|sent| caller.may_act_for(sent.customer_id.as_uuid()))
            .map(Notification::from)
            .collect(),
    ))
}

/// The API routes, documented.
pub fn routes(store: NotificationStore) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(list_notifications))
        .with_state(store)
}
