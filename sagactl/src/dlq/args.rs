//! The arguments of `sagactl dlq …` as clap parses them, and the checks clap cannot make
//! (a blank value), run before any request.

use contracts::Service;
use service_kit::dead_letters::MAX_LIMIT;

use super::DlqError;

/// How long a service has to answer unless `--timeout` says otherwise. A listing reads every
/// queue's dead letters and waits a moment at the end of each, so it takes a few seconds.
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 30;
/// How many dead letters a listing asks each service for unless `--limit` says otherwise (the
/// services' own default).
pub const DEFAULT_LIMIT: u32 = 100;

/// A service, as `--service` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ServiceName {
    /// order-svc.
    #[value(alias = "order-svc")]
    Order,
    /// inventory-svc.
    #[value(alias = "inventory-svc")]
    Inventory,
    /// payment-svc.
    #[value(alias = "payment-svc")]
    Payment,
    /// notify-svc.
    #[value(alias = "notify-svc")]
    Notify,
}

impl ServiceName {
    /// The service.
    pub fn service(self) -> Service {
        match self {
            ServiceName::Order => Service::Order,
            ServiceName::Inventory => Service::Inventory,
            ServiceName::Payment => Service::Payment,
            ServiceName::Notify => Service::Notify,
        }
    }
}

/// Where the services are, and as whom to ask them.
#[derive(clap::Args, Debug, Default)]
#[command(next_help_heading = "Connection")]
pub struct Connection {
    /// order-svc's base URL [default: ORDER_SVC_URL, else http://localhost:8080].
    #[arg(long, value_name = "URL")]
    pub order_url: Option<String>,
    /// inventory-svc's base URL [default: INVENTORY_SVC_URL, else http://localhost:8081].
    #[arg(long, value_name = "URL")]
    pub inventory_url: Option<String>,
    /// payment-svc's base URL [default: PAYMENT_SVC_URL, else http://localhost:8082].
    #[arg(long, value_name = "URL")]
    pub payment_url: Option<String>,
    /// notify-svc's base URL [default: NOTIFY_SVC_URL, else http://localhost:8083].
    #[arg(long, value_name = "URL")]
    pub notify_url: Option<String>,
    /// An operator's bearer token [default: SAGACTL_TOKEN, which keeps it out of the process
    /// list; else one minted for 5 minutes from AUTH_JWT_SECRET, as `sagactl token --operator`
    /// does].
    #[arg(long, value_name = "JWT")]
    pub token: Option<String>,
    /// How many seconds each service has to answer.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = DEFAULT_TIMEOUT_SECONDS,
        value_parser = clap::value_parser!(u64).range(1..),
    )]
    pub timeout: u64,
}

/// The arguments of `sagactl dlq list`.
#[derive(clap::Args, Debug)]
pub struct ListArgs {
    /// Ask only this service (order, inventory, payment or notify); repeat for several.
    #[arg(long = "service", value_name = "SERVICE")]
    pub services: Vec<ServiceName>,
    /// Only this queue's dead letters, e.g. inventory-svc.OrderCreated (asks its service only).
    #[arg(long, value_name = "QUEUE")]
    pub queue: Option<String>,
    /// Only those of this message type, e.g. OrderCreated.
    #[arg(long = "type", value_name = "TYPE")]
    pub message_type: Option<String>,
    /// Only those whose reason contains this text (ignoring case).
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// At most this many dead letters from each service (1–1000).
    #[arg(
        long,
        value_name = "N",
        default_value_t = DEFAULT_LIMIT,
        value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_LIMIT)),
    )]
    pub limit: u32,
    /// Print each service's answer as JSON, in an object keyed by service.
    #[arg(long)]
    pub json: bool,
    /// Where the services are, and as whom to ask them.
    #[command(flatten)]
    pub connection: Connection,
}

/// The arguments of `sagactl dlq show`.
#[derive(clap::Args, Debug)]
pub struct ShowArgs {
    /// The queue it was dead-lettered from, e.g. inventory-svc.OrderCreated (its prefix names
    /// the service to ask).
    #[arg(value_name = "QUEUE")]
    pub queue: String,
    /// Its id, as `sagactl dlq list` shows it.
    #[arg(value_name = "ID")]
    pub id: String,
    /// Print the service's answer as JSON.
    #[arg(long)]
    pub json: bool,
    /// Where the services are, and as whom to ask them.
    #[command(flatten)]
    pub connection: Connection,
}

/// What `sagactl dlq redrive` and `sagactl dlq discard` move.
#[derive(clap::Args, Debug)]
pub struct SelectArgs {
    /// One dead letter: the queue it was dead-lettered from (its prefix names the service)…
    #[arg(
        value_name = "QUEUE",
        requires = "letter_id",
        conflicts_with_all = ["services", "queue", "message_type", "reason", "ids", "all"],
    )]
    pub letter_queue: Option<String>,
    /// …and its id.
    #[arg(value_name = "ID", requires = "letter_queue")]
    pub letter_id: Option<String>,
    /// Ask only this service (order, inventory, payment or notify); repeat for several.
    #[arg(long = "service", value_name = "SERVICE")]
    pub services: Vec<ServiceName>,
    /// Those of this queue, e.g. inventory-svc.OrderCreated (asks its service only).
    #[arg(long, value_name = "QUEUE")]
    pub queue: Option<String>,
    /// Those of this message type, e.g. OrderCreated.
    #[arg(long = "type", value_name = "TYPE")]
    pub message_type: Option<String>,
    /// Those whose reason contains this text (ignoring case).
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Those with this id; repeat for several.
    #[arg(long = "id", value_name = "ID")]
    pub ids: Vec<String>,
    /// Every dead letter of every service asked (of those --service names, if any).
    #[arg(long, conflicts_with_all = ["queue", "message_type", "reason", "ids"])]
    pub all: bool,
    /// Where the services are, and as whom to ask them.
    #[command(flatten)]
    pub connection: Connection,
}

/// Refuses a value given but blank, naming its argument.
pub(super) fn not_empty(name: &'static str, value: Option<&String>) -> Result<(), DlqError> {
    match value {
        Some(value) if value.trim().is_empty() => Err(DlqError::Empty(name)),
        _ => Ok(()),
    }
}
