//! `sagactl dlq` without a service: what the arguments parse to, every mistake refused before
//! any request, where each service is found and with which token. The commands against a real
//! service are in `dlq.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::net::TcpListener;

use base64::Engine as _;
use clap::Parser as _;
use contracts::Service;
use sagactl::dlq::{Connection, ServiceName, default_url, operator_token, targets};
use sagactl::{Cli, Command};
use serde_json::Value;
use service_kit::auth::{Authenticator, Caller};

const QUEUE: &str = "inventory-svc.OrderCreated";

/// An environment of `pairs`, empty values counting as unset (as the process's does).
fn environment(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect()
}

/// `sagactl arguments…` parsed as the binary parses them.
fn parse(arguments: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(std::iter::once("sagactl").chain(arguments.iter().copied()))
}

/// Arguments, environment, and what they must give.
type Case<'a, T> = (&'a [&'a str], &'a [(&'a str, &'a str)], T);

/// `--service`, `--queue`, flags and environment, and the services asked with their URLs.
type Resolution<'a> = (
    &'a [ServiceName],
    Option<&'a str>,
    Connection,
    &'a [(&'a str, &'a str)],
    Vec<(Service, &'a str)>,
);

#[test]
fn arguments_parse_as_documented() {
    // (arguments, what they parse to, or a text of clap's refusal)
    let cases: &[(&[&str], Result<&str, &str>)] = &[
        (&["dlq", "list"], Ok("List")),
        (&["dlq", "list", "--service", "inventory-svc"], Ok("List")),
        (&["dlq", "list", "--limit", "1000", "--json"], Ok("List")),
        (
            &["dlq", "list", "--limit", "0"],
            Err("0 is not in 1..=1000"),
        ),
        (
            &["dlq", "list", "--limit", "1001"],
            Err("1001 is not in 1..=1000"),
        ),
        (&["dlq", "list", "--timeout", "0"], Err("--timeout")),
        (
            &["dlq", "list", "--service", "shipping"],
            Err("invalid value 'shipping'"),
        ),
        (&["dlq", "show", QUEUE, "an-id"], Ok("Show")),
        (&["dlq", "show", QUEUE], Err("<ID>")),
        (&["dlq", "redrive", QUEUE, "an-id"], Ok("Redrive")),
        (
            &[
                "dlq",
                "discard",
                "--type",
                "OrderCreated",
                "--id",
                "a",
                "--id",
                "b",
            ],
            Ok("Discard"),
        ),
        (
            &[
                "dlq",
                "discard",
                "--service",
                "order",
                "--service",
                "notify",
                "--all",
            ],
            Ok("Discard"),
        ),
        (&["dlq", "redrive", QUEUE], Err("<ID>")),
        (
            &["dlq", "redrive", QUEUE, "an-id", "--all"],
            Err("cannot be used with"),
        ),
        (
            &["dlq", "redrive", QUEUE, "an-id", "--type", "T"],
            Err("cannot be used with"),
        ),
        (
            &["dlq", "discard", QUEUE, "an-id", "--service", "inventory"],
            Err("cannot be used with"),
        ),
        (
            &["dlq", "discard", "--all", "--reason", "timeout"],
            Err("cannot be used with"),
        ),
        (
            &["dlq", "discard", "--all", "--queue", QUEUE],
            Err("cannot be used with"),
        ),
    ];
    for (arguments, expected) in cases {
        match (parse(arguments), expected) {
            (Ok(cli), Ok(variant)) => {
                let Command::Dlq(command) = &cli.command else {
                    panic!("{arguments:?}: {cli:?}");
                };
                assert!(
                    format!("{command:?}").starts_with(variant),
                    "{arguments:?}: {command:?}"
                );
            }
            (Err(error), Err(text)) => {
                assert!(error.to_string().contains(text), "{arguments:?}: {error}");
            }
            (parsed, expected) => panic!("{arguments:?}: {parsed:?}, expected {expected:?}"),
        }
    }
}

#[test]
fn mistakes_are_refused_before_any_request() {
    // Every service at a port that listens but is never accepted from: a request would show.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let secret = ("AUTH_JWT_SECRET", testkit::auth::SECRET);
    let cases: &[Case<'_, &str>] = &[
        (
            &["dlq", "discard"],
            &[secret],
            "name what to discard: <QUEUE> <ID>",
        ),
        (
            &["dlq", "redrive", "--service", "inventory"],
            &[secret],
            "--all for every one",
        ),
        (
            &["dlq", "redrive", "--reason", " "],
            &[secret],
            "--reason must not be empty",
        ),
        (
            &["dlq", "discard", "--id", ""],
            &[secret],
            "--id must not be empty",
        ),
        (
            &["dlq", "list", "--queue", ""],
            &[secret],
            "--queue must not be empty",
        ),
        (
            &["dlq", "list", "--queue", "shipping.OrderCreated"],
            &[secret],
            "is no service's queue",
        ),
        (
            &["dlq", "list", "--queue", "inventory-svc."],
            &[secret],
            "is no service's queue",
        ),
        (
            &["dlq", "show", "OrderCreated", "an-id"],
            &[secret],
            "`OrderCreated` is no service's queue",
        ),
        (
            &["dlq", "redrive", "inventory-svc", "an-id"],
            &[secret],
            "is no service's queue",
        ),
        (
            &["dlq", "list", "--queue", QUEUE, "--service", "order"],
            &[secret],
            "--queue inventory-svc.OrderCreated is inventory-svc's, but --service does not name inventory-svc",
        ),
        (
            &["dlq", "list"],
            &[],
            "no operator token: pass --token, set SAGACTL_TOKEN, or set AUTH_JWT_SECRET",
        ),
        (
            &["dlq", "list"],
            &[("AUTH_JWT_SECRET", "")],
            "no operator token",
        ),
        (
            &["dlq", "list"],
            &[("AUTH_JWT_SECRET", "thirty-one-bytes-are-not-enough")],
            "cannot mint an operator token: AUTH_JWT_SECRET is 31 bytes",
        ),
        (
            &["dlq", "list", "--token", " "],
            &[secret],
            "--token must not be empty",
        ),
        (
            &[
                "dlq",
                "list",
                "--service",
                "inventory",
                "--inventory-url",
                "localhost:8081",
            ],
            &[secret],
            "--inventory-url (or INVENTORY_SVC_URL): `localhost:8081` is not a base URL",
        ),
        (
            &["dlq", "show", "payment-svc.StockReserved", "an-id"],
            &[secret, ("PAYMENT_SVC_URL", "ftp://payments")],
            "the scheme is ftp, not http",
        ),
    ];
    for &(arguments, pairs, text) in cases {
        let cli = parse(arguments).unwrap_or_else(|error| panic!("{arguments:?}: {error}"));
        let mut pairs = pairs.to_vec();
        for variable in [
            "ORDER_SVC_URL",
            "INVENTORY_SVC_URL",
            "PAYMENT_SVC_URL",
            "NOTIFY_SVC_URL",
        ] {
            if !pairs.iter().any(|(name, _)| *name == variable) {
                pairs.push((variable, &url));
            }
        }
        let environment = environment(&pairs);
        let error = cli
            .run(&|name| environment.get(name).cloned())
            .expect_err(&format!("{arguments:?} was refused"));
        assert!(error.to_string().contains(text), "{arguments:?}: {error}");
        assert!(
            error.output().is_empty(),
            "{arguments:?}: {}",
            error.output()
        );
        assert!(
            listener.accept().is_err(),
            "{arguments:?} made a request before it was refused"
        );
    }
}

#[test]
fn each_service_is_found_at_its_flag_else_its_variable_else_compose_port() {
    let defaults = [
        "http://localhost:8080/",
        "http://localhost:8081/",
        "http://localhost:8082/",
        "http://localhost:8083/",
    ];
    let flags = |inventory: &str| Connection {
        inventory_url: Some(inventory.to_owned()),
        ..Connection::default()
    };
    // (--service, --queue, flags, environment, the services asked and their URLs)
    let cases: Vec<Resolution<'_>> = vec![
        (
            &[],
            None,
            Connection::default(),
            &[],
            Service::ALL.iter().copied().zip(defaults).collect(),
        ),
        (
            &[ServiceName::Inventory],
            None,
            Connection::default(),
            &[
                ("INVENTORY_SVC_URL", "http://inventory:9000"),
                ("ORDER_SVC_URL", "not a URL"),
            ],
            vec![(Service::Inventory, "http://inventory:9000/")],
        ),
        (
            &[ServiceName::Inventory],
            None,
            flags("http://flag:1/base?query#fragment"),
            &[("INVENTORY_SVC_URL", "http://inventory:9000")],
            vec![(Service::Inventory, "http://flag:1/base")],
        ),
        (
            &[ServiceName::Notify, ServiceName::Order, ServiceName::Notify],
            None,
            Connection::default(),
            &[("NOTIFY_SVC_URL", "")],
            vec![
                (Service::Order, defaults[0]),
                (Service::Notify, defaults[3]),
            ],
        ),
        (
            &[],
            Some("payment-svc.StockReserved"),
            Connection::default(),
            &[],
            vec![(Service::Payment, defaults[2])],
        ),
        (
            &[ServiceName::Order, ServiceName::Inventory],
            Some(QUEUE),
            Connection::default(),
            &[],
            vec![(Service::Inventory, defaults[1])],
        ),
    ];
    for (named, queue, connection, pairs, expected) in cases {
        let environment = environment(pairs);
        let found = targets(named, queue, &connection, &|name| {
            environment.get(name).cloned()
        })
        .unwrap_or_else(|error| panic!("{named:?} {queue:?} {pairs:?}: {error}"));
        let found: Vec<(Service, &str)> = found
            .iter()
            .map(|target| (target.service, target.url.as_str()))
            .collect();
        assert_eq!(found, expected, "{named:?} {queue:?} {pairs:?}");
    }
}

#[test]
fn the_default_urls_are_the_ports_compose_publishes() {
    let compose = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../compose.yaml"))
        .expect("compose.yaml");
    for &service in Service::ALL {
        let port = default_url(service).rsplit(':').next().unwrap();
        // The service's section: its indented lines, up to the next service.
        let heading = format!("  {}:", service.name());
        let section = compose
            .lines()
            .skip_while(|line| *line != heading)
            .skip(1)
            .take_while(|line| line.starts_with("   ") || line.trim().is_empty())
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            section.contains(&format!("- \"{port}:{port}\"")),
            "compose.yaml does not publish {service} on {port}:\n{section}"
        );
        assert!(
            section.contains(&format!("HTTP_ADDR: 0.0.0.0:{port}")),
            "{service}"
        );
    }
}

#[test]
fn the_token_is_given_or_an_operators_is_minted_for_five_minutes() {
    let secret = ("AUTH_JWT_SECRET", testkit::auth::SECRET);
    let given = Connection {
        token: Some("from-the-flag".into()),
        ..Connection::default()
    };
    let environment_of = |pairs: &[(&str, &str)]| environment(pairs);
    let both = environment_of(&[secret, ("SAGACTL_TOKEN", "from-the-variable")]);
    let lookup = |name: &str| both.get(name).cloned();
    assert_eq!(operator_token(&given, &lookup).unwrap(), "from-the-flag");
    assert_eq!(
        operator_token(&Connection::default(), &lookup).unwrap(),
        "from-the-variable"
    );
    let minting = environment_of(&[
        secret,
        ("AUTH_JWT_ISSUER", "https://id.example"),
        ("AUTH_JWT_AUDIENCE", "saga"),
    ]);
    let token = operator_token(&Connection::default(), &|name| minting.get(name).cloned()).unwrap();
    let authenticator = Authenticator::hs256(testkit::auth::SECRET.as_bytes())
        .unwrap()
        .with_issuer("https://id.example")
        .with_audience("saga");
    assert_eq!(
        authenticator.verify(&token),
        Ok(Caller::Operator {
            subject: "operator".into()
        })
    );
    let claims = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(claims)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        300,
        "{claims}"
    );
}
