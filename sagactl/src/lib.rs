//! `sagactl`, the operator's command line of the order system.
//!
//! - `sagactl token --customer <uuid> | --operator [--subject NAME] [--lifetime 1h]` prints a
//!   development token signed with `AUTH_JWT_SECRET` ([`token`]);
//! - `sagactl broker definitions` prints the RabbitMQ definitions (users, permissions, topic
//!   permissions, topology) and `sagactl broker provision` imports them into the local broker
//!   ([`broker`]);
//! - `sagactl dlq list | show | redrive | discard` lists the services' dead letters, shows one
//!   with its headers and payload, sends them back to their queue or deletes them, through the
//!   operator endpoints of every service ([`dlq`]).
//!
//! One module per subcommand: each has its clap arguments and a `run` that returns what to
//! print, so the binary stays a thin shell and the tests can call it without a process.
//! (`dlq` talks HTTP on a Tokio runtime of its own, so its `run` is synchronous like the
//! others'.)
//! Everything the commands read from the environment comes through a [`Lookup`], never from
//! the process environment directly.

pub mod broker;
pub mod dlq;
pub mod token;

/// Reads an environment variable by name; `None` when it is unset or empty.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment as a [`Lookup`]: an empty variable counts as unset, as compose's
/// `VARIABLE: ""` means.
pub fn process_environment(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// The command line.
#[derive(clap::Parser, Debug)]
#[command(
    name = "sagactl",
    version,
    about = "The order system's operator command line"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Print a development token signed with AUTH_JWT_SECRET (HS256).
    Token(token::TokenArgs),
    /// The broker's users, permissions and topology.
    #[command(subcommand)]
    Broker(broker::BrokerCommand),
    /// The services' dead letters: list, show, redrive, discard.
    #[command(subcommand)]
    Dlq(Box<dlq::DlqCommand>),
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `sagactl token` failed.
    #[error(transparent)]
    Token(#[from] token::TokenError),
    /// `sagactl broker …` failed.
    #[error(transparent)]
    Broker(#[from] broker::BrokerError),
    /// `sagactl dlq …` failed.
    #[error(transparent)]
    Dlq(#[from] dlq::DlqError),
}

impl Error {
    /// What to print on standard output before the error: what the command did before it
    /// failed (the answers of the services that did answer `sagactl dlq`, say); usually
    /// nothing.
    pub fn output(&self) -> &str {
        match self {
            Error::Dlq(error) => error.output(),
            Error::Token(_) | Error::Broker(_) => "",
        }
    }
}

impl Cli {
    /// Runs the command, reading the environment through `environment`; returns what to print
    /// on standard output.
    pub fn run(&self, environment: Lookup<'_>) -> Result<String, Error> {
        match &self.command {
            Command::Token(arguments) => Ok(token::run(arguments, environment)?),
            Command::Broker(command) => Ok(broker::run(command, environment)?),
            Command::Dlq(command) => Ok(dlq::run(command, environment)?),
        }
    }
}
