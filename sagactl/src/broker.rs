//! `sagactl broker`: the broker's users, permissions, topic permissions and topology, generated
//! by [`outbox::provision::Provisioning`] from `contracts` (who consumes what, who produces
//! what: [`contracts::Service::account`]) and its [`outbox::Topology`] ([`contracts::topology()`]).
//!
//! ```text
//! sagactl broker definitions [--vhost /] [--development] [--administrator saga-admin | --no-administrator]
//! sagactl broker provision   [--vhost /] [--development] [--administrator saga-admin | --no-administrator]
//! ```
//!
//! `definitions` prints the RabbitMQ definitions document, for `load_definitions` at boot (as
//! compose does with `deploy/rabbitmq/definitions.json`) or for `rabbitmqctl
//! import_definitions`. `provision` imports it into the broker of this machine with
//! `rabbitmqctl import_definitions`, creating the vhost if it is missing.
//!
//! **Users.** One per service, named after the service unless `AMQP_PRODUCER_USERS` (the
//! variable the services read, `service=user,…`) renames some; and an administrator (tag
//! `administrator`, every right on the vhost), `saga-admin` unless `--administrator` names
//! another or `--no-administrator` leaves it out.
//!
//! **Passwords.** From [`password_variable`] (`BROKER_PASSWORD_ORDER_SVC`, …) and
//! [`ADMIN_PASSWORD`] (`BROKER_ADMIN_PASSWORD`), each hashed with a random salt; or, with
//! `--development`, the published development passwords ([`development_password`]: `dev-`
//! and the user name) with salts derived from the user names, so that the output is the same
//! on every run — the checked-in `deploy/rabbitmq/definitions.json` is exactly that output.
//! `--development` reads no environment variable at all, `AMQP_PRODUCER_USERS` included.

use std::io::Write as _;
use std::process::{Command, Stdio};

use contracts::{ProducerUsers, Service};
use outbox::provision::{Account, Credentials, Provisioning, Salt};
use serde_json::Value;

use crate::Lookup;

/// The administrator's user name unless `--administrator` names another.
pub const DEFAULT_ADMINISTRATOR: &str = "saga-admin";
/// The variable of the administrator's password.
pub const ADMIN_PASSWORD: &str = "BROKER_ADMIN_PASSWORD";
/// The variable that renames service users, as the services read it.
pub const PRODUCER_USERS: &str = "AMQP_PRODUCER_USERS";

/// The broker subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum BrokerCommand {
    /// Print the RabbitMQ definitions document (users, permissions, topic permissions,
    /// exchanges, queues, bindings) as JSON.
    Definitions(ProvisioningArgs),
    /// Import the definitions into the broker running on this machine with `rabbitmqctl
    /// import_definitions` (creates the vhost if it is missing; updates existing users).
    Provision(ProvisioningArgs),
}

/// What to provision.
#[derive(clap::Args, Debug)]
pub struct ProvisioningArgs {
    /// The vhost.
    #[arg(long, default_value = "/")]
    pub vhost: String,
    /// Use the published development passwords (`dev-<user>`) and reproducible salts, as
    /// compose does, instead of BROKER_PASSWORD_* variables; reads no environment variable.
    /// Never for a broker that anyone else can reach.
    #[arg(long)]
    pub development: bool,
    /// The administrator's user name (tag administrator, every right on the vhost), whose
    /// password is BROKER_ADMIN_PASSWORD.
    #[arg(long, default_value = DEFAULT_ADMINISTRATOR, value_name = "USER")]
    pub administrator: String,
    /// Provision no administrator (the broker has one already, e.g. the local `guest`).
    #[arg(long, conflicts_with = "administrator")]
    pub no_administrator: bool,
}

/// Why the broker could not be provisioned.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// Password variables are unset or empty.
    #[error(
        "set {}: the broker users' passwords (or pass --development for the published \
         development passwords)",
        .0.join(", ")
    )]
    MissingPasswords(Vec<String>),
    /// `AMQP_PRODUCER_USERS` does not parse.
    #[error("{PRODUCER_USERS}: {0}")]
    ProducerUsers(#[from] contracts::InvalidProducerUsers),
    /// The vhost name is empty.
    #[error("--vhost must not be empty")]
    EmptyVhost,
    /// The administrator's name is empty or is also a service's user.
    #[error("--administrator {0}: {1}")]
    Administrator(String, &'static str),
    /// The document could not be written as JSON.
    #[error("cannot write the definitions as JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// `rabbitmqctl` could not be run.
    #[error("cannot run rabbitmqctl (is RabbitMQ installed on this machine and on the PATH?): {0}")]
    Rabbitmqctl(std::io::Error),
    /// `rabbitmqctl import_definitions` failed.
    #[error("rabbitmqctl import_definitions failed ({status}): {output}")]
    Import {
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it printed.
        output: String,
    },
}

/// The variable of `service`'s broker password: `BROKER_PASSWORD_` and the service's name in
/// capitals with `_` for `-` (`BROKER_PASSWORD_ORDER_SVC`, …).
pub fn password_variable(service: Service) -> String {
    format!(
        "BROKER_PASSWORD_{}",
        service.name().to_ascii_uppercase().replace('-', "_")
    )
}

/// The published development password of a broker user: `dev-` and its name. compose.yaml,
/// scripts/run-local.sh and `deploy/rabbitmq/definitions.json` use these.
pub fn development_password(user: &str) -> String {
    format!("dev-{user}")
}

/// Runs a broker subcommand; returns what to print.
pub fn run(command: &BrokerCommand, environment: Lookup<'_>) -> Result<String, BrokerError> {
    match command {
        BrokerCommand::Definitions(arguments) => {
            let definitions = provisioning(arguments, environment)?.definitions();
            Ok(format!("{}\n", serde_json::to_string_pretty(&definitions)?))
        }
        BrokerCommand::Provision(arguments) => {
            let provisioning = provisioning(arguments, environment)?;
            import(&provisioning.definitions())?;
            Ok(summary(&provisioning))
        }
    }
}

/// What `arguments` and the environment ask to provision.
///
/// # Errors
/// [`BrokerError`] naming every password variable that is missing, or the argument at fault.
pub fn provisioning(
    arguments: &ProvisioningArgs,
    environment: Lookup<'_>,
) -> Result<Provisioning, BrokerError> {
    if arguments.vhost.is_empty() {
        return Err(BrokerError::EmptyVhost);
    }
    let administrator = match arguments.no_administrator {
        true => None,
        false => Some(arguments.administrator.as_str()),
    };
    let users = match arguments.development {
        true => ProducerUsers::default(),
        false => match environment(PRODUCER_USERS) {
            Some(overrides) => ProducerUsers::parse(&overrides)?,
            None => ProducerUsers::default(),
        },
    };
    if let Some(name) = administrator {
        if name.is_empty() {
            return Err(BrokerError::Administrator(
                name.to_owned(),
                "must not be empty",
            ));
        }
        if Service::ALL
            .iter()
            .any(|&service| users.user(service) == name)
        {
            return Err(BrokerError::Administrator(
                name.to_owned(),
                "is a service's user; the administrator must be a user of its own",
            ));
        }
    }
    // Every password at once, so that one error names every missing variable.
    let mut missing = Vec::new();
    let mut password = |variable: String, user: &str| match arguments.development {
        true => development_password(user),
        false => match environment(&variable) {
            Some(password) => password,
            None => {
                missing.push(variable);
                String::new()
            }
        },
    };
    let accounts: Vec<Account> = Service::ALL
        .iter()
        .map(|&service| {
            let user = users.user(service);
            service.account(Credentials {
                user: user.to_owned(),
                password: password(password_variable(service), user),
            })
        })
        .collect();
    let administrator = administrator.map(|name| Credentials {
        user: name.to_owned(),
        password: password(ADMIN_PASSWORD.to_owned(), name),
    });
    if !missing.is_empty() {
        return Err(BrokerError::MissingPasswords(missing));
    }
    Ok(Provisioning {
        vhost: arguments.vhost.clone(),
        accounts,
        administrator,
        topology: contracts::topology(),
        salt: match arguments.development {
            true => Salt::FromUserName,
            false => Salt::Random,
        },
    })
}

/// `rabbitmqctl import_definitions` with the document on standard input.
fn import(definitions: &Value) -> Result<(), BrokerError> {
    let mut child = Command::new("rabbitmqctl")
        .args(["-q", "import_definitions", "--format", "json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(BrokerError::Rabbitmqctl)?;
    let written = match child.stdin.take() {
        // Dropping stdin after the write closes it, which tells rabbitmqctl the document ended.
        Some(mut stdin) => stdin.write_all(definitions.to_string().as_bytes()),
        None => Ok(()),
    };
    let output = child.wait_with_output().map_err(BrokerError::Rabbitmqctl)?;
    if !output.status.success() {
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        return Err(BrokerError::Import {
            status: output.status,
            output: printed.trim().to_owned(),
        });
    }
    // A failed write with a successful exit would be an import of a truncated document, which
    // rabbitmqctl refuses; report the write only if it somehow did not.
    written.map_err(BrokerError::Rabbitmqctl)
}

/// What `provision` did, for the operator.
fn summary(provisioning: &Provisioning) -> String {
    let definitions = provisioning.definitions();
    let count = |key: &str| definitions[key].as_array().map_or(0, Vec::len);
    let mut users: Vec<String> = provisioning
        .accounts
        .iter()
        .map(|account| account.credentials.user.clone())
        .collect();
    if let Some(administrator) = &provisioning.administrator {
        users.push(format!("{} (administrator)", administrator.user));
    }
    let example_user = provisioning
        .accounts
        .first()
        .map_or("order-svc", |account| account.credentials.user.as_str());
    let mut text = format!(
        "Provisioned vhost {vhost} of the local broker: users {users}; {exchanges} exchanges, \
         {queues} queues, {bindings} bindings.\n\
         Each service connects as its own user, e.g. \
         AMQP_URL=amqp://{example_user}:<password>@127.0.0.1:5672/{path}\n",
        vhost = provisioning.vhost,
        users = users.join(", "),
        exchanges = count("exchanges"),
        queues = count("queues"),
        bindings = count("bindings"),
        path = percent_encode(&provisioning.vhost),
    );
    if provisioning.administrator.is_none() {
        text.push_str(&format!(
            "No administrator was provisioned: if the vhost is new, give yours its rights with \
             rabbitmqctl set_permissions -p '{}' <user> '.*' '.*' '.*'\n",
            provisioning.vhost
        ));
    }
    text
}

/// `text` as one URL path segment (`/` becomes `%2F`, the AMQP URL of the default vhost).
fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                encoded.push(char::from(byte));
            }
            _ => encoded.push_str(&format!("%{byte:02X}")),
        }
    }
    encoded
}
