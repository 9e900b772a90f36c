//! Configuration from the environment: [`Variables`] describes every variable the service
//! reads; [`ENVIRONMENT`] and `payment-svc --help` are generated from it.

use std::net::SocketAddr;
use std::sync::LazyLock;
use std::time::Duration;

use clap::{CommandFactory, Parser};
use contracts::Money;
use service_kit::auth::{AuthConfig, AuthVariables};
use service_kit::config::{ConfigError, Lookup, pool_size, seconds};

/// Every environment variable the service reads (checked against `compose.yaml` by a test),
/// generated from [`Variables`], then `RUST_LOG` and `LOG_FORMAT`.
pub static ENVIRONMENT: LazyLock<Vec<&'static str>> =
    LazyLock::new(|| service_kit::config::service_environment(&DESCRIPTION));

/// [`Variables`]' description, built once so that [`ENVIRONMENT`] can borrow its names.
static DESCRIPTION: LazyLock<clap::Command> = LazyLock::new(Variables::command);

/// The demo balance unless `PAYMENT_DEMO_BALANCE` says otherwise: none. A customer seen for
/// the first time has no account, and their order fails payment until an operator funds one.
pub const DEFAULT_BALANCE: Money = Money::ZERO;

/// Charges customers for reserved orders and refunds them.
#[derive(Parser)]
#[command(name = "payment-svc")]
struct Variables {
    /// The service's own PostgreSQL database, e.g.
    /// `postgres://payment-svc:secret@payment-db:5432/payments`.
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// The size of the database pool, at least 1. Every replica of every service shares the
    /// server's connection limit.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value = "10", value_parser = pool_size)]
    database_max_connections: u32,
    /// The broker, as the service's own user, e.g.
    /// `amqp://payment-svc:secret@rabbitmq:5672/%2f`; for a cluster, one URL per node separated
    /// by commas (each connection tries the node that answered last first, then the others).
    #[arg(long, env = "AMQP_URL")]
    amqp_url: String,
    /// The address the HTTP API listens on.
    #[arg(long, env = "HTTP_ADDR", default_value = "0.0.0.0:8082")]
    http_addr: SocketAddr,
    /// How long to retry an unreachable database or broker at start before giving up, in
    /// seconds.
    #[arg(long, env = "STARTUP_TIMEOUT_SECS", default_value = "60", value_parser = seconds)]
    startup_timeout: Duration,
    /// For demos only: the balance, in minor units (an integer, at least 0), an account opens
    /// with when a customer without one is first charged. 0 (the default) opens no account: only
    /// an operator funds accounts.
    #[arg(long, env = "PAYMENT_DEMO_BALANCE", default_value_t = DEFAULT_BALANCE, value_parser = money)]
    demo_balance: Money,
    /// The broker user of each producing service, as `service=user,…`; a service not named is
    /// expected to publish as the user named after it (`order-svc`, …). A message from anyone
    /// else is dead-lettered.
    #[arg(long, env = "AMQP_PRODUCER_USERS")]
    producers: Option<contracts::ProducerUsers>,
    #[command(flatten)]
    auth: AuthVariables,
}

/// An amount of minor units: an integer, at least 0.
fn money(text: &str) -> Result<Money, String> {
    let minor_units = text.parse::<i64>().map_err(|error| error.to_string())?;
    Money::new(minor_units).map_err(|error| error.to_string())
}

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
    pub auth: AuthConfig,
}

impl Config {
    /// Reads the process environment; `payment-svc --help` describes every variable instead.
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
            default_balance: variables.demo_balance,
            producers: variables.producers.unwrap_or_default(),
            auth: AuthConfig::from_variables(variables.auth)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// What a read shows: (demo balance, pool size, startup timeout, http address), or the
    /// variable its error names and a piece of its message.
    type Read = Result<(i64, u32, u64, &'static str), (&'static str, &'static str)>;

    const REQUIRED: [(&str, &str); 3] = [
        ("DATABASE_URL", "postgres://localhost/payment"),
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
        match (read, expected) {
            (Ok(config), Ok((balance, pool, startup, addr))) => {
                assert_eq!(config.default_balance.minor_units(), balance, "{changes:?}");
                assert_eq!(config.database_max_connections, pool, "{changes:?}");
                assert_eq!(config.startup_timeout.as_secs(), startup, "{changes:?}");
                assert_eq!(config.http_addr.to_string(), addr, "{changes:?}");
            }
            (Err(error), Err((variable, piece))) => {
                assert_eq!(error.variable(), variable, "{changes:?}: {error}");
                assert!(error.to_string().contains(piece), "{changes:?}: {error}");
            }
            (Ok(_), Err(expected)) => panic!("{changes:?}: read, expected {expected:?}"),
            (Err(error), Ok(_)) => panic!("{changes:?}: {error}"),
        }
    }

    #[test]
    fn reads_the_environment_with_defaults() {
        let balance = |value| [("PAYMENT_DEMO_BALANCE", value)];
        let cases: &[(&[(&str, &str)], Read)] = &[
            (&[], Ok((0, 10, 60, "0.0.0.0:8082"))),
            (&balance(""), Ok((0, 10, 60, "0.0.0.0:8082"))),
            (&balance("0"), Ok((0, 10, 60, "0.0.0.0:8082"))),
            (&balance("2500"), Ok((2_500, 10, 60, "0.0.0.0:8082"))),
            (&balance("-1"), Err(("PAYMENT_DEMO_BALANCE", "\"-1\""))),
            (
                &balance("12.50"),
                Err(("PAYMENT_DEMO_BALANCE", "\"12.50\"")),
            ),
            (&balance("lots"), Err(("PAYMENT_DEMO_BALANCE", "\"lots\""))),
            (
                &balance("99999999999999999999"),
                Err(("PAYMENT_DEMO_BALANCE", "\"99999999999999999999\"")),
            ),
            (
                &[
                    ("DATABASE_MAX_CONNECTIONS", "2"),
                    ("STARTUP_TIMEOUT_SECS", "1"),
                    ("HTTP_ADDR", "127.0.0.1:9002"),
                ],
                Ok((0, 2, 1, "127.0.0.1:9002")),
            ),
            (
                &[("DATABASE_MAX_CONNECTIONS", "0")],
                Err(("DATABASE_MAX_CONNECTIONS", "at least 1")),
            ),
            (
                &[("HTTP_ADDR", "nowhere")],
                Err(("HTTP_ADDR", "\"nowhere\"")),
            ),
            (
                &[("DATABASE_URL", "")],
                Err(("DATABASE_URL", "is required")),
            ),
            (&[("AMQP_URL", "")], Err(("AMQP_URL", "is required"))),
            (
                &[("AUTH_JWT_SECRET", "")],
                Err(("AUTH_JWT_SECRET or AUTH_JWT_PUBLIC_KEY_FILE", "is required")),
            ),
        ];
        for (changes, expected) in cases {
            check(changes, *expected);
        }
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
            [
                "PAYMENT_DEMO_BALANCE",
                "DATABASE_MAX_CONNECTIONS",
                "RUST_LOG"
            ]
            .iter()
            .all(listed)
        );
    }
}
