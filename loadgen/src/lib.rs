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
//! 6. reports throughput, latency (POST, and POST to terminal event), outcomes and the end
//!    check: every created order terminal, with the status its intent calls for, and every
//!    completed one charged its lines at the catalog's prices ([`report`]).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{ArgGroup, Parser};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use uuid::Uuid;

pub mod drive;
mod ledger;
pub mod observe;
mod progress;
pub mod report;
pub mod setup;
pub mod stats;

pub use drive::{Shape, Stop};
pub use report::Report;

use ledger::{Ledger, Terminal, Via};
use progress::Progress;

/// The command line, which is also the configuration of [`run`].
#[derive(Clone, Debug, PartialEq, Parser)]
#[command(
    name = "loadgen",
    version,
    about = "Puts load on a running order system and checks that every order ends as intended.",
    long_about = "Puts load on a running order system (order-svc, inventory-svc, payment-svc and \
                  RabbitMQ) and checks that every order ends as intended. Creates its own products \
                  and accounts (prefixed with a run id), places orders at a fixed rate (--rate) or \
                  with a fixed number of clients (--concurrency), watches OrderCompleted and \
                  OrderCancelled on the broker, and prints throughput, latency percentiles \
                  (nearest-rank) and outcome counts. Exits 0 when every created order reached the \
                  intended terminal state, 1 otherwise."
)]
#[command(group(ArgGroup::new("shape").required(true).args(["rate", "concurrency"])))]
#[command(group(ArgGroup::new("limit").required(true).multiple(true).args(["duration", "orders"])))]
pub struct Config {
    /// Base URL of order-svc.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8080")]
    pub order_url: String,
    /// Base URL of inventory-svc.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8081")]
    pub inventory_url: String,
    /// Base URL of payment-svc.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8082")]
    pub payment_url: String,
    /// RabbitMQ URL of the observer of terminal events, with the vhost the services use. Its
    /// user must be allowed to declare a private queue and bind it to `saga.events` (read on
    /// the exchange, configure and write on its own `amq.gen-*` queue): an administrator's or
    /// an observer's URL, not a service's (their least-privilege users may not).
    #[arg(
        long,
        value_name = "URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub amqp_url: String,
    /// The HS256 secret the services verify bearer tokens with (their AUTH_JWT_SECRET):
    /// loadgen mints an operator's token for its setup and one token per customer with it.
    #[arg(
        long,
        env = "AUTH_JWT_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub jwt_secret: Option<Secret>,
    /// Open loop: orders per second, sent on schedule whatever the responses.
    #[arg(long, value_name = "ORDERS_PER_SEC")]
    pub rate: Option<f64>,
    /// Closed loop: clients, each sending its next order when its previous POST is answered.
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,
    /// Closed loop: each client also waits for its order's terminal event (at most the settle
    /// timeout) before sending the next, so that --concurrency bounds the sagas in flight and
    /// not only the POSTs: the measure of sustained throughput.
    #[arg(long)]
    pub wait_terminal: bool,
    /// Stop sending after this many seconds.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Stop sending after this many orders.
    #[arg(long, value_name = "N")]
    pub orders: Option<u64>,
    /// Fraction of orders meant to fail on stock (a product that does not exist).
    #[arg(long, value_name = "FRACTION", default_value_t = 0.1)]
    pub fail_stock: f64,
    /// Fraction of orders meant to fail on payment (a customer with a balance of 0).
    #[arg(long, value_name = "FRACTION", default_value_t = 0.1)]
    pub fail_payment: f64,
    /// How long to wait after sending for every order to become terminal.
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    pub settle_timeout: f64,
    /// Products with ample stock the orders spread over (fewer: more contention on hot rows).
    #[arg(long, value_name = "N", default_value_t = setup::DEFAULT_PRODUCTS)]
    pub products: usize,
    /// Customers with an ample balance the orders spread over; a quarter as many (at least
    /// one) get a balance of 0 for the orders meant to fail on payment.
    #[arg(long, value_name = "N", default_value_t = setup::DEFAULT_CUSTOMERS)]
    pub customers: usize,
    /// Open loop: most POSTs outstanding at once; an order due beyond it is dropped and
    /// counted as an error.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub max_in_flight: usize,
    /// Timeout of each HTTP request.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pub request_timeout: f64,
    /// Write the report as JSON to this file.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Write charts (throughput, latency over time, latency histogram) as SVG to this file.
    #[arg(long, value_name = "PATH")]
    pub svg: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// A credential from the command line or the environment: its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Secret, Self::Err> {
        Ok(Secret(text.to_owned()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("Secret(***)")
    }
}

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
    #[error("{context}: {}", error_chain(source))]
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
}

/// A validated [`Config`].
#[derive(Clone, PartialEq)]
struct Plan {
    shape: Shape,
    stop: Stop,
    mix: Mix,
    settle: Duration,
    request_timeout: Duration,
    secret: Vec<u8>,
}

/// The secret is a credential: never shown.
impl fmt::Debug for Plan {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Plan")
            .field("shape", &self.shape)
            .field("stop", &self.stop)
            .field("mix", &self.mix)
            .field("settle", &self.settle)
            .field("request_timeout", &self.request_timeout)
            .finish_non_exhaustive()
    }
}

/// How long the run's tokens are valid beyond its own length: a day, so that no run's token
/// expires while a customer still has an order to place.
const TOKEN_MARGIN: Duration = Duration::from_secs(24 * 3600);

/// Longest duration accepted for any setting (about 31 years).
const MAX_SECONDS: f64 = 1e9;
/// Most closed-loop clients.
const MAX_CONCURRENCY: usize = 100_000;

fn seconds(name: &str, value: f64, allow_zero: bool) -> Result<Duration, Error> {
    let valid =
        value.is_finite() && value <= MAX_SECONDS && (value > 0.0 || (allow_zero && value == 0.0));
    let duration = Duration::try_from_secs_f64(value).ok().filter(|_| valid);
    duration.ok_or_else(|| {
        Error::Config(format!(
            "--{name} must be a {}number of seconds, got {value}",
            if allow_zero { "" } else { "positive " }
        ))
    })
}

impl Config {
    fn plan(&self) -> Result<Plan, Error> {
        let shape = match (self.rate, self.concurrency) {
            (Some(rate), None) => {
                if !(rate.is_finite() && rate > 0.0) {
                    return Err(Error::Config(format!(
                        "--rate must be a positive number of orders per second, got {rate}"
                    )));
                }
                if self.max_in_flight == 0 {
                    return Err(Error::Config("--max-in-flight must be at least 1".into()));
                }
                if self.wait_terminal {
                    return Err(Error::Config(
                        "--wait-terminal is for the closed loop (--concurrency)".into(),
                    ));
                }
                Shape::Open {
                    rate,
                    max_in_flight: self.max_in_flight,
                }
            }
            (None, Some(concurrency)) if !(1..=MAX_CONCURRENCY).contains(&concurrency) => {
                return Err(Error::Config(format!(
                    "--concurrency must be between 1 and {MAX_CONCURRENCY}, got {concurrency}"
                )));
            }
            (None, Some(concurrency)) => Shape::Closed {
                concurrency,
                wait_terminal: self.wait_terminal,
            },
            _ => {
                return Err(Error::Config(
                    "give exactly one of --rate and --concurrency".into(),
                ));
            }
        };
        let stop = Stop {
            duration: self
                .duration
                .map(|duration| seconds("duration", duration, false))
                .transpose()?,
            orders: self.orders,
        };
        if stop.duration.is_none() && stop.orders.is_none() {
            return Err(Error::Config("give --duration, --orders or both".into()));
        }
        if stop.orders == Some(0) {
            return Err(Error::Config("--orders must be at least 1".into()));
        }
        for (name, fraction) in [
            ("fail-stock", self.fail_stock),
            ("fail-payment", self.fail_payment),
        ] {
            if !(0.0..=1.0).contains(&fraction) {
                return Err(Error::Config(format!(
                    "--{name} must be a fraction between 0 and 1, got {fraction}"
                )));
            }
        }
        for (name, count) in [("products", self.products), ("customers", self.customers)] {
            if !(1..=setup::MAX_FIXTURES).contains(&count) {
                return Err(Error::Config(format!(
                    "--{name} must be between 1 and {}, got {count}",
                    setup::MAX_FIXTURES
                )));
            }
        }
        let secret = match self.jwt_secret.as_ref().map(Secret::expose) {
            None | Some("") => {
                return Err(Error::Config(
                    "give --jwt-secret or set AUTH_JWT_SECRET: the services' HS256 secret, \
                     with which loadgen mints its callers' tokens"
                        .into(),
                ));
            }
            // The services refuse to start with a shorter one, so a shorter one is a typo.
            Some(secret) if secret.len() < service_kit::auth::MIN_SECRET_BYTES => {
                return Err(Error::Config(format!(
                    "--jwt-secret must be at least {} bytes, as the services require",
                    service_kit::auth::MIN_SECRET_BYTES
                )));
            }
            Some(secret) => secret.as_bytes().to_vec(),
        };
        if self.fail_stock + self.fail_payment > 1.0 + 1e-9 {
            return Err(Error::Config(format!(
                "--fail-stock and --fail-payment add up to more than 1 ({} + {})",
                self.fail_stock, self.fail_payment
            )));
        }
        Ok(Plan {
            shape,
            stop,
            mix: Mix {
                fail_stock: self.fail_stock,
                fail_payment: self.fail_payment,
            },
            settle: seconds("settle-timeout", self.settle_timeout, true)?,
            request_timeout: seconds("request-timeout", self.request_timeout, false)?,
            secret,
        })
    }

    fn load(&self) -> report::Load {
        report::Load {
            shape: if self.rate.is_some() {
                "open"
            } else {
                "closed"
            }
            .to_owned(),
            rate: self.rate,
            max_in_flight: self.rate.map(|_| self.max_in_flight),
            concurrency: self.concurrency,
            wait_terminal: self.wait_terminal,
            duration_secs: self.duration,
            orders: self.orders,
            fail_stock: self.fail_stock,
            fail_payment: self.fail_payment,
            products: self.products,
            customers: self.customers,
            settle_timeout_secs: self.settle_timeout,
        }
    }
}

/// Runs the load described by `config` against the system and returns the report (also
/// written to `--json` and `--svg` when given). Orders that end wrongly make a failing report,
/// not an error; errors are for what prevents the run: bad settings, services or broker
/// unreachable at the start, output files that cannot be written.
pub async fn run(config: Config) -> Result<Report, Error> {
    let plan = config.plan()?;
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
    );
    if let Some(path) = &config.json {
        let json = report::to_json(&report)?;
        write(path, json)?;
    }
    if let Some(path) = &config.svg {
        write(path, report::svg(&report))?;
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
                    format!("GET /orders/{order_id} failed: {}", error_chain(&error))
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

/// An error with its causes, `outer: inner: innermost` (reqwest's own text omits them).
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
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

    /// A secret as long as the services require.
    const SECRET: &str = "loadgen unit tests: a secret of 32+ bytes";

    /// The command line `args`, with a JWT secret unless they give one.
    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        let secret: &[&str] = match args.iter().any(|arg| arg.starts_with("--jwt-secret")) {
            true => &[],
            false => &["--jwt-secret", SECRET],
        };
        Config::try_parse_from(
            std::iter::once("loadgen")
                .chain(secret.iter().copied())
                .chain(args.iter().copied()),
        )
    }

    #[test]
    fn the_command_line_needs_one_shape_and_a_limit() {
        for ok in [
            &["--rate", "20", "--duration", "3"][..],
            &["--concurrency", "4", "--orders", "30"],
            &["--rate", "5", "--duration", "3", "--orders", "10"],
            &["--concurrency", "4", "--orders", "30", "--wait-terminal"],
        ] {
            let config = parse(ok).unwrap();
            assert!(config.plan().is_ok(), "{ok:?}");
        }
        for bad in [
            &["--duration", "3"][..],
            &["--rate", "20"],
            &["--rate", "20", "--concurrency", "4", "--duration", "3"],
            &["--rate", "x", "--duration", "3"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let config = parse(&["--rate", "20", "--duration", "3"]).unwrap();
        assert_eq!(config.order_url, "http://127.0.0.1:8080");
        assert_eq!(config.inventory_url, "http://127.0.0.1:8081");
        assert_eq!(config.payment_url, "http://127.0.0.1:8082");
        assert_eq!(config.amqp_url, "amqp://guest:guest@127.0.0.1:5672/%2f");
        assert_eq!((config.fail_stock, config.fail_payment), (0.1, 0.1));
        assert_eq!(config.settle_timeout, 60.0);
        assert_eq!((config.products, config.customers), (8, 16));
        assert!(!config.quiet && config.json.is_none() && config.svg.is_none());
        let plan = config.plan().unwrap();
        assert_eq!(
            plan.shape,
            Shape::Open {
                rate: 20.0,
                max_in_flight: 1000
            }
        );
        assert_eq!(plan.stop.duration, Some(Duration::from_secs(3)));
        assert_eq!(plan.settle, Duration::from_secs(60));
    }

    #[test]
    fn out_of_range_settings_are_refused() {
        for bad in [
            &["--rate", "0", "--duration", "3"][..],
            &["--rate=-1", "--duration", "3"],
            &["--rate", "inf", "--duration", "3"],
            &["--concurrency", "0", "--orders", "3"],
            &["--concurrency", "1000000", "--orders", "3"],
            &["--rate", "1", "--duration", "1e12"],
            &["--rate", "1", "--orders", "0"],
            &["--rate", "1", "--duration", "0"],
            &["--rate", "1", "--duration", "3", "--fail-stock", "1.5"],
            &["--rate", "1", "--duration", "3", "--fail-payment=-0.1"],
            &[
                "--rate",
                "1",
                "--duration",
                "3",
                "--fail-stock",
                "0.6",
                "--fail-payment",
                "0.6",
            ],
            &["--rate", "1", "--duration", "3", "--settle-timeout=-1"],
            &["--rate", "1", "--duration", "3", "--max-in-flight", "0"],
            &["--rate", "1", "--duration", "3", "--wait-terminal"],
            &["--rate", "1", "--duration", "3", "--products", "0"],
            &["--rate", "1", "--duration", "3", "--customers", "100000"],
            &[
                "--rate",
                "1",
                "--duration",
                "3",
                "--jwt-secret",
                "too short",
            ],
            &["--rate", "1", "--duration", "3", "--jwt-secret", ""],
        ] {
            let config = parse(bad).unwrap();
            assert!(
                matches!(config.plan(), Err(Error::Config(_))),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn a_run_without_a_secret_is_refused_and_the_secret_is_never_shown() {
        let mut config = parse(&["--rate", "1", "--duration", "3"]).unwrap();
        let plan = config.plan().unwrap();
        assert_eq!(plan.secret, SECRET.as_bytes());
        assert!(!format!("{plan:?}").contains(SECRET));
        assert!(!format!("{config:?}").contains(SECRET));
        config.jwt_secret = None;
        match config.plan() {
            Err(Error::Config(message)) => {
                assert!(message.contains("AUTH_JWT_SECRET"), "{message}")
            }
            other => panic!("a run without a secret was planned: {other:?}"),
        }
    }

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
