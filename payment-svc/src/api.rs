//! The HTTP API: payments per order, and balances per customer.
//!
//! Who may do what (every route needs a bearer token, see [`service_kit::auth`]): an operator
//! everything; a customer may read their own account and the payments of their own orders, and
//! nothing else. Another customer's account or payment answers 404 exactly like a missing one,
//! so that a customer cannot even learn that it exists. Only an operator funds accounts.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use contracts::{CustomerId, Money, OrderId};
use sea_orm::{DatabaseConnection, DbErr};
use serde::{Deserialize, Serialize};
use service_kit::auth::{Caller, Forbidden};
use service_kit::extract::{ApiJson, ApiPath};
use service_kit::problem::Problem;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::entity::{account, payment};
use crate::store;

/// The API's one error type; every failure becomes problem+json here and nowhere else.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A request field failed validation.
    #[error("invalid {field}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// Payment never heard of the order.
    #[error("no payment for order {0}")]
    PaymentNotFound(OrderId),
    /// The customer has no account.
    #[error("no account for customer {0}")]
    AccountNotFound(CustomerId),
    /// The caller may not do this (a customer funding an account).
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    /// The request's path or body was refused by its extractor, whose problem is answered as is.
    #[error("{}", .0.title)]
    Request(Problem),
    /// The database failed (opaque to clients).
    #[error("database: {0}")]
    Database(#[from] DbErr),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = match &self {
            ApiError::Invalid { field, message } => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "Validation failed")
                    .with_detail(format!("{field}: {message}"))
                    .with_field_error(*field, message.clone())
            }
            ApiError::PaymentNotFound(_) | ApiError::AccountNotFound(_) => {
                Problem::new(StatusCode::NOT_FOUND, "Not found").with_detail(self.to_string())
            }
            ApiError::Forbidden(forbidden) => forbidden.problem(),
            ApiError::Request(problem) => problem.clone(),
            ApiError::Database(cause) => Problem::database(cause),
        };
        problem.into_response()
    }
}

/// Payment's decision for an order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Payment {
    /// The order.
    pub order_id: Uuid,
    /// `Charged`, `Failed` or `Refunded`.
    pub status: String,
    /// The order's total in minor units: what was charged (and, once `Refunded`, given back),
    /// or what could not be charged. 0 when the order was refunded before any charge.
    pub amount: i64,
    /// The charge's id; `null` when no money was ever taken.
    pub payment_id: Option<Uuid>,
    /// The customer; `null` when the order was refunded before any charge.
    pub customer_id: Option<Uuid>,
    /// Why the charge failed or was refunded.
    pub reason: Option<String>,
}

impl From<payment::Model> for Payment {
    fn from(row: payment::Model) -> Self {
        Payment {
            order_id: row.order_id,
            status: row.status,
            amount: row.amount,
            payment_id: row.payment_id,
            customer_id: row.customer_id,
            reason: row.reason,
        }
    }
}

/// A customer's account.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Account {
    /// The customer.
    pub customer_id: Uuid,
    /// What the customer can spend, in minor units.
    pub balance: i64,
}

impl From<account::Model> for Account {
    fn from(row: account::Model) -> Self {
        Account {
            customer_id: row.customer_id,
            balance: row.balance,
        }
    }
}

/// The body of `PUT /accounts/{customer_id}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SetBalance {
    /// The new balance in minor units; at least 0.
    #[serde(deserialize_with = "service_kit::extract::integer")]
    #[schema(minimum = 0)]
    pub balance: i64,
}

/// Payment's decision for an order.
///
/// For an operator, or for the customer the payment belongs to. Anyone else gets 404, as for an
/// order payment never heard of (so is everyone but an operator for a refund that came before
/// any charge, which belongs to no customer).
#[utoipa::path(
    get, path = "/payments/{order_id}",
    params(("order_id" = Uuid, Path, description = "The order")),
    responses(
        (status = 200, body = Payment),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No payment for the order, or it belongs to another customer", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_payment(
    State(db): State<DatabaseConnection>,
    caller: Caller,
    ApiPath(order_id): ApiPath<Uuid>,
) -> Result<ApiJson<Payment>, ApiError> {
    let order_id = OrderId::from(order_id);
    let visible = store::payment(&db, order_id)
        .await?
        .filter(|row| match row.customer_id {
            Some(owner) => caller.may_act_for(owner),
            // A tombstone belongs to no customer.
            None => caller.is_operator(),
        });
    match visible {
        Some(row) => Ok(ApiJson(row.into())),
        None => Err(ApiError::PaymentNotFound(order_id)),
    }
}

/// A customer's balance.
///
/// For an operator, or for the customer themselves. Another customer's account answers 404, as
/// a missing one does.
#[utoipa::path(
    get, path = "/accounts/{customer_id}",
    params(("customer_id" = Uuid, Path, description = "The customer")),
    responses(
        (status = 200, body = Account),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No account for the customer, or it is another customer's", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_account(
    State(db): State<DatabaseConnection>,
    caller: Caller,
    ApiPath(customer_id): ApiPath<Uuid>,
) -> Result<ApiJson<Account>, ApiError> {
    if !caller.may_act_for(customer_id) {
        // Without a look at the database: the answer must not depend on whether it exists.
        return Err(ApiError::AccountNotFound(customer_id.into()));
    }
    let customer_id = CustomerId::from(customer_id);
    match store::account(&db, customer_id).await? {
        Some(row) => Ok(ApiJson(row.into())),
        None => Err(ApiError::AccountNotFound(customer_id)),
    }
}

/// Opens a customer's account or sets its balance: operators only.
///
/// The only way money enters the system. A customer gets 403 whatever the path and body (the
/// caller's right is checked before the request is read).
#[utoipa::path(
    put, path = "/accounts/{customer_id}",
    params(("customer_id" = Uuid, Path, description = "The customer")),
    request_body = SetBalance,
    responses(
        (status = 200, description = "Balance set", body = Account),
        (status = 201, description = "Account opened", body = Account),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller is not an operator", body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
async fn put_account(
    State(db): State<DatabaseConnection>,
    caller: Caller,
    path: Result<ApiPath<Uuid>, Problem>,
    body: Result<ApiJson<SetBalance>, Problem>,
) -> Result<Response, ApiError> {
    caller.require_operator()?;
    let ApiPath(customer_id) = path.map_err(ApiError::Request)?;
    let ApiJson(body) = body.map_err(ApiError::Request)?;
    let customer_id = CustomerId::from(customer_id);
    let balance = Money::new(body.balance).map_err(|error| ApiError::Invalid {
        field: "balance",
        message: error.to_string(),
    })?;
    let (row, opened) = store::set_balance(&db, customer_id, balance).await?;
    let status = if opened {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let location = [(header::LOCATION, format!("/accounts/{customer_id}"))];
    Ok((status, location, ApiJson(Account::from(row))).into_response())
}

/// The API routes, documented.
pub fn routes(db: DatabaseConnection) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(get_payment))
        .routes(routes!(get_account, put_account))
        .with_state(db)
}
