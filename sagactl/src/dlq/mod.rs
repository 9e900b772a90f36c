//! `sagactl dlq`: the services' dead letters, through the operator endpoints every service
//! serves over its own dead-letter queues ([`service_kit::dead_letters`]).
//!
//! ```text
//! sagactl dlq list    [--service inventory …] [--queue Q] [--type T] [--reason TEXT] [--limit N] [--json]
//! sagactl dlq show    <QUEUE> <ID> [--json]
//! sagactl dlq redrive <QUEUE> <ID>
//! sagactl dlq redrive [--service …] [--queue Q] [--type T] [--reason TEXT] [--id ID …]
//! sagactl dlq redrive [--service …] --all
//! sagactl dlq discard (as redrive)
//! ```
//!
//! `list` prints, per service and queue, how many dead letters wait, then the dead letters that
//! match (`--json`: each service's answer as it came, keyed by service). `show` prints one with
//! its headers and payload. `redrive` sends dead letters back to their queue (safe: every
//! consumer is idempotent), `discard` deletes them; both print how many each service moved. A
//! bulk redrive or discard must say what it selects — a criterion, or `--all` — and is refused
//! before any request otherwise.
//!
//! **Which services.** All four, or those `--service` names (repeatable). A queue is named
//! after its service (`inventory-svc.OrderCreated` is inventory-svc's), so `<QUEUE>` and
//! `--queue` ask only the queue's service.
//!
//! **Where.** Each service's base URL is `--order-url`, `--inventory-url`, `--payment-url` or
//! `--notify-url`; else [`url_variable`] (`ORDER_SVC_URL`, …); else [`default_url`], the port
//! compose publishes on this machine (8080–8083).
//!
//! **As whom.** An operator's bearer token: `--token`, else `SAGACTL_TOKEN`, else one minted for
//! [`TOKEN_LIFETIME_MINUTES`] minutes from `AUTH_JWT_SECRET` exactly as `sagactl token
//! --operator` mints it ([`crate::token`]).
//!
//! **Failures.** Services are asked at once, each with a timeout (`--timeout`). One that cannot
//! be reached, or answers with a problem, is named with its URL and the problem's title and
//! detail; what the others answered is still printed, and the command then fails
//! ([`DlqError::Services`], whose [`DlqError::output`] is that partial output).
//!
//! The code: `args.rs` holds the clap arguments and their checks, `resolve.rs` finds the
//! services to ask, their URLs and the token, `client.rs` asks them over HTTP and says why one
//! gave no usable answer, `render.rs` turns the answers into tables and text. This file holds
//! the subcommands and their error, and runs each: arguments checked, services and token
//! resolved, services asked, answers rendered.

mod args;
mod client;
mod render;
mod resolve;

use contracts::Service;
use reqwest::Method;
use serde_json::{Map, Value, json};

pub use args::{
    Connection, DEFAULT_LIMIT, DEFAULT_TIMEOUT_SECONDS, ListArgs, SelectArgs, ServiceName, ShowArgs,
};
pub use client::{Failure, ServiceFailure};
pub use resolve::{
    TOKEN, TOKEN_LIFETIME_MINUTES, Target, default_url, operator_token, owner, targets,
    url_variable,
};

use crate::Lookup;
use crate::token::{self, TokenError};
use args::not_empty;
use client::{Answers, Plan, Request, execute};
use render::{render_list, render_moved, render_show};
use resolve::url_of;

/// The dead-letter subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum DlqCommand {
    /// List the dead letters of every service (or those named): each queue's count, then the
    /// dead letters that match.
    List(ListArgs),
    /// Show one dead letter with its headers and payload.
    Show(ShowArgs),
    /// Send dead letters back to their queue: one (QUEUE ID), those matching every
    /// criterion given, or --all.
    Redrive(SelectArgs),
    /// Delete dead letters: one (QUEUE ID), those matching every criterion given, or --all.
    Discard(SelectArgs),
}

/// Why `sagactl dlq …` failed.
#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    /// No token was given and none can be minted.
    #[error(
        "no operator token: pass --token, set {TOKEN}, or set {} (the HS256 secret the \
         services verify tokens with) to mint one",
        token::SECRET
    )]
    NoToken,
    /// A token could not be minted from `AUTH_JWT_SECRET`.
    #[error("cannot mint an operator token: {0}")]
    Token(TokenError),
    /// An argument is empty.
    #[error("{0} must not be empty")]
    Empty(&'static str),
    /// A service's URL does not parse.
    #[error(
        "{flag} (or {variable}): `{url}` is not a base URL such as http://localhost:8081: {reason}"
    )]
    InvalidUrl {
        /// The flag that sets it.
        flag: &'static str,
        /// The variable that sets it.
        variable: &'static str,
        /// What was given.
        url: String,
        /// Why it is refused.
        reason: String,
    },
    /// A queue whose name starts with no service's.
    #[error(
        "`{0}` is no service's queue: a queue is named after the service that consumes it, \
         as in inventory-svc.OrderCreated"
    )]
    UnknownQueue(String),
    /// `--queue` names a queue of a service `--service` leaves out.
    #[error("--queue {queue} is {owner}'s, but --service does not name {owner}")]
    QueueOfAnotherService {
        /// The queue.
        queue: String,
        /// Its service.
        owner: Service,
    },
    /// A bulk redrive or discard that says neither what it selects nor `--all`.
    #[error(
        "name what to {action}: <QUEUE> <ID> for one dead letter; --queue, --type, --reason or \
         --id for those matching them; or --all for every one (of the services --service names)"
    )]
    NoSelection {
        /// `redrive` or `discard`.
        action: &'static str,
    },
    /// The HTTP client could not be built.
    #[error("cannot start the HTTP client: {0}")]
    Client(String),
    /// Some services gave no usable answer (the others' are in `output`).
    #[error("{}", failures_text(.failures))]
    Services {
        /// What the services that answered gave, to print before the error.
        output: String,
        /// The services that did not.
        failures: Vec<ServiceFailure>,
    },
}

impl DlqError {
    /// What to print on standard output before the error: what the services that answered
    /// gave (empty for every other error).
    pub fn output(&self) -> &str {
        match self {
            DlqError::Services { output, .. } => output,
            _ => "",
        }
    }
}

/// The failures, one per line when there are several.
fn failures_text(failures: &[ServiceFailure]) -> String {
    match failures {
        [one] => one.to_string(),
        many => {
            let mut text = format!("{} services failed:", many.len());
            for failure in many {
                text.push_str(&format!("\n  {failure}"));
            }
            text
        }
    }
}

/// What to do with what a bulk operation selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    /// Send them back to their queue.
    Redrive,
    /// Delete them.
    Discard,
}

impl Action {
    /// The subcommand, and the endpoint's last segment: `redrive`, `discard`.
    fn verb(self) -> &'static str {
        match self {
            Action::Redrive => "redrive",
            Action::Discard => "discard",
        }
    }

    /// What the output says was done: `redrove`, `discarded`.
    fn past(self) -> &'static str {
        match self {
            Action::Redrive => "redrove",
            Action::Discard => "discarded",
        }
    }
}

/// Runs a dead-letter subcommand; returns what to print. Every argument is checked, and the
/// token found or minted, before the first request.
pub fn run(command: &DlqCommand, environment: Lookup<'_>) -> Result<String, DlqError> {
    match command {
        DlqCommand::List(arguments) => {
            let plan = list_plan(arguments, environment)?;
            let answers = execute(&plan)?;
            finish(answers, |answers| render_list(answers, arguments))
        }
        DlqCommand::Show(arguments) => {
            not_empty("<QUEUE>", Some(&arguments.queue))?;
            not_empty("<ID>", Some(&arguments.id))?;
            let service = owner(&arguments.queue)?;
            let targets = vec![Target {
                service,
                url: url_of(service, &arguments.connection, environment)?,
            }];
            let request = Request::get(&["dead-letters", &arguments.queue, &arguments.id]);
            let plan = Plan::new(targets, &arguments.connection, environment, request)?;
            let answers = execute(&plan)?;
            finish(answers, |answers| render_show(answers, arguments.json))
        }
        DlqCommand::Redrive(arguments) => select(arguments, Action::Redrive, environment),
        DlqCommand::Discard(arguments) => select(arguments, Action::Discard, environment),
    }
}

/// The plan of `list`: the filters and the limit as the query of `GET /dead-letters`.
fn list_plan(arguments: &ListArgs, environment: Lookup<'_>) -> Result<Plan, DlqError> {
    not_empty("--queue", arguments.queue.as_ref())?;
    not_empty("--type", arguments.message_type.as_ref())?;
    not_empty("--reason", arguments.reason.as_ref())?;
    let targets = targets(
        &arguments.services,
        arguments.queue.as_deref(),
        &arguments.connection,
        environment,
    )?;
    let mut request = Request::get(&["dead-letters"]);
    let filters = [
        ("queue", &arguments.queue),
        ("type", &arguments.message_type),
        ("reason", &arguments.reason),
    ];
    for (name, value) in filters {
        if let Some(value) = value {
            request.query.push((name, value.clone()));
        }
    }
    request.query.push(("limit", arguments.limit.to_string()));
    Plan::new(targets, &arguments.connection, environment, request)
}

/// `redrive` and `discard`: one dead letter, or a selection.
fn select(
    arguments: &SelectArgs,
    action: Action,
    environment: Lookup<'_>,
) -> Result<String, DlqError> {
    not_empty("<QUEUE>", arguments.letter_queue.as_ref())?;
    not_empty("<ID>", arguments.letter_id.as_ref())?;
    not_empty("--queue", arguments.queue.as_ref())?;
    not_empty("--type", arguments.message_type.as_ref())?;
    not_empty("--reason", arguments.reason.as_ref())?;
    for id in &arguments.ids {
        not_empty("--id", Some(id))?;
    }
    if let (Some(queue), Some(id)) = (&arguments.letter_queue, &arguments.letter_id) {
        let service = owner(queue)?;
        let targets = vec![Target {
            service,
            url: url_of(service, &arguments.connection, environment)?,
        }];
        let request = match action {
            Action::Redrive => Request {
                method: Method::POST,
                ..Request::get(&["dead-letters", queue, id, "redrive"])
            },
            Action::Discard => Request {
                method: Method::DELETE,
                ..Request::get(&["dead-letters", queue, id])
            },
        };
        let plan = Plan::new(targets, &arguments.connection, environment, request)?;
        let answers = execute(&plan)?;
        return finish(answers, |answers| {
            render_moved(answers, action, Some((queue, id)))
        });
    }
    let criteria = arguments.queue.is_some()
        || arguments.message_type.is_some()
        || arguments.reason.is_some()
        || !arguments.ids.is_empty();
    if !criteria && !arguments.all {
        return Err(DlqError::NoSelection {
            action: action.verb(),
        });
    }
    let targets = targets(
        &arguments.services,
        arguments.queue.as_deref(),
        &arguments.connection,
        environment,
    )?;
    let mut selection = Map::new();
    let criteria = [
        ("queue", &arguments.queue),
        ("type", &arguments.message_type),
        ("reason", &arguments.reason),
    ];
    for (name, value) in criteria {
        if let Some(value) = value {
            selection.insert(name.to_owned(), json!(value));
        }
    }
    if !arguments.ids.is_empty() {
        selection.insert("ids".to_owned(), json!(arguments.ids));
    }
    if arguments.all {
        selection.insert("all".to_owned(), json!(true));
    }
    let request = Request {
        method: Method::POST,
        body: Some(Value::Object(selection)),
        ..Request::get(&["dead-letters", action.verb()])
    };
    let plan = Plan::new(targets, &arguments.connection, environment, request)?;
    let answers = execute(&plan)?;
    finish(answers, |answers| render_moved(answers, action, None))
}

/// The output of the services that answered, each decoded as `T` (an answer that does not
/// decode is that service's failure); an error naming the others when there are any.
fn finish<T: serde::de::DeserializeOwned>(
    answers: Answers,
    render: impl FnOnce(&[(Target, Value, T)]) -> String,
) -> Result<String, DlqError> {
    let mut answered = Vec::new();
    let mut failures = Vec::new();
    for (target, answer) in answers {
        let decoded = answer.and_then(|value| {
            serde_json::from_value::<T>(value.clone())
                .map(|decoded| (value, decoded))
                .map_err(|error| Failure::Unreadable(error.to_string()))
        });
        match decoded {
            Ok((value, decoded)) => answered.push((target, value, decoded)),
            Err(failure) => failures.push(ServiceFailure { target, failure }),
        }
    }
    let output = match answered.is_empty() {
        true => String::new(),
        false => render(&answered),
    };
    match failures.is_empty() {
        true => Ok(output),
        false => Err(DlqError::Services { output, failures }),
    }
}
