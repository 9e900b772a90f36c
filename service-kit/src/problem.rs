//! RFC 9457 problem details: the one error body every service answers with.
//!
//! A [`Problem`] is both the JSON document and an axum response. Server errors are opaque on the
//! wire: [`Problem::internal`] keeps the cause out of the body and hands it to the logging
//! middleware ([`crate::http::metrics_and_logging`]) through the response's extensions as an
//! [`InternalErrorCause`].

use std::fmt::Display;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The media type of a problem document (RFC 9457 section 3).
pub const PROBLEM_JSON_CONTENT_TYPE: &str = "application/problem+json";

/// The problem type used when the status code says it all (RFC 9457 section 4.2.1).
pub const ABOUT_BLANK: &str = "about:blank";

/// An RFC 9457 problem details document.
///
/// Serialised as `{"type","title","status","detail","errors":[{"field","message"}]}`; `detail` is
/// left out when there is none, `errors` is always present (possibly empty) so clients can
/// iterate it without a presence check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "type": "about:blank",
    "title": "Bad Request",
    "status": 400,
    "detail": "the request body does not match the expected shape",
    "errors": [{"field": "items[0].quantity", "message": "invalid type: string \"two\", expected u32"}]
}))]
pub struct Problem {
    /// A URI reference identifying the problem type; `about:blank` when the status is enough.
    #[serde(rename = "type", default = "about_blank")]
    pub problem_type: String,
    /// A short, human-readable summary of the problem type.
    pub title: String,
    /// The HTTP status code, repeated in the body for clients that lose the response line.
    pub status: u16,
    /// A human-readable explanation specific to this occurrence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The individual fields (JSON paths, parameters, headers) the problem is about.
    #[serde(default)]
    pub errors: Vec<FieldError>,
    /// Why a server error happened; never serialised, logged by the middleware instead.
    /// (A `Box<str>` keeps `Problem` under clippy's `result_large_err` threshold, so handlers
    /// can return `Result<_, Problem>`.)
    #[serde(skip)]
    internal_cause: Option<Box<str>>,
}

/// One field-level complaint inside a [`Problem`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    /// What the complaint is about: a JSON path such as `items[0].quantity`, a path or query
    /// parameter name, a header name such as `Content-Type`, or `body` for the body as a whole.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// The cause of a 500 response, carried in the response extensions for the logging middleware.
///
/// The body of such a response stays opaque; this is the only place the cause travels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalErrorCause(pub String);

fn about_blank() -> String {
    ABOUT_BLANK.to_owned()
}

impl Problem {
    /// A problem with the given status and title, type `about:blank`, no detail, no field errors.
    pub fn new(status: StatusCode, title: impl Into<String>) -> Self {
        Self {
            problem_type: about_blank(),
            title: title.into(),
            status: status.as_u16(),
            detail: None,
            errors: Vec::new(),
            internal_cause: None,
        }
    }

    /// A problem titled with the status code's canonical reason phrase ("Not Found", ...).
    pub fn from_status(status: StatusCode) -> Self {
        let title = status.canonical_reason().unwrap_or("Error");
        Self::new(status, title)
    }

    /// An opaque 500 "Internal Server Error".
    ///
    /// The `cause` is not in the body: it travels in the response extensions as an
    /// [`InternalErrorCause`] and is logged by the middleware. It is formatted with `{:#}`, so an
    /// `anyhow::Error` contributes its whole chain of causes.
    pub fn internal(cause: impl Display) -> Self {
        Self::from_status(StatusCode::INTERNAL_SERVER_ERROR).with_internal_cause(cause)
    }

    /// The answer to a failed database call: 503 Service Unavailable (with `Retry-After`) when
    /// the database could not do its part — a connection cut, a pool or statement timeout, a
    /// deadlock — since the same request will succeed once it is back; an opaque 500 otherwise.
    /// Either way the cause goes to the log, not the body.
    pub fn database(error: &sea_orm_migration::sea_orm::DbErr) -> Self {
        match outbox::failure::blame_database(error) {
            outbox::failure::Blame::Infrastructure(cause) => {
                Self::from_status(StatusCode::SERVICE_UNAVAILABLE)
                    .with_detail("the database is unavailable; try again")
                    .with_internal_cause(cause)
            }
            outbox::failure::Blame::Message(cause) => Self::internal(cause),
        }
    }

    /// Attaches a cause for the log without putting it in the body, as [`Problem::internal`]
    /// does; for server errors other than 500 (a 503 whose dependency is down, say).
    #[must_use]
    pub fn with_internal_cause(mut self, cause: impl Display) -> Self {
        self.internal_cause = Some(format!("{cause:#}").into_boxed_str());
        self
    }

    /// Sets the occurrence-specific explanation.
    #[must_use]
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Adds a complaint about one field.
    #[must_use]
    pub fn with_field_error(
        mut self,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        self.errors.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
        self
    }

    /// Sets the problem type URI (instead of `about:blank`).
    #[must_use]
    pub fn with_type(mut self, problem_type_uri: impl Into<String>) -> Self {
        self.problem_type = problem_type_uri.into();
        self
    }

    /// The status as a [`StatusCode`]; a status field outside 100..=999 reads as 500.
    pub fn status_code(&self) -> StatusCode {
        match StatusCode::from_u16(self.status) {
            Ok(status) => status,
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The cause given to [`Problem::internal`], if any; it is never part of the body.
    pub fn internal_cause(&self) -> Option<&str> {
        self.internal_cause.as_deref()
    }
}

impl Display for Problem {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{} {}", self.status, self.title)?;
        if let Some(detail) = &self.detail {
            write!(formatter, ": {detail}")?;
        }
        for field_error in &self.errors {
            write!(
                formatter,
                "; {}: {}",
                field_error.field, field_error.message
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for Problem {}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        // Serialising a struct of strings and integers cannot fail; if it ever did, a fixed
        // body still keeps the promise that every error is problem+json.
        let body = match serde_json::to_vec(&self) {
            Ok(body) => body,
            Err(_) => format!(
                r#"{{"type":"about:blank","title":"{}","status":{},"errors":[]}}"#,
                status.canonical_reason().unwrap_or("Error"),
                status.as_u16()
            )
            .into_bytes(),
        };
        let mut response = (status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(PROBLEM_JSON_CONTENT_TYPE),
        );
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // A dependency is down for a moment: say when a retry is worth it (RFC 9110 10.2.3).
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let Some(cause) = self.internal_cause {
            response
                .extensions_mut()
                .insert(InternalErrorCause(cause.into_string()));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_to_the_rfc_9457_shape() {
        let problem = Problem::new(StatusCode::BAD_REQUEST, "Bad Request")
            .with_detail("nope")
            .with_field_error("items[0].quantity", "must be positive");
        let json = serde_json::to_value(&problem).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "type": "about:blank",
                "title": "Bad Request",
                "status": 400,
                "detail": "nope",
                "errors": [{"field": "items[0].quantity", "message": "must be positive"}]
            })
        );
    }

    #[test]
    fn omits_detail_but_keeps_errors() {
        let json = serde_json::to_value(Problem::from_status(StatusCode::NOT_FOUND)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type": "about:blank", "title": "Not Found", "status": 404, "errors": []})
        );
    }

    #[test]
    fn openapi_schema_matches_the_wire_shape() {
        let schema = serde_json::to_value(<Problem as utoipa::PartialSchema>::schema()).unwrap();
        let mut properties: Vec<&str> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        properties.sort_unstable();
        assert_eq!(properties, ["detail", "errors", "status", "title", "type"]);
    }

    #[test]
    fn stays_small_enough_to_be_an_error_type() {
        // clippy's result_large_err fires at 128 bytes, in every service returning
        // Result<_, Problem>.
        assert!(std::mem::size_of::<Problem>() < 128);
    }

    #[test]
    fn internal_keeps_the_cause_out_of_the_body() {
        let problem = Problem::internal("database password is hunter2");
        let body = serde_json::to_string(&problem).unwrap();
        assert!(!body.contains("hunter2"), "{body}");
        let response = problem.into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            response.extensions().get::<InternalErrorCause>(),
            Some(&InternalErrorCause(
                "database password is hunter2".to_owned()
            ))
        );
    }

    #[test]
    fn a_database_failure_is_503_when_a_retry_will_do_and_500_otherwise() {
        use sea_orm::{ConnAcquireErr, DbErr};
        let check = |error: DbErr, status: StatusCode, retry_after: Option<&str>| {
            let response = Problem::database(&error).into_response();
            assert_eq!(response.status(), status, "{error}");
            assert_eq!(
                response
                    .headers()
                    .get(header::RETRY_AFTER)
                    .and_then(|value| value.to_str().ok()),
                retry_after,
                "{error}"
            );
            assert!(
                response.extensions().get::<InternalErrorCause>().is_some(),
                "the cause is logged: {error}"
            );
        };
        check(
            DbErr::ConnectionAcquire(ConnAcquireErr::Timeout),
            StatusCode::SERVICE_UNAVAILABLE,
            Some("1"),
        );
        check(
            DbErr::Conn(sea_orm::RuntimeErr::Internal("connection reset".into())),
            StatusCode::SERVICE_UNAVAILABLE,
            Some("1"),
        );
        check(
            DbErr::Type("amount is not a number".into()),
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
        );
    }
}
