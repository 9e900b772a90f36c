//! The steady stream of orders: a mix that completes, fails on stock, fails on payment, and
//! replays idempotency keys. Every order carries an `Idempotency-Key`, so a request that fails
//! because a service is down is simply sent again (to another replica when there is one) until it
//! is answered: the client never creates an order twice.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::rng::Rng;
use crate::world::{Kind, MISSING_PRODUCT, PRODUCTS, Placed, Setup};

/// What driving produced.
#[derive(Debug, Default)]
pub struct Driven {
    /// Orders the system accepted (each once, however often it was sent).
    pub placed: Vec<Placed>,
    /// Requests replayed with an already-used key that returned the original order.
    pub replays: u64,
    /// Requests sent again after a connection error or a 5xx.
    pub retries: u64,
    /// Answers that broke the API's contract.
    pub unexpected: Vec<String>,
}

struct Request {
    key: String,
    body: Value,
    placed: Placed,
}

fn request(rng: &mut Rng, setup: &Setup) -> Request {
    let roll = rng.below(100);
    let kind = match roll {
        0..=9 => Kind::UnknownProduct,
        10..=19 => Kind::PoorCustomer,
        _ => Kind::Normal,
    };
    let customers = match kind {
        Kind::PoorCustomer => &setup.poor,
        Kind::Normal | Kind::UnknownProduct => &setup.rich,
    };
    let customer = rng.pick(customers).cloned().unwrap_or_default();
    let mut lines: Vec<(String, i64, i64)> = Vec::new();
    for _ in 0..rng.between(1, 2) {
        let Some((product, _)) = rng.pick(&PRODUCTS) else {
            continue;
        };
        if lines.iter().any(|(existing, _, _)| existing == product) {
            continue;
        }
        let quantity = i64::try_from(rng.between(1, 3)).unwrap_or(1);
        let price = i64::try_from(rng.between(50, 900)).unwrap_or(100);
        lines.push(((*product).to_owned(), quantity, price));
    }
    if kind == Kind::UnknownProduct {
        lines.push((MISSING_PRODUCT.to_owned(), 1, 100));
    }
    let items: Vec<Value> = lines
        .iter()
        .map(|(product, quantity, price)| json!({"product_id": product, "quantity": quantity, "unit_price": price}))
        .collect();
    Request {
        key: uuid::Uuid::from_u64_pair(rng.next_u64(), rng.next_u64()).to_string(),
        body: json!({ "customer_id": customer, "items": items }),
        placed: Placed {
            order_id: String::new(),
            kind,
            customer,
            lines,
        },
    }
}

enum Answer {
    Placed { order_id: String, retries: u64 },
    Unexpected(String),
}

/// Sends the request until some order-svc instance answers it (bounded by `give_up`).
async fn send(
    http: &reqwest::Client,
    urls: &[String],
    key: &str,
    body: &Value,
    first: usize,
    give_up: Duration,
) -> Answer {
    let deadline = tokio::time::Instant::now() + give_up;
    let mut retries = 0;
    let mut attempt = first;
    loop {
        let url = &urls[attempt % urls.len()];
        attempt += 1;
        let sent = http
            .post(format!("{url}/orders"))
            .header("Idempotency-Key", key)
            .json(body)
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        if let Ok(response) = sent {
            let status = response.status().as_u16();
            let answer: Value = response.json().await.unwrap_or(Value::Null);
            match status {
                200 | 201 => {
                    return Answer::Placed {
                        order_id: answer["id"].as_str().unwrap_or_default().to_owned(),
                        retries,
                    };
                }
                500..=599 => {}
                other => {
                    return Answer::Unexpected(format!("POST /orders answered {other}: {answer}"));
                }
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Answer::Unexpected(format!("POST /orders with key {key} was never answered"));
        }
        retries += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Places `orders` orders at `rate` per second; about one request in ten replays an earlier
/// request with its key and must get the same order back.
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
    let mut sent: Vec<(String, Value)> = Vec::new();
    for index in 0..orders {
        ticker.tick().await;
        let replay = !sent.is_empty() && rng.percent(10);
        let (key, body, placed) = match replay {
            true => {
                let position = usize::try_from(rng.below(sent.len() as u64)).unwrap_or(0);
                let (key, body) = sent[position].clone();
                (key, body, None)
            }
            false => {
                let request = request(rng, setup);
                sent.push((request.key.clone(), request.body.clone()));
                (request.key, request.body, Some(request.placed))
            }
        };
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            break;
        };
        let (http, urls) = (http.clone(), Arc::clone(&urls));
        let first = usize::try_from(index).unwrap_or(0);
        tasks.spawn(async move {
            let answer = send(&http, &urls, &key, &body, first, Duration::from_secs(180)).await;
            drop(permit);
            (key, placed, answer)
        });
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
            (
                Answer::Placed {
                    order_id, retries, ..
                },
                Some(mut placed),
            ) => {
                driven.retries += retries;
                ids_by_key.insert(key, order_id.clone());
                placed.order_id = order_id;
                driven.placed.push(placed);
            }
            (
                Answer::Placed {
                    order_id, retries, ..
                },
                None,
            ) => {
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
                "key {key} created {original} but its replay returned {order_id}"
            )),
            None => driven.unexpected.push(format!(
                "key {key} was replayed but its first request failed"
            )),
        }
    }
    driven
}
