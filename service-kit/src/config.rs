//! Configuration from environment variables, described once per service; every error names the
//! variable.
//!
//! A service declares every variable it reads as a field of one `#[derive(clap::Parser)]`
//! struct, `#[arg(long, env = "NAME", default_value = …)]`, whose doc comment says what the
//! variable means. From that one description come the parse ([`read`]), the list of variables
//! that `compose.yaml` is checked against ([`service_environment`]) and the text `--help` prints
//! ([`describe`]): a variable cannot be read without being documented, or documented without
//! being read. Every variable needs a `long` name too: that is how its value reaches clap.
//!
//! Values come through a [`Lookup`], so tests hand in a map instead of mutating the process
//! environment (`std::env::set_var` is `unsafe` in edition 2024): [`read`] turns each variable
//! the lookup knows into its `--long=value` argument and lets clap parse them, with clap's own
//! reading of the process environment switched off so that nothing else leaks in.
//!
//! An empty value counts as unset: orchestrators often render an unset template variable as the
//! empty string, and "empty" is never a useful address, URL or number.
//!
//! ```
//! use clap::Parser;
//! use service_kit::config::{read, seconds};
//!
//! /// A worker.
//! #[derive(Parser)]
//! struct Variables {
//!     /// The broker.
//!     #[arg(long, env = "AMQP_URL")]
//!     amqp_url: String,
//!     /// How long to wait for the broker at start, in seconds.
//!     #[arg(long, env = "STARTUP_TIMEOUT_SECS", default_value = "60", value_parser = seconds)]
//!     startup_timeout: std::time::Duration,
//! }
//!
//! let lookup = |name: &str| (name == "AMQP_URL").then(|| "amqp://broker".to_owned());
//! let variables: Variables = read(&lookup).unwrap();
//! assert_eq!(variables.startup_timeout.as_secs(), 60);
//!
//! let error = read::<Variables>(&|_: &str| None).err().unwrap();
//! assert_eq!(error.to_string(), "environment variable AMQP_URL is required (it is unset or empty)");
//! ```

use std::fmt::Write as _;
use std::io::Write as _;
use std::num::ParseIntError;
use std::time::Duration;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, Command, Parser};

/// A source of variables: returns the value of the named variable, or `None` when unset.
///
/// A closure over a `HashMap` does for tests:
/// `&|name: &str| variables.get(name).cloned()`.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The variables [`crate::telemetry`] reads, with their defaults and meaning: every service reads
/// them besides those of its own description.
pub const TELEMETRY_VARIABLES: [(&str, &str, &str); 2] = [
    (
        "RUST_LOG",
        crate::telemetry::DEFAULT_FILTER,
        "Which log lines are written: an `EnvFilter` directive list (e.g. `info,order_svc=debug`)",
    ),
    (
        "LOG_FORMAT",
        "text",
        "`text` (for people) or `json` (one object per line, for log stores)",
    ),
];

/// A configuration variable is missing or cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is unset or empty.
    #[error("environment variable {name} is required (it is unset or empty)")]
    Missing {
        /// The variable (or, where either of two will do, both names).
        name: String,
    },
    /// A variable's value (or the default used in its place) does not parse.
    #[error("environment variable {name} has an invalid value {value:?}: {reason}")]
    Invalid {
        /// The variable.
        name: String,
        /// The offending value, as read.
        value: String,
        /// The parser's reason.
        reason: String,
    },
}

impl ConfigError {
    /// The variable the error is about.
    pub fn variable(&self) -> &str {
        match self {
            ConfigError::Missing { name } | ConfigError::Invalid { name, .. } => name,
        }
    }
}

/// Reads the process environment.
///
/// A value that is not valid Unicode is converted lossily, so that the parse error that follows
/// shows it instead of pretending the variable is unset.
pub fn environment_lookup(name: &str) -> Option<String> {
    std::env::var_os(name).map(|value| value.to_string_lossy().into_owned())
}

/// Parses the variables `V` describes, reading them through `lookup`.
///
/// # Errors
/// [`ConfigError::Missing`] for a required variable that is unset or empty;
/// [`ConfigError::Invalid`] for a value (or default) its parser refuses, with the parser's reason.
pub fn read<V: Parser>(lookup: Lookup<'_>) -> Result<V, ConfigError> {
    let description = V::command();
    let mut arguments = Vec::new();
    for (variable, long, _argument) in variable_arguments(&description) {
        match lookup(variable) {
            Some(value) if !value.is_empty() => arguments.push(format!("--{long}={value}")),
            Some(_) | None => {}
        }
    }
    // Without their `env`, the arguments take their values from `arguments` alone: the process
    // environment must not leak into a test's lookup.
    let parser = description
        .clone()
        .no_binary_name(true)
        .mut_args(|argument| argument.env(None::<&'static str>));
    let matches = parser
        .try_get_matches_from(arguments)
        .map_err(|error| config_error(&description, &error))?;
    V::from_arg_matches(&matches).map_err(|error| config_error(&description, &error))
}

/// [`read`] from the process environment, after answering `--help` (or `-h`, the only
/// command-line argument a service takes) with [`describe`] and exiting.
///
/// # Errors
/// As [`read`].
pub fn read_process_environment<V: Parser>() -> Result<V, ConfigError> {
    let arguments: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|argument| argument.to_string_lossy().into_owned())
        .collect();
    match arguments.as_slice() {
        [] => {}
        [flag] if flag == "--help" || flag == "-h" => {
            let text = describe(&V::command());
            match std::io::stdout().lock().write_all(text.as_bytes()) {
                Ok(()) => std::process::exit(0),
                Err(_) => std::process::exit(1),
            }
        }
        // Before this description existed, arguments were ignored silently; a warning at least
        // tells the operator that a flag changes nothing.
        _ => tracing::warn!(
            ?arguments,
            "ignoring command-line arguments: every setting is an environment variable (see --help)"
        ),
    }
    read(&environment_lookup)
}

/// Every variable `description` reads, in the order it declares them.
pub fn variables(description: &'static Command) -> Vec<&'static str> {
    variable_arguments(description)
        .map(|(variable, _long, _argument)| variable)
        .collect()
}

/// Every variable a service reads: those of its `description`, then [`TELEMETRY_VARIABLES`].
pub fn service_environment(description: &'static Command) -> Vec<&'static str> {
    let mut names = variables(description);
    names.extend(TELEMETRY_VARIABLES.map(|(name, _default, _meaning)| name));
    names
}

/// The text `<service> --help` prints: what the service is, then every variable it reads with
/// its default (or that it is required) and its meaning.
pub fn describe(description: &Command) -> String {
    let mut text = String::new();
    let about = match description.get_long_about().or(description.get_about()) {
        Some(about) => format!(": {about}"),
        None => String::new(),
    };
    let _ = writeln!(text, "{}{about}\n", description.get_name());
    let _ = writeln!(
        text,
        "Every setting is an environment variable; an empty value counts as unset.\n"
    );
    for (variable, _long, argument) in variable_arguments(description) {
        let default = argument
            .get_default_values()
            .iter()
            .map(|value| value.to_string_lossy())
            .collect::<Vec<_>>()
            .join(",");
        let meaning = argument
            .get_long_help()
            .or(argument.get_help())
            .map(ToString::to_string)
            .unwrap_or_default();
        write_variable(
            &mut text,
            variable,
            &default,
            argument.is_required_set(),
            &meaning,
        );
    }
    for (variable, default, meaning) in TELEMETRY_VARIABLES {
        write_variable(&mut text, variable, default, false, meaning);
    }
    text
}

fn write_variable(text: &mut String, variable: &str, default: &str, required: bool, meaning: &str) {
    let condition = match (required, default.is_empty()) {
        (true, _) => " (required)".to_owned(),
        (false, true) => String::new(),
        (false, false) => format!(" (default {default})"),
    };
    let _ = writeln!(text, "{variable}{condition}");
    for paragraph in meaning.lines() {
        let mut line = String::new();
        for word in paragraph.split_whitespace() {
            if !line.is_empty() && line.len() + 1 + word.len() > HELP_WIDTH {
                let _ = writeln!(text, "    {line}");
                line.clear();
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        let _ = writeln!(text, "    {line}");
    }
    text.push('\n');
}

/// The width of a line of meaning in [`describe`], after its indent: a terminal's 100 columns.
const HELP_WIDTH: usize = 96;

/// A whole number of seconds, such as `STARTUP_TIMEOUT_SECS=60` (a `value_parser`).
///
/// # Errors
/// The integer parser's, for anything but a non-negative integer.
pub fn seconds(text: &str) -> Result<Duration, ParseIntError> {
    text.parse().map(Duration::from_secs)
}

/// A whole number of seconds, at least 1 (a `value_parser`).
///
/// # Errors
/// For anything but an integer of at least 1.
pub fn positive_seconds(text: &str) -> Result<Duration, String> {
    match text.parse::<u64>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(seconds) => Ok(Duration::from_secs(seconds)),
        Err(error) => Err(error.to_string()),
    }
}

/// The size of a database pool, such as `DATABASE_MAX_CONNECTIONS=10`: at least 1 (a
/// `value_parser`).
///
/// # Errors
/// For anything but an integer of at least 1.
pub fn pool_size(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(size) => Ok(size),
        Err(error) => Err(error.to_string()),
    }
}

/// The (variable, long name, argument) of every argument that is read from a variable: the one
/// filter that reading, listing and describing share, so that they cannot disagree.
fn variable_arguments(description: &Command) -> impl Iterator<Item = (&str, &str, &Arg)> {
    description.get_arguments().filter_map(|argument| {
        let variable = argument.get_env()?.to_str()?;
        Some((variable, argument.get_long()?, argument))
    })
}

/// Turns clap's error into one naming the variable, found from the argument clap names.
fn config_error(description: &Command, error: &clap::Error) -> ConfigError {
    let rendered: Vec<&str> = match error.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(argument)) => vec![argument.as_str()],
        Some(ContextValue::Strings(arguments)) => arguments.iter().map(String::as_str).collect(),
        Some(_) | None => Vec::new(),
    };
    let variable = rendered
        .iter()
        .find_map(|rendered| variable_rendered_as(description, rendered));
    // Only a description's own mistake (an argument without a variable) lands here; its clap
    // name is still better than nothing.
    let name = match (variable, rendered.first()) {
        (Some(variable), _) => variable.to_owned(),
        (None, Some(rendered)) => (*rendered).to_owned(),
        (None, None) => description.get_name().to_owned(),
    };
    if error.kind() == ErrorKind::MissingRequiredArgument {
        return ConfigError::Missing { name };
    }
    let value = match error.get(ContextKind::InvalidValue) {
        Some(ContextValue::String(value)) => value.clone(),
        Some(_) | None => String::new(),
    };
    ConfigError::Invalid {
        name,
        value,
        reason: reason(error),
    }
}

/// The variable of the argument clap renders as `rendered` (`--http-addr <HTTP_ADDR>`).
fn variable_rendered_as<'a>(description: &'a Command, rendered: &str) -> Option<&'a str> {
    variable_arguments(description).find_map(|(variable, long, _argument)| {
        let flag = format!("--{long}");
        let suffix = rendered.strip_prefix(&flag)?;
        match suffix.chars().next() {
            None | Some(' ' | '=' | '[') => Some(variable),
            Some(_) => None,
        }
    })
}

fn reason(error: &clap::Error) -> String {
    // The value parser's own error, when there is one, says best what is wrong.
    if let Some(source) = std::error::Error::source(error) {
        return source.to_string();
    }
    match error.get(ContextKind::ValidValue) {
        Some(ContextValue::Strings(valid)) => format!("expected one of {}", valid.join(", ")),
        Some(_) | None => match error.kind().as_str() {
            Some(kind) => kind.to_owned(),
            None => error.render().to_string(),
        },
    }
}
