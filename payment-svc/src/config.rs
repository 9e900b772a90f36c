//! Configuration from the environment.

use std::net::SocketAddr;
use std::time::Duration;

use contracts::Money;
use service_kit::config::{
    ConfigError, Lookup, database_max_connections_from, environment_lookup, optional_parsed_from,
    required_from, socket_addr_from,
};

/// Every environment variable the service reads (checked against `compose.yaml` by a test).
pub const ENVIRONMENT: &[&str] = &[
    "DATABASE_URL",
    "DATABASE_MAX_CONNECTIONS",
    "AMQP_URL",
    "HTTP_ADDR",
    "STARTUP_TIMEOUT_SECS",
    "PAYMENT_DEMO_BALANCE",
    "AMQP_PRODUCER_USERS",
    "AUTH_JWT_SECRET",
    "AUTH_JWT_PUBLIC_KEY_FILE",
    "AUTH_JWT_ALGORITHM",
    "AUTH_JWT_ISSUER",
    "AUTH_JWT_AUDIENCE",
    "RUST_LOG",
    "LOG_FORMAT",
];

/// The demo balance unless `PAYMENT_DEMO_BALANCE` says otherwise: none. A customer seen for
/// the first time has no account, and their order fails payment until an operator funds one.
pub const DEFAULT_BALANCE: i64 = 0;

/// The service's configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// `DATABASE_URL`: the service's own PostgreSQL database.
    pub database_url: String,
    /// `AMQP_URL`: the broker.
    pub amqp_url: String,
    /// `HTTP_ADDR`, default `0.0.0.0:8082`.
    pub http_addr: SocketAddr,
    /// `STARTUP_TIMEOUT_SECS`, default 60: how long to retry an unreachable database or broker
    /// at start before giving up.
    pub startup_timeout: Duration,
    /// `DATABASE_MAX_CONNECTIONS`, default 10: the size of the database pool.
    pub database_max_connections: u32,
    /// `PAYMENT_DEMO_BALANCE`, default [`DEFAULT_BALANCE`] (off): for demos only, the balance
    /// in minor units an account opens with when a customer without one is first charged.
    /// Zero opens no account: only an operator funds accounts.
    pub default_balance: Money,
    /// `AMQP_PRODUCER_USERS`: the broker user of each producing service (default: the
    /// service's name); a message from anyone else is dead-lettered.
    pub producers: contracts::ProducerUsers,
    /// `AUTH_JWT_*`: how callers of the API are authenticated.
    pub auth: service_kit::auth::AuthConfig,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(&environment_lookup)
    }

    /// Reads variables through `lookup`.
    pub fn from_lookup(lookup: Lookup<'_>) -> Result<Config, ConfigError> {
        Ok(Config {
            database_url: required_from(lookup, "DATABASE_URL")?,
            amqp_url: required_from(lookup, "AMQP_URL")?,
            http_addr: socket_addr_from(lookup, "HTTP_ADDR", "0.0.0.0:8082")?,
            startup_timeout: Duration::from_secs(optional_parsed_from(
                lookup,
                "STARTUP_TIMEOUT_SECS",
                60u64,
            )?),
            database_max_connections: database_max_connections_from(lookup)?,
            default_balance: money_from(lookup, "PAYMENT_DEMO_BALANCE", DEFAULT_BALANCE)?,
            producers: optional_parsed_from(
                lookup,
                "AMQP_PRODUCER_USERS",
                contracts::ProducerUsers::default(),
            )?,
            auth: service_kit::auth::AuthConfig::from_lookup(lookup)?,
        })
    }
}

/// An amount of minor units (an integer, at least 0), or `default` when unset or empty.
fn money_from(lookup: Lookup<'_>, name: &'static str, default: i64) -> Result<Money, ConfigError> {
    let minor_units: i64 = optional_parsed_from(lookup, name, default)?;
    Money::new(minor_units).map_err(|error| ConfigError::Invalid {
        name,
        value: minor_units.to_string(),
        reason: error.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(variables: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut all: HashMap<String, String> = [
            ("DATABASE_URL", "postgres://localhost/payment"),
            ("AMQP_URL", "amqp://localhost"),
            ("AUTH_JWT_SECRET", "a test secret that is at least 32 bytes long"),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
        for (name, value) in variables {
            all.insert((*name).to_owned(), (*value).to_owned());
        }
        Config::from_lookup(&|name: &str| all.get(name).cloned())
    }

    #[test]
    fn defaults_apply_when_unset_or_empty() {
        for variables in [&[][..], &[("PAYMENT_DEMO_BALANCE", "")][..]] {
            let config = config(variables).unwrap();
            assert_eq!(config.default_balance.minor_units(), 0);
            assert_eq!(config.http_addr.to_string(), "0.0.0.0:8082");
            assert_eq!(config.startup_timeout, Duration::from_secs(60));
        }
    }

    #[test]
    fn the_default_balance_is_a_non_negative_integer() {
        let cases: &[(&str, Option<i64>)] = &[
            ("0", Some(0)),
            ("2500", Some(2_500)),
            ("-1", None),
            ("12.50", None),
            ("lots", None),
            ("99999999999999999999", None),
        ];
        for &(value, expected) in cases {
            let read = config(&[("PAYMENT_DEMO_BALANCE", value)]);
            match expected {
                Some(minor_units) => {
                    assert_eq!(read.unwrap().default_balance.minor_units(), minor_units)
                }
                None => {
                    let error = read.unwrap_err();
                    assert_eq!(error.variable(), "PAYMENT_DEMO_BALANCE", "{value}");
                    assert!(error.to_string().contains(value), "{error}");
                }
            }
        }
    }

    #[test]
    fn environment_lists_every_variable() {
        assert!(ENVIRONMENT.contains(&"PAYMENT_DEMO_BALANCE"));
        assert!(ENVIRONMENT.contains(&"DATABASE_MAX_CONNECTIONS"));
        assert_eq!(ENVIRONMENT.len(), 8);
    }
}
