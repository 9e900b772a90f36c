//! The steady stream of orders: a mix that completes, fails on stock, fails on payment (poor
//! customers and customers without an account), and replays idempotency keys. Most orders are
//! placed by their customer with the customer's own token (the body names no customer, or the
//! customer itself); some by an operator naming the customer. Every order carries an
//! `Idempotency-Key`, so a request that fails because a service is down is simply sent again (to
//! another replica when there is one) until it is answered: the client never creates an order
//! twice. Now and then a hostile request goes out too — no token, a forged token, a price, another
//! customer's id — which must be refused with its exact status and create nothing.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use service_kit::auth::DevelopmentToken;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::rng::Rng;
use crate::world::{Kind, MISSING_PRODUCT, PRODUCTS, Placed, Setup};

/// Percentage of orders an operator places for the customer.
const BY_OPERATOR_PERCENT: u64 = 15;
/// Percentage of ticks that also send a hostile request.
const HOSTILE_PERCENT: u64 = 5;

/// What driving produced.
#[derive(Debug, Default)]
pub struct Driven {
    /// Orders the system accepted (each once, however often it was sent).
    pub placed: Vec<Placed>,
    /// Requests replayed with an already-used key that returned the original order.
    pub replays: u64,
    /// Hostile requests refused as they must be.
    pub refused: u64,
    /// Requests sent again after a connection error or a 5xx.
    pub retries: u64,
    /// Answers that broke the API's contract.
    pub unexpected: Vec<String>,
}

/// One `POST /orders` as sent (and sent again, for a replay).
#[derive(Clone, Debug)]
struct Request {
    /// The `Idempotency-Key`, if any.
    key: Option<String>,
    /// The bearer token, if any.
    token: Option<String>,
    body: Value,
    /// What an answer must be: an order (201, or 200 for a replay), or this refusal.
    refusal: Option<u16>,
    /// What the request is, for messages.
    what: &'static str,
}

fn new_key(rng: &mut Rng) -> String {
    uuid::Uuid::from_u64_pair(rng.next_u64(), rng.next_u64()).to_string()
}

fn items(lines: &[(String, i64)]) -> Vec<Value> {
    lines
        .iter()
        .map(|(product, quantity)| json!({"product_id": product, "quantity": quantity}))
        .collect()
}

fn order(rng: &mut Rng, setup: &Setup) -> (Request, Placed) {
    let kind = match rng.below(100) {
        0..=9 => Kind::UnknownProduct,
        10..=16 => Kind::PoorCustomer,
        17..=19 => Kind::Stranger,
        _ => Kind::Normal,
    };
    let customers = match kind {
        Kind::PoorCustomer => &setup.poor,
        Kind::Stranger => &setup.strangers,
        Kind::Normal | Kind::UnknownProduct => &setup.rich,
    };
    let customer = rng.pick(customers).cloned().unwrap_or_default();
    let mut lines: Vec<(String, i64)> = Vec::new();
    for _ in 0..rng.between(1, 2) {
        let Some(product) = rng.pick(&PRODUCTS) else {
            continue;
        };
        if lines.iter().any(|(existing, _)| existing == product.id) {
            continue;
        }
        let quantity = i64::try_from(rng.between(1, 3)).unwrap_or(1);
        lines.push((product.id.to_owned(), quantity));
    }
    if kind == Kind::UnknownProduct {
        lines.push((MISSING_PRODUCT.to_owned(), 1));
    }
    let by_operator = rng.percent(BY_OPERATOR_PERCENT);
    // A customer may name itself or leave the customer out: both mean "for me".
    let (token, body) = match (by_operator, rng.percent(50)) {
        (true, _) => (
            setup.tokens.operator().to_owned(),
            json!({ "customer_id": customer, "items": items(&lines) }),
        ),
        (false, true) => (
            setup
                .tokens
                .customer(&customer)
                .unwrap_or_default()
                .to_owned(),
            json!({ "items": items(&lines) }),
        ),
        (false, false) => (
            setup
                .tokens
                .customer(&customer)
                .unwrap_or_default()
                .to_owned(),
            json!({ "customer_id": customer, "items": items(&lines) }),
        ),
    };
    let request = Request {
        key: Some(new_key(rng)),
        token: Some(token),
        body,
        refusal: None,
        what: "an order",
    };
    let placed = Placed {
        order_id: String::new(),
        kind,
        customer,
        by_operator,
        lines,
    };
    (request, placed)
}

/// A request the API must refuse, with the status it must refuse it with.
fn hostile(rng: &mut Rng, setup: &Setup) -> Request {
    let customer = rng.pick(&setup.rich).cloned().unwrap_or_default();
    let other = rng.pick(&setup.poor).cloned().unwrap_or_default();
    let own_token = setup.tokens.customer(&customer).map(str::to_owned);
    let lines = vec![(PRODUCTS[0].id.to_owned(), 1)];
    let (token, body, refusal, what) = match rng.below(5) {
        0 => (
            None,
            json!({ "customer_id": customer, "items": items(&lines) }),
            401,
            "an order without a token",
        ),
        1 => {
            // Signed with a secret the services do not hold.
            let forged = uuid::Uuid::parse_str(&customer)
                .ok()
                .and_then(|id| {
                    DevelopmentToken::customer(id)
                        .mint(b"chaos: not the system's secret, but long enough")
                        .ok()
                })
                .unwrap_or_default();
            (
                Some(forged),
                json!({ "items": items(&lines) }),
                401,
                "an order with a forged token",
            )
        }
        2 => (
            own_token,
            json!({ "items": [{"product_id": PRODUCTS[0].id, "quantity": 1, "unit_price": 0}] }),
            422,
            "an order with its own price",
        ),
        3 => (
            own_token,
            json!({ "customer_id": other, "items": items(&lines) }),
            403,
            "an order for another customer",
        ),
        _ => (
            Some(setup.tokens.operator().to_owned()),
            json!({ "items": items(&lines) }),
            422,
            "an operator's order naming no customer",
        ),
    };
    Request {
        // A key, so that a refusal the server wrongly turned into an order is not doubled by
        // a retry.
        key: Some(new_key(rng)),
        token,
        body,
        refusal: Some(refusal),
        what,
    }
}

enum Answer {
    Placed { order_id: String, retries: u64 },
    Refused { retries: u64 },
    Unexpected(String),
}

/// Sends the request until some order-svc instance answers it (bounded by `give_up`).
async fn send(
    http: &reqwest::Client,
    urls: &[String],
    request: &Request,
    first: usize,
    give_up: Duration,
) -> Answer {
    let deadline = tokio::time::Instant::now() + give_up;
    let mut retries = 0;
    let mut attempt = first;
    loop {
        let url = &urls[attempt % urls.len()];
        attempt += 1;
        let mut post = http
            .post(format!("{url}/orders"))
            .json(&request.body)
            .timeout(Duration::from_secs(10));
        if let Some(key) = &request.key {
            post = post.header("Idempotency-Key", key);
        }
        if let Some(token) = &request.token {
            post = post.bearer_auth(token);
        }
        if let Ok(response) = post.send().await {
            let status = response.status().as_u16();
            let answer: Value = response.json().await.unwrap_or(Value::Null);
            match (status, request.refusal) {
                (500..=599, _) => {}
                (200 | 201, None) => {
                    return Answer::Placed {
                        order_id: answer["id"].as_str().unwrap_or_default().to_owned(),
                        retries,
                    };
                }
                (status, Some(refusal)) if status == refusal => {
                    return Answer::Refused { retries };
                }
                (other, _) => {
                    let expected = request
                        .refusal
                        .map_or_else(|| "201 or 200".to_owned(), |status| status.to_string());
                    return Answer::Unexpected(format!(
                        "POST /orders, {}: answered {other} (expected {expected}): {answer}",
                        request.what
                    ));
                }
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Answer::Unexpected(format!(
                "POST /orders, {}, was never answered (key {:?})",
                request.what, request.key
            ));
        }
        retries += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Places `orders` orders at `rate` per second; about one request in ten replays an earlier
/// request with its key (and its caller) and must get the same order back.
pub async fn drive(
    order_urls: Vec<String>,
    setup: &Setup,
    orders: u64,
    rate: u64,
    rng: &mut Rng,
) -> Driven {
    let http = reqwest::Client::new();
    let urls = Arc::new(order_urls);
    let in_flight = Arc::new(Semaphore::new(64));
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(1) as f64));
    let mut tasks = JoinSet::new();
    let mut sent: Vec<Request> = Vec::new();
    let mut spawn = |request: Request, placed: Option<Placed>, first: usize| {
        let (http, urls, in_flight) = (http.clone(), Arc::clone(&urls), Arc::clone(&in_flight));
        tasks.spawn(async move {
            // The semaphore is never closed, so a permit always comes.
            let permit = in_flight.acquire_owned().await.ok();
            let answer = send(&http, &urls, &request, first, Duration::from_secs(180)).await;
            drop(permit);
            (request.key, placed, answer)
        });
    };
    for index in 0..orders {
        ticker.tick().await;
        let first = usize::try_from(index).unwrap_or(0);
        if rng.percent(HOSTILE_PERCENT) {
            spawn(hostile(rng, setup), None, first);
        }
        let replay = !sent.is_empty() && rng.percent(10);
        match replay {
            true => {
                let position = usize::try_from(rng.below(sent.len() as u64)).unwrap_or(0);
                spawn(sent[position].clone(), None, first);
            }
            false => {
                let (request, placed) = order(rng, setup);
                sent.push(request.clone());
                spawn(request, Some(placed), first);
            }
        }
    }
    let mut driven = Driven::default();
    let mut ids_by_key = std::collections::HashMap::new();
    let mut replayed_keys = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let Ok((key, placed, answer)) = joined else {
            driven.unexpected.push("an order task panicked".into());
            continue;
        };
        match (answer, placed) {
            (Answer::Unexpected(problem), _) => driven.unexpected.push(problem),
            (Answer::Refused { retries }, _) => {
                driven.retries += retries;
                driven.refused += 1;
            }
            (Answer::Placed { order_id, retries }, Some(mut placed)) => {
                driven.retries += retries;
                ids_by_key.insert(key, order_id.clone());
                placed.order_id = order_id;
                driven.placed.push(placed);
            }
            (Answer::Placed { order_id, retries }, None) => {
                driven.retries += retries;
                driven.replays += 1;
                replayed_keys.push((key, order_id));
            }
        }
    }
    // A replay must name the order its key created, wherever the two requests were answered.
    for (key, order_id) in replayed_keys {
        match ids_by_key.get(&key) {
            Some(original) if *original == order_id => {}
            Some(original) => driven.unexpected.push(format!(
                "key {key:?} created {original} but its replay returned {order_id}"
            )),
            None => driven.unexpected.push(format!(
                "key {key:?} was replayed but its first request failed"
            )),
        }
    }
    driven
}
