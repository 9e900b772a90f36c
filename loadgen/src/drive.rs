//! The load loops: open (a new order every 1/rate seconds, whatever the responses) and closed
//! (N clients, each waiting for its POST's response before placing the next order).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use uuid::Uuid;

use crate::ledger::{Attempt, Ledger, PostError};
use crate::setup::{Fixtures, Tokens};

/// How orders are sent.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Shape {
    /// Open loop: order `k` is due `k / rate` seconds after the start and sent then,
    /// regardless of responses; its latencies are measured from that intended instant. At most
    /// `max_in_flight` POSTs are outstanding; an order due while the bound is reached is not
    /// sent and counts as a (dropped) error.
    Open {
        /// Orders per second.
        rate: f64,
        /// Bound on outstanding POSTs.
        max_in_flight: usize,
    },
    /// Closed loop: `concurrency` clients, each sending its next order when the previous
    /// POST has been answered, or, with `wait_terminal`, when the previous order has reached
    /// a terminal state (or the settle timeout passed).
    Closed {
        /// Number of clients.
        concurrency: usize,
        /// Wait for each order's terminal event, not only for its POST's answer.
        wait_terminal: bool,
    },
}

/// When to stop sending: whichever limit comes first (at least one is set).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stop {
    /// No order is sent at or after this long since the start.
    pub duration: Option<Duration>,
    /// No more than this many orders (sent or dropped).
    pub orders: Option<u64>,
}

/// What the loops need to place orders.
#[derive(Debug)]
pub(crate) struct Driver {
    pub(crate) http: reqwest::Client,
    /// `<order-svc>/orders`.
    pub(crate) orders_url: String,
    pub(crate) fixtures: Fixtures,
    /// Each customer places its own orders with its own token.
    pub(crate) tokens: Tokens,
    pub(crate) ledger: Arc<Ledger>,
    /// The run's time origin.
    pub(crate) start: Instant,
    /// Longest a waiting closed-loop client waits for one order's terminal event.
    pub(crate) settle: Duration,
}

impl Driver {
    /// Sends orders in `shape` until `stop`, and returns when every POST sent has been
    /// answered (or has failed).
    pub(crate) async fn run(self: Arc<Self>, shape: Shape, stop: Stop) {
        match shape {
            Shape::Open {
                rate,
                max_in_flight,
            } => self.open_loop(rate, max_in_flight, stop).await,
            Shape::Closed {
                concurrency,
                wait_terminal,
            } => self.closed_loop(concurrency, wait_terminal, stop).await,
        }
    }

    async fn open_loop(self: Arc<Self>, rate: f64, max_in_flight: usize, stop: Stop) {
        let permits = Arc::new(Semaphore::new(max_in_flight.max(1)));
        let mut tasks = JoinSet::new();
        let mut index: u64 = 0;
        loop {
            if stop.orders.is_some_and(|limit| index >= limit) {
                break;
            }
            // The schedule is computed from the start, so delays do not accumulate; each
            // order's latencies count from its instant on it, however late it is actually sent
            // (`Attempt::origin`). An instant past what the clock can represent ends it.
            let due = Duration::try_from_secs_f64(index as f64 / rate)
                .ok()
                .filter(|&offset| stop.duration.is_none_or(|duration| offset < duration))
                .and_then(|offset| Some((offset, self.start.checked_add(offset)?)));
            let Some((intended_at, due)) = due else {
                break;
            };
            tokio::time::sleep_until(due).await;
            match Arc::clone(&permits).try_acquire_owned() {
                Ok(permit) => {
                    let driver = Arc::clone(&self);
                    tasks.spawn(async move {
                        driver.place(index, Some(intended_at)).await;
                        drop(permit);
                    });
                }
                Err(_) => {
                    let intent = self.fixtures.mix.intent(index);
                    self.ledger
                        .dropped(index, intent, Some(intended_at), self.start.elapsed());
                }
            }
            index += 1;
            while tasks.try_join_next().is_some() {}
        }
        while tasks.join_next().await.is_some() {}
    }

    async fn closed_loop(self: Arc<Self>, concurrency: usize, wait_terminal: bool, stop: Stop) {
        let next = Arc::new(AtomicU64::new(0));
        let deadline = stop
            .duration
            .and_then(|duration| self.start.checked_add(duration));
        let mut tasks = JoinSet::new();
        for _ in 0..concurrency.max(1) {
            let driver = Arc::clone(&self);
            let next = Arc::clone(&next);
            tasks.spawn(async move {
                loop {
                    if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                        break;
                    }
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if stop.orders.is_some_and(|limit| index >= limit) {
                        break;
                    }
                    let placed = driver.place(index, None).await;
                    if let (true, Some(order_id)) = (wait_terminal, placed) {
                        driver.until_terminal(order_id).await;
                    }
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    }

    /// Waits until `order_id` is known to be terminal, or for the settle timeout.
    async fn until_terminal(&self, order_id: Uuid) {
        let Some(terminal) = self.ledger.terminal_signal(order_id) else {
            return;
        };
        // A timeout or a dropped sender both mean: stop waiting; the end check judges the order.
        let _ = tokio::time::timeout(self.settle, terminal).await;
    }

    /// Places order `index` (meant to be sent at `intended_at` since the start, in the open
    /// loop), records the outcome and returns the created order's id.
    async fn place(&self, index: u64, intended_at: Option<Duration>) -> Option<Uuid> {
        let planned = self.fixtures.order(index);
        self.ledger.sending();
        let sent_at = self.start.elapsed();
        let result = self.post(&planned).await;
        let answered_at = self.start.elapsed();
        let created = result.as_ref().ok().copied();
        self.ledger.sent(Attempt {
            index,
            intent: planned.intent,
            catalog_total: planned.catalog_total,
            intended_at,
            sent_at,
            answered_at: Some(answered_at),
            result: result.map_err(PostError::Failed),
            terminal: None,
            lookup_error: None,
        });
        created
    }

    /// `POST /orders` as the order's customer; the created order's id or why there is none.
    async fn post(&self, planned: &crate::setup::PlannedOrder) -> Result<Uuid, String> {
        let token = self
            .tokens
            .customer(planned.customer_id)
            .ok_or_else(|| format!("no token for customer {}", planned.customer_id))?;
        let response = self
            .http
            .post(&self.orders_url)
            .bearer_auth(token)
            .json(&planned.request)
            .send()
            .await
            .map_err(|error| {
                format!("POST /orders failed: {}", service_kit::error_chain(&error))
            })?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|error| format!("POST /orders: reading the answer failed: {error}"))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            return Err(format!(
                "POST /orders answered {status}: {}",
                crate::truncate(&text, 200)
            ));
        }
        serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|order| order.get("id")?.as_str()?.parse::<Uuid>().ok())
            .ok_or_else(|| format!("POST /orders answered {status} without an order id"))
    }
}
