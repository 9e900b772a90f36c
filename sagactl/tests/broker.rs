//! `sagactl broker`: the checked-in definitions cannot drift from what `contracts` and the
//! topology generate; passwords and user names come from where the documentation says; and
//! `provision` really provisions a broker.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use base64::Engine as _;
use contracts::{SUBSCRIPTIONS, Service};
use outbox::provision::password_hash;
use sagactl::broker::{development_password, password_variable};
use serde_json::Value;

const REGENERATE: &str = "cargo run -q -p sagactl -- broker definitions --development > deploy/rabbitmq/definitions.json";

/// Every password variable, each set to `<variable>-secret`.
fn all_passwords() -> Vec<(String, String)> {
    let mut variables: Vec<String> = Service::ALL
        .iter()
        .map(|&service| password_variable(service))
        .collect();
    variables.push("BROKER_ADMIN_PASSWORD".to_owned());
    variables
        .into_iter()
        .map(|variable| {
            let password = format!("{variable}-secret");
            (variable, password)
        })
        .collect()
}

fn borrowed(environment: &[(String, String)]) -> Vec<(&str, &str)> {
    environment
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect()
}

#[test]
fn the_checked_in_definitions_are_the_generated_ones() {
    let checked_in =
        std::fs::read_to_string(common::repository_file("deploy/rabbitmq/definitions.json"))
            .expect("deploy/rabbitmq/definitions.json exists");
    // --development reads no variable: set every one it might read, to prove it.
    let mut environment = all_passwords();
    environment.push((
        "AMQP_PRODUCER_USERS".into(),
        "payment-svc=someone-else".into(),
    ));
    let run = common::sagactl(
        &["broker", "definitions", "--development"],
        &borrowed(&environment),
    );
    assert!(run.succeeded, "{run:?}");
    assert!(
        run.stdout == checked_in,
        "deploy/rabbitmq/definitions.json is stale; regenerate it with\n  {REGENERATE}"
    );
}

#[test]
fn compose_connects_each_service_as_its_own_user() {
    let compose =
        std::fs::read_to_string(common::repository_file("compose.yaml")).expect("compose.yaml");
    for &service in Service::ALL {
        let user = service.name();
        let url = format!(
            "AMQP_URL: amqp://{user}:{}@rabbitmq:5672/%2f",
            development_password(user)
        );
        assert!(compose.contains(&url), "compose.yaml lacks {url}");
    }
    let definitions: Value = serde_json::from_str(
        &std::fs::read_to_string(common::repository_file("deploy/rabbitmq/definitions.json"))
            .unwrap(),
    )
    .unwrap();
    let administrators: Vec<&str> = definitions["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|user| user["tags"] == "administrator")
        .map(|user| user["name"].as_str().unwrap())
        .collect();
    assert_eq!(administrators, ["saga-admin"]);
}

/// Arguments, environment and what they must give.
type Case<'a> = (&'a [&'a str], Vec<(&'a str, &'a str)>, Expected);

/// What `broker definitions` must print.
#[derive(Debug)]
enum Expected {
    /// A document with these users (name, tags, password), all in this vhost.
    Users(&'static str, Vec<(&'static str, &'static str, String)>),
    /// A failure whose message contains this text.
    Refused(&'static str),
}

/// `password` is the one `user`'s hash in `document` was made from.
fn hashes(document: &Value, user: &str, password: &str) -> bool {
    let hash = document["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|candidate| candidate["name"] == user)
        .and_then(|user| user["password_hash"].as_str())
        .unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(hash)
        .unwrap();
    let salt = [bytes[0], bytes[1], bytes[2], bytes[3]];
    password_hash(password, salt) == hash
}

fn check_definitions(arguments: &[&str], environment: &[(&str, &str)], expected: Expected) {
    let run = common::sagactl(arguments, environment);
    let case = format!("sagactl {} with {environment:?}", arguments.join(" "));
    match expected {
        Expected::Refused(text) => {
            assert!(!run.succeeded, "{case} succeeded: {run:?}");
            assert!(
                run.stderr.contains(text),
                "{case}: {:?} lacks {text:?}",
                run.stderr
            );
        }
        Expected::Users(vhost, users) => {
            assert!(run.succeeded, "{case} failed: {run:?}");
            let document: Value = serde_json::from_str(&run.stdout).expect("JSON");
            let listed: Vec<(&str, &str)> = document["users"]
                .as_array()
                .unwrap()
                .iter()
                .map(|user| {
                    (
                        user["name"].as_str().unwrap(),
                        user["tags"].as_str().unwrap(),
                    )
                })
                .collect();
            let wanted: Vec<(&str, &str)> =
                users.iter().map(|(name, tags, _)| (*name, *tags)).collect();
            assert_eq!(listed, wanted, "{case}");
            for (name, _, password) in &users {
                assert!(hashes(&document, name, password), "{case}: {name}'s hash");
            }
            let permitted: BTreeSet<&str> = document["permissions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|permission| permission["user"].as_str().unwrap())
                .collect();
            let named: BTreeSet<&str> = users.iter().map(|(name, _, _)| *name).collect();
            assert_eq!(
                permitted, named,
                "{case}: every user has permissions, no one else"
            );
            for section in [
                "vhosts",
                "permissions",
                "topic_permissions",
                "exchanges",
                "queues",
                "bindings",
            ] {
                for item in document[section].as_array().unwrap() {
                    let item_vhost = item.get("vhost").or(item.get("name")).unwrap();
                    assert_eq!(item_vhost, vhost, "{case}: {section} {item}");
                }
            }
        }
    }
}

#[test]
fn definitions_take_users_and_passwords_from_the_environment() {
    let passwords = all_passwords();
    let password = |variable: &str| {
        passwords
            .iter()
            .find(|(name, _)| name == variable)
            .map(|(_, password)| password.clone())
            .unwrap()
    };
    let services = |payment_user: &'static str| -> Vec<(&'static str, &'static str, String)> {
        vec![
            ("order-svc", "", password("BROKER_PASSWORD_ORDER_SVC")),
            (
                "inventory-svc",
                "",
                password("BROKER_PASSWORD_INVENTORY_SVC"),
            ),
            (payment_user, "", password("BROKER_PASSWORD_PAYMENT_SVC")),
            ("notify-svc", "", password("BROKER_PASSWORD_NOTIFY_SVC")),
        ]
    };
    let with_admin = |name: &'static str, mut users: Vec<(&'static str, &'static str, String)>| {
        users.insert(
            0,
            (name, "administrator", password("BROKER_ADMIN_PASSWORD")),
        );
        users
    };
    let all = borrowed(&passwords);
    let without = |left_out: &str| -> Vec<(&str, &str)> {
        all.iter()
            .copied()
            .filter(|(name, _)| *name != left_out)
            .collect()
    };
    let with = |extra: (&'static str, &'static str)| -> Vec<(&str, &str)> {
        let mut environment = all.clone();
        environment.push(extra);
        environment
    };
    let development =
        |user: &'static str, tags: &'static str| (user, tags, development_password(user));
    let cases: Vec<Case<'_>> = vec![
        (
            &["broker", "definitions"],
            all.clone(),
            Expected::Users("/", with_admin("saga-admin", services("payment-svc"))),
        ),
        (
            &[
                "broker",
                "definitions",
                "--vhost",
                "saga-prod",
                "--administrator",
                "root-of-all",
            ],
            all.clone(),
            Expected::Users(
                "saga-prod",
                with_admin("root-of-all", services("payment-svc")),
            ),
        ),
        (
            &["broker", "definitions", "--no-administrator"],
            without("BROKER_ADMIN_PASSWORD"),
            Expected::Users("/", services("payment-svc")),
        ),
        // Renamed users, as the services are told with the same variable.
        (
            &["broker", "definitions"],
            with(("AMQP_PRODUCER_USERS", "payment-svc=payments-prod")),
            Expected::Users("/", with_admin("saga-admin", services("payments-prod"))),
        ),
        (
            &["broker", "definitions", "--development"],
            vec![],
            Expected::Users(
                "/",
                vec![
                    development("saga-admin", "administrator"),
                    development("order-svc", ""),
                    development("inventory-svc", ""),
                    development("payment-svc", ""),
                    development("notify-svc", ""),
                ],
            ),
        ),
        (
            &["broker", "definitions"],
            vec![],
            Expected::Refused(
                "set BROKER_PASSWORD_ORDER_SVC, BROKER_PASSWORD_INVENTORY_SVC, \
                 BROKER_PASSWORD_PAYMENT_SVC, BROKER_PASSWORD_NOTIFY_SVC, BROKER_ADMIN_PASSWORD:",
            ),
        ),
        (
            &["broker", "definitions"],
            without("BROKER_PASSWORD_NOTIFY_SVC"),
            Expected::Refused("set BROKER_PASSWORD_NOTIFY_SVC:"),
        ),
        (
            &["broker", "definitions"],
            with(("BROKER_PASSWORD_NOTIFY_SVC", "")),
            Expected::Refused("set BROKER_PASSWORD_NOTIFY_SVC:"),
        ),
        (
            &["broker", "definitions"],
            without("BROKER_ADMIN_PASSWORD"),
            Expected::Refused("set BROKER_ADMIN_PASSWORD:"),
        ),
        (
            &["broker", "definitions"],
            with(("AMQP_PRODUCER_USERS", "billing-svc=x")),
            Expected::Refused("AMQP_PRODUCER_USERS: unknown service `billing-svc`"),
        ),
        (
            &["broker", "definitions", "--administrator", "order-svc"],
            all.clone(),
            Expected::Refused("--administrator order-svc: is a service's user"),
        ),
        (
            &["broker", "definitions", "--vhost", ""],
            all.clone(),
            Expected::Refused("--vhost must not be empty"),
        ),
        (
            &[
                "broker",
                "definitions",
                "--no-administrator",
                "--administrator",
                "x",
            ],
            all.clone(),
            Expected::Refused("cannot be used with"),
        ),
    ];
    for (arguments, environment, expected) in cases {
        check_definitions(arguments, &environment, expected);
    }
}

/// `rabbitmqctl -q arguments…`: (succeeded, stdout).
fn rabbitmqctl(arguments: &[&str]) -> (bool, String) {
    rabbitmqctl_all(&[arguments
        .iter()
        .map(|argument| argument.to_string())
        .collect()])
    .remove(0)
}

/// Runs every `rabbitmqctl -q arguments…` at once (each starts an Erlang VM, which takes a
/// second or more), and returns their (succeeded, stdout) in order.
fn rabbitmqctl_all(commands: &[Vec<String>]) -> Vec<(bool, String)> {
    let children: Vec<_> = commands
        .iter()
        .map(|arguments| {
            Command::new("rabbitmqctl")
                .arg("-q")
                .args(arguments)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("run rabbitmqctl (is RabbitMQ installed and running?)")
        })
        .collect();
    children
        .into_iter()
        .map(|child| {
            let output = child.wait_with_output().expect("wait for rabbitmqctl");
            (
                output.status.success(),
                String::from_utf8_lossy(&output.stdout).into_owned(),
            )
        })
        .collect()
}

/// A vhost and users of this test's own, deleted when dropped.
struct Provisioned {
    vhost: String,
    users: Vec<String>,
}

impl Drop for Provisioned {
    fn drop(&mut self) {
        let mut deletions = vec![vec!["delete_vhost".to_owned(), self.vhost.clone()]];
        for user in &self.users {
            deletions.push(vec!["delete_user".to_owned(), user.clone()]);
        }
        rabbitmqctl_all(&deletions);
    }
}

#[test]
fn provision_imports_users_permissions_and_topology_into_the_local_broker() {
    let vhost = format!("sagactl_test_{}", uuid::Uuid::now_v7().simple());
    let user = |service: Service| format!("{vhost}-{service}");
    let administrator = format!("{vhost}-admin");
    let provisioned = Provisioned {
        vhost: vhost.clone(),
        users: Service::ALL
            .iter()
            .map(|&service| user(service))
            .chain([administrator.clone()])
            .collect(),
    };
    // Users of the test's own (so that it touches no one else's), through AMQP_PRODUCER_USERS.
    let renamed: Vec<String> = Service::ALL
        .iter()
        .map(|&service| format!("{service}={}", user(service)))
        .collect();
    let mut environment = all_passwords();
    environment.push(("AMQP_PRODUCER_USERS".into(), renamed.join(",")));
    let arguments = [
        "broker",
        "provision",
        "--vhost",
        &vhost,
        "--administrator",
        &administrator,
    ];
    // Twice: provisioning an existing vhost again is harmless.
    for attempt in 1..=2 {
        let run = common::sagactl(&arguments, &borrowed(&environment));
        assert!(run.succeeded, "attempt {attempt}: {run:?}");
        assert!(
            run.stdout.contains(&format!("Provisioned vhost {vhost}")),
            "{run:?}"
        );
    }

    let (listed, queues) =
        rabbitmqctl(&["list_queues", "-p", &vhost, "--no-table-headers", "name"]);
    assert!(listed);
    let queues: BTreeSet<&str> = queues.lines().map(str::trim).collect();
    for subscription in SUBSCRIPTIONS {
        let queue = subscription.queue();
        assert!(
            queues.contains(queue.as_str()),
            "{queue} missing from {queues:?}"
        );
        let dead_letters = outbox::dead_letter_queue(&queue);
        assert!(
            queues.contains(dead_letters.as_str()),
            "{dead_letters} missing"
        );
    }

    let (listed, permissions) =
        rabbitmqctl(&["list_permissions", "-p", &vhost, "--no-table-headers"]);
    assert!(listed);
    let password_of = |variable: &str| {
        environment
            .iter()
            .find(|(name, _)| name == variable)
            .map(|(_, password)| password.clone())
            .unwrap()
    };
    // (user, configure right, password, whether it authenticates)
    let mut cases: Vec<(String, &str, String, bool)> = Service::ALL
        .iter()
        .map(|&service| {
            (
                user(service),
                "^$",
                password_of(&password_variable(service)),
                true,
            )
        })
        .collect();
    cases.push((
        administrator.clone(),
        ".*",
        password_of("BROKER_ADMIN_PASSWORD"),
        true,
    ));
    cases.push((
        user(Service::Payment),
        "^$",
        "not-the-password".into(),
        false,
    ));
    let authentications: Vec<Vec<String>> = cases
        .iter()
        .map(|(name, _, password, _)| {
            vec!["authenticate_user".into(), name.clone(), password.clone()]
        })
        .collect();
    let authenticated = rabbitmqctl_all(&authentications);
    for ((name, configure, password, authenticates), (authenticated, _)) in
        cases.iter().zip(authenticated)
    {
        let row = permissions
            .lines()
            .find(|line| line.split('\t').next() == Some(name.as_str()))
            .unwrap_or_else(|| panic!("{name} has no permissions on {vhost}: {permissions}"));
        assert_eq!(row.split('\t').nth(1), Some(*configure), "{name}: {row}");
        assert_eq!(authenticated, *authenticates, "{name} with {password}");
    }

    let (listed, topic_permissions) =
        rabbitmqctl(&["list_topic_permissions", "-p", &vhost, "--no-table-headers"]);
    assert!(listed);
    let notify = user(Service::Notify);
    let notify_row = topic_permissions
        .lines()
        .find(|line| line.split('\t').next() == Some(notify.as_str()))
        .unwrap_or_else(|| panic!("{notify} has no topic permissions: {topic_permissions}"));
    assert_eq!(
        notify_row.split('\t').nth(2),
        Some("^$"),
        "notify-svc publishes nothing"
    );
    let users = provisioned.users.clone();
    drop(provisioned);
    let (_, vhosts) = rabbitmqctl(&["list_vhosts", "--no-table-headers", "name"]);
    assert!(
        !vhosts.lines().any(|line| line.trim() == vhost),
        "{vhost} was not deleted"
    );
    let (_, remaining) = rabbitmqctl(&["list_users", "--no-table-headers"]);
    for user in users {
        let left = remaining
            .lines()
            .any(|line| line.split('\t').next() == Some(user.as_str()));
        assert!(!left, "{user} was not deleted");
    }
}

#[test]
fn provision_without_rabbitmqctl_says_so() {
    let passwords = all_passwords();
    let mut environment = borrowed(&passwords);
    environment.push(("PATH", "/nonexistent"));
    let run = common::sagactl(
        &["broker", "provision", "--vhost", "never-created"],
        &environment,
    );
    assert!(!run.succeeded, "{run:?}");
    assert!(run.stderr.contains("cannot run rabbitmqctl"), "{run:?}");
}
