//! Configuration readers, through the lookup variants so no test touches the process
//! environment.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::fmt::Debug;
use std::net::SocketAddr;
use std::time::Duration;

use service_kit::config::{ConfigError, optional_parsed_from, required_from, socket_addr_from};

/// What a reader should produce: a value, or an error whose message contains every piece.
enum Expected<T> {
    Value(T),
    ErrorMentioning(&'static [&'static str]),
}

/// Runs `read` against `variables` and compares with `expected`; every error must name `name`.
fn check<T: PartialEq + Debug>(
    case: &str,
    name: &'static str,
    variables: Variables,
    read: impl Fn(&dyn Fn(&str) -> Option<String>) -> Result<T, ConfigError>,
    expected: Expected<T>,
) {
    let variables: HashMap<String, String> = variables
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    let lookup = |variable: &str| variables.get(variable).cloned();
    let actual = read(&lookup);
    let pieces = match expected {
        Expected::Value(expected) => {
            assert_eq!(
                actual.map_err(|error| error.to_string()),
                Ok(expected),
                "{case}"
            );
            return;
        }
        Expected::ErrorMentioning(pieces) => pieces,
    };
    let error = actual.expect_err(case);
    let message = error.to_string();
    assert_eq!(error.variable(), name, "{case}");
    assert!(
        message.contains(name),
        "{case}: {message} does not name {name}"
    );
    for piece in pieces {
        assert!(message.contains(piece), "{case}: {message} lacks {piece:?}");
    }
}

/// The variables set, by name.
type Variables = &'static [(&'static str, &'static str)];

#[test]
fn required_values() {
    let cases: [(&str, Variables, Expected<String>); 4] = [
        (
            "set",
            &[("DATABASE_URL", "postgres://db/orders")],
            Expected::Value("postgres://db/orders".to_owned()),
        ),
        ("unset", &[], Expected::ErrorMentioning(&["is required"])),
        (
            "empty",
            &[("DATABASE_URL", "")],
            Expected::ErrorMentioning(&["is required"]),
        ),
        (
            "only another variable set",
            &[("AMQP_URL", "amqp://broker")],
            Expected::ErrorMentioning(&["environment variable DATABASE_URL is required"]),
        ),
    ];
    for (case, variables, expected) in cases {
        check(
            case,
            "DATABASE_URL",
            variables,
            |lookup| required_from(lookup, "DATABASE_URL"),
            expected,
        );
    }
}

#[test]
fn optional_parsed_values() {
    let cases: [(&str, Variables, Expected<u32>); 5] = [
        ("unset takes the default", &[], Expected::Value(8)),
        (
            "empty takes the default",
            &[("POOL_SIZE", "")],
            Expected::Value(8),
        ),
        ("set", &[("POOL_SIZE", "32")], Expected::Value(32)),
        (
            "not a number",
            &[("POOL_SIZE", "lots")],
            Expected::ErrorMentioning(&["\"lots\"", "invalid digit"]),
        ),
        (
            "negative",
            &[("POOL_SIZE", "-1")],
            Expected::ErrorMentioning(&["\"-1\"", "invalid digit"]),
        ),
    ];
    for (case, variables, expected) in cases {
        check(
            case,
            "POOL_SIZE",
            variables,
            |lookup| optional_parsed_from(lookup, "POOL_SIZE", 8_u32),
            expected,
        );
    }
}

#[test]
fn optional_parsed_works_for_any_from_str() {
    let seconds = |value: &str| {
        let variables = [("SWEEP_INTERVAL_SECONDS", value)];
        let lookup = |variable: &str| {
            variables
                .iter()
                .find(|(name, _)| *name == variable)
                .map(|(_, value)| value.to_string())
        };
        optional_parsed_from(&lookup, "SWEEP_INTERVAL_SECONDS", 5.0_f64)
            .map(Duration::from_secs_f64)
    };
    assert_eq!(seconds("0.5"), Ok(Duration::from_millis(500)));
    let error = seconds("soon").unwrap_err();
    assert!(
        error.to_string().contains("SWEEP_INTERVAL_SECONDS"),
        "{error}"
    );
}

#[test]
fn socket_addresses() {
    let default = "0.0.0.0:8080";
    let cases: [(&str, Variables, &str, Expected<SocketAddr>); 6] = [
        (
            "unset takes the default",
            &[],
            default,
            Expected::Value("0.0.0.0:8080".parse().unwrap()),
        ),
        (
            "set",
            &[("HTTP_ADDR", "127.0.0.1:9000")],
            default,
            Expected::Value("127.0.0.1:9000".parse().unwrap()),
        ),
        (
            "IPv6",
            &[("HTTP_ADDR", "[::1]:9000")],
            default,
            Expected::Value("[::1]:9000".parse().unwrap()),
        ),
        (
            "no port",
            &[("HTTP_ADDR", "127.0.0.1")],
            default,
            Expected::ErrorMentioning(&["\"127.0.0.1\"", "invalid socket address"]),
        ),
        (
            "host name",
            &[("HTTP_ADDR", "localhost:8080")],
            default,
            Expected::ErrorMentioning(&["\"localhost:8080\""]),
        ),
        (
            "bad default",
            &[],
            "eight-zero-eight-zero",
            Expected::ErrorMentioning(&["\"eight-zero-eight-zero\""]),
        ),
    ];
    for (case, variables, default, expected) in cases {
        check(
            case,
            "HTTP_ADDR",
            variables,
            |lookup| socket_addr_from(lookup, "HTTP_ADDR", default),
            expected,
        );
    }
}
