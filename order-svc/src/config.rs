//! Configuration from the environment.

use std::net::SocketAddr;
use std::time::Duration;

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
    "ORDER_SAGA_TIMEOUT_SECS",
    "AMQP_PRODUCER_USERS",
    "AUTH_JWT_SECRET",
    "AUTH_JWT_PUBLIC_KEY_FILE",
    "AUTH_JWT_ALGORITHM",
    "AUTH_JWT_ISSUER",
    "AUTH_JWT_AUDIENCE",
    "RUST_LOG",
    "LOG_FORMAT",
];

/// The service's configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// `DATABASE_URL`: the service's own PostgreSQL database.
    pub database_url: String,
    /// `AMQP_URL`: the broker.
    pub amqp_url: String,
    /// `HTTP_ADDR`, default `0.0.0.0:8080`.
    pub http_addr: SocketAddr,
    /// `STARTUP_TIMEOUT_SECS`, default 60: how long to retry an unreachable database or broker
    /// at start before giving up.
    pub startup_timeout: Duration,
    /// `DATABASE_MAX_CONNECTIONS`, default 10: the size of the database pool.
    pub database_max_connections: u32,
    /// `ORDER_SAGA_TIMEOUT_SECS`, default 30: an order still `Pending` or `Reserved` this long
    /// after it was placed is cancelled, with the compensations its progress requires.
    pub saga_timeout: Duration,
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
        let saga_timeout_secs: u64 =
            optional_parsed_from(lookup, "ORDER_SAGA_TIMEOUT_SECS", 30u64)?;
        if saga_timeout_secs == 0 {
            return Err(ConfigError::Invalid {
                name: "ORDER_SAGA_TIMEOUT_SECS",
                value: "0".into(),
                reason: "must be at least 1".into(),
            });
        }
        Ok(Config {
            database_url: required_from(lookup, "DATABASE_URL")?,
            amqp_url: required_from(lookup, "AMQP_URL")?,
            http_addr: socket_addr_from(lookup, "HTTP_ADDR", "0.0.0.0:8080")?,
            startup_timeout: Duration::from_secs(optional_parsed_from(
                lookup,
                "STARTUP_TIMEOUT_SECS",
                60u64,
            )?),
            database_max_connections: database_max_connections_from(lookup)?,
            saga_timeout: Duration::from_secs(saga_timeout_secs),
            producers: optional_parsed_from(
                lookup,
                "AMQP_PRODUCER_USERS",
                contracts::ProducerUsers::default(),
            )?,
            auth: service_kit::auth::AuthConfig::from_lookup(lookup)?,
        })
    }
}
