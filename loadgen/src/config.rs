//! The command line (also the configuration of [`crate::run`]) and its validation into a plan.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, Parser};

use crate::rss::{self, Watched};
use crate::{Error, Mix, Shape, Stop, report, setup};

/// The command line, which is also the configuration of [`crate::run`].
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
                  (HdrHistogram, nearest-rank to 0.1 %; open loop: from each order's intended send \
                  time, so that no latency is hidden by a generator or a server that falls \
                  behind), outcome counts and, per window, the resident memory of the processes \
                  it watches. Exits 0 when every created order reached the intended terminal \
                  state, 1 otherwise."
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
    /// Write charts (throughput, latency over time, latency histogram, resident memory) as SVG
    /// to this file.
    #[arg(long, value_name = "PATH")]
    pub svg: Option<PathBuf>,
    /// Width of the report's windows: per window, the orders sent (by intended send time in
    /// the open loop), completed and cancelled, their latency percentiles and the watched
    /// processes' memory at its end. The table lists them when there are at least two.
    #[arg(long, value_name = "SECS", default_value_t = report::DEFAULT_WINDOW_SECS)]
    pub window_secs: f64,
    /// Sample this process's resident memory (VmRSS, from /proc) once a second while the run
    /// lasts and report it as NAME; repeatable. Linux: elsewhere the report has no memory and
    /// says why.
    #[arg(long = "watch-process", value_name = "NAME=PID")]
    pub watch_processes: Vec<Watched>,
    /// Watch every process with a DIR/NAME.pid file, reported as NAME, as --watch-process
    /// NAME=PID would (scripts/run-local.sh writes such files in target/run-local).
    #[arg(long, value_name = "DIR")]
    pub watch_pid_dir: Option<PathBuf>,
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

/// A validated [`Config`].
#[derive(Clone, PartialEq)]
pub(crate) struct Plan {
    pub(crate) shape: Shape,
    pub(crate) stop: Stop,
    pub(crate) mix: Mix,
    pub(crate) settle: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) secret: Vec<u8>,
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
pub(crate) const TOKEN_MARGIN: Duration = Duration::from_secs(24 * 3600);

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
    pub(crate) fn plan(&self) -> Result<Plan, Error> {
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
        seconds("window-secs", self.window_secs, false)?;
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

    pub(crate) fn load(&self) -> report::Load {
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
            window_secs: self.window_secs,
        }
    }
}

/// The processes whose memory a run samples: `--watch-process` and those of `--watch-pid-dir`,
/// by name, each name once; warnings about pid files that name no process.
pub(crate) fn watched(config: &Config) -> Result<(Vec<Watched>, Vec<String>), Error> {
    let mut processes = config.watch_processes.clone();
    let mut warnings = Vec::new();
    if let Some(dir) = &config.watch_pid_dir {
        let (found, why) = rss::pid_dir(dir)?;
        processes.extend(found);
        warnings.extend(why);
    }
    processes.sort();
    if let Some(pair) = processes
        .windows(2)
        .find(|pair| pair[0].name == pair[1].name)
    {
        return Err(Error::Config(format!(
            "two processes to watch are named {} (pids {} and {}): give each its own name",
            pair[0].name, pair[0].pid, pair[1].pid
        )));
    }
    Ok((processes, warnings))
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
        assert_eq!(config.window_secs, 60.0);
        assert!(config.watch_processes.is_empty() && config.watch_pid_dir.is_none());
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
            &["--rate", "1", "--duration", "3", "--window-secs", "0"],
            &["--rate", "1", "--duration", "3", "--window-secs=-60"],
            &["--rate", "1", "--duration", "3", "--window-secs", "inf"],
            &["--rate", "1", "--duration", "3", "--window-secs", "NaN"],
        ] {
            let config = parse(bad).unwrap();
            assert!(
                matches!(config.plan(), Err(Error::Config(_))),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn processes_to_watch_are_named_once() {
        let config = parse(&[
            "--rate",
            "1",
            "--duration",
            "3",
            "--watch-process",
            "payment-svc=42",
            "--watch-process=order-svc=7",
            "--window-secs",
            "0.5",
        ])
        .unwrap();
        assert_eq!(config.window_secs, 0.5);
        assert!(config.plan().is_ok());
        let (processes, warnings) = watched(&config).unwrap();
        let names: Vec<(&str, u32)> = processes
            .iter()
            .map(|process| (process.name.as_str(), process.pid))
            .collect();
        assert_eq!(names, [("order-svc", 7), ("payment-svc", 42)]);
        assert!(warnings.is_empty());

        let twice = parse(&[
            "--rate",
            "1",
            "--duration",
            "3",
            "--watch-process",
            "order-svc=7",
            "--watch-process",
            "order-svc=8",
        ])
        .unwrap();
        assert!(
            matches!(watched(&twice), Err(Error::Config(message)) if message.contains("order-svc"))
        );
        for bad in ["order-svc", "order-svc=x", "=7"] {
            let args = ["--rate", "1", "--duration", "3", "--watch-process", bad];
            assert!(parse(&args).is_err(), "{bad} was accepted");
        }
        let mut missing = config.clone();
        missing.watch_pid_dir = Some(PathBuf::from("/nonexistent/loadgen/pid/dir"));
        assert!(matches!(watched(&missing), Err(Error::Read { .. })));
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
}
