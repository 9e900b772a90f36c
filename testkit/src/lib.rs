//! Test fixtures for the real PostgreSQL and RabbitMQ on this machine: every test gets a fresh
//! database or a fresh RabbitMQ vhost, dropped when the fixture is, so tests run in parallel and
//! leave nothing behind.
//!
//! Where the servers are: `TESTKIT_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432`,
//! a superuser) and `TESTKIT_AMQP_URL` (default `amqp://guest:guest@127.0.0.1:5672`). Vhosts
//! are managed with `rabbitmqctl`, which must be on the `PATH`.
//!
//! Fixtures panic on failure: they only run in tests, where a panic is a failed test.

#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

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
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .expect("create test database");
        admin.close().await.expect("close admin connection");
        // No TLS on loopback: it costs CPU on both ends and protects nothing here.
        let url = format!("{}/{name}?sslmode=disable", postgres_base());
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

/// A RabbitMQ vhost created for one test (with full permissions for the default user) and
/// deleted, with everything in it, when this is dropped.
#[derive(Debug)]
pub struct TestVhost {
    name: String,
    url: String,
}

fn rabbitmqctl(args: &[&str]) -> String {
    let output = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("run rabbitmqctl (is RabbitMQ installed and running?)");
    assert!(
        output.status.success(),
        "rabbitmqctl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

impl TestVhost {
    /// Creates an empty vhost.
    pub fn create() -> TestVhost {
        let name = unique_name("test");
        rabbitmqctl(&["-q", "add_vhost", &name]);
        rabbitmqctl(&[
            "-q",
            "set_permissions",
            "-p",
            &name,
            "guest",
            ".*",
            ".*",
            ".*",
        ]);
        let url = format!("{}/{name}", amqp_base());
        TestVhost { name, url }
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
        let deleted = Command::new("rabbitmqctl")
            .args(["-q", "delete_vhost", &self.name])
            .output();
        if !matches!(&deleted, Ok(output) if output.status.success()) {
            eprintln!("testkit: could not delete vhost {}: {deleted:?}", self.name);
        }
    }
}
