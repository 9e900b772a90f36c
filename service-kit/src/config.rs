//! Configuration from environment variables; every error names the variable.
//!
//! Each reader comes twice: `required`, `optional_parsed` and `socket_addr` read the process
//! environment, and `*_from` read through a [`Lookup`] so tests can hand in a map instead of
//! mutating the environment (`std::env::set_var` is `unsafe` in edition 2024). The former are
//! thin wrappers over the latter.
//!
//! An empty value counts as unset: orchestrators often render an unset template variable as the
//! empty string, and "empty" is never a useful address, URL or number.

use std::fmt::Display;
use std::net::SocketAddr;
use std::str::FromStr;

/// A source of variables: returns the value of the named variable, or `None` when unset.
///
/// A closure over a `HashMap` does for tests:
/// `&|name: &str| variables.get(name).cloned()`.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// A configuration variable is missing or cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is unset or empty.
    #[error("environment variable {name} is required (it is unset or empty)")]
    Missing {
        /// The variable.
        name: &'static str,
    },
    /// A variable's value (or the default used in its place) does not parse.
    #[error("environment variable {name} has an invalid value {value:?}: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// The offending value, as read.
        value: String,
        /// The parser's reason.
        reason: String,
    },
}

impl ConfigError {
    /// The variable the error is about.
    pub fn variable(&self) -> &'static str {
        match self {
            ConfigError::Missing { name } | ConfigError::Invalid { name, .. } => name,
        }
    }
}

/// Reads the process environment.
///
/// A value that is not valid Unicode is converted lossily, so that the parse error that follows
/// shows it instead of pretending the variable is unset.
pub fn environment_lookup(name: &str) -> Option<String> {
    std::env::var_os(name).map(|value| value.to_string_lossy().into_owned())
}

/// The value of a variable that must be set and non-empty.
///
/// # Errors
/// [`ConfigError::Missing`] when the variable is unset or empty.
pub fn required(name: &'static str) -> Result<String, ConfigError> {
    required_from(&environment_lookup, name)
}

/// [`required`], reading through `lookup`.
///
/// # Errors
/// [`ConfigError::Missing`] when the variable is unset or empty.
pub fn required_from(lookup: Lookup<'_>, name: &'static str) -> Result<String, ConfigError> {
    match non_empty(lookup, name) {
        Some(value) => Ok(value),
        None => Err(ConfigError::Missing { name }),
    }
}

/// The parsed value of a variable, or `default` when it is unset or empty.
///
/// # Errors
/// [`ConfigError::Invalid`] naming the variable, the value and the parser's reason.
pub fn optional_parsed<T>(name: &'static str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    optional_parsed_from(&environment_lookup, name, default)
}

/// [`optional_parsed`], reading through `lookup`.
///
/// # Errors
/// [`ConfigError::Invalid`] naming the variable, the value and the parser's reason.
pub fn optional_parsed_from<T>(
    lookup: Lookup<'_>,
    name: &'static str,
    default: T,
) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    let Some(value) = non_empty(lookup, name) else {
        return Ok(default);
    };
    parse(name, value)
}

/// A socket address such as `HTTP_ADDR=0.0.0.0:8080`, or `default` when unset or empty.
///
/// The default is a string so call sites read like the variable would; if it does not parse,
/// the error names the variable and the default.
///
/// # Errors
/// [`ConfigError::Invalid`] when the value (or the default) is not an `ip:port` address.
pub fn socket_addr(name: &'static str, default: &str) -> Result<SocketAddr, ConfigError> {
    socket_addr_from(&environment_lookup, name, default)
}

/// [`socket_addr`], reading through `lookup`.
///
/// # Errors
/// [`ConfigError::Invalid`] when the value (or the default) is not an `ip:port` address.
pub fn socket_addr_from(
    lookup: Lookup<'_>,
    name: &'static str,
    default: &str,
) -> Result<SocketAddr, ConfigError> {
    let value = match non_empty(lookup, name) {
        Some(value) => value,
        None => default.to_owned(),
    };
    parse(name, value)
}

fn non_empty(lookup: Lookup<'_>, name: &str) -> Option<String> {
    match lookup(name) {
        Some(value) if !value.is_empty() => Some(value),
        Some(_) | None => None,
    }
}

fn parse<T>(name: &'static str, value: String) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    match value.parse::<T>() {
        Ok(parsed) => Ok(parsed),
        Err(error) => Err(ConfigError::Invalid {
            name,
            reason: error.to_string(),
            value,
        }),
    }
}

/// `DATABASE_MAX_CONNECTIONS` through `lookup`: the size of a service's database pool (default
/// 10, at least 1). Every replica of every service shares the server's connection limit.
pub fn database_max_connections_from(lookup: Lookup<'_>) -> Result<u32, ConfigError> {
    let size: u32 = optional_parsed_from(lookup, "DATABASE_MAX_CONNECTIONS", 10)?;
    if size == 0 {
        return Err(ConfigError::Invalid {
            name: "DATABASE_MAX_CONNECTIONS",
            value: "0".into(),
            reason: "must be at least 1".into(),
        });
    }
    Ok(size)
}
