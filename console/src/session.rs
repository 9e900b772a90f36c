//! Who is at the console: an operator who signed in with a token.
//!
//! The token travels once, in the body of the sign-in form, and from then on in a cookie the
//! page's scripts cannot read (`HttpOnly`), that no other site's page sends (`SameSite=Strict`)
//! and that only HTTPS carries (`Secure`, unless `CONSOLE_INSECURE_COOKIE`) — never in a URL.
//! Every request verifies it again (it expires like any token), and the console calls the
//! services *with the operator's own token*: the console holds no credential of its own and can
//! do nothing the operator could not.
//!
//! Forms that change something carry a CSRF token derived from the session's token (a hash a
//! page of another site cannot compute), and a POST whose `Origin` is another site's is refused
//! — two locks beside `SameSite`.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::ConsoleError;

/// The session cookie's name.
pub(crate) const COOKIE: &str = "saga_console";

/// How long the browser keeps the cookie at most (the token's own expiry ends it sooner).
const COOKIE_MAX_AGE_SECS: u32 = 12 * 3600;

/// A verified operator's session.
#[derive(Clone, Debug)]
pub(crate) struct Session {
    token: String,
    subject: String,
}

impl Session {
    /// The session of `token` if it is a valid operator's token.
    pub(crate) fn verify(state: &AppState, token: &str) -> Result<Session, ConsoleError> {
        let caller = state
            .authenticator
            .verify(token)
            .map_err(|refused| ConsoleError::SignIn(refused.to_string()))?;
        match caller {
            service_kit::auth::Caller::Operator { subject } => Ok(Session {
                token: token.to_owned(),
                subject,
            }),
            service_kit::auth::Caller::Customer(_) => Err(ConsoleError::SignIn(
                "this is a customer's token; the console is for operators".to_owned(),
            )),
        }
    }

    /// The operator's token, for the calls to the services.
    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    /// Who signed in (the token's `sub`).
    pub(crate) fn subject(&self) -> &str {
        &self.subject
    }

    /// The CSRF token of this session's forms.
    pub(crate) fn csrf(&self) -> String {
        let digest = Sha256::new()
            .chain_update(b"saga-console csrf\0")
            .chain_update(self.token.as_bytes())
            .finalize();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
    }

    /// Refuses a form whose CSRF token is not this session's.
    pub(crate) fn check_csrf(&self, presented: &str) -> Result<(), ConsoleError> {
        match presented == self.csrf() {
            true => Ok(()),
            false => Err(ConsoleError::Forged),
        }
    }

    /// The `Set-Cookie` value that starts this session.
    pub(crate) fn cookie(&self, insecure: bool) -> String {
        let secure = if insecure { "" } else { "; Secure" };
        format!(
            "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={COOKIE_MAX_AGE_SECS}{secure}",
            self.token
        )
    }
}

/// The `Set-Cookie` value that ends a session.
pub(crate) fn expired_cookie(insecure: bool) -> String {
    let secure = if insecure { "" } else { "; Secure" };
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
}

/// The session cookie's value in a `Cookie` header, if any.
fn session_cookie(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

/// Whether a state-changing request comes from another site: its `Origin` names a host other
/// than the one it was sent to. (A request without `Origin` is not a browser's cross-site
/// form post: browsers send it on every POST.)
pub(crate) fn from_another_site(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return false;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|origin| origin.split_once("://"))
        .map(|(_, host)| host);
    match (origin_host, host) {
        (Some(origin_host), Some(host)) => origin_host != host,
        _ => true,
    }
}

impl FromRequestParts<AppState> for Session {
    type Rejection = ConsoleError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if parts.method != axum::http::Method::GET && from_another_site(&parts.headers) {
            return Err(ConsoleError::Forged);
        }
        let Some(token) = session_cookie(parts) else {
            return Err(ConsoleError::SignedOut);
        };
        Session::verify(state, token).map_err(|_| ConsoleError::SignedOut)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut request = axum::http::Request::builder().method("POST").uri("/x");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(()).unwrap().into_parts().0
    }

    #[test]
    fn reads_the_cookie_and_spots_other_sites() {
        let check = |headers: &[(&str, &str)], cookie: Option<&str>, foreign: bool| {
            let parts = parts(headers);
            assert_eq!(
                (session_cookie(&parts), from_another_site(&parts.headers)),
                (cookie, foreign),
                "{headers:?}"
            );
        };
        check(&[], None, false);
        check(
            &[("cookie", "a=1; saga_console=tok; b=2")],
            Some("tok"),
            false,
        );
        check(&[("cookie", "saga_console=")], None, false);
        check(
            &[
                ("host", "localhost:8084"),
                ("origin", "http://localhost:8084"),
            ],
            None,
            false,
        );
        check(
            &[
                ("host", "localhost:8084"),
                ("origin", "https://evil.example"),
            ],
            None,
            true,
        );
        check(
            &[("host", "localhost:8084"), ("origin", "null")],
            None,
            true,
        );
    }
}
