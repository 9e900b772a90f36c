//! The console's one error type, and the page each error becomes (here and nowhere else).

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::pages::layout;

/// What can go wrong while serving a page or a form.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConsoleError {
    /// No session, or one whose token no longer verifies: sign in (again).
    #[error("not signed in")]
    SignedOut,
    /// The token offered at sign-in is refused.
    #[error("{0}")]
    SignIn(String),
    /// A form that did not come from a console page (a CSRF token or an `Origin` that does not
    /// match).
    #[error("this request did not come from a page of the console")]
    Forged,
    /// A form or filter the console cannot use.
    #[error("{field}: {message}")]
    Invalid {
        /// The form field.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// A service answered with an error.
    #[error("{service} answered {status}: {detail}")]
    Service {
        /// The service.
        service: &'static str,
        /// Its status.
        status: StatusCode,
        /// Its problem's detail (or title).
        detail: String,
    },
    /// A service could not be reached, or its answer not read.
    #[error("{service} cannot be reached: {cause}")]
    Unreachable {
        /// The service.
        service: &'static str,
        /// Why.
        cause: String,
    },
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let status = match &self {
            ConsoleError::SignedOut => {
                return (
                    StatusCode::SEE_OTHER,
                    [
                        (header::LOCATION, "/sign-in"),
                        (header::CACHE_CONTROL, "no-store"),
                    ],
                )
                    .into_response();
            }
            ConsoleError::SignIn(_) => StatusCode::UNAUTHORIZED,
            ConsoleError::Forged => StatusCode::FORBIDDEN,
            ConsoleError::Invalid { .. } => StatusCode::BAD_REQUEST,
            ConsoleError::Service { status, .. } if status.is_client_error() => *status,
            ConsoleError::Service { .. } | ConsoleError::Unreachable { .. } => {
                StatusCode::BAD_GATEWAY
            }
        };
        if status.is_server_error() {
            tracing::warn!(error = %self, "console page failed");
        }
        let title = status.canonical_reason().unwrap_or("Error");
        let page = layout::page(
            title,
            None,
            maud::html! {
                h1 { (status.as_u16()) " " (title) }
                p.error role="alert" { (self.to_string()) }
                p { a href="/orders" { "Back to the orders" } }
            },
        );
        (status, page).into_response()
    }
}
