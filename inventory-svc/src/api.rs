//! The HTTP API: the catalog (stock and price per product) and reservations per order.
//!
//! Who may do what (every route is behind the bearer-token middleware of
//! [`service_kit::entrypoint::service_router`], so each handler has a [`Caller`]):
//!
//! | endpoint                      | customer | operator |
//! |-------------------------------|----------|----------|
//! | `GET /products`               | yes      | yes      |
//! | `GET /products/{product_id}`  | yes      | yes      |
//! | `PUT /products/{product_id}`  | 403      | yes      |
//! | `GET /reservations/{order_id}`| 403      | yes      |
//!
//! The operator-only handlers check the caller before they look at the request, so a customer
//! learns nothing from the validation of what they sent. A price set here applies to the
//! reservations that follow: a reservation is priced when its stock is held
//! ([`crate::store::reserve`]) and keeps that price.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use contracts::{Money, OrderId, ProductId};
use sea_orm::{DatabaseConnection, DbErr};
use serde::{Deserialize, Serialize};
use service_kit::auth::{Caller, Forbidden};
use service_kit::extract::{ApiJson, ApiPath, ApiQuery};
use service_kit::problem::Problem;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::entity::product;
use crate::store;

/// The API's one error type; every failure becomes problem+json here and nowhere else.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The path's product id is malformed.
    #[error("invalid product id")]
    InvalidProductId(String),
    /// A request field failed validation.
    #[error("invalid {field}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// No such product.
    #[error("product {0} not found")]
    ProductNotFound(String),
    /// Inventory never heard of the order.
    #[error("no reservation for order {0}")]
    ReservationNotFound(OrderId),
    /// The caller may not do this (a customer on an operator's endpoint).
    #[error("forbidden: {0}")]
    Forbidden(#[from] Forbidden),
    /// The request could not be read (its own problem: a malformed path or body).
    #[error("unreadable request")]
    Unreadable(Problem),
    /// The database failed (opaque to clients).
    #[error("database: {0}")]
    Database(#[from] DbErr),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = match &self {
            ApiError::InvalidProductId(message) => {
                Problem::new(StatusCode::BAD_REQUEST, "Invalid product id")
                    .with_detail(message.clone())
                    .with_field_error("product_id", message.clone())
            }
            ApiError::Invalid { field, message } => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "Validation failed")
                    .with_detail(format!("{field}: {message}"))
                    .with_field_error(*field, message.clone())
            }
            ApiError::ProductNotFound(_) | ApiError::ReservationNotFound(_) => {
                Problem::new(StatusCode::NOT_FOUND, "Not found").with_detail(self.to_string())
            }
            ApiError::Forbidden(forbidden) => forbidden.problem(),
            ApiError::Unreadable(problem) => problem.clone(),
            ApiError::Database(cause) => Problem::database(cause),
        };
        problem.into_response()
    }
}

/// A product's stock and price.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ProductStock {
    /// The product.
    pub product_id: String,
    /// Units free to reserve.
    pub available: i64,
    /// Units held for orders awaiting payment.
    pub reserved: i64,
    /// Units sold.
    pub committed: i64,
    /// The catalog price of one unit, in minor units; orders reserved from now on pay it.
    #[schema(minimum = 0)]
    pub price: i64,
}

impl From<product::Model> for ProductStock {
    fn from(row: product::Model) -> Self {
        ProductStock {
            product_id: row.product_id,
            available: row.available,
            reserved: row.reserved,
            committed: row.committed,
            price: row.price,
        }
    }
}

/// The body of `PUT /products/{product_id}`: both fields are required.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SetProduct {
    /// Units free to reserve; at least 0.
    #[serde(deserialize_with = "service_kit::extract::integer")]
    #[schema(minimum = 0)]
    pub available: i64,
    /// The catalog price of one unit, in minor units (1999 is 19.99); at least 0. Reservations
    /// already held keep the price they were held at.
    #[serde(deserialize_with = "service_kit::extract::integer")]
    #[schema(minimum = 0)]
    pub price: i64,
}

/// Paging of `GET /products`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProductPage {
    /// At most this many products (1–1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u64>,
    /// Products whose id sorts after this one (a product id).
    #[param(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$")]
    pub after: Option<String>,
}

/// One product line held for an order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HeldLine {
    /// The product.
    pub product_id: String,
    /// Units.
    pub quantity: i64,
    /// The catalog price of one unit when the stock was held, in minor units; absent for
    /// reservations held before inventory priced them.
    #[schema(minimum = 0)]
    pub unit_price: Option<i64>,
}

/// Inventory's decision for an order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Reservation {
    /// The order.
    pub order_id: Uuid,
    /// `Held`, `Committed`, `Released` or `Failed`.
    pub status: String,
    /// Why it failed or was released.
    pub reason: Option<String>,
    /// What is (or was) held.
    pub lines: Vec<HeldLine>,
}

fn product_id_from_path(raw: String) -> Result<ProductId, ApiError> {
    ProductId::new(raw).map_err(|error| ApiError::InvalidProductId(error.to_string()))
}

/// A product's stock and price; any authenticated caller may read the catalog.
#[utoipa::path(
    get, path = "/products/{product_id}",
    params(("product_id" = String, Path, min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$",
        description = "1–64 characters of A-Z, a-z, 0-9, '_', '-'")),
    responses(
        (status = 200, body = ProductStock),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_product(
    State(db): State<DatabaseConnection>,
    _caller: Caller,
    ApiPath(product_id): ApiPath<String>,
) -> Result<ApiJson<ProductStock>, ApiError> {
    let product_id = product_id_from_path(product_id)?;
    match store::product(&db, product_id.as_str()).await? {
        Some(row) => Ok(ApiJson(row.into())),
        None => Err(ApiError::ProductNotFound(product_id.to_string())),
    }
}

/// Products in id order, with their stock and price; any authenticated caller may read the
/// catalog.
#[utoipa::path(
    get, path = "/products",
    params(ProductPage),
    responses(
        (status = 200, body = Vec<ProductStock>),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_products(
    State(db): State<DatabaseConnection>,
    _caller: Caller,
    ApiQuery(page): ApiQuery<ProductPage>,
) -> Result<ApiJson<Vec<ProductStock>>, ApiError> {
    let limit = page.limit.unwrap_or(100);
    if !(1..=1_000).contains(&limit) {
        return Err(ApiError::Invalid {
            field: "limit",
            message: format!("must be between 1 and 1000, got {limit}"),
        });
    }
    // The cursor is a product id: anything else (a NUL byte, which PostgreSQL's text refuses,
    // included) is the client's mistake, not the database's.
    let after = page
        .after
        .map(|after| {
            ProductId::new(after).map_err(|error| ApiError::Invalid {
                field: "after",
                message: error.to_string(),
            })
        })
        .transpose()?;
    let rows = store::products(&db, limit, after.as_ref().map(ProductId::as_str)).await?;
    Ok(ApiJson(rows.into_iter().map(ProductStock::from).collect()))
}

/// Creates a product or sets its available stock and price (operators only).
#[utoipa::path(
    put, path = "/products/{product_id}",
    params(("product_id" = String, Path, min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$",
        description = "1–64 characters of A-Z, a-z, 0-9, '_', '-'")),
    request_body = SetProduct,
    responses(
        (status = 200, description = "Stock and price set", body = ProductStock),
        (status = 201, description = "Product created", body = ProductStock),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller is not an operator", body = Problem,
            content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
async fn put_product(
    State(db): State<DatabaseConnection>,
    caller: Caller,
    product_id: Result<ApiPath<String>, Problem>,
    body: Result<ApiJson<SetProduct>, Problem>,
) -> Result<Response, ApiError> {
    // The caller first: what a customer sent is not worth reading, nor worth an answer about.
    caller.require_operator()?;
    let ApiPath(product_id) = product_id.map_err(ApiError::Unreadable)?;
    let product_id = product_id_from_path(product_id)?;
    let ApiJson(body) = body.map_err(ApiError::Unreadable)?;
    if body.available < 0 {
        return Err(ApiError::Invalid {
            field: "available",
            message: format!("must be at least 0, got {}", body.available),
        });
    }
    let price = Money::new(body.price).map_err(|_| ApiError::Invalid {
        field: "price",
        message: format!("must be at least 0, got {}", body.price),
    })?;
    let (row, created) =
        store::set_product(&db, product_id.as_str(), body.available, price).await?;
    let status = match created {
        true => StatusCode::CREATED,
        false => StatusCode::OK,
    };
    let location = [(header::LOCATION, format!("/products/{product_id}"))];
    Ok((status, location, ApiJson(ProductStock::from(row))).into_response())
}

/// Inventory's decision for an order, with the prices its lines were held at (operators only).
#[utoipa::path(
    get, path = "/reservations/{order_id}",
    params(("order_id" = Uuid, Path, description = "The order")),
    responses(
        (status = 200, body = Reservation),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller is not an operator", body = Problem,
            content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_reservation(
    State(db): State<DatabaseConnection>,
    caller: Caller,
    order_id: Result<ApiPath<Uuid>, Problem>,
) -> Result<ApiJson<Reservation>, ApiError> {
    // Reservations are inventory's bookkeeping, not a customer's view of an order (order-svc
    // shows customers their own): operators only, checked before the path is read.
    caller.require_operator()?;
    let ApiPath(order_id) = order_id.map_err(ApiError::Unreadable)?;
    let order_id = OrderId::from(order_id);
    let Some((found, lines)) = store::reservation(&db, order_id).await? else {
        return Err(ApiError::ReservationNotFound(order_id));
    };
    Ok(ApiJson(Reservation {
        order_id: found.order_id,
        status: found.status,
        reason: found.reason,
        lines: lines
            .into_iter()
            .map(|line| HeldLine {
                product_id: line.product_id,
                quantity: line.quantity,
                unit_price: line.unit_price,
            })
            .collect(),
    }))
}

/// The API routes, documented.
pub fn routes(db: DatabaseConnection) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(list_products))
        .routes(routes!(get_product, put_product))
        .routes(routes!(get_reservation))
        .with_state(db)
}
