//! The HTTP API: stock per product, for operators and demos, and reservations per order.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use contracts::{OrderId, ProductId};
use sea_orm::{DatabaseConnection, DbErr};
use serde::{Deserialize, Serialize};
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
            ApiError::Database(cause) => Problem::internal(cause),
        };
        problem.into_response()
    }
}

/// A product's stock.
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
}

impl From<product::Model> for ProductStock {
    fn from(row: product::Model) -> Self {
        ProductStock {
            product_id: row.product_id,
            available: row.available,
            reserved: row.reserved,
            committed: row.committed,
        }
    }
}

/// The body of `PUT /products/{product_id}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SetStock {
    /// Units free to reserve; at least 0.
    #[serde(deserialize_with = "service_kit::extract::integer")]
    #[schema(minimum = 0)]
    pub available: i64,
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

/// A product's stock.
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
    ApiPath(product_id): ApiPath<String>,
) -> Result<ApiJson<ProductStock>, ApiError> {
    let product_id = product_id_from_path(product_id)?;
    match store::product(&db, product_id.as_str()).await? {
        Some(row) => Ok(ApiJson(row.into())),
        None => Err(ApiError::ProductNotFound(product_id.to_string())),
    }
}

/// Products in id order.
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

/// Creates a product or sets its available stock.
#[utoipa::path(
    put, path = "/products/{product_id}",
    params(("product_id" = String, Path, min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$",
        description = "1–64 characters of A-Z, a-z, 0-9, '_', '-'")),
    request_body = SetStock,
    responses(
        (status = 200, description = "Stock set", body = ProductStock),
        (status = 201, description = "Product created", body = ProductStock),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
async fn put_product(
    State(db): State<DatabaseConnection>,
    ApiPath(product_id): ApiPath<String>,
    ApiJson(body): ApiJson<SetStock>,
) -> Result<Response, ApiError> {
    let product_id = product_id_from_path(product_id)?;
    if body.available < 0 {
        return Err(ApiError::Invalid {
            field: "available",
            message: format!("must be at least 0, got {}", body.available),
        });
    }
    let (row, created) = store::set_available(&db, product_id.as_str(), body.available).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let location = [(header::LOCATION, format!("/products/{product_id}"))];
    Ok((status, location, ApiJson(ProductStock::from(row))).into_response())
}

/// Inventory's decision for an order.
#[utoipa::path(
    get, path = "/reservations/{order_id}",
    params(("order_id" = Uuid, Path, description = "The order")),
    responses(
        (status = 200, body = Reservation),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_reservation(
    State(db): State<DatabaseConnection>,
    ApiPath(order_id): ApiPath<Uuid>,
) -> Result<ApiJson<Reservation>, ApiError> {
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
