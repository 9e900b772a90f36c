//! Configuration from the environment: [`Variables`] describes every variable the service
//! reads; [`ENVIRONMENT`] and `order-svc --help` are generated from it.

use std::net::SocketAddr;
use std::sync::LazyLock;
use std::time::Duration;

use clap::{CommandFactory, Parser};
use service_kit::auth::{AuthConfig, AuthVariables};
use service_kit::config::{ConfigError, Lookup, pool_size, positive_seconds, seconds};

/// A duration of at least one millisecond, in milliseconds.
fn positive_millis(text: &str) -> Result<Duration, String> {
    match text.parse::<u64>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(millis) => Ok(Duration::from_millis(millis)),
        Err(error) => Err(format!("not a number of milliseconds: {error}")),
    }
}

/// Every environment variable the service reads (checked against `compose.yaml` by a test),
/// generated from [`Variables`], then `RUST_LOG` and `LOG_FORMAT`.
pub static ENVIRONMENT: LazyLock<Vec<&'static str>> =
    LazyLock::new(|| service_kit::config::service_environment(&DESCRIPTION));

/// [`Variables`]' description, built once so that [`ENVIRONMENT`] can borrow its names.
static DESCRIPTION: LazyLock<clap::Command> = LazyLock::new(Variables::command);

/// The REST order API and the orchestrator of the order saga.
#[derive(Parser)]
#[command(name = "order-svc")]
struct Variables {
    /// The service's own PostgreSQL database, e.g.
    /// `postgres://order-svc:secret@order-db:5432/orders`.
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// The size of the database pool, at least 1. Every replica of every service shares the
    /// server's connection limit.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value = "10", value_parser = pool_size)]
    database_max_connections: u32,
    /// The broker, as the service's own user, e.g.
    /// `amqp://order-svc:secret@rabbitmq:5672/%2f`; for a cluster, one URL per node separated
    /// by commas (each connection tries the node that answered last first, then the others).
    #[arg(long, env = "AMQP_URL")]
    amqp_url: String,
    /// The address the HTTP API listens on.
    #[arg(long, env = "HTTP_ADDR", default_value = "0.0.0.0:8080")]
    http_addr: SocketAddr,
    /// How long to retry an unreachable database or broker at start before giving up, in
    /// seconds.
    #[arg(long, env = "STARTUP_TIMEOUT_SECS", default_value = "60", value_parser = seconds)]
    startup_timeout: Duration,
    /// An order still `Pending` or `Reserved` this many seconds (at least 1) after it was placed
    /// is cancelled, with the compensations its progress requires.
    #[arg(long, env = "ORDER_SAGA_TIMEOUT_SECS", default_value = "30", value_parser = positive_seconds)]
    saga_timeout: Duration,
    /// How long a command that needs an answer (reserve, commit, release, refund) waits for it
    /// before it is sent again, in milliseconds (at least 1); each further re-send waits twice
    /// as long, up to a minute.
    #[arg(long, env = "ORDER_SAGA_RESEND_AFTER_MS", default_value = "5000", value_parser = positive_millis)]
    resend_after: Duration,
    /// The broker user of each producing service, as `service=user,…`; a service not named is
    /// expected to publish as the user named after it (`inventory-svc`, …). A message from
    /// anyone else is dead-lettered.
    #[arg(long, env = "AMQP_PRODUCER_USERS")]
    producers: Option<contracts::ProducerUsers>,
    #[command(flatten)]
    auth: AuthVariables,
}

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
    /// `ORDER_SAGA_RESEND_AFTER_MS`, default 5000: how long a command that needs an answer
    /// waits for it before it is sent again (then twice as long each time, up to a minute).
    pub resend_after: Duration,
    /// `AMQP_PRODUCER_USERS`: the broker user of each producing service (default: the
    /// service's name); a message from anyone else is dead-lettered.
    pub producers: contracts::ProducerUsers,
    /// `AUTH_JWT_*`: how callers of the API are authenticated.
    pub auth: AuthConfig,
}

impl Config {
    /// Reads the process environment; `order-svc --help` describes every variable instead.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_variables(service_kit::config::read_process_environment()?)
    }

    /// Reads variables through `lookup`.
    pub fn from_lookup(lookup: Lookup<'_>) -> Result<Config, ConfigError> {
        Config::from_variables(service_kit::config::read(lookup)?)
    }

    fn from_variables(variables: Variables) -> Result<Config, ConfigError> {
        Ok(Config {
            database_url: variables.database_url,
            amqp_url: variables.amqp_url,
            http_addr: variables.http_addr,
            startup_timeout: variables.startup_timeout,
            database_max_connections: variables.database_max_connections,
            saga_timeout: variables.saga_timeout,
            resend_after: variables.resend_after,
            producers: variables.producers.unwrap_or_default(),
            auth: AuthConfig::from_variables(variables.auth)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// What a read shows: (saga timeout, pool size, startup timeout, http address), or the
    /// variable its error names.
    type Read = Result<(u64, u32, u64, &'static str), &'static str>;

    const REQUIRED: [(&str, &str); 3] = [
        ("DATABASE_URL", "postgres://localhost/orders"),
        ("AMQP_URL", "amqp://localhost"),
        (
            "AUTH_JWT_SECRET",
            "a test secret that is at least 32 bytes long",
        ),
    ];

    /// Reads [`REQUIRED`] with `changes` applied (an empty value unsets) and compares.
    fn check(changes: &[(&str, &str)], expected: Read) {
        let mut variables: HashMap<&str, &str> = REQUIRED.into_iter().collect();
        variables.extend(changes.iter().copied());
        let read = Config::from_lookup(&|name: &str| variables.get(name).map(|v| (*v).to_owned()));
        let read = read
            .map(|config| {
                (
                    config.saga_timeout.as_secs(),
                    config.database_max_connections,
                    config.startup_timeout.as_secs(),
                    config.http_addr.to_string(),
                )
            })
            .map_err(|error| error.variable().to_owned());
        let expected = expected
            .map(|(saga, pool, startup, addr)| (saga, pool, startup, addr.to_owned()))
            .map_err(str::to_owned);
        assert_eq!(read, expected, "{changes:?}");
    }

    #[test]
    fn reads_the_environment_with_defaults() {
        let cases: &[(&[(&str, &str)], Read)] = &[
            (&[], Ok((30, 10, 60, "0.0.0.0:8080"))),
            (
                &[("ORDER_SAGA_TIMEOUT_SECS", "")],
                Ok((30, 10, 60, "0.0.0.0:8080")),
            ),
            (
                &[
                    ("ORDER_SAGA_TIMEOUT_SECS", "5"),
                    ("DATABASE_MAX_CONNECTIONS", "2"),
                    ("STARTUP_TIMEOUT_SECS", "1"),
                    ("HTTP_ADDR", "127.0.0.1:9000"),
                ],
                Ok((5, 2, 1, "127.0.0.1:9000")),
            ),
            (
                &[("ORDER_SAGA_TIMEOUT_SECS", "0")],
                Err("ORDER_SAGA_TIMEOUT_SECS"),
            ),
            (
                &[("ORDER_SAGA_TIMEOUT_SECS", "soon")],
                Err("ORDER_SAGA_TIMEOUT_SECS"),
            ),
            (
                &[("DATABASE_MAX_CONNECTIONS", "0")],
                Err("DATABASE_MAX_CONNECTIONS"),
            ),
            (&[("HTTP_ADDR", "nowhere")], Err("HTTP_ADDR")),
            (
                &[("ORDER_SAGA_RESEND_AFTER_MS", "0")],
                Err("ORDER_SAGA_RESEND_AFTER_MS"),
            ),
            (
                &[("ORDER_SAGA_RESEND_AFTER_MS", "soon")],
                Err("ORDER_SAGA_RESEND_AFTER_MS"),
            ),
            (
                &[("AMQP_PRODUCER_USERS", "bank=x")],
                Err("AMQP_PRODUCER_USERS"),
            ),
            (&[("DATABASE_URL", "")], Err("DATABASE_URL")),
            (&[("AMQP_URL", "")], Err("AMQP_URL")),
            (
                &[("AUTH_JWT_SECRET", "")],
                Err("AUTH_JWT_SECRET or AUTH_JWT_PUBLIC_KEY_FILE"),
            ),
        ];
        for (changes, expected) in cases {
            check(changes, *expected);
        }
    }

    #[test]
    fn the_resend_pacing_defaults_to_five_seconds() {
        let resend_after = |value: &str| {
            let mut variables: HashMap<&str, &str> = REQUIRED.into_iter().collect();
            variables.insert("ORDER_SAGA_RESEND_AFTER_MS", value);
            Config::from_lookup(&|name: &str| variables.get(name).map(|v| (*v).to_owned()))
                .unwrap()
                .resend_after
        };
        assert_eq!(resend_after(""), Duration::from_secs(5));
        assert_eq!(resend_after("250"), Duration::from_millis(250));
    }

    #[test]
    fn producer_users_default_to_the_service_names() {
        let with = |users: &str| {
            let mut variables: HashMap<&str, &str> = REQUIRED.into_iter().collect();
            variables.insert("AMQP_PRODUCER_USERS", users);
            Config::from_lookup(&|name: &str| variables.get(name).map(|v| (*v).to_owned()))
                .unwrap()
                .producers
        };
        assert_eq!(with(""), contracts::ProducerUsers::default());
        assert_eq!(
            with("payment-svc=payments-prod").user(contracts::Service::Payment),
            "payments-prod"
        );
    }

    #[test]
    fn the_environment_lists_every_variable_once() {
        let mut unique = ENVIRONMENT.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ENVIRONMENT.len(), "{:?}", *ENVIRONMENT);
        let listed = |variable: &&str| ENVIRONMENT.contains(variable);
        assert!(service_kit::auth::ENVIRONMENT.iter().all(listed));
        assert!(
            ["ORDER_SAGA_TIMEOUT_SECS", "AMQP_PRODUCER_USERS", "RUST_LOG"]
                .iter()
                .all(listed)
        );
    }
}
