//! Signing in with an operator's token, and out.

use axum::Form;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use crate::AppState;
use crate::error::ConsoleError;
use crate::pages::layout;
use crate::session::{self, Session};

/// The sign-in form's fields.
#[derive(Deserialize)]
pub(crate) struct SignIn {
    token: String,
}

/// The sign-out form's fields.
#[derive(Deserialize)]
pub(crate) struct SignOut {
    csrf: String,
}

/// `GET /sign-in`.
pub(crate) async fn form() -> Markup {
    sign_in_page(None)
}

/// `POST /sign-in`: a valid operator's token starts a session; anything else shows why not.
pub(crate) async fn sign_in(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    Form(form): Form<SignIn>,
) -> Response {
    if session::from_another_site(&headers) {
        return ConsoleError::Forged.into_response();
    }
    match Session::verify(&state, form.token.trim()) {
        Ok(session) => {
            tracing::info!(
                operator = session.subject(),
                "operator signed in to the console"
            );
            (
                StatusCode::SEE_OTHER,
                [
                    (header::SET_COOKIE, session.cookie(state.insecure_cookie)),
                    (header::LOCATION, "/orders".to_owned()),
                ],
            )
                .into_response()
        }
        Err(refused) => (
            StatusCode::UNAUTHORIZED,
            sign_in_page(Some(&refused.to_string())),
        )
            .into_response(),
    }
}

/// `POST /sign-out`.
pub(crate) async fn sign_out(
    State(state): State<AppState>,
    session: Session,
    Form(form): Form<SignOut>,
) -> Result<Response, ConsoleError> {
    session.check_csrf(&form.csrf)?;
    Ok((
        StatusCode::SEE_OTHER,
        [
            (
                header::SET_COOKIE,
                session::expired_cookie(state.insecure_cookie),
            ),
            (header::LOCATION, "/sign-in".to_owned()),
        ],
    )
        .into_response())
}

fn sign_in_page(refused: Option<&str>) -> Markup {
    layout::page(
        "Sign in",
        None,
        html! {
            h1 { "Sign in" }
            p { "Paste an operator's token (" code { "sagactl token --operator" } " mints one for development). It is kept in a cookie this browser's scripts cannot read, and never shows in a URL." }
            @if let Some(refused) = refused {
                p.error role="alert" { "Refused: " (refused) }
            }
            form.sign-in method="post" action="/sign-in" {
                label for="token" { "Operator token" }
                textarea #token name="token" rows="4" required autocomplete="off" spellcheck="false" {}
                button type="submit" { "Sign in" }
            }
        },
    )
}
