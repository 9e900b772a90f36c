//! Callers for tests: the shared HS256 secret every service under test verifies, and tokens
//! for each kind of caller — valid, expired and forged.

use std::time::Duration;

use service_kit::auth::{AuthConfig, Authenticator, DevelopmentToken};
use uuid::Uuid;

/// The HS256 secret of every service a test starts (`AUTH_JWT_SECRET`).
pub const SECRET: &str = "testkit: a development secret, never used in production";

/// Another secret: tokens signed with it must be refused.
const FORGER_SECRET: &str = "testkit: a forger's secret of at least thirty-two bytes";

/// The authentication settings of a service under test.
pub fn auth_config() -> AuthConfig {
    AuthConfig {
        authenticator: Authenticator::hs256(SECRET.as_bytes()).expect("a valid test secret"),
    }
}

/// Who a test request claims to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    /// No `Authorization` header.
    Anonymous,
    /// An operator.
    Operator,
    /// A customer.
    Customer(Uuid),
    /// Exactly this token.
    Token(String),
}

fn development_token(identity: &Identity) -> Option<DevelopmentToken> {
    match identity {
        Identity::Anonymous | Identity::Token(_) => None,
        Identity::Operator => Some(DevelopmentToken::operator("testkit-operator")),
        Identity::Customer(customer) => Some(DevelopmentToken::customer(*customer)),
    }
}

/// The bearer token of `identity`, `None` for [`Identity::Anonymous`].
pub fn token(identity: &Identity) -> Option<String> {
    if let Identity::Token(token) = identity {
        return Some(token.clone());
    }
    development_token(identity).map(|token| token.mint(SECRET.as_bytes()).expect("mint a token"))
}

/// A token of `identity` that expired ten minutes ago.
pub fn expired_token(identity: &Identity) -> Identity {
    let token = development_token(identity)
        .expect("an operator or a customer")
        .expired_since(Duration::from_secs(600))
        .mint(SECRET.as_bytes())
        .expect("mint a token");
    Identity::Token(token)
}

/// A token of `identity` signed with the wrong secret.
pub fn forged_token(identity: &Identity) -> Identity {
    let token = development_token(identity)
        .expect("an operator or a customer")
        .mint(FORGER_SECRET.as_bytes())
        .expect("mint a token");
    Identity::Token(token)
}

/// A fresh customer id.
pub fn customer() -> Uuid {
    Uuid::now_v7()
}

/// The `Authorization` header value for `identity`, if any.
pub fn authorization(identity: &Identity) -> Option<String> {
    token(identity).map(|token| format!("Bearer {token}"))
}
