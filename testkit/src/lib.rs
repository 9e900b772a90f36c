//! Test fixtures for the real PostgreSQL and RabbitMQ on this machine: every test gets a fresh
//! database or a fresh RabbitMQ vhost, dropped when the fixture is, so tests run in parallel and
//! leave nothing behind.
//!
//! Where the servers are: `TESTKIT_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432`,
//! a superuser) and `TESTKIT_AMQP_URL` (default `amqp://guest:guest@127.0.0.1:5672`, an
//! administrator). Vhosts are managed with `rabbitmqctl`; `TESTKIT_RABBITMQCTL` replaces that
//! command for the shared broker (a command prefix, split on whitespace), e.g.
//! `TESTKIT_RABBITMQCTL="docker compose -f deploy/test-servers/compose.yaml exec -T rabbitmq
//! rabbitmqctl"` when RabbitMQ runs in a container.
//!
//! Tests whose faults would disturb every other test on the shared broker (a memory or disk
//! alarm, a broker restart, a node of a cluster stopped) start RabbitMQ nodes and clusters of
//! their own with [`rabbit`]; those need a local RabbitMQ installation (`rabbitmq-server` and
//! `rabbitmqctl` on the `PATH`) whatever `TESTKIT_RABBITMQCTL` says.
//!
//! Services under test run with least privilege, as in production: each test database is owned
//! by a role of its own without superuser rights, and each test vhost is provisioned with one
//! broker user per service from the same definitions that compose loads
//! ([`outbox::provision`]).
//!
//! Fixtures panic on failure: they only run in tests, where a panic is a failed test.

#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

pub mod auth;
pub mod bus;
pub mod client;
pub mod rabbit;
pub mod service;
pub mod system;

use std::process::Command;
use std::time::Duration;

use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};

fn postgres_base() -> String {
    std::env::var("TESTKIT_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// The server URL of `postgres_base()` with the user replaced by `role`.
fn role_base(role: &str) -> String {
    let base = postgres_base();
    let (scheme, rest) = base.split_once("://").unwrap_or(("postgres", &base));
    let host = rest.rsplit_once('@').map(|(_, host)| host).unwrap_or(rest);
    format!("{scheme}://{role}@{host}")
}

/// The administrator's URL of the server (a superuser), for fixtures and fault injection.
pub fn postgres_admin_url(database: &str) -> String {
    format!("{}/{database}?sslmode=disable", postgres_base())
}

fn amqp_base() -> String {
    std::env::var("TESTKIT_AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672".into())
}

/// A unique, lower-case name with `prefix`, fit for a database or vhost.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// A database created for one test and dropped (with its connections) when this is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    url: String,
}

impl TestDatabase {
    /// Creates an empty database.
    pub async fn create() -> TestDatabase {
        let name = unique_name("test");
        let admin = Database::connect(format!("{}/postgres", postgres_base()))
            .await
            .expect("connect to PostgreSQL as admin (is it running on 127.0.0.1:5432?)");
        // The service's own role: it owns its database (so it may migrate and vacuum it) and
        // nothing else. The local server trusts loopback, so no password is needed.
        admin
            .execute_unprepared(&format!(
                "CREATE ROLE \"{name}\" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE"
            ))
            .await
            .expect("create the test role");
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\" OWNER \"{name}\""))
            .await
            .expect("create test database");
        admin.close().await.expect("close admin connection");
        // No TLS on loopback: it costs CPU on both ends and protects nothing here.
        let url = format!("{}/{name}?sslmode=disable", role_base(&name));
        TestDatabase { name, url }
    }

    /// The database's connection URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A new connection pool to the database.
    pub async fn connect(&self) -> DatabaseConnection {
        Database::connect(&self.url)
            .await
            .expect("connect to test database")
    }

    /// Terminates every backend connected to the database, as a database outage would.
    pub async fn terminate_connections(&self) {
        terminate_connections_of(&self.name).await;
    }

    /// The deadlocks PostgreSQL has detected in the database. A backend reports its statistics
    /// as it exits: close every pool first; this waits for their backends to be gone.
    pub async fn deadlocks(&self) -> i64 {
        let db = self.connect().await;
        let others = Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            [self.name.clone().into()],
        );
        for _ in 0..200 {
            let row = db
                .query_one_raw(others.clone())
                .await
                .expect("count backends");
            let count = row.map_or(0, |row| row.try_get_by_index::<i64>(0).unwrap_or(0));
            if count == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let row = db
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT deadlocks FROM pg_stat_database WHERE datname = $1",
                [self.name.clone().into()],
            ))
            .await
            .expect("read the database's statistics")
            .expect("the database has statistics");
        let deadlocks = row.try_get_by_index::<i64>(0).expect("deadlocks");
        db.close().await.expect("close the statistics connection");
        deadlocks
    }
}

/// Processes the batches at once, each on a task of its own, as a consumer's lanes would, and
/// expects every message of every batch handled.
pub async fn handle_together<P>(
    processor: &std::sync::Arc<P>,
    batches: Vec<Vec<outbox::Received<contracts::Envelope<contracts::AnyMessage>>>>,
) where
    P: outbox::Processor<contracts::Envelope<contracts::AnyMessage>>,
{
    let tasks: Vec<_> = batches
        .into_iter()
        .map(|batch| {
            let processor = std::sync::Arc::clone(processor);
            tokio::spawn(async move { processor.process(&batch).await })
        })
        .collect();
    for task in tasks {
        let verdicts = task
            .await
            .expect("the batch's task panicked")
            .expect("the batch could not be processed");
        assert!(
            verdicts
                .iter()
                .all(|verdict| matches!(verdict, outbox::Verdict::Handled)),
            "{verdicts:?}"
        );
    }
}

/// `message`, as a consumer's processor receives it from `queue`: for tests that drive a
/// [`outbox::Processor`] directly.
pub fn received<M: contracts::Message + Clone + Into<contracts::AnyMessage>>(
    queue: &str,
    message: &M,
) -> outbox::Received<contracts::Envelope<contracts::AnyMessage>> {
    let envelope = contracts::Envelope::new(message, None).expect("encode");
    outbox::Received {
        queue: std::sync::Arc::from(queue),
        message: contracts::Envelope {
            message_id: envelope.message_id,
            message_type: envelope.message_type,
            correlation_id: envelope.correlation_id,
            causation_id: envelope.causation_id,
            occurred_at: envelope.occurred_at,
            schema_version: envelope.schema_version,
            payload: message.clone().into(),
        },
        redelivered: false,
        trace: None,
    }
}

/// Terminates every backend connected to the database named `database` (as the server's
/// administrator), as a failing network or a restarting server would. A free function, so that
/// a background task can cut a database whose fixture the test keeps.
pub async fn terminate_connections_of(database: &str) {
    let admin = Database::connect(format!("{}/postgres", postgres_base()))
        .await
        .expect("connect to PostgreSQL as admin");
    admin
        .execute_unprepared(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{database}' AND pid <> pg_backend_pid()"
        ))
        .await
        .expect("terminate backends");
    admin.close().await.expect("close admin connection");
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside the test's runtime, which cannot be blocked on; a thread with a
        // runtime of its own can.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime
                .block_on(async move {
                    let admin = Database::connect(format!("{}/postgres", postgres_base())).await?;
                    admin
                        .execute_unprepared(&format!(
                            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                        ))
                        .await?;
                    admin
                        .execute_unprepared(&format!("DROP ROLE IF EXISTS \"{name}\""))
                        .await?;
                    admin.close().await?;
                    Ok::<_, sea_orm::DbErr>(())
                })
                .map_err(std::io::Error::other)
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!(
                "testkit: could not drop database {}: {dropped:?}",
                self.name
            );
        }
    }
}

/// Which RabbitMQ node a command-line tool (`rabbitmqctl`, `rabbitmq-diagnostics`, …) talks to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum BrokerNode {
    /// The machine's shared broker: its default node, through `TESTKIT_RABBITMQCTL`.
    Shared,
    /// A node of a test's own ([`rabbit::RabbitNode`]), by its name.
    Own(String),
}

/// The exit status with which RabbitMQ's tools say that the node cannot be reached
/// (`EX_UNAVAILABLE`): the node is stopped, so another node of its cluster may answer instead.
pub(crate) const NODE_UNREACHABLE: i32 = 69;

/// Why a RabbitMQ tool failed.
#[derive(Debug)]
pub(crate) struct ToolFailure {
    /// The command as typed, for the message.
    pub(crate) command: String,
    /// The exit status (`None`: killed by a signal).
    pub(crate) status: Option<i32>,
    /// What it printed, stdout then stderr.
    pub(crate) output: String,
}

impl std::fmt::Display for ToolFailure {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "{} failed (exit status {:?}): {}",
            self.command, self.status, self.output
        )
    }
}

impl BrokerNode {
    /// The words that start `tool` aimed at this node. Only the shared broker's `rabbitmqctl`
    /// is configurable (`TESTKIT_RABBITMQCTL`): a broker in a container is reached through
    /// `docker compose exec`, while nodes of a test's own are always local processes.
    fn words(&self, tool: &str) -> Vec<String> {
        match self {
            BrokerNode::Shared if tool == "rabbitmqctl" => std::env::var("TESTKIT_RABBITMQCTL")
                .ok()
                .map(|prefix| {
                    prefix
                        .split_whitespace()
                        .map(str::to_owned)
                        .collect::<Vec<_>>()
                })
                .filter(|words| !words.is_empty())
                .unwrap_or_else(|| vec![tool.to_owned()]),
            BrokerNode::Shared => vec![tool.to_owned()],
            BrokerNode::Own(name) => vec![tool.to_owned(), "-n".to_owned(), name.clone()],
        }
    }

    /// `tool` aimed at this node, ready for its arguments. Every RabbitMQ command of testkit is
    /// built here.
    pub(crate) fn command(&self, tool: &str) -> Command {
        let words = self.words(tool);
        let mut command = Command::new(&words[0]);
        command.args(&words[1..]);
        command
    }

    /// Runs `tool args…` on this node, with `input` on its stdin; its stdout on success.
    pub(crate) fn run(
        &self,
        tool: &str,
        args: &[&str],
        input: Option<&str>,
    ) -> Result<String, ToolFailure> {
        use std::io::Write;
        let command_line = format!("{} {}", self.words(tool).join(" "), args.join(" "));
        let mut child = self
            .command(tool)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| {
                panic!("run {command_line} (is RabbitMQ installed and running?): {error}")
            });
        let mut stdin = child.stdin.take().expect("the tool's stdin");
        if let Some(input) = input {
            stdin
                .write_all(input.as_bytes())
                .unwrap_or_else(|error| panic!("write to {command_line}: {error}"));
        }
        drop(stdin);
        let output = child
            .wait_with_output()
            .unwrap_or_else(|error| panic!("wait for {command_line}: {error}"));
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if output.status.success() {
            return Ok(stdout);
        }
        Err(ToolFailure {
            command: command_line,
            status: output.status.code(),
            output: format!("{stdout}{}", String::from_utf8_lossy(&output.stderr)),
        })
    }
}

/// One node through which a [`TestVhost`] is reached.
#[derive(Clone, Debug)]
pub(crate) struct VhostNode {
    /// Where its `rabbitmqctl` goes.
    pub(crate) cli: BrokerNode,
    /// `amqp://<administrator>:<password>@<host>:<port>`, without a vhost.
    pub(crate) admin_base: String,
}

/// A RabbitMQ vhost created for one test, provisioned as production is (one least-privilege
/// user per service, named `<vhost>-<service>`, and the whole topology), with every right for
/// the administrator of [`TestVhost::url`]; deleted with its users when this is dropped.
///
/// It lives on the machine's shared broker ([`TestVhost::create`]), on a node of the test's own
/// ([`TestVhost::create_on`]) or on a cluster of them ([`TestVhost::create_on_cluster`]).
#[derive(Debug)]
pub struct TestVhost {
    name: String,
    url: String,
    services: Vec<(contracts::Service, outbox::provision::Credentials)>,
    /// The broker's nodes: the first is the one of [`TestVhost::url`]; commands go to the
    /// first that answers.
    nodes: Vec<VhostNode>,
}

/// `base` (`scheme://user:password@host…`) with its user and password replaced.
fn with_user(base: &str, user: &str, password: &str) -> String {
    let (scheme, rest) = base.split_once("://").unwrap_or(("amqp", base));
    let host = rest.rsplit_once('@').map(|(_, host)| host).unwrap_or(rest);
    format!("{scheme}://{user}:{password}@{host}")
}

/// Runs `rabbitmqctl args…` on the first of `nodes` that can be reached: a stopped node of a
/// cluster leaves the others to answer. Any other failure is final.
fn rabbitmqctl_anywhere(
    nodes: &[VhostNode],
    args: &[&str],
    input: Option<&str>,
) -> Result<String, ToolFailure> {
    let mut unreachable = None;
    for node in nodes {
        match node.cli.run("rabbitmqctl", args, input) {
            Err(failure) if failure.status == Some(NODE_UNREACHABLE) => {
                unreachable = Some(failure);
            }
            answered => return answered,
        }
    }
    Err(unreachable.expect("a vhost has at least one node"))
}

impl TestVhost {
    /// Creates a vhost on the machine's shared broker (`TESTKIT_AMQP_URL`,
    /// `TESTKIT_RABBITMQCTL`) and provisions it (users, permissions, topic permissions,
    /// topology).
    pub fn create() -> TestVhost {
        TestVhost::create_at(vec![VhostNode {
            cli: BrokerNode::Shared,
            admin_base: amqp_base(),
        }])
    }

    /// Creates and provisions a vhost on a node of the test's own; every URL points at it.
    pub fn create_on(node: &rabbit::RabbitNode) -> TestVhost {
        TestVhost::create_at(vec![node.vhost_node()])
    }

    /// Creates and provisions a vhost on a cluster of the test's own. [`TestVhost::url`] and
    /// [`TestVhost::service_url`] point at its first node, [`TestVhost::urls`] and
    /// [`TestVhost::service_urls`] at each node in turn.
    pub fn create_on_cluster(cluster: &rabbit::RabbitCluster) -> TestVhost {
        TestVhost::create_at(
            cluster
                .nodes()
                .iter()
                .map(rabbit::RabbitNode::vhost_node)
                .collect(),
        )
    }

    fn create_at(nodes: Vec<VhostNode>) -> TestVhost {
        use outbox::provision::{Credentials, Provisioning, Salt};
        let name = unique_name("test");
        let services: Vec<_> = contracts::Service::ALL
            .iter()
            .map(|&service| {
                let credentials = Credentials {
                    user: format!("{name}-{service}"),
                    password: uuid::Uuid::new_v4().simple().to_string(),
                };
                (service, credentials)
            })
            .collect();
        let provisioning = Provisioning {
            vhost: name.clone(),
            accounts: services
                .iter()
                .map(|(service, credentials)| service.account(credentials.clone()))
                .collect(),
            administrator: None,
            topology: contracts::topology(),
            salt: Salt::Random,
        };
        let definitions = provisioning.definitions().to_string();
        let vhost = TestVhost {
            url: format!("{}/{name}", nodes[0].admin_base),
            name,
            services,
            nodes,
        };
        vhost.rabbitmqctl_with_input(
            &["-q", "import_definitions", "--format", "json"],
            Some(&definitions),
        );
        let administrator = user_of(&vhost.nodes[0].admin_base);
        vhost.rabbitmqctl(&[
            "-q",
            "set_permissions",
            "-p",
            &vhost.name,
            &administrator,
            ".*",
            ".*",
            ".*",
        ]);
        vhost
    }

    fn rabbitmqctl(&self, args: &[&str]) -> String {
        self.rabbitmqctl_with_input(args, None)
    }

    fn rabbitmqctl_with_input(&self, args: &[&str], input: Option<&str>) -> String {
        rabbitmqctl_anywhere(&self.nodes, args, input).unwrap_or_else(|failure| panic!("{failure}"))
    }

    /// The AMQP URL of `service`'s own least-privilege user on this vhost (on the first node of
    /// a cluster).
    pub fn service_url(&self, service: contracts::Service) -> String {
        let credentials = self.credentials(service);
        format!(
            "{}/{}",
            with_user(
                &self.nodes[0].admin_base,
                &credentials.user,
                &credentials.password
            ),
            self.name
        )
    }

    /// [`TestVhost::service_url`] on each node of the broker, in the cluster's order (one URL
    /// for a single node).
    pub fn service_urls(&self, service: contracts::Service) -> Vec<String> {
        let credentials = self.credentials(service);
        self.nodes
            .iter()
            .map(|node| {
                format!(
                    "{}/{}",
                    with_user(&node.admin_base, &credentials.user, &credentials.password),
                    self.name
                )
            })
            .collect()
    }

    /// The broker user of `service` on this vhost.
    pub fn service_user(&self, service: contracts::Service) -> &str {
        &self.credentials(service).user
    }

    fn credentials(&self, service: contracts::Service) -> &outbox::provision::Credentials {
        self.services
            .iter()
            .find(|(candidate, _)| *candidate == service)
            .map(|(_, credentials)| credentials)
            .expect("every service has a user")
    }

    /// The service users as consumers must expect them.
    pub fn producer_users(&self) -> contracts::ProducerUsers {
        contracts::ProducerUsers::parse(&self.producer_users_env()).expect("valid user list")
    }

    /// [`TestVhost::producer_users`] as the value of `AMQP_PRODUCER_USERS`.
    pub fn producer_users_env(&self) -> String {
        self.services
            .iter()
            .map(|(service, credentials)| format!("{service}={}", credentials.user))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The AMQP URL of the vhost, as the administrator (on the first node of a cluster).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// [`TestVhost::url`] on each node of the broker, in the cluster's order.
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|node| format!("{}/{}", node.admin_base, self.name))
            .collect()
    }

    /// The vhost's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Closes every client connection to the vhost from the broker's side, as a broker restart
    /// or a network cut would. Returns how many were closed.
    pub fn close_connections(&self) -> usize {
        let listing = self.rabbitmqctl(&[
            "-q",
            "list_connections",
            "--no-table-headers",
            "pid",
            "vhost",
        ]);
        let mut closed = 0;
        for line in listing.lines() {
            let mut columns = line.split('\t');
            let (Some(pid), Some(vhost)) = (columns.next(), columns.next()) else {
                continue;
            };
            if vhost.trim() != self.name {
                continue;
            }
            // A connection may close by itself meanwhile; that is fine.
            let _ = rabbitmqctl_anywhere(
                &self.nodes,
                &["-q", "close_connection", pid.trim(), "closed by testkit"],
                None,
            );
            closed += 1;
        }
        closed
    }

    /// How many messages are ready in `queue` of this vhost.
    pub fn queue_depth(&self, queue: &str) -> u64 {
        self.queue_depths()
            .into_iter()
            .find(|(name, _)| name == queue)
            .map(|(_, depth)| depth)
            .unwrap_or(0)
    }

    /// Every queue of this vhost with its messages (ready and unacknowledged). The broker
    /// counts them every few seconds, not at once. A queue whose node is down (on a cluster of
    /// the test's own) has no count and is left out.
    pub fn queue_depths(&self) -> Vec<(String, u64)> {
        let listing = self.rabbitmqctl(&[
            "-q",
            "list_queues",
            "-p",
            &self.name,
            "--no-table-headers",
            "name",
            "messages",
        ]);
        listing
            .lines()
            .filter_map(|line| line.split_once('\t'))
            .filter(|(_, count)| !count.trim().is_empty())
            .map(|(name, count)| {
                (
                    name.to_owned(),
                    count.trim().parse().expect("message count"),
                )
            })
            .collect()
    }
}

/// How long dropping a vhost on nodes of the test's own may take. Deleting quorum queues waits
/// for their members: with a node of the cluster down, it takes minutes.
const OWN_NODES_CLEANUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Waits for `child` until `deadline` (`None`: for as long as it takes); kills it at the
/// deadline and returns `Ok(None)`.
fn wait_until(
    child: &mut std::process::Child,
    deadline: Option<std::time::Instant>,
) -> std::io::Result<Option<std::process::ExitStatus>> {
    let Some(deadline) = deadline else {
        return child.wait().map(Some);
    };
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

impl Drop for TestVhost {
    fn drop(&mut self) {
        let shared = self.nodes.iter().all(|node| node.cli == BrokerNode::Shared);
        // A node of the test's own takes what it holds with it when it goes: deleting there is
        // housekeeping for a node that serves several vhosts, not worth a long wait.
        let deadline = (!shared).then(|| std::time::Instant::now() + OWN_NODES_CLEANUP_TIMEOUT);
        let mut pending: Vec<(String, Vec<&str>)> = vec![(
            format!("vhost {}", self.name),
            vec!["-q", "delete_vhost", &self.name],
        )];
        for (_, credentials) in &self.services {
            pending.push((
                format!("user {}", credentials.user),
                vec!["-q", "delete_user", &credentials.user],
            ));
        }
        let mut failures = Vec::new();
        // Node after node: what a stopped node of a cluster could not delete goes to the next.
        for (position, node) in self.nodes.iter().enumerate() {
            if pending.is_empty() {
                break;
            }
            let last = position + 1 == self.nodes.len();
            // In parallel: each rabbitmqctl call is a whole Erlang VM start.
            let running: Vec<_> = pending
                .drain(..)
                .map(|(what, args)| {
                    let child = node
                        .cli
                        .command("rabbitmqctl")
                        .args(&args)
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::null())
                        .spawn();
                    (what, args, child)
                })
                .collect();
            for (what, args, child) in running {
                match child.and_then(|mut child| wait_until(&mut child, deadline)) {
                    Ok(Some(status)) if status.success() => {}
                    Ok(Some(status)) if status.code() == Some(NODE_UNREACHABLE) && !last => {
                        pending.push((what, args));
                    }
                    deleted => failures.push((what, deleted)),
                }
            }
        }
        // Only the shared broker keeps what a test leaves behind.
        if shared {
            for (what, deleted) in failures {
                eprintln!("testkit: could not delete {what}: {deleted:?}");
            }
        }
    }
}

/// The user name of an AMQP URL (`guest` if it has none).
fn user_of(url: &str) -> String {
    url.parse::<lapin::uri::AMQPUri>()
        .map(|uri| uri.authority.userinfo.username)
        .unwrap_or_else(|_| "guest".to_owned())
}
