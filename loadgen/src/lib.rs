//! `loadgen`: the load an operator puts on a running order system (local processes or
//! docker compose), and the verdict on how it held up.
//!
//! A run:
//! 1. connects to RabbitMQ and starts listening, on a private queue, to the terminal events
//!    `OrderCompleted` and `OrderCancelled` ([`observe`]) — as a broker user that may declare
//!    and bind a queue of its own (an administrator or an observer: the services' own
//!    least-privilege users may not);
//! 2. mints bearer tokens with the services' HS256 secret (`--jwt-secret` or `AUTH_JWT_SECRET`):
//!    an operator's and one per customer ([`setup::Tokens`]);
//! 3. as the operator, creates its own products (stock and catalog price) and funds its
//!    customers' accounts through the services' APIs ([`setup`]);
//! 4. places orders open-loop (a fixed rate) or closed-loop (a fixed number of clients) until
//!    a duration or an order count is reached ([`drive`]), each by its customer with the
//!    customer's own token, naming products and quantities only, each meant to complete, to
//!    fail on stock or to fail on payment;
//! 5. waits up to the settle timeout for every created order to become terminal, then looks
//!    up the remaining ones once with `GET /orders/{id}` (as the operator);
//! 6. reports throughput, latency (POST, and POST to terminal event, as HdrHistograms: [`stats`]),
//!    outcomes and the end check: every created order terminal, with the status its intent calls
//!    for, and every completed one charged its lines at the catalog's prices ([`report`]).
//!
//! In the open loop every latency is measured from the order's *intended* send time (the
//! schedule's `start + index / rate`), so that neither a generator that falls behind nor a
//! server that stalls it can hide latency (no coordinated omission); the report also says how
//! late loadgen itself sent. The closed loop has no schedule and measures from the actual send.
//! While the run lasts, the resident memory of the processes named by `--watch-process` or
//! `--watch-pid-dir` is sampled once a second ([`rss`]); the report gives it per process and per
//! window of `--window-secs`, beside each window's throughput and latency.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use uuid::Uuid;

mod config;
pub mod drive;
mod ledger;
pub mod observe;
mod progress;
pub mod report;
pub mod rss;
pub mod setup;
pub mod stats;

pub use config::{Config, Secret};
use config::{TOKEN_MARGIN, watched};
pub use drive::{Shape, Stop};
pub use report::Report;

use ledger::{Ledger, Terminal, Via};
use progress::Progress;

/// What an order is meant to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Intent {
    /// Ample stock, a rich customer: should complete.
    Complete,
    /// A product that does not exist: should be cancelled.
    FailStock,
    /// A customer with no money: should be cancelled.
    FailPayment,
}

impl Intent {
    /// Every intent, in report order.
    pub const ALL: [Intent; 3] = [Intent::Complete, Intent::FailStock, Intent::FailPayment];

    /// The terminal status an order with this intent must reach.
    pub fn expected_status(self) -> Status {
        match self {
            Intent::Complete => Status::Completed,
            Intent::FailStock | Intent::FailPayment => Status::Cancelled,
        }
    }

    /// What the intent means, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Intent::Complete => "complete",
            Intent::FailStock => "fail on stock",
            Intent::FailPayment => "fail on payment",
        }
    }
}

impl fmt::Display for Intent {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Intent::Complete => "complete",
            Intent::FailStock => "fail-stock",
            Intent::FailPayment => "fail-payment",
        })
    }
}

/// A terminal order status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Status {
    /// Paid for and its goods committed.
    Completed,
    /// Cancelled, compensations under way.
    Cancelled,
}

impl Status {
    /// The status named as order-svc names it, if terminal.
    pub fn from_api(name: &str) -> Option<Status> {
        match name {
            "Completed" => Some(Status::Completed),
            "Cancelled" => Some(Status::Cancelled),
            _ => None,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Status::Completed => "Completed",
            Status::Cancelled => "Cancelled",
        })
    }
}

/// The fractions of orders meant to fail; the rest are meant to complete.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mix {
    /// Fraction meant to fail on stock.
    pub fail_stock: f64,
    /// Fraction meant to fail on payment.
    pub fail_payment: f64,
}

impl Mix {
    /// The intent of the `index`-th order: deterministic and spread evenly, so that every
    /// prefix of the run has close to the asked fractions (never off by more than a few
    /// orders). Order `i` takes the point `frac((i + 1) × φ⁻¹)` of the golden-ratio sequence
    /// in [0, 1): below `fail_stock` fails on stock, below `fail_stock + fail_payment` fails on
    /// payment, the rest completes.
    pub fn intent(&self, index: u64) -> Intent {
        const INVERSE_GOLDEN_RATIO: f64 = 0.618_033_988_749_894_9;
        let point = ((index as f64 + 1.0) * INVERSE_GOLDEN_RATIO).fract();
        if point < self.fail_stock {
            Intent::FailStock
        } else if point < self.fail_stock + self.fail_payment {
            Intent::FailPayment
        } else {
            Intent::Complete
        }
    }
}

/// What went wrong before or around the load (failed orders are not errors: they are in the
/// [`Report`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// An HTTP request could not be made.
    #[error("{context}: {}", service_kit::error_chain(source))]
    Http {
        /// The request.
        context: String,
        /// The client's error.
        source: reqwest::Error,
    },
    /// A service answered a setup request with an error status.
    #[error("{context}: HTTP {status}: {body}")]
    Status {
        /// The request.
        context: String,
        /// The status code.
        status: u16,
        /// The start of the answer's body.
        body: String,
    },
    /// The broker could not be reached or refused a declaration.
    #[error("RabbitMQ at {url}: {source}")]
    Amqp {
        /// The broker URL, without its password.
        url: String,
        /// The client's error.
        source: lapin::Error,
    },
    /// The broker has no `saga.events` exchange: the services have never run against it.
    #[error(
        "no exchange `saga.events` at {url} ({source}); the services declare it when they \
         start: is --amqp-url the vhost they use?"
    )]
    NoExchange {
        /// The broker URL, without its password.
        url: String,
        /// The broker's refusal.
        source: lapin::Error,
    },
    /// An input file or directory could not be read.
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// An output file could not be written.
    #[error("writing {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The JSON report could not be encoded.
    #[error("encoding the JSON report: {0}")]
    Json(#[from] serde_json::Error),
    /// A latency histogram could not be created (its bounds are fixed: never in practice).
    #[error("creating a latency histogram: {0}")]
    Histogram(#[from] hdrhistogram::CreationError),
    /// The SVG report could not be drawn.
    #[error(transparent)]
    Svg(#[from] report::SvgError),
}

/// Runs the load described by `config` against the system and returns the report (also
/// written to `--json` and `--svg` when given). Orders that end wrongly make a failing report,
/// not an error; errors are for what prevents the run: bad settings, services or broker
/// unreachable at the start, output files that cannot be written.
pub async fn run(config: Config) -> Result<Report, Error> {
    let plan = config.plan()?;
    let (watched, watch_warnings) = watched(&config)?;
    let http = reqwest::Client::builder()
        .timeout(plan.request_timeout)
        .connect_timeout(plan.request_timeout.min(Duration::from_secs(10)))
        .pool_max_idle_per_host(usize::MAX)
        .build()
        .map_err(|source| Error::Http {
            context: "building the HTTP client".to_owned(),
            source,
        })?;
    let endpoints = setup::Endpoints {
        order: config.order_url.trim_end_matches('/').to_owned(),
        inventory: config.inventory_url.trim_end_matches('/').to_owned(),
        payment: config.payment_url.trim_end_matches('/').to_owned(),
    };

    let run_id = setup::new_run_id();
    let fixtures = setup::Fixtures::new(&run_id, plan.mix, config.products, config.customers);
    let lifetime = plan.stop.duration.unwrap_or_default() + plan.settle + TOKEN_MARGIN;
    let tokens = setup::Tokens::mint(&plan.secret, fixtures.customers(), lifetime)?;
    // Listen before anything is sent, so that no terminal event can be missed.
    let observer = observe::Observer::connect(&config.amqp_url).await?;
    if let Err(error) = setup::prepare(&http, &endpoints, &fixtures, &tokens).await {
        observer.close().await;
        return Err(error);
    }

    let ledger = Arc::new(Ledger::default());
    let started_at = chrono::Utc::now();
    let start = Instant::now();
    let watching = observer.watch(Arc::clone(&ledger), start);
    let sampler = rss::Sampler::start(watched, start);
    let progress = Progress::start(config.quiet, Arc::clone(&ledger), start, plan.stop);

    let driver = Arc::new(drive::Driver {
        http: http.clone(),
        orders_url: format!("{}/orders", endpoints.order),
        fixtures,
        tokens: tokens.clone(),
        ledger: Arc::clone(&ledger),
        start,
        settle: plan.settle,
    });
    driver.run(plan.shape, plan.stop).await;
    let drive_end = start.elapsed();

    progress.settling();
    let settle_deadline = Instant::now() + plan.settle;
    while ledger.pending_count() > 0
        && Instant::now() < settle_deadline
        && !ledger.is_observer_stopped()
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let pending = ledger.pending();
    if !pending.is_empty() {
        progress.looking_up(pending.len());
        look_up(
            &http,
            &endpoints.order,
            tokens.operator(),
            &ledger,
            start,
            pending,
        )
        .await;
    }
    watching.stop().await;
    let end = start.elapsed();
    let mut memory = sampler.stop().await;
    memory.warnings.splice(0..0, watch_warnings);
    progress.finish();

    let report = report::build(
        report::RunInfo {
            run_id,
            started_at,
            load: config.load(),
            drive_end,
            end,
        },
        ledger.snapshot(),
        memory,
    )?;
    if let Some(path) = &config.json {
        let json = report::to_json(&report)?;
        write(path, json)?;
    }
    if let Some(path) = &config.svg {
        write(path, report::svg(&report)?)?;
    }
    Ok(report)
}

fn write(path: &PathBuf, contents: String) -> Result<(), Error> {
    std::fs::write(path, contents).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })
}

/// Asks order-svc once, as the operator, for each order still not known to be terminal.
async fn look_up(
    http: &reqwest::Client,
    order_url: &str,
    token: &str,
    ledger: &Ledger,
    start: Instant,
    pending: Vec<Uuid>,
) {
    let lookups = futures::stream::iter(pending).map(|order_id| async move {
        let url = format!("{order_url}/orders/{order_id}");
        let outcome = async {
            let response = http
                .get(&url)
                .bearer_auth(token)
                .send()
                .await
                .map_err(|error| {
                    format!(
                        "GET /orders/{order_id} failed: {}",
                        service_kit::error_chain(&error)
                    )
                })?;
            let status = response.status();
            if !status.is_success() {
                return Err(format!("GET /orders/{order_id} answered {status}"));
            }
            let order: serde_json::Value = response
                .json()
                .await
                .map_err(|error| format!("GET /orders/{order_id}: unreadable answer: {error}"))?;
            let name = order
                .get("status")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("no status");
            match Status::from_api(name) {
                Some(status) => Ok(Some(Terminal {
                    status,
                    at: start.elapsed(),
                    via: Via::Lookup,
                    reason: order
                        .get("cancellation_reason")
                        .and_then(serde_json::Value::as_str)
                        .map(str::to_owned),
                    total: order.get("total").and_then(serde_json::Value::as_i64),
                })),
                None => Err(format!("GET /orders/{order_id} says it is {name}")),
            }
        }
        .await;
        (order_id, outcome)
    });
    let mut answers = lookups.buffer_unordered(16);
    while let Some((order_id, outcome)) = answers.next().await {
        ledger.looked_up(order_id, outcome);
    }
}

/// At most `max` characters of `text`, with `…` when cut.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    let mut cut: String = text.chars().take(max).collect();
    if text.chars().count() > max {
        cut.push('…');
    }
    cut
}

/// `url` without the password of its user information.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}{path}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn intents_map_to_statuses() {
        assert_eq!(Intent::Complete.expected_status(), Status::Completed);
        assert_eq!(Intent::FailStock.expected_status(), Status::Cancelled);
        assert_eq!(Intent::FailPayment.expected_status(), Status::Cancelled);
        assert_eq!(Status::from_api("Completed"), Some(Status::Completed));
        assert_eq!(Status::from_api("Cancelled"), Some(Status::Cancelled));
        assert_eq!(Status::from_api("Pending"), None);
        let all_fail = Mix {
            fail_stock: 0.5,
            fail_payment: 0.5,
        };
        assert!((0..1000).all(|index| all_fail.intent(index) != Intent::Complete));
    }

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redact("amqp://guest:secret@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(redact("amqp://127.0.0.1:5672"), "amqp://127.0.0.1:5672");
        assert_eq!(truncate("abcdef", 3), "abc…");
        assert_eq!(truncate("abc", 3), "abc");
    }
}
