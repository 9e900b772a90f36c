//! Configuration from the environment: [`Variables`] describes every variable the service
//! reads; [`ENVIRONMENT`] and `notify-svc --help` are generated from it.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::LazyLock;
use std::time::Duration;

use clap::{CommandFactory, Parser};
use service_kit::auth::{AuthConfig, AuthVariables};
use service_kit::config::{ConfigError, Lookup, seconds};

/// Every environment variable the service reads (checked against `compose.yaml` by a test),
/// generated from [`Variables`], then `RUST_LOG` and `LOG_FORMAT`.
pub static ENVIRONMENT: LazyLock<Vec<&'static str>> =
    LazyLock::new(|| service_kit::config::service_environment(&DESCRIPTION));

/// [`Variables`]' description, built once so that [`ENVIRONMENT`] can borrow its names.
static DESCRIPTION: LazyLock<clap::Command> = LazyLock::new(Variables::command);

/// The default of `NOTIFY_MAX_NOTIFICATIONS`.
pub const DEFAULT_MAX_NOTIFICATIONS: NonZeroUsize = match NonZeroUsize::new(10_000) {
    Some(max) => max,
    None => NonZeroUsize::MIN,
};

/// Tells customers what became of their orders; keeps the notifications in memory.
#[derive(Parser)]
#[command(name = "notify-svc")]
struct Variables {
    /// The broker, as the service's own user, e.g.
    /// `amqp://notify-svc:secret@rabbitmq:5672/%2f`; for a cluster, one URL per node separated
    /// by commas (each connection tries the node that answered last first, then the others).
    #[arg(long, env = "AMQP_URL")]
    amqp_url: String,
    /// The address the HTTP API listens on.
    #[arg(long, env = "HTTP_ADDR", default_value = "0.0.0.0:8083")]
    http_addr: SocketAddr,
    /// How long to retry an unreachable broker at start before giving up, in seconds.
    #[arg(long, env = "STARTUP_TIMEOUT_SECS", default_value = "60", value_parser = seconds)]
    startup_timeout: Duration,
    /// How many notifications are kept in memory (the oldest are dropped first; a repeat of a
    /// dropped one notifies again), and how many message ids are remembered for deduplication;
    /// at least 1.
    #[arg(long, env = "NOTIFY_MAX_NOTIFICATIONS", default_value_t = DEFAULT_MAX_NOTIFICATIONS)]
    max_notifications: NonZeroUsize,
    /// The broker user of each producing service, as `service=user,…`; a service not named is
    /// expected to publish as the user named after it (`order-svc`, …). A message from anyone
    /// else is dead-lettered.
    #[arg(long, env = "AMQP_PRODUCER_USERS")]
    producers: Option<contracts::ProducerUsers>,
    #[command(flatten)]
    auth: AuthVariables,
}

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
    /// in memory (the oldest are dropped first; they are also what a repeat of the same fact
    /// is recognised by, so a repeat of a dropped one notifies again), and how many message ids
    /// are remembered for deduplication.
    pub max_notifications: NonZeroUsize,
    /// `AMQP_PRODUCER_USERS`: the broker user of each producing service (default: the
    /// service's name); a message from anyone else is dead-lettered.
    pub producers: contracts::ProducerUsers,
    /// `AUTH_JWT_*`: how callers of the API are authenticated.
    pub auth: AuthConfig,
}

impl Config {
    /// Reads the process environment; `notify-svc --help` describes every variable instead.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_variables(service_kit::config::read_process_environment()?)
    }

    /// Reads variables through `lookup`.
    pub fn from_lookup(lookup: Lookup<'_>) -> Result<Config, ConfigError> {
        Config::from_variables(service_kit::config::read(lookup)?)
    }

    fn from_variables(variables: Variables) -> Result<Config, ConfigError> {
        Ok(Config {
            amqp_url: variables.amqp_url,
            http_addr: variables.http_addr,
            startup_timeout: variables.startup_timeout,
            max_notifications: variables.max_notifications,
            producers: variables.producers.unwrap_or_default(),
            auth: AuthConfig::from_variables(variables.auth)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// What a read shows: (http address, startup seconds, max notifications), or the variable
    /// its error names.
    type Read = Result<(&'static str, u64, usize), &'static str>;

    const REQUIRED: [(&str, &str); 2] = [
        ("AMQP_URL", "amqp://guest:guest@rabbitmq:5672/%2f"),
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
                    config.http_addr.to_string(),
                    config.startup_timeout.as_secs(),
                    config.max_notifications.get(),
                )
            })
            .map_err(|error| error.variable().to_owned());
        let expected = expected
            .map(|(addr, secs, max)| (addr.to_owned(), secs, max))
            .map_err(str::to_owned);
        assert_eq!(read, expected, "{changes:?}");
    }

    #[test]
    fn reads_the_environment_with_defaults() {
        let cases: &[(&[(&str, &str)], Read)] = &[
            (&[], Ok(("0.0.0.0:8083", 60, 10_000))),
            (
                &[
                    ("HTTP_ADDR", "127.0.0.1:9000"),
                    ("STARTUP_TIMEOUT_SECS", "5"),
                    ("NOTIFY_MAX_NOTIFICATIONS", "3"),
                ],
                Ok(("127.0.0.1:9000", 5, 3)),
            ),
            (
                &[("NOTIFY_MAX_NOTIFICATIONS", "")],
                Ok(("0.0.0.0:8083", 60, 10_000)),
            ),
            (&[("AMQP_URL", "")], Err("AMQP_URL")),
            (
                &[("NOTIFY_MAX_NOTIFICATIONS", "0")],
                Err("NOTIFY_MAX_NOTIFICATIONS"),
            ),
            (
                &[("NOTIFY_MAX_NOTIFICATIONS", "-1")],
                Err("NOTIFY_MAX_NOTIFICATIONS"),
            ),
            (&[("HTTP_ADDR", "nowhere")], Err("HTTP_ADDR")),
            (&[("AMQP_PRODUCER_USERS", "=x")], Err("AMQP_PRODUCER_USERS")),
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
    fn the_environment_lists_every_variable_once() {
        let mut unique = ENVIRONMENT.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ENVIRONMENT.len(), "{:?}", *ENVIRONMENT);
        let listed = |variable: &&str| ENVIRONMENT.contains(variable);
        assert!(service_kit::auth::ENVIRONMENT.iter().all(listed));
        assert!(
            [
                "NOTIFY_MAX_NOTIFICATIONS",
                "AMQP_PRODUCER_USERS",
                "RUST_LOG"
            ]
            .iter()
            .all(listed)
        );
        assert!(!ENVIRONMENT.contains(&"DATABASE_URL"));
    }
}
