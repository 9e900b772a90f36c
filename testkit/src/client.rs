//! A client of the running system for end-to-end tests and tools: the calls a user makes with
//! curl, with the answers as JSON.

use std::time::Duration;

use crate::auth::{Identity, authorization};
use crate::system::{Svc, System};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// How many times a read answered 503 with `Retry-After` is sent again.
const READ_RETRIES: u32 = 10;

/// Terminal order statuses.
pub const TERMINAL: [&str; 2] = ["Completed", "Cancelled"];

/// HTTP calls against a [`System`], as an operator unless [`Client::as_identity`] says
/// otherwise.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    identity: Identity,
    order: String,
    inventory: String,
    payment: String,
    notify: String,
}

impl Client {
    /// A client of `system`'s first instances.
    pub fn new(system: &System) -> Client {
        Client::new_for_replica(system, 0)
    }

    /// A client of `system`'s `replica`-th instances (the first where a service has fewer; a
    /// service with no instance yet gets an address that refuses connections).
    pub fn new_for_replica(system: &System, replica: usize) -> Client {
        let url = |svc: Svc| {
            let replicas = system.replicas(svc);
            match replicas {
                0 => String::from("http://127.0.0.1:9"),
                _ => system.instance_url(svc, replica.min(replicas - 1)),
            }
        };
        Client {
            http: reqwest::Client::new(),
            identity: Identity::Operator,
            order: url(Svc::Order),
            inventory: url(Svc::Inventory),
            payment: url(Svc::Payment),
            notify: url(Svc::Notify),
        }
    }

    /// The same client calling as `identity`.
    pub fn as_identity(&self, identity: Identity) -> Client {
        Client {
            identity,
            ..self.clone()
        }
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match authorization(&self.identity) {
            Some(value) => request.header("authorization", value),
            None => request,
        }
    }

    /// Sends `request`; a read answered 503 with `Retry-After` (a database connection cut a
    /// moment ago, say) is sent again after the delay it names, as a well-behaved client does.
    async fn send(&self, request: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let request = self
            .authorized(request)
            .build()
            .expect("the request is well-formed");
        let mut retries_left = READ_RETRIES;
        loop {
            let attempt = request.try_clone().expect("the body is not a stream");
            let response = self
                .http
                .execute(attempt)
                .await
                .expect("the service answers");
            let status = response.status();
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|seconds| seconds.parse::<u64>().ok());
            match (request.method(), status, retry_after) {
                (&reqwest::Method::GET, StatusCode::SERVICE_UNAVAILABLE, Some(seconds))
                    if retries_left > 0 =>
                {
                    retries_left -= 1;
                    tokio::time::sleep(Duration::from_secs(seconds)).await;
                }
                _ => return (status, response.json().await.unwrap_or(Value::Null)),
            }
        }
    }

    /// `PUT /products/{id}` on inventory: stock and catalog price (minor units).
    pub async fn set_product(&self, product_id: &str, available: i64, price: i64) {
        let (status, body) = self
            .send(
                self.http
                    .put(format!("{}/products/{product_id}", self.inventory))
                    .json(&json!({ "available": available, "price": price })),
            )
            .await;
        assert!(status.is_success(), "set stock: {status} {body}");
    }

    /// `GET /products/{id}` on inventory: (available, reserved, committed).
    pub async fn stock(&self, product_id: &str) -> (i64, i64, i64) {
        let (status, body) = self
            .send(
                self.http
                    .get(format!("{}/products/{product_id}", self.inventory)),
            )
            .await;
        assert!(
            status.is_success(),
            "stock of {product_id}: {status} {body}"
        );
        (
            body["available"].as_i64().unwrap(),
            body["reserved"].as_i64().unwrap(),
            body["committed"].as_i64().unwrap(),
        )
    }

    /// `PUT /accounts/{id}` on payment.
    pub async fn set_balance(&self, customer_id: &str, balance: i64) {
        let (status, body) = self
            .send(
                self.http
                    .put(format!("{}/accounts/{customer_id}", self.payment))
                    .json(&json!({ "balance": balance })),
            )
            .await;
        assert!(status.is_success(), "set balance: {status} {body}");
    }

    /// `GET /accounts/{id}` on payment: the balance.
    pub async fn balance(&self, customer_id: &str) -> i64 {
        let (status, body) = self
            .send(
                self.http
                    .get(format!("{}/accounts/{customer_id}", self.payment)),
            )
            .await;
        assert!(
            status.is_success(),
            "balance of {customer_id}: {status} {body}"
        );
        body["balance"].as_i64().unwrap()
    }

    /// `GET /payments/{order_id}` on payment.
    pub async fn payment(&self, order_id: &str) -> (StatusCode, Value) {
        self.send(
            self.http
                .get(format!("{}/payments/{order_id}", self.payment)),
        )
        .await
    }

    /// `GET /notifications?order_id=` on notify.
    pub async fn notifications(&self, order_id: &str) -> Vec<Value> {
        let (_, body) = self
            .send(
                self.http
                    .get(format!("{}/notifications?order_id={order_id}", self.notify)),
            )
            .await;
        body.as_array().cloned().unwrap_or_default()
    }

    /// `POST /orders` for `customer_id` with the given lines `(product, quantity)`; the prices
    /// are the catalog's.
    pub async fn place(
        &self,
        customer_id: &str,
        lines: &[(&str, i64)],
        key: Option<&str>,
    ) -> (StatusCode, Value) {
        let items: Vec<Value> = lines
            .iter()
            .map(|(product, quantity)| json!({"product_id": product, "quantity": quantity}))
            .collect();
        let mut request = self
            .http
            .post(format!("{}/orders", self.order))
            .json(&json!({ "customer_id": customer_id, "items": items }));
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        self.send(request).await
    }

    /// `GET /orders/{id}`.
    pub async fn order(&self, order_id: &str) -> Value {
        self.send(self.http.get(format!("{}/orders/{order_id}", self.order)))
            .await
            .1
    }

    /// `POST /orders/{id}/cancel`: 200 with the cancelled order, 409 for a paid one.
    pub async fn cancel(&self, order_id: &str) -> (StatusCode, Value) {
        self.send(
            self.http
                .post(format!("{}/orders/{order_id}/cancel", self.order)),
        )
        .await
    }

    /// Any request to order-svc, for the error cases.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.order));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_owned());
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.authorized(request).send().await.unwrap()
    }

    /// Polls the order until it is terminal; panics after `timeout`.
    pub async fn wait_terminal(&self, order_id: &str, timeout: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let order = self.order(order_id).await;
            if TERMINAL.iter().any(|status| order["status"] == *status) {
                return order;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "order {order_id} not terminal: {order}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// `(from, event, to)` of each timeline step.
pub fn timeline(order: &Value) -> Vec<(String, String, String)> {
    order["timeline"]
        .as_array()
        .map(|steps| {
            steps
                .iter()
                .map(|step| {
                    (
                        step["from"].as_str().unwrap_or_default().to_owned(),
                        step["event"].as_str().unwrap_or_default().to_owned(),
                        step["to"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A fresh customer id.
pub fn new_customer() -> String {
    uuid::Uuid::now_v7().to_string()
}
