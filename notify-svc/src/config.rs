//! Configuration from the environment.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::time::Duration;

use service_kit::config::{
    ConfigError, Lookup, environment_lookup, optional_parsed_from, required_from, socket_addr_from,
};

/// Every environment variable the service reads (checked against `compose.yaml` by a test).
pub const ENVIRONMENT: &[&str] = &[
    "AMQP_URL",
    "HTTP_ADDR",
    "STARTUP_TIMEOUT_SECS",
    "NOTIFY_MAX_NOTIFICATIONS",
    "AMQP_PRODUCER_USERS",
    "AUTH_JWT_SECRET",
    "AUTH_JWT_PUBLIC_KEY_FILE",
    "AUTH_JWT_ALGORITHM",
    "AUTH_JWT_ISSUER",
    "AUTH_JWT_AUDIENCE",
    "RUST_LOG",
    "LOG_FORMAT",
];

/// The default of `NOTIFY_MAX_NOTIFICATIONS`.
pub const DEFAULT_MAX_NOTIFICATIONS: NonZeroUsize = match NonZeroUsize::new(10_000) {
    Some(max) => max,
    None => NonZeroUsize::MIN,
};

/// The service's configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// `AMQP_URL`: the broker.
    pub amqp_url: String,
    /// `HTTP_ADDR`, default `0.0.0.0:8083`.
    pub http_addr: SocketAddr,
    /// `STARTUP_TIMEOUT_SECS`, default 60: how long to retry an unreachable broker at start
    /// before giving up.
    pub startup_timeout: Duration,
    /// `NOTIFY_MAX_NOTIFICATIONS`, default 10000, at least 1: how many notifications are kept
    /// in memory (the oldest are dropped first), and how many message ids are remembered for
    /// deduplication.
    pub max_notifications: NonZeroUsize,
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
            amqp_url: required_from(lookup, "AMQP_URL")?,
            http_addr: socket_addr_from(lookup, "HTTP_ADDR", "0.0.0.0:8083")?,
            startup_timeout: Duration::from_secs(optional_parsed_from(
                lookup,
                "STARTUP_TIMEOUT_SECS",
                60u64,
            )?),
            max_notifications: optional_parsed_from(
                lookup,
                "NOTIFY_MAX_NOTIFICATIONS",
                DEFAULT_MAX_NOTIFICATIONS,
            )?,
            producers: optional_parsed_from(
                lookup,
                "AMQP_PRODUCER_USERS",
                contracts::ProducerUsers::default(),
            )?,
            auth: service_kit::auth::AuthConfig::from_lookup(lookup)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// Reads `variables`; `Ok` shows (http_addr, startup seconds, max notifications), `Err` the
    /// variable the error names.
    fn check(variables: &[(&str, &str)], expected: Result<(&str, u64, usize), &str>) {
        let variables: HashMap<String, String> = variables
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        let read = Config::from_lookup(&|name: &str| variables.get(name).cloned());
        let read = read
            .as_ref()
            .map(|config| {
                (
                    config.http_addr.to_string(),
                    config.startup_timeout.as_secs(),
                    config.max_notifications.get(),
                )
            })
            .map_err(ConfigError::variable);
        let expected = expected.map(|(addr, secs, max)| (addr.to_owned(), secs, max));
        assert_eq!(read, expected, "{variables:?}");
    }

    #[test]
    fn reads_the_environment_with_defaults() {
        let amqp = ("AMQP_URL", "amqp://guest:guest@rabbitmq:5672/%2f");
        check(&[amqp], Ok(("0.0.0.0:8083", 60, 10_000)));
        check(
            &[
                amqp,
                ("HTTP_ADDR", "127.0.0.1:9000"),
                ("STARTUP_TIMEOUT_SECS", "5"),
                ("NOTIFY_MAX_NOTIFICATIONS", "3"),
            ],
            Ok(("127.0.0.1:9000", 5, 3)),
        );
        check(
            &[amqp, ("NOTIFY_MAX_NOTIFICATIONS", "")],
            Ok(("0.0.0.0:8083", 60, 10_000)),
        );
        check(&[], Err("AMQP_URL"));
        check(
            &[amqp, ("NOTIFY_MAX_NOTIFICATIONS", "0")],
            Err("NOTIFY_MAX_NOTIFICATIONS"),
        );
        check(
            &[amqp, ("NOTIFY_MAX_NOTIFICATIONS", "-1")],
            Err("NOTIFY_MAX_NOTIFICATIONS"),
        );
        check(&[amqp, ("HTTP_ADDR", "nowhere")], Err("HTTP_ADDR"));
    }
}
