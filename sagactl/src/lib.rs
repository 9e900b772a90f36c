//! `sagactl`, the operator's command line of the order system.
//!
//! - `sagactl token --customer <uuid> | --operator [--subject NAME] [--lifetime 1h]` prints a
//!   development token signed with `AUTH_JWT_SECRET` ([`token`]);
//! - `sagactl broker definitions` prints the RabbitMQ definitions (users, permissions, topic
//!   permissions, topology) and `sagactl broker provision` imports them into the local broker
//!   ([`broker`]).
//!
//! One module per subcommand: each has its clap arguments and a `run` that returns what to
//! print, so the binary stays a thin shell and the tests can call it without a process.
//! Everything the commands read from the environment comes through a [`Lookup`], never from
//! the process environment directly.

pub mod broker;
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
}

impl Cli {
    /// Runs the command, reading the environment through `environment`; returns what to print
    /// on standard output.
    pub fn run(&self, environment: Lookup<'_>) -> Result<String, Error> {
        match &self.command {
            Command::Token(arguments) => Ok(token::run(arguments, environment)?),
            Command::Broker(command) => Ok(broker::run(command, environment)?),
        }
    }
}
