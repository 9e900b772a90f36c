//! Who is calling: bearer tokens (JWT) and the two roles every service knows.
//!
//! Every route of a service's API sits behind [`authenticate`] (installed by
//! [`crate::entrypoint::service_router`]): a request without a valid
//! `Authorization: Bearer <JWT>` gets 401 problem+json with `WWW-Authenticate: Bearer`; a valid
//! one reaches the handler with its [`Caller`] in the request's extensions, which the handler
//! extracts to decide what the caller may see and do (403 otherwise, or 404 where existence
//! itself must not leak). Only health, metrics and the OpenAPI document are open.
//!
//! Claims: `sub` and `scope` (space-separated, as in OAuth 2.0). A `scope` containing
//! [`OPERATOR_SCOPE`] makes an operator; anyone else is a customer whose `sub` must be the
//! customer's UUID. `exp` is required; `nbf`, and `iss`/`aud` when configured, are checked.
//!
//! Keys ([`ENVIRONMENT`]): `AUTH_JWT_SECRET` (HS256, at least 32 bytes: for local runs, tests
//! and compose) or `AUTH_JWT_PUBLIC_KEY_FILE` (a PEM public key of an identity provider,
//! `AUTH_JWT_ALGORITHM` RS256 by default, or ES256, ES384, PS256, EdDSA …). Exactly one of the
//! two must be set: a service with neither refuses to start, naming both.
//!
//! ```
//! use service_kit::auth::{Authenticator, Caller, DevelopmentToken};
//!
//! let secret = "a development secret of at least 32 bytes";
//! let authenticator = Authenticator::hs256(secret.as_bytes()).unwrap();
//! let customer = uuid::Uuid::now_v7();
//! let token = DevelopmentToken::customer(customer).mint(secret.as_bytes()).unwrap();
//! assert_eq!(authenticator.verify(&token).unwrap(), Caller::Customer(customer));
//!
//! let operator = DevelopmentToken::operator("alice").mint(secret.as_bytes()).unwrap();
//! assert!(authenticator.verify(&operator).unwrap().is_operator());
//! assert!(authenticator.verify("not-a-token").is_err());
//! ```

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use clap::CommandFactory;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::{ConfigError, Lookup, environment_lookup};
use crate::problem::Problem;

/// The scope that makes a caller an operator.
pub const OPERATOR_SCOPE: &str = "operator";

/// Every variable [`AuthConfig`] reads, generated from [`AuthVariables`].
pub static ENVIRONMENT: LazyLock<Vec<&'static str>> =
    LazyLock::new(|| crate::config::variables(&DESCRIPTION));

/// [`AuthVariables`]' description, built once so that [`ENVIRONMENT`] can borrow its names.
static DESCRIPTION: LazyLock<clap::Command> = LazyLock::new(AuthVariables::command);

/// The variable of the HS256 secret.
const SECRET: &str = "AUTH_JWT_SECRET";
/// The variable of the public key's file.
const PUBLIC_KEY_FILE: &str = "AUTH_JWT_PUBLIC_KEY_FILE";
/// The variable of the public key's algorithm.
const ALGORITHM: &str = "AUTH_JWT_ALGORITHM";

/// The shortest HS256 secret accepted: shorter ones can be brute-forced from one token.
pub const MIN_SECRET_BYTES: usize = 32;

/// The scheme name under which the OpenAPI documents declare the bearer token.
pub const SECURITY_SCHEME: &str = "bearer";

/// Who is calling, as proven by a verified token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// A customer: may act on their own data only.
    Customer(Uuid),
    /// An operator (`scope` contains [`OPERATOR_SCOPE`]): may do everything.
    Operator {
        /// The token's `sub`, for the logs.
        subject: String,
    },
}

impl Caller {
    /// Whether the caller is an operator.
    pub fn is_operator(&self) -> bool {
        matches!(self, Caller::Operator { .. })
    }

    /// The customer's id, for a customer.
    pub fn customer(&self) -> Option<Uuid> {
        match self {
            Caller::Customer(customer) => Some(*customer),
            Caller::Operator { .. } => None,
        }
    }

    /// Whether the caller may see or act on data that belongs to `customer`: an operator, or
    /// that customer.
    pub fn may_act_for(&self, customer: Uuid) -> bool {
        match self {
            Caller::Customer(own) => *own == customer,
            Caller::Operator { .. } => true,
        }
    }

    /// `Ok` for an operator; [`Forbidden`] for anyone else.
    pub fn require_operator(&self) -> Result<(), Forbidden> {
        match self {
            Caller::Operator { .. } => Ok(()),
            Caller::Customer(_) => Err(Forbidden::new("this operation is for operators only")),
        }
    }
}

impl fmt::Display for Caller {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Caller::Customer(customer) => write!(formatter, "customer {customer}"),
            Caller::Operator { subject } => write!(formatter, "operator {subject}"),
        }
    }
}

/// The request's [`Caller`], put there by [`authenticate`]. A route outside the authenticating
/// layer that asks for one is refused with 401, never served anonymously.
impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Unauthenticated;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Caller>() {
            Some(caller) => Ok(caller.clone()),
            None => Err(Unauthenticated::new(Reason::Missing)),
        }
    }
}

/// A valid caller without the right to do what they asked: 403 problem+json.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Forbidden(String);

impl Forbidden {
    /// Forbidden, for people: what the caller may not do.
    pub fn new(detail: impl Into<String>) -> Forbidden {
        Forbidden(detail.into())
    }

    /// The problem+json body.
    pub fn problem(&self) -> Problem {
        Problem::new(StatusCode::FORBIDDEN, "Forbidden").with_detail(self.0.clone())
    }
}

impl IntoResponse for Forbidden {
    fn into_response(self) -> Response {
        self.problem().into_response()
    }
}

/// Why a request was not authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// No `Authorization` header.
    Missing,
    /// An `Authorization` header that is not `Bearer <token>`.
    NotBearer,
    /// Not a JWT, or claims of the wrong shape.
    Malformed,
    /// The signature does not verify, or the algorithm is not the configured one.
    BadSignature,
    /// `exp` has passed.
    Expired,
    /// `nbf` has not come yet.
    NotYetValid,
    /// `iss` is not the configured issuer.
    WrongIssuer,
    /// `aud` does not name the configured audience.
    WrongAudience,
    /// A customer token whose `sub` is not a UUID.
    BadSubject,
}

impl Reason {
    /// A short stable name (a metrics label and a log field).
    pub fn name(self) -> &'static str {
        match self {
            Reason::Missing => "missing",
            Reason::NotBearer => "not_bearer",
            Reason::Malformed => "malformed",
            Reason::BadSignature => "bad_signature",
            Reason::Expired => "expired",
            Reason::NotYetValid => "not_yet_valid",
            Reason::WrongIssuer => "wrong_issuer",
            Reason::WrongAudience => "wrong_audience",
            Reason::BadSubject => "bad_subject",
        }
    }

    fn description(self) -> &'static str {
        match self {
            Reason::Missing => "an Authorization: Bearer <token> header is required",
            Reason::NotBearer => "the Authorization header must be `Bearer <token>`",
            Reason::Malformed => "the token is not a well-formed JWT with `sub` and `exp`",
            Reason::BadSignature => "the token's signature does not verify",
            Reason::Expired => "the token has expired",
            Reason::NotYetValid => "the token is not valid yet",
            Reason::WrongIssuer => "the token was issued by another issuer",
            Reason::WrongAudience => "the token is meant for another audience",
            Reason::BadSubject => "a customer token's `sub` must be the customer's UUID",
        }
    }
}

/// A request without a valid token: 401 problem+json with `WWW-Authenticate: Bearer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unauthenticated: {}", .reason.description())]
pub struct Unauthenticated {
    /// Why.
    pub reason: Reason,
}

impl Unauthenticated {
    fn new(reason: Reason) -> Unauthenticated {
        Unauthenticated { reason }
    }
}

impl IntoResponse for Unauthenticated {
    fn into_response(self) -> Response {
        let mut response = Problem::new(StatusCode::UNAUTHORIZED, "Unauthorized")
            .with_detail(self.reason.description())
            .into_response();
        // RFC 6750 §3: no error code when the request carried no credentials at all.
        let challenge = match self.reason {
            Reason::Missing => r#"Bearer realm="saga-rs""#.to_owned(),
            other => format!(
                r#"Bearer realm="saga-rs", error="invalid_token", error_description="{}""#,
                other.description().replace('"', "'")
            ),
        };
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    scope: String,
}

/// Verifies bearer tokens. Cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    key: Arc<DecodingKey>,
    validation: Arc<Validation>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key: a secret must not reach a log through `{:?}`.
        formatter
            .debug_struct("Authenticator")
            .field("algorithms", &self.validation.algorithms)
            .field("issuer", &self.validation.iss)
            .field("audience", &self.validation.aud)
            .finish_non_exhaustive()
    }
}

/// Why the authentication settings cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(String);

impl Authenticator {
    /// Verifies HS256 tokens signed with `secret` (at least [`MIN_SECRET_BYTES`]).
    pub fn hs256(secret: &[u8]) -> Result<Authenticator, KeyError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(KeyError(format!(
                "the secret must be at least {MIN_SECRET_BYTES} bytes, got {}",
                secret.len()
            )));
        }
        let key = DecodingKey::from_secret(secret).map_err(|error| KeyError(error.to_string()))?;
        Ok(Authenticator::with_key(key, Algorithm::HS256))
    }

    /// Verifies tokens signed by the private half of the PEM public key `pem`, with
    /// `algorithm` (RS256/384/512, PS256/384/512, ES256/384 or EdDSA).
    pub fn public_key(pem: &[u8], algorithm: Algorithm) -> Result<Authenticator, KeyError> {
        let key = match algorithm {
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => DecodingKey::from_rsa_pem(pem),
            Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(pem),
            Algorithm::EdDSA => DecodingKey::from_ed_pem(pem),
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                return Err(KeyError(format!(
                    "{algorithm:?} is a shared-secret algorithm; use AUTH_JWT_SECRET"
                )));
            }
            other => {
                return Err(KeyError(format!("{other:?} is not supported")));
            }
        }
        .map_err(|error| KeyError(format!("not a {algorithm:?} public key in PEM: {error}")))?;
        Ok(Authenticator::with_key(key, algorithm))
    }

    fn with_key(key: DecodingKey, algorithm: Algorithm) -> Authenticator {
        let mut validation = Validation::new(algorithm);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.validate_nbf = true;
        // Without a configured audience, a token naming one is still accepted.
        validation.validate_aud = false;
        validation.leeway = 30;
        Authenticator {
            key: Arc::new(key),
            validation: Arc::new(validation),
        }
    }

    /// Also require `iss` to be `issuer`.
    pub fn with_issuer(mut self, issuer: &str) -> Authenticator {
        let validation = Arc::make_mut(&mut self.validation);
        validation.set_issuer(&[issuer]);
        // Without this a token that has no `iss` at all would pass.
        validation.required_spec_claims.insert("iss".to_owned());
        self
    }

    /// Also require `aud` to name `audience`.
    pub fn with_audience(mut self, audience: &str) -> Authenticator {
        let validation = Arc::make_mut(&mut self.validation);
        validation.set_audience(&[audience]);
        validation.validate_aud = true;
        validation.required_spec_claims.insert("aud".to_owned());
        self
    }

    /// The caller a token proves, or why it proves nothing.
    pub fn verify(&self, token: &str) -> Result<Caller, Unauthenticated> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|error| Unauthenticated::new(reason_of(error.kind())))?;
        let claims = data.claims;
        if claims.scope.split(' ').any(|scope| scope == OPERATOR_SCOPE) {
            return Ok(Caller::Operator {
                subject: claims.sub,
            });
        }
        match Uuid::parse_str(&claims.sub) {
            Ok(customer) => Ok(Caller::Customer(customer)),
            Err(_) => Err(Unauthenticated::new(Reason::BadSubject)),
        }
    }

    /// The caller the request's `Authorization` header proves.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, Unauthenticated> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(Unauthenticated::new(Reason::Missing));
        };
        let Some(token) = value.to_str().ok().and_then(bearer_token) else {
            return Err(Unauthenticated::new(Reason::NotBearer));
        };
        self.verify(token)
    }
}

/// The token of `Bearer <token>` (the scheme is case-insensitive, RFC 7235).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    match scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() {
        true => Some(token),
        false => None,
    }
}

fn reason_of(kind: &ErrorKind) -> Reason {
    match kind {
        ErrorKind::ExpiredSignature => Reason::Expired,
        ErrorKind::ImmatureSignature => Reason::NotYetValid,
        ErrorKind::InvalidIssuer => Reason::WrongIssuer,
        ErrorKind::InvalidAudience => Reason::WrongAudience,
        ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm => Reason::BadSignature,
        _ => Reason::Malformed,
    }
}

/// The middleware that admits only authenticated requests, putting their [`Caller`] into the
/// request's extensions. Install with
/// `axum::middleware::from_fn_with_state(authenticator, authenticate)`.
pub async fn authenticate(
    State(authenticator): State<Authenticator>,
    mut request: Request,
    next: Next,
) -> Response {
    match authenticator.authenticate(request.headers()) {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(rejection) => {
            // The token itself is never logged: it is a credential.
            tracing::warn!(
                reason = rejection.reason.name(),
                path = request.uri().path(),
                "request not authenticated"
            );
            rejection.into_response()
        }
    }
}

/// The variables of [`AuthConfig`], as a clap description: every service flattens them into its
/// own (`#[command(flatten)] auth: AuthVariables`) and turns them into an [`AuthConfig`] with
/// [`AuthConfig::from_variables`].
// No `Debug`: it would print the secret.
#[derive(clap::Parser, Clone)]
pub struct AuthVariables {
    /// The HS256 secret tokens are signed with, at least 32 bytes: for local runs, tests and
    /// compose (whose value is a published development secret). Set this or
    /// AUTH_JWT_PUBLIC_KEY_FILE, not both: a service with neither refuses to start.
    #[arg(long, env = SECRET, hide_env_values = true)]
    pub secret: Option<String>,
    /// A PEM file with the public key of the identity provider that signs the tokens: for
    /// production. Set this or AUTH_JWT_SECRET, not both.
    #[arg(long, env = PUBLIC_KEY_FILE)]
    pub public_key_file: Option<PathBuf>,
    /// The algorithm of the public key's tokens: RS256 unless set, or PS256, ES256, ES384,
    /// EdDSA, …; with AUTH_JWT_SECRET only HS256.
    #[arg(long, env = ALGORITHM, value_parser = algorithm)]
    pub algorithm: Option<Algorithm>,
    /// When set, the `iss` every token must carry; unset, `iss` is not checked.
    #[arg(long, env = "AUTH_JWT_ISSUER")]
    pub issuer: Option<String>,
    /// When set, the `aud` every token must carry; unset, `aud` is not checked.
    #[arg(long, env = "AUTH_JWT_AUDIENCE")]
    pub audience: Option<String>,
}

fn algorithm(text: &str) -> Result<Algorithm, String> {
    text.parse::<Algorithm>()
        .map_err(|_| "not a JWT algorithm (RS256, PS256, ES256, EdDSA, …)".to_owned())
}

/// The authentication settings of a service, from [`ENVIRONMENT`].
#[derive(Clone, Debug)]
pub struct AuthConfig {
    /// The verifier they make.
    pub authenticator: Authenticator,
}

impl AuthConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<AuthConfig, ConfigError> {
        AuthConfig::from_lookup(&environment_lookup)
    }

    /// Reads variables through `lookup`; reads the key file if one is named.
    pub fn from_lookup(lookup: Lookup<'_>) -> Result<AuthConfig, ConfigError> {
        AuthConfig::from_variables(crate::config::read(lookup)?)
    }

    /// The settings `variables` make; reads the key file if one is named.
    ///
    /// # Errors
    /// [`ConfigError`] naming both keys when neither is set, and naming the variable at fault
    /// when both are, when the secret is too short, when the algorithm does not fit the key, or
    /// when the key file cannot be read or holds no usable key.
    pub fn from_variables(variables: AuthVariables) -> Result<AuthConfig, ConfigError> {
        let invalid = |name: &str, value: String, reason: String| ConfigError::Invalid {
            name: name.to_owned(),
            value,
            reason,
        };
        let AuthVariables {
            secret,
            public_key_file,
            algorithm,
            issuer,
            audience,
        } = variables;
        let authenticator = match (secret, public_key_file) {
            (None, None) => {
                return Err(ConfigError::Missing {
                    name: format!("{SECRET} or {PUBLIC_KEY_FILE}"),
                });
            }
            (Some(_), Some(path)) => {
                return Err(invalid(
                    PUBLIC_KEY_FILE,
                    path.display().to_string(),
                    format!("set either {SECRET} or {PUBLIC_KEY_FILE}, not both"),
                ));
            }
            (Some(secret), None) => {
                if let Some(other) = algorithm.filter(|&algorithm| algorithm != Algorithm::HS256) {
                    return Err(invalid(
                        ALGORITHM,
                        format!("{other:?}"),
                        format!("{SECRET} signs with HS256 only"),
                    ));
                }
                Authenticator::hs256(secret.as_bytes())
                    .map_err(|error| invalid(SECRET, "(hidden)".into(), error.to_string()))?
            }
            (None, Some(path)) => {
                let shown = path.display().to_string();
                let pem = std::fs::read(&path)
                    .map_err(|error| invalid(PUBLIC_KEY_FILE, shown.clone(), error.to_string()))?;
                Authenticator::public_key(&pem, algorithm.unwrap_or(Algorithm::RS256))
                    .map_err(|error| invalid(PUBLIC_KEY_FILE, shown, error.to_string()))?
            }
        };
        let authenticator = match issuer {
            Some(issuer) => authenticator.with_issuer(&issuer),
            None => authenticator,
        };
        let authenticator = match audience {
            Some(audience) => authenticator.with_audience(&audience),
            None => authenticator,
        };
        Ok(AuthConfig { authenticator })
    }
}

/// A token for local runs, tests and demos, signed with the shared HS256 secret (what
/// `sagactl token` prints). Production tokens come from an identity provider.
#[derive(Clone, Debug)]
pub struct DevelopmentToken {
    subject: String,
    operator: bool,
    expiry: Expiry,
    issuer: Option<String>,
    audience: Option<String>,
}

#[derive(Clone, Copy, Debug)]
enum Expiry {
    In(Duration),
    Ago(Duration),
}

#[derive(Serialize)]
struct MintedClaims<'a> {
    sub: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    scope: &'a str,
    iat: u64,
    exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
}

impl DevelopmentToken {
    /// A customer's token (`sub` = the customer), valid for an hour.
    pub fn customer(customer: Uuid) -> DevelopmentToken {
        DevelopmentToken::new(customer.to_string(), false)
    }

    /// An operator's token (`scope` = `operator`), valid for an hour.
    pub fn operator(subject: impl Into<String>) -> DevelopmentToken {
        DevelopmentToken::new(subject.into(), true)
    }

    fn new(subject: String, operator: bool) -> DevelopmentToken {
        DevelopmentToken {
            subject,
            operator,
            expiry: Expiry::In(Duration::from_secs(3600)),
            issuer: None,
            audience: None,
        }
    }

    /// Valid for `lifetime` from now.
    pub fn valid_for(mut self, lifetime: Duration) -> DevelopmentToken {
        self.expiry = Expiry::In(lifetime);
        self
    }

    /// Expired `ago` (for tests of expiry; past the verifier's 30 s leeway to be refused).
    pub fn expired_since(mut self, ago: Duration) -> DevelopmentToken {
        self.expiry = Expiry::Ago(ago);
        self
    }

    /// With `iss`.
    pub fn issued_by(mut self, issuer: impl Into<String>) -> DevelopmentToken {
        self.issuer = Some(issuer.into());
        self
    }

    /// With `aud`.
    pub fn for_audience(mut self, audience: impl Into<String>) -> DevelopmentToken {
        self.audience = Some(audience.into());
        self
    }

    /// The signed token.
    pub fn mint(&self, secret: &[u8]) -> Result<String, KeyError> {
        let now = jsonwebtoken::get_current_timestamp();
        let (issued_at, expires_at) = match self.expiry {
            Expiry::In(lifetime) => (now, now.saturating_add(lifetime.as_secs())),
            Expiry::Ago(ago) => {
                let expired_at = now.saturating_sub(ago.as_secs());
                (expired_at.saturating_sub(60), expired_at)
            }
        };
        let claims = MintedClaims {
            sub: &self.subject,
            scope: if self.operator { OPERATOR_SCOPE } else { "" },
            iat: issued_at,
            exp: expires_at,
            iss: self.issuer.as_deref(),
            aud: self.audience.as_deref(),
        };
        let key = EncodingKey::from_secret(secret).map_err(|error| KeyError(error.to_string()))?;
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key)
            .map_err(|error| KeyError(error.to_string()))
    }
}
