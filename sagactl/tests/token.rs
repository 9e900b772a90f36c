//! `sagactl token`: the tokens it prints are accepted by the services' own verifier, for the
//! caller and the lifetime asked for; every mistake is refused with a message naming it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::str::FromStr;

use base64::Engine as _;
use sagactl::token::Lifetime;
use service_kit::auth::{Authenticator, Caller};
use uuid::Uuid;

const SECRET: &str = "a-test-secret-of-at-least-thirty-two-bytes";
const CUSTOMER: &str = "0199c3e1-0000-7000-8000-0000000000c1";

/// What a case must give.
#[derive(Clone, Debug)]
enum Expected {
    /// A token proving this caller, valid for this many seconds.
    Token(Caller, u64),
    /// A failure whose message contains this text.
    Refused(&'static str),
}

/// Arguments, environment and what they must give.
type Case<'a, T> = (&'a [&'a str], &'a [(&'a str, &'a str)], T);

fn customer() -> Caller {
    Caller::Customer(Uuid::parse_str(CUSTOMER).unwrap())
}

fn operator(subject: &str) -> Caller {
    Caller::Operator {
        subject: subject.to_owned(),
    }
}

/// The claims of a token, unverified.
fn claims(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

fn check(arguments: &[&str], environment: &[(&str, &str)], expected: Expected) {
    let run = common::sagactl(arguments, environment);
    let case = format!("sagactl {} with {environment:?}", arguments.join(" "));
    match expected {
        Expected::Refused(text) => {
            assert!(!run.succeeded, "{case} succeeded: {run:?}");
            assert!(run.stdout.is_empty(), "{case} printed {:?}", run.stdout);
            assert!(
                run.stderr.contains(text),
                "{case}: {:?} lacks {text:?}",
                run.stderr
            );
        }
        Expected::Token(caller, lifetime) => {
            assert!(run.succeeded, "{case} failed: {run:?}");
            let token = run.stdout.strip_suffix('\n').expect("one line");
            let variable = |name: &str| {
                environment
                    .iter()
                    .find(|(candidate, _)| *candidate == name)
                    .map(|(_, value)| *value)
                    .filter(|value| !value.is_empty())
            };
            let mut authenticator = Authenticator::hs256(SECRET.as_bytes()).unwrap();
            if let Some(issuer) = variable("AUTH_JWT_ISSUER") {
                authenticator = authenticator.with_issuer(issuer);
            }
            if let Some(audience) = variable("AUTH_JWT_AUDIENCE") {
                authenticator = authenticator.with_audience(audience);
            }
            assert_eq!(authenticator.verify(token), Ok(caller), "{case}");
            let claims = claims(token);
            let issued = claims["iat"].as_u64().expect("iat");
            let expires = claims["exp"].as_u64().expect("exp");
            assert_eq!(expires - issued, lifetime, "{case}: {claims}");
            assert_eq!(
                claims["iss"].as_str(),
                variable("AUTH_JWT_ISSUER"),
                "{case}"
            );
            assert_eq!(
                claims["aud"].as_str(),
                variable("AUTH_JWT_AUDIENCE"),
                "{case}"
            );
        }
    }
}

#[test]
fn tokens_prove_the_caller_asked_for() {
    let secret = [("AUTH_JWT_SECRET", SECRET)];
    let cases: &[Case<'_, Expected>] = &[
        (
            &["token", "--customer", CUSTOMER],
            &secret,
            Expected::Token(customer(), 3600),
        ),
        (
            &["token", "--operator"],
            &secret,
            Expected::Token(operator("operator"), 3600),
        ),
        (
            &[
                "token",
                "--operator",
                "--subject",
                "alice",
                "--lifetime",
                "30m",
            ],
            &secret,
            Expected::Token(operator("alice"), 1800),
        ),
        (
            &["token", "--customer", CUSTOMER, "--lifetime", "3600s"],
            &secret,
            Expected::Token(customer(), 3600),
        ),
        (
            &["token", "--customer", CUSTOMER, "--lifetime", "90"],
            &secret,
            Expected::Token(customer(), 90),
        ),
        (
            &["token", "--operator", "--lifetime", "7d"],
            &secret,
            Expected::Token(operator("operator"), 604_800),
        ),
        // The services require iss and aud when they are configured: the token carries them.
        (
            &["token", "--customer", CUSTOMER],
            &[
                ("AUTH_JWT_SECRET", SECRET),
                ("AUTH_JWT_ISSUER", "https://id.example"),
                ("AUTH_JWT_AUDIENCE", "saga"),
            ],
            Expected::Token(customer(), 3600),
        ),
        // Empty counts as unset, as in compose.yaml.
        (
            &["token", "--operator"],
            &[("AUTH_JWT_SECRET", SECRET), ("AUTH_JWT_ISSUER", "")],
            Expected::Token(operator("operator"), 3600),
        ),
    ];
    for (arguments, environment, expected) in cases {
        check(arguments, environment, expected.clone());
    }
}

#[test]
fn mistakes_are_refused_naming_them() {
    let secret = [("AUTH_JWT_SECRET", SECRET)];
    let cases: &[Case<'_, &str>] = &[
        (&["token", "--operator"], &[], "AUTH_JWT_SECRET is not set"),
        (
            &["token", "--operator"],
            &[("AUTH_JWT_SECRET", "")],
            "AUTH_JWT_SECRET is not set",
        ),
        (
            &["token", "--operator"],
            &[("AUTH_JWT_SECRET", "thirty-one-bytes-are-not-enough")],
            "shorter than 32 bytes",
        ),
        (&["token"], &secret, "--customer <UUID>|--operator"),
        (
            &["token", "--operator", "--customer", CUSTOMER],
            &secret,
            "cannot be used with",
        ),
        (
            &["token", "--customer", CUSTOMER, "--subject", "alice"],
            &secret,
            "cannot be used with",
        ),
        (
            &["token", "--customer", "not-a-uuid"],
            &secret,
            "--customer",
        ),
        (
            &["token", "--operator", "--subject", " "],
            &secret,
            "--subject must not be empty",
        ),
        (
            &["token", "--operator", "--lifetime", "1w"],
            &secret,
            "unknown unit",
        ),
        (
            &["token", "--operator", "--lifetime", "0m"],
            &secret,
            "at least a second",
        ),
    ];
    for (arguments, environment, text) in cases {
        check(arguments, environment, Expected::Refused(text));
    }
}

#[test]
fn lifetimes_parse() {
    let cases: &[(&str, Result<u64, &str>)] = &[
        ("1h", Ok(3600)),
        ("30m", Ok(1800)),
        ("3600s", Ok(3600)),
        ("45", Ok(45)),
        ("2d", Ok(172_800)),
        (" 5m ", Ok(300)),
        ("0", Err("at least a second")),
        ("0h", Err("at least a second")),
        ("", Err("does not start with a number")),
        ("h", Err("does not start with a number")),
        ("-1h", Err("does not start with a number")),
        ("1.5h", Err("unknown unit")),
        ("1 h", Err("unknown unit")),
        ("1H", Err("unknown unit")),
        ("99999999999999999999", Err("too large")),
        ("18446744073709551615d", Err("too large")),
    ];
    for &(text, expected) in cases {
        let parsed = Lifetime::from_str(text)
            .map(|lifetime| lifetime.duration().as_secs())
            .map_err(|error| error.to_string());
        match (parsed, expected) {
            (Ok(seconds), Ok(expected)) => assert_eq!(seconds, expected, "{text:?}"),
            (Err(error), Err(reason)) => assert!(error.contains(reason), "{text:?}: {error}"),
            (parsed, expected) => panic!("{text:?}: {parsed:?}, expected {expected:?}"),
        }
    }
}
