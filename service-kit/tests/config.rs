//! Configuration read from a clap description through a lookup, so no test touches the process
//! environment.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::fmt::Debug;
use std::net::SocketAddr;
use std::sync::LazyLock;
use std::time::Duration;

use clap::{CommandFactory, Parser};
use service_kit::auth::{self, AuthConfig, DevelopmentToken};
use service_kit::config::{
    ConfigError, Lookup, describe, pool_size, positive_seconds, read, seconds, service_environment,
    variables,
};

/// A service's description, with one variable of each kind a service has.
#[derive(Parser, Debug, PartialEq)]
#[command(name = "example-svc", about = "An example service.")]
struct Variables {
    /// The database.
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// Some count.
    #[arg(long, env = "POOL_SIZE", default_value_t = 8)]
    pool_size: u32,
    /// The pool.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value = "10", value_parser = pool_size)]
    database_max_connections: u32,
    /// How long to wait at start.
    #[arg(long, env = "STARTUP_TIMEOUT_SECS", default_value = "60", value_parser = seconds)]
    startup_timeout: Duration,
    /// A deadline.
    #[arg(long, env = "SAGA_TIMEOUT_SECS", default_value = "30", value_parser = positive_seconds)]
    saga_timeout: Duration,
    /// Where to listen.
    #[arg(long, env = "HTTP_ADDR", default_value = "0.0.0.0:8080")]
    http_addr: SocketAddr,
    /// A variable every test process has: it must not leak in from the process environment.
    #[arg(long, env = "PATH")]
    path: Option<String>,
}

impl Variables {
    /// What a lookup holding only `DATABASE_URL` reads.
    fn defaults() -> Variables {
        Variables {
            database_url: "postgres://db/orders".to_owned(),
            pool_size: 8,
            database_max_connections: 10,
            startup_timeout: Duration::from_secs(60),
            saga_timeout: Duration::from_secs(30),
            http_addr: "0.0.0.0:8080".parse().unwrap(),
            path: None,
        }
    }
}

/// A description whose default does not parse.
#[derive(Parser, Debug, PartialEq)]
struct BadDefault {
    /// Where to listen.
    #[arg(long, env = "HTTP_ADDR", default_value = "eight-zero-eight-zero")]
    http_addr: SocketAddr,
}

/// A description with an argument that is no variable: neither read nor listed.
#[derive(Parser, Debug, PartialEq)]
struct WithoutVariable {
    /// A variable.
    #[arg(long, env = "AMQP_URL")]
    amqp_url: Option<String>,
    /// Not a variable.
    #[arg(long)]
    verbose: Option<String>,
}

/// What a read should produce: a value, or an error about `variable` whose message names it and
/// contains every piece of `mentioning`.
enum Expected<T> {
    Value(T),
    Error {
        variable: &'static str,
        mentioning: &'static [&'static str],
    },
}

/// The variables set, by name.
type Set<'a> = &'a [(&'a str, &'a str)];

/// Runs `read` against the variables `set` and compares with `expected`.
fn check<T: PartialEq + Debug>(
    case: &str,
    set: Set<'_>,
    read: impl Fn(Lookup<'_>) -> Result<T, ConfigError>,
    expected: Expected<T>,
) {
    let set: HashMap<String, String> = set
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    let actual = read(&|variable: &str| set.get(variable).cloned());
    let (variable, mentioning) = match expected {
        Expected::Value(expected) => {
            assert_eq!(
                actual.map_err(|error| error.to_string()),
                Ok(expected),
                "{case}"
            );
            return;
        }
        Expected::Error {
            variable,
            mentioning,
        } => (variable, mentioning),
    };
    let error = actual.expect_err(case);
    let message = error.to_string();
    assert_eq!(error.variable(), variable, "{case}: {message}");
    assert!(
        message.contains(variable),
        "{case}: {message} does not name {variable}"
    );
    for piece in mentioning {
        assert!(message.contains(piece), "{case}: {message} lacks {piece:?}");
    }
}

fn error(variable: &'static str, mentioning: &'static [&'static str]) -> Expected<Variables> {
    Expected::Error {
        variable,
        mentioning,
    }
}

fn with(change: impl FnOnce(&mut Variables)) -> Expected<Variables> {
    let mut variables = Variables::defaults();
    change(&mut variables);
    Expected::Value(variables)
}

/// The one required variable, set.
const URL: (&str, &str) = ("DATABASE_URL", "postgres://db/orders");

#[test]
fn a_description_reads_its_variables() {
    let cases: Vec<(&str, Set<'static>, Expected<Variables>)> = vec![
        ("unset take their defaults", &[URL], with(|_| {})),
        (
            "empty values take their defaults",
            &[
                URL,
                ("POOL_SIZE", ""),
                ("STARTUP_TIMEOUT_SECS", ""),
                ("HTTP_ADDR", ""),
            ],
            with(|_| {}),
        ),
        (
            "set",
            &[
                URL,
                ("POOL_SIZE", "32"),
                ("DATABASE_MAX_CONNECTIONS", "3"),
                ("STARTUP_TIMEOUT_SECS", "0"),
                ("SAGA_TIMEOUT_SECS", "1"),
                ("HTTP_ADDR", "127.0.0.1:9000"),
            ],
            with(|variables| {
                variables.pool_size = 32;
                variables.database_max_connections = 3;
                variables.startup_timeout = Duration::ZERO;
                variables.saga_timeout = Duration::from_secs(1);
                variables.http_addr = "127.0.0.1:9000".parse().unwrap();
            }),
        ),
        (
            "a value with '=', spaces and a leading dash is taken verbatim",
            &[("DATABASE_URL", "-postgres://u:p@db/x?options=-c a=b c")],
            with(|variables| {
                variables.database_url = "-postgres://u:p@db/x?options=-c a=b c".to_owned();
            }),
        ),
        (
            "IPv6",
            &[URL, ("HTTP_ADDR", "[::1]:9000")],
            with(|variables| variables.http_addr = "[::1]:9000".parse().unwrap()),
        ),
        (
            "required unset",
            &[],
            error("DATABASE_URL", &["is required"]),
        ),
        (
            "required empty",
            &[("DATABASE_URL", "")],
            error("DATABASE_URL", &["is required"]),
        ),
        (
            "only another variable set",
            &[("POOL_SIZE", "3")],
            error(
                "DATABASE_URL",
                &["environment variable DATABASE_URL is required"],
            ),
        ),
        (
            "not a number",
            &[URL, ("POOL_SIZE", "lots")],
            error("POOL_SIZE", &["\"lots\"", "invalid digit"]),
        ),
        (
            "negative",
            &[URL, ("POOL_SIZE", "-1")],
            error("POOL_SIZE", &["\"-1\"", "not in 0..="]),
        ),
        (
            "an empty pool",
            &[URL, ("DATABASE_MAX_CONNECTIONS", "0")],
            error("DATABASE_MAX_CONNECTIONS", &["\"0\"", "at least 1"]),
        ),
        (
            "seconds that are no number",
            &[URL, ("STARTUP_TIMEOUT_SECS", "soon")],
            error("STARTUP_TIMEOUT_SECS", &["\"soon\"", "invalid digit"]),
        ),
        (
            "a zero deadline",
            &[URL, ("SAGA_TIMEOUT_SECS", "0")],
            error("SAGA_TIMEOUT_SECS", &["\"0\"", "at least 1"]),
        ),
        (
            "no port",
            &[URL, ("HTTP_ADDR", "127.0.0.1")],
            error("HTTP_ADDR", &["\"127.0.0.1\"", "invalid socket address"]),
        ),
        (
            "host name",
            &[URL, ("HTTP_ADDR", "localhost:8080")],
            error("HTTP_ADDR", &["\"localhost:8080\""]),
        ),
    ];
    for (case, set, expected) in cases {
        check(case, set, read::<Variables>, expected);
    }
}

#[test]
fn a_bad_default_names_its_variable_and_value() {
    check(
        "bad default",
        &[],
        read::<BadDefault>,
        Expected::Error {
            variable: "HTTP_ADDR",
            mentioning: &["\"eight-zero-eight-zero\""],
        },
    );
}

#[test]
fn only_variables_are_read() {
    check(
        "an argument without a variable stays unset",
        &[("AMQP_URL", "amqp://broker"), ("VERBOSE", "yes")],
        read::<WithoutVariable>,
        Expected::Value(WithoutVariable {
            amqp_url: Some("amqp://broker".to_owned()),
            verbose: None,
        }),
    );
}

static DESCRIPTION: LazyLock<clap::Command> = LazyLock::new(Variables::command);
static WITHOUT_VARIABLE: LazyLock<clap::Command> = LazyLock::new(WithoutVariable::command);

#[test]
fn the_environment_is_generated_from_the_description() {
    let cases: [(&str, Vec<&str>, &[&str]); 4] = [
        (
            "a description's variables, in order",
            variables(&DESCRIPTION),
            &[
                "DATABASE_URL",
                "POOL_SIZE",
                "DATABASE_MAX_CONNECTIONS",
                "STARTUP_TIMEOUT_SECS",
                "SAGA_TIMEOUT_SECS",
                "HTTP_ADDR",
                "PATH",
            ],
        ),
        (
            "a service also reads the logging variables",
            service_environment(&WITHOUT_VARIABLE),
            &["AMQP_URL", "RUST_LOG", "LOG_FORMAT"],
        ),
        (
            "an argument without a variable is not listed",
            variables(&WITHOUT_VARIABLE),
            &["AMQP_URL"],
        ),
        (
            "authentication",
            auth::ENVIRONMENT.clone(),
            &[
                "AUTH_JWT_SECRET",
                "AUTH_JWT_PUBLIC_KEY_FILE",
                "AUTH_JWT_ALGORITHM",
                "AUTH_JWT_ISSUER",
                "AUTH_JWT_AUDIENCE",
            ],
        ),
    ];
    for (case, actual, expected) in cases {
        assert_eq!(actual, expected, "{case}");
    }
}

#[test]
fn help_describes_every_variable() {
    let text = describe(&Variables::command());
    for piece in [
        "example-svc: An example service.",
        "DATABASE_URL (required)\n    The database",
        "POOL_SIZE (default 8)\n    Some count",
        "HTTP_ADDR (default 0.0.0.0:8080)\n    Where to listen",
        "PATH\n    A variable every test process has",
        "RUST_LOG (default info)\n",
        "LOG_FORMAT (default text)\n",
    ] {
        assert!(text.contains(piece), "{text}\nlacks {piece:?}");
    }
}

const SECRET: &str = "a test secret that is at least 32 bytes long";

/// What an [`AuthConfig`] read shows: whether a token minted with [`SECRET`] (and the issuer,
/// if any) is accepted.
fn accepts(issuer: Option<&str>) -> impl Fn(Lookup<'_>) -> Result<bool, ConfigError> {
    move |lookup| {
        let config = AuthConfig::from_lookup(lookup)?;
        let token = match issuer {
            Some(issuer) => DevelopmentToken::operator("alice").issued_by(issuer),
            None => DevelopmentToken::operator("alice"),
        };
        let token = token.mint(SECRET.as_bytes()).unwrap();
        Ok(config.authenticator.verify(&token).is_ok())
    }
}

/// (case, the variables set, the issuer of the token tried, whether it is accepted).
type AuthCase<'a> = (
    &'a str,
    Vec<(&'a str, &'a str)>,
    Option<&'a str>,
    Expected<bool>,
);

#[test]
fn authentication_needs_exactly_one_usable_key() {
    let missing_file = std::env::temp_dir().join("service-kit-test-no-such-key.pem");
    assert!(!missing_file.exists());
    let missing_file = missing_file.display().to_string();
    let not_a_key = std::env::temp_dir().join(format!(
        "service-kit-test-not-a-key-{}.pem",
        std::process::id()
    ));
    std::fs::write(&not_a_key, "not a PEM file").unwrap();
    let not_a_key_path = not_a_key.display().to_string();
    let secret = ("AUTH_JWT_SECRET", SECRET);
    let cases: Vec<AuthCase<'_>> = vec![
        ("a secret", vec![secret], None, Expected::Value(true)),
        (
            "a secret with HS256 named",
            vec![secret, ("AUTH_JWT_ALGORITHM", "HS256")],
            None,
            Expected::Value(true),
        ),
        (
            "a token of another issuer, when one is configured",
            vec![secret, ("AUTH_JWT_ISSUER", "https://idp.example")],
            Some("https://other.example"),
            Expected::Value(false),
        ),
        (
            "a token of the configured issuer",
            vec![secret, ("AUTH_JWT_ISSUER", "https://idp.example")],
            Some("https://idp.example"),
            Expected::Value(true),
        ),
        (
            "neither key names both",
            vec![("AUTH_JWT_ISSUER", "https://idp.example")],
            None,
            Expected::Error {
                variable: "AUTH_JWT_SECRET or AUTH_JWT_PUBLIC_KEY_FILE",
                mentioning: &["is required"],
            },
        ),
        (
            "empty keys count as unset",
            vec![("AUTH_JWT_SECRET", ""), ("AUTH_JWT_PUBLIC_KEY_FILE", "")],
            None,
            Expected::Error {
                variable: "AUTH_JWT_SECRET or AUTH_JWT_PUBLIC_KEY_FILE",
                mentioning: &["is required"],
            },
        ),
        (
            "a short secret, which is never shown",
            vec![("AUTH_JWT_SECRET", "short-secret")],
            None,
            Expected::Error {
                variable: "AUTH_JWT_SECRET",
                mentioning: &["(hidden)", "32"],
            },
        ),
        (
            "both keys",
            vec![secret, ("AUTH_JWT_PUBLIC_KEY_FILE", &not_a_key_path)],
            None,
            Expected::Error {
                variable: "AUTH_JWT_PUBLIC_KEY_FILE",
                mentioning: &["not both"],
            },
        ),
        (
            "a secret with another algorithm",
            vec![secret, ("AUTH_JWT_ALGORITHM", "RS256")],
            None,
            Expected::Error {
                variable: "AUTH_JWT_ALGORITHM",
                mentioning: &["RS256", "HS256 only"],
            },
        ),
        (
            "no algorithm",
            vec![secret, ("AUTH_JWT_ALGORITHM", "ROT13")],
            None,
            Expected::Error {
                variable: "AUTH_JWT_ALGORITHM",
                mentioning: &["\"ROT13\"", "not a JWT algorithm"],
            },
        ),
        (
            "a key file that does not exist",
            vec![("AUTH_JWT_PUBLIC_KEY_FILE", &missing_file)],
            None,
            Expected::Error {
                variable: "AUTH_JWT_PUBLIC_KEY_FILE",
                mentioning: &["service-kit-test-no-such-key.pem"],
            },
        ),
        (
            "a key file without a key",
            vec![("AUTH_JWT_PUBLIC_KEY_FILE", &not_a_key_path)],
            None,
            Expected::Error {
                variable: "AUTH_JWT_PUBLIC_KEY_FILE",
                mentioning: &["service-kit-test-not-a-key"],
            },
        ),
    ];
    for (case, set, issuer, expected) in cases {
        check(case, &set, accepts(issuer), expected);
    }
    let secret_shown = AuthConfig::from_lookup(&|name: &str| {
        (name == "AUTH_JWT_SECRET").then(|| "short-secret".to_owned())
    })
    .unwrap_err()
    .to_string();
    assert!(!secret_shown.contains("short-secret"), "{secret_shown}");
    std::fs::remove_file(&not_a_key).unwrap();
}
