//! `sagactl dlq` against the real inventory-svc, running in the test with dead letters put in
//! its `inventory-svc.OrderCreated` dead-letter queue as its consumer would have: `list` shows
//! them with their reason, `show` prints one with its payload, `redrive` moves one back (it is
//! handled, or, poison, comes back), `discard` empties the queue; a service that fails is named
//! while the others still answer. What the arguments parse to, and the mistakes refused before
//! any request, are in `dlq_arguments.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::net::TcpListener;
use std::time::Duration;

use clap::Parser as _;
use contracts::{
    AnyMessage, CustomerId, Envelope, MessageType, OrderCreated, OrderId, OrderLine, ProductId,
    Quantity, Service,
};
use sagactl::Cli;
use serde_json::{Value, json};
use testkit::bus::TestBus;
use testkit::service::{RunningService, ServiceEnv};

const QUEUE: &str = "inventory-svc.OrderCreated";
const PATIENCE: Duration = Duration::from_secs(20);
const GAVE_UP: &str = "gave up after 5 attempts: database: connection reset";
const UNDECODABLE: &str = "undecodable: expected value at line 1 column 1";

/// Runs `sagactl arguments…` in this process with `pairs` as its environment (empty values
/// counting as unset, as the process's do): off the test's runtime, since the command runs one
/// of its own.
async fn sagactl(arguments: &[&str], pairs: &[(&str, &str)]) -> Result<String, sagactl::Error> {
    let cli = Cli::try_parse_from(std::iter::once("sagactl").chain(arguments.iter().copied()))
        .unwrap_or_else(|error| panic!("{arguments:?}: {error}"));
    let environment: HashMap<String, String> = pairs
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
    tokio::task::spawn_blocking(move || cli.run(&|name| environment.get(name).cloned()))
        .await
        .expect("sagactl ran")
}

/// inventory-svc on port 0 with its own database and vhost, verifying testkit's tokens.
async fn start() -> RunningService {
    RunningService::start(Service::Inventory, true, |env: ServiceEnv| {
        let config = inventory_svc::Config {
            database_url: env.database_url,
            amqp_url: env.amqp_url,
            http_addr: env.listener.local_addr().unwrap(),
            startup_timeout: Duration::from_secs(10),
            database_max_connections: 4,
            producers: env.producers,
            auth: env.auth,
        };
        inventory_svc::run_with_listener(config, env.listener, env.shutdown)
    })
    .await
}

/// An order of `quantity` of `product` by a fresh customer, as a new envelope.
fn order(product: &str, quantity: i64) -> Envelope {
    let order = OrderCreated::new(
        OrderId::generate(),
        CustomerId::generate(),
        vec![OrderLine {
            product_id: ProductId::new(product).unwrap(),
            quantity: Quantity::new(quantity).unwrap(),
        }],
    )
    .unwrap();
    Envelope::new(&order, None).unwrap()
}

/// The line of `output` that contains `needle`.
fn line_with<'a>(output: &'a str, needle: &str) -> &'a str {
    output
        .lines()
        .find(|line| line.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in\n{output}"))
}

/// The dead letters `list --json` reports for inventory-svc's queue.
async fn listed(arguments: &[&str], pairs: &[(&str, &str)]) -> Vec<Value> {
    let mut all = vec!["dlq", "list", "--json", "--queue", QUEUE];
    all.extend(arguments);
    let output = sagactl(&all, pairs).await.unwrap();
    let answers: Value = serde_json::from_str(&output).unwrap();
    answers["inventory-svc"]["dead_letters"]
        .as_array()
        .unwrap_or_else(|| panic!("{answers}"))
        .clone()
}

#[tokio::test]
async fn operators_list_show_redrive_and_discard_dead_letters() {
    let service = start().await;
    let mut bus = TestBus::connect(
        &service.vhost,
        &[MessageType::StockReserved, MessageType::StockFailed],
    )
    .await;
    let stock = json!({ "available": 10, "price": 250 }).to_string();
    let response = service
        .request("PUT", "/products/dlq-widget", Some(&stock), &[])
        .await;
    assert!(response.status().is_success(), "PUT the product");

    let waiting = order("dlq-widget", 3);
    let other = order("dlq-widget", 1);
    bus.dead_letter(Service::Inventory, QUEUE, &waiting, GAVE_UP)
        .await;
    bus.dead_letter(Service::Inventory, QUEUE, &other, GAVE_UP)
        .await;
    bus.dead_letter_poison(QUEUE, "poison-1", UNDECODABLE).await;
    let waiting_id = waiting.message_id.to_string();
    let other_id = other.message_id.to_string();
    let secret = [("AUTH_JWT_SECRET", testkit::auth::SECRET)];
    let at = |arguments: &[&str]| -> Vec<String> {
        let mut all: Vec<String> = arguments.iter().map(|&argument| argument.into()).collect();
        all.extend(["--inventory-url".into(), service.base.clone()]);
        all
    };
    let run = |arguments: Vec<String>| async move {
        let arguments: Vec<&str> = arguments.iter().map(String::as_str).collect();
        sagactl(&arguments, &secret).await
    };

    // Listed: the queue's count, then each dead letter with its reason.
    let output = run(at(&["dlq", "list", "--service", "inventory"]))
        .await
        .unwrap();
    let depth = line_with(&output, &format!("inventory-svc  {QUEUE} "));
    assert!(depth.ends_with(" 3"), "{output}");
    assert!(output.starts_with("SERVICE "), "{output}");
    let row = line_with(&output, &waiting_id);
    for column in [
        QUEUE,
        "OrderCreated",
        &waiting.correlation_id.to_string(),
        GAVE_UP,
    ] {
        assert!(row.contains(column), "{column:?} in {row:?}");
    }
    assert!(line_with(&output, &other_id).contains(GAVE_UP), "{output}");
    assert!(
        line_with(&output, "poison-1").contains(UNDECODABLE),
        "{output}"
    );
    // The queue's service is asked, and only it: no --service needed with --queue.
    let only_poison = run(at(&[
        "dlq",
        "list",
        "--queue",
        QUEUE,
        "--reason",
        "UNDECODABLE",
    ]))
    .await
    .unwrap();
    assert!(only_poison.contains("poison-1"), "{only_poison}");
    assert!(!only_poison.contains(&waiting_id), "{only_poison}");
    // --json: each service's answer as it came, keyed by service.
    let output = run(at(&["dlq", "list", "--service", "inventory", "--json"]))
        .await
        .unwrap();
    let answers: Value = serde_json::from_str(&output).unwrap();
    let keys: Vec<&String> = answers.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["inventory-svc"], "{answers}");
    let letters = answers["inventory-svc"]["dead_letters"].as_array().unwrap();
    assert_eq!(letters.len(), 3, "{answers}");
    assert_eq!(letters[0]["id"], json!(waiting_id));
    assert_eq!(letters[0]["reason"], json!(GAVE_UP));
    assert_eq!(answers["inventory-svc"]["truncated"], json!(false));

    // Shown: everything, the payload pretty-printed.
    let output = run(at(&["dlq", "show", QUEUE, &waiting_id])).await.unwrap();
    let payload = output.split_once("payload:\n").unwrap().1;
    let payload: Value = serde_json::from_str(payload).unwrap();
    assert_eq!(
        payload["order_id"],
        json!(waiting.correlation_id.to_string())
    );
    assert!(output.contains(&format!("\n  \"order_id\": \"{}\"", waiting.correlation_id)));
    assert!(line_with(&output, "reason:").ends_with(GAVE_UP), "{output}");
    assert!(line_with(&output, "sender:").ends_with(bus.user_of(Service::Order)));
    assert!(output.contains("headers:\n{"), "{output}");
    let output = run(at(&["dlq", "show", QUEUE, "poison-1", "--json"]))
        .await
        .unwrap();
    let shown: Value = serde_json::from_str(&output).unwrap();
    assert_eq!(shown["payload"], json!("not json"), "{shown}");
    let missing = run(at(&["dlq", "show", QUEUE, "no-such-id"]))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        missing.starts_with("inventory-svc (http://127.0.0.1:")
            && missing.contains("Not found (404): no dead letter no-such-id"),
        "{missing}"
    );

    // A bulk discard that says neither what nor --all is refused; nothing moved.
    let refused = run(at(&["dlq", "discard", "--service", "inventory"]))
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("--all"), "{refused}");
    let inventory_url = ["--inventory-url", service.base.as_str()];
    assert_eq!(listed(&inventory_url, &secret).await.len(), 3);

    // One redriven goes back to its queue and is handled: stock is reserved for it.
    let output = run(at(&["dlq", "redrive", QUEUE, &waiting_id]))
        .await
        .unwrap();
    assert_eq!(
        output,
        format!("inventory-svc: redrove dead letter {waiting_id} of {QUEUE}\n")
    );
    let answer = bus.next(PATIENCE).await;
    assert_eq!(answer.correlation_id, waiting.correlation_id);
    assert!(
        matches!(answer.payload, AnyMessage::StockReserved(_)),
        "{answer:?}"
    );
    let ids: Vec<Value> = listed(&inventory_url, &secret)
        .await
        .into_iter()
        .map(|letter| letter["id"].clone())
        .collect();
    assert_eq!(ids, [json!(other_id), json!("poison-1")]);

    // Poison redriven by id comes back, counted as redriven once.
    let output = run(at(&[
        "dlq",
        "redrive",
        "--service",
        "inventory",
        "--id",
        "poison-1",
    ]))
    .await
    .unwrap();
    assert_eq!(output, "inventory-svc: redrove 1 dead letter\n");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let letters = listed(&inventory_url, &secret).await;
        if letters
            .iter()
            .any(|letter| letter["id"] == "poison-1" && letter["redriven"] == 1)
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the poison did not come back: {letters:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Discarded, all of it is gone.
    let output = run(at(&["dlq", "discard", "--service", "inventory", "--all"]))
        .await
        .unwrap();
    assert_eq!(output, "inventory-svc: discarded 2 dead letters\n");
    let output = run(at(&["dlq", "list", "--service", "inventory"]))
        .await
        .unwrap();
    assert!(line_with(&output, QUEUE).ends_with(" 0"), "{output}");
    assert!(output.ends_with("\nNo dead letters.\n"), "{output}");
}

#[tokio::test]
async fn a_service_that_fails_is_named_and_the_others_still_answer() {
    let service = start().await;
    let closed = closed_port();
    let secret = [("AUTH_JWT_SECRET", testkit::auth::SECRET)];
    let arguments = [
        "dlq",
        "list",
        "--service",
        "inventory",
        "--service",
        "payment",
        "--inventory-url",
        &service.base,
        "--payment-url",
        &closed,
    ];
    let error = sagactl(&arguments, &secret).await.unwrap_err();
    let message = error.to_string();
    assert!(
        message.starts_with(&format!("payment-svc ({closed}): cannot reach it: ")),
        "{message}"
    );
    assert!(!message.contains("inventory-svc"), "{message}");
    // What inventory answered is still printed, before the error.
    assert!(
        line_with(error.output(), &format!("inventory-svc  {QUEUE} ")).ends_with(" 0"),
        "{}",
        error.output()
    );
    assert!(
        !error.output().contains("payment-svc"),
        "{}",
        error.output()
    );

    // A token the service refuses: its problem's title and detail, and a hint.
    let customer =
        testkit::auth::token(&testkit::auth::Identity::Customer(testkit::auth::customer()))
            .unwrap();
    let cases = [
        ("not-a-token", "Unauthorized (401)"),
        (customer.as_str(), "Forbidden (403)"),
    ];
    for (token, expected) in cases {
        let arguments = [
            "dlq",
            "discard",
            "--service",
            "inventory",
            "--all",
            "--inventory-url",
            &service.base,
            "--token",
            token,
        ];
        let error = sagactl(&arguments, &[]).await.unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with(&format!("inventory-svc ({}): {expected}: ", service.base)),
            "{message}"
        );
        assert!(error.output().is_empty(), "{}", error.output());
    }
}

/// The URL of a port nothing listens on.
fn closed_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{address}")
}
