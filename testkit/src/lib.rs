//! Test fixtures for the real PostgreSQL and RabbitMQ on this machine: every test gets a fresh
//! database or a fresh RabbitMQ vhost, dropped when the fixture is, so tests run in parallel and
//! leave nothing behind.
//!
//! Where the servers are: `TESTKIT_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432`,
//! a superuser) and `TESTKIT_AMQP_URL` (default `amqp://guest:guest@127.0.0.1:5672`, an
//! administrator). Vhosts are managed with `rabbitmqctl`, which must be on the `PATH`.
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
pub mod service;
pub mod system;

use std::process::Command;

use sea_orm::{ConnectionTrait, Database, DatabaseConnection};

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
        let admin = Database::connect(format!("{}/postgres", postgres_base()))
            .await
            .expect("admin");
        admin
            .execute_unprepared(&format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = '{}' AND pid <> pg_backend_pid()",
                self.name
            ))
            .await
            .expect("terminate backends");
        admin.close().await.expect("close admin connection");
    }
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

/// A RabbitMQ vhost created for one test, provisioned as production is (one least-privilege
/// user per service, named `<vhost>-<service>`, and the whole topology), with every right for
/// the administrator of [`TestVhost::url`]; deleted with its users when this is dropped.
#[derive(Debug)]
pub struct TestVhost {
    name: String,
    url: String,
    services: Vec<(contracts::Service, outbox::provision::Credentials)>,
}

fn rabbitmqctl(args: &[&str]) -> String {
    rabbitmqctl_with_input(args, None)
}

fn rabbitmqctl_with_input(args: &[&str], input: Option<&str>) -> String {
    use std::io::Write;
    let mut child = Command::new("rabbitmqctl")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run rabbitmqctl (is RabbitMQ installed and running?)");
    let mut stdin = child.stdin.take().expect("rabbitmqctl's stdin");
    if let Some(input) = input {
        stdin
            .write_all(input.as_bytes())
            .expect("write to rabbitmqctl");
    }
    drop(stdin);
    let output = child.wait_with_output().expect("wait for rabbitmqctl");
    assert!(
        output.status.success(),
        "rabbitmqctl {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `amqp_base()` with its user and password replaced.
fn amqp_base_as(user: &str, password: &str) -> String {
    let base = amqp_base();
    let (scheme, rest) = base.split_once("://").unwrap_or(("amqp", &base));
    let host = rest.rsplit_once('@').map(|(_, host)| host).unwrap_or(rest);
    format!("{scheme}://{user}:{password}@{host}")
}

impl TestVhost {
    /// Creates a vhost and provisions it (users, permissions, topic permissions, topology).
    pub fn create() -> TestVhost {
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
        rabbitmqctl_with_input(
            &["-q", "import_definitions", "--format", "json"],
            Some(&definitions),
        );
        rabbitmqctl(&[
            "-q",
            "set_permissions",
            "-p",
            &name,
            admin_user().as_str(),
            ".*",
            ".*",
            ".*",
        ]);
        let url = format!("{}/{name}", amqp_base());
        TestVhost {
            name,
            url,
            services,
        }
    }

    /// The AMQP URL of `service`'s own least-privilege user on this vhost.
    pub fn service_url(&self, service: contracts::Service) -> String {
        let credentials = self.credentials(service);
        format!(
            "{}/{}",
            amqp_base_as(&credentials.user, &credentials.password),
            self.name
        )
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

    /// The AMQP URL of the vhost.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The vhost's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Closes every client connection to the vhost from the broker's side, as a broker restart
    /// or a network cut would. Returns how many were closed.
    pub fn close_connections(&self) -> usize {
        let listing = rabbitmqctl(&[
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
            let _ = Command::new("rabbitmqctl")
                .args(["-q", "close_connection", pid.trim(), "closed by testkit"])
                .output();
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

    /// Every queue of this vhost with its messages (ready and unacknowledged).
    pub fn queue_depths(&self) -> Vec<(String, u64)> {
        let listing = rabbitmqctl(&[
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
            .map(|(name, count)| {
                (
                    name.to_owned(),
                    count.trim().parse().expect("message count"),
                )
            })
            .collect()
    }
}

impl Drop for TestVhost {
    fn drop(&mut self) {
        // In parallel: each rabbitmqctl call is a whole Erlang VM start.
        let mut deletions: Vec<(String, std::io::Result<std::process::Child>)> = Vec::new();
        deletions.push((
            format!("vhost {}", self.name),
            Command::new("rabbitmqctl")
                .args(["-q", "delete_vhost", &self.name])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn(),
        ));
        for (_, credentials) in &self.services {
            deletions.push((
                format!("user {}", credentials.user),
                Command::new("rabbitmqctl")
                    .args(["-q", "delete_user", &credentials.user])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn(),
            ));
        }
        for (what, child) in deletions {
            let deleted = child.and_then(|mut child| child.wait());
            if !matches!(&deleted, Ok(status) if status.success()) {
                eprintln!("testkit: could not delete {what}: {deleted:?}");
            }
        }
    }
}

/// The administrator's user name (of `TESTKIT_AMQP_URL`).
fn admin_user() -> String {
    amqp_base()
        .parse::<lapin::uri::AMQPUri>()
        .map(|uri| uri.authority.userinfo.username)
        .unwrap_or_else(|_| "guest".to_owned())
}
