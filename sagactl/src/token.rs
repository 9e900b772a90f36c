//! `sagactl token`: a development token, signed with the HS256 secret the services verify
//! (`AUTH_JWT_SECRET`), carrying `iss` and `aud` when `AUTH_JWT_ISSUER` and
//! `AUTH_JWT_AUDIENCE` are set (the services then require them).
//!
//! ```text
//! sagactl token --customer 0199c3e1-0000-7000-8000-0000000000c1 --lifetime 30m
//! sagactl token --operator --subject alice
//! ```
//!
//! Production tokens come from an identity provider; a deployment that verifies them with
//! `AUTH_JWT_PUBLIC_KEY_FILE` has no secret to sign with, and this command cannot mint for it.

use std::str::FromStr;
use std::time::Duration;

use service_kit::auth::{DevelopmentToken, KeyError, MIN_SECRET_BYTES};
use uuid::Uuid;

use crate::Lookup;

/// The variable of the HS256 secret, as every service reads it.
pub const SECRET: &str = "AUTH_JWT_SECRET";
/// The variable of the issuer the services require, if any.
pub const ISSUER: &str = "AUTH_JWT_ISSUER";
/// The variable of the audience the services require, if any.
pub const AUDIENCE: &str = "AUTH_JWT_AUDIENCE";
/// The `sub` of an operator's token when `--subject` is not given.
pub const DEFAULT_OPERATOR: &str = "operator";

/// The arguments of `sagactl token`.
#[derive(clap::Args, Debug)]
#[command(group = clap::ArgGroup::new("caller").required(true))]
pub struct TokenArgs {
    /// A customer's token: `sub` is the customer's id, and the services let it act for that
    /// customer only.
    #[arg(long, group = "caller", value_name = "UUID")]
    pub customer: Option<Uuid>,
    /// An operator's token (`scope` = `operator`): every right on every service.
    #[arg(long, group = "caller")]
    pub operator: bool,
    /// The operator's name (`sub`), which the services log; "operator" unless given.
    #[arg(long, conflicts_with = "customer", value_name = "NAME")]
    pub subject: Option<String>,
    /// How long the token is valid: seconds, minutes, hours or days, as in 3600s, 30m, 1h, 7d
    /// (a bare number is seconds).
    #[arg(long, default_value = "1h", value_name = "DURATION")]
    pub lifetime: Lifetime,
}

/// How long a token is valid: at least a second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifetime(Duration);

impl Lifetime {
    /// `minutes` minutes (at least one).
    pub fn minutes(minutes: u16) -> Lifetime {
        Lifetime(Duration::from_secs(u64::from(minutes.max(1)) * 60))
    }

    /// The duration.
    pub fn duration(self) -> Duration {
        self.0
    }
}

/// A lifetime that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a lifetime: {reason} (write a whole number with s, m, h or d, as in 30m)")]
pub struct InvalidLifetime {
    text: String,
    reason: &'static str,
}

impl FromStr for Lifetime {
    type Err = InvalidLifetime;

    fn from_str(text: &str) -> Result<Lifetime, InvalidLifetime> {
        let invalid = |reason| InvalidLifetime {
            text: text.to_owned(),
            reason,
        };
        let trimmed = text.trim();
        let unit_start = trimmed
            .find(|character: char| !character.is_ascii_digit())
            .unwrap_or(trimmed.len());
        let (digits, unit) = trimmed.split_at(unit_start);
        if digits.is_empty() {
            return Err(invalid("it does not start with a number"));
        }
        let seconds_per_unit: u64 = match unit {
            "" | "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(invalid("unknown unit")),
        };
        let count: u64 = digits
            .parse()
            .map_err(|_| invalid("the number is too large"))?;
        let seconds = count
            .checked_mul(seconds_per_unit)
            .ok_or_else(|| invalid("the number is too large"))?;
        if seconds == 0 {
            return Err(invalid("a token must be valid for at least a second"));
        }
        Ok(Lifetime(Duration::from_secs(seconds)))
    }
}

/// Why no token was minted.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// `AUTH_JWT_SECRET` is unset or empty.
    #[error(
        "{SECRET} is not set: export the HS256 secret the services verify tokens with \
         (scripts/run-local.sh prints its development secret; compose.yaml sets one)"
    )]
    MissingSecret,
    /// The secret is shorter than the services accept.
    #[error(
        "{SECRET} is {length} bytes; the services refuse secrets shorter than \
         {MIN_SECRET_BYTES} bytes, so they would refuse this token too"
    )]
    ShortSecret {
        /// The secret's length in bytes.
        length: usize,
    },
    /// Neither or both of `--customer` and `--operator` (only possible without clap's checks).
    #[error("name the caller: --customer <UUID> or --operator")]
    NoCaller,
    /// `--subject` with `--customer`, whose subject is the customer (only possible without
    /// clap's checks).
    #[error("--subject names an operator; a customer's subject is its --customer id")]
    SubjectForCustomer,
    /// `--subject` is empty.
    #[error("--subject must not be empty")]
    EmptySubject,
    /// Signing failed.
    #[error("cannot sign the token: {0}")]
    Signing(#[from] KeyError),
}

/// Mints the token `arguments` describe; returns it with a trailing newline.
pub fn run(arguments: &TokenArgs, environment: Lookup<'_>) -> Result<String, TokenError> {
    Ok(format!("{}\n", mint(arguments, environment)?))
}

/// Mints the token `arguments` describe (`sagactl dlq` mints its operator's token here too).
pub fn mint(arguments: &TokenArgs, environment: Lookup<'_>) -> Result<String, TokenError> {
    let secret = environment(SECRET).ok_or(TokenError::MissingSecret)?;
    if secret.len() < MIN_SECRET_BYTES {
        return Err(TokenError::ShortSecret {
            length: secret.len(),
        });
    }
    let token = match (arguments.customer, arguments.operator) {
        (Some(_), false) if arguments.subject.is_some() => {
            return Err(TokenError::SubjectForCustomer);
        }
        (Some(customer), false) => DevelopmentToken::customer(customer),
        (None, true) => {
            let subject = arguments.subject.as_deref().unwrap_or(DEFAULT_OPERATOR);
            if subject.trim().is_empty() {
                return Err(TokenError::EmptySubject);
            }
            DevelopmentToken::operator(subject)
        }
        _ => return Err(TokenError::NoCaller),
    };
    let token = token.valid_for(arguments.lifetime.duration());
    let token = match environment(ISSUER) {
        Some(issuer) => token.issued_by(issuer),
        None => token,
    };
    let token = match environment(AUDIENCE) {
        Some(audience) => token.for_audience(audience),
        None => token,
    };
    Ok(token.mint(secret.as_bytes())?)
}
