//! The whole system as separate processes: the four service binaries started against fresh
//! databases and a fresh vhost, with the same environment variables as `compose.yaml`.
//! Instances can be killed (`SIGKILL`), terminated (`SIGTERM`) and restarted, and a service may
//! run several replicas.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use crate::rabbit::{RabbitCluster, RabbitNode};
use crate::{TestDatabase, TestVhost};

/// One of the four services.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Svc {
    /// order-svc.
    Order,
    /// inventory-svc.
    Inventory,
    /// payment-svc.
    Payment,
    /// notify-svc.
    Notify,
}

impl Svc {
    /// All four, in start order.
    pub const ALL: [Svc; 4] = [Svc::Order, Svc::Inventory, Svc::Payment, Svc::Notify];

    /// The service it is.
    pub fn service(self) -> contracts::Service {
        match self {
            Svc::Order => contracts::Service::Order,
            Svc::Inventory => contracts::Service::Inventory,
            Svc::Payment => contracts::Service::Payment,
            Svc::Notify => contracts::Service::Notify,
        }
    }

    /// The binary's (and package's) name.
    pub fn binary(self) -> &'static str {
        match self {
            Svc::Order => "order-svc",
            Svc::Inventory => "inventory-svc",
            Svc::Payment => "payment-svc",
            Svc::Notify => "notify-svc",
        }
    }
}

/// Which build of the binaries to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// `target/debug` (tests).
    Debug,
    /// `target/release` (benchmarks, long chaos runs).
    Release,
}

/// How to start the system.
#[derive(Clone, Debug)]
pub struct SystemConfig {
    /// `ORDER_SAGA_TIMEOUT_SECS`.
    pub saga_timeout_secs: u64,
    /// `ORDER_SAGA_RESEND_AFTER_MS` (default 5000, as in production): how long a command that
    /// awaits its confirmation waits before it is re-sent. Tests that lose commands shorten it
    /// so that the re-sends come within the test's patience.
    pub resend_after_ms: u64,
    /// `PAYMENT_DEMO_BALANCE` (0, the default, opens no account for strangers: fund accounts
    /// through the operator API).
    pub demo_balance: i64,
    /// Replicas per service (0 = not started now; start it later with [`System::start_instance`]).
    pub replicas: HashMap<Svc, usize>,
    /// The build to run.
    pub profile: Profile,
    /// `RUST_LOG` of the services.
    pub log_filter: String,
    /// Where the broker runs.
    pub broker: BrokerPlacement,
    /// More variables for every service (`OTEL_EXPORTER_OTLP_ENDPOINT`, say), after the
    /// ones compose sets.
    pub extra_environment: Vec<(String, String)>,
}

/// Where a [`System`]'s broker runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BrokerPlacement {
    /// A vhost of the machine's shared broker (other tests use it too: no fault may stop it).
    Shared,
    /// A node of the system's own, which faults may restart, kill or put under an alarm.
    OwnNode,
    /// A cluster of this many nodes of the system's own; every service is given every node's
    /// URL (`AMQP_URL` with commas).
    Cluster(usize),
}

/// The broker nodes a [`System`] owns, if any.
enum OwnBroker {
    Node(RabbitNode),
    Cluster(RabbitCluster),
}

impl Default for SystemConfig {
    fn default() -> Self {
        SystemConfig {
            saga_timeout_secs: 30,
            resend_after_ms: 5_000,
            demo_balance: 0,
            replicas: Svc::ALL.iter().map(|&svc| (svc, 1)).collect(),
            profile: Profile::Debug,
            log_filter: "info".into(),
            broker: BrokerPlacement::Shared,
            extra_environment: Vec::new(),
        }
    }
}

/// The workspace root (where `Cargo.toml` with `[workspace]` is).
pub fn workspace_root() -> PathBuf {
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    dir.pop();
    dir
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Builds the four binaries once per process (a no-op when they are up to date) and returns
/// their directory.
pub fn build_binaries(profile: Profile) -> PathBuf {
    static DEBUG: OnceLock<PathBuf> = OnceLock::new();
    static RELEASE: OnceLock<PathBuf> = OnceLock::new();
    let built = match profile {
        Profile::Debug => &DEBUG,
        Profile::Release => &RELEASE,
    };
    built
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut command = std::process::Command::new(cargo);
            command
                .current_dir(workspace_root())
                .args(["build", "--quiet"]);
            if profile == Profile::Release {
                command.arg("--release");
            }
            for svc in Svc::ALL {
                command.args(["-p", svc.binary()]);
            }
            let status = command.status().expect("run cargo build");
            assert!(status.success(), "building the service binaries failed");
            target_dir().join(match profile {
                Profile::Debug => "debug",
                Profile::Release => "release",
            })
        })
        .clone()
}

/// Waits until `base_url` answers `/health/ready` with 200; `false` after `timeout`.
pub async fn wait_until_ready(base_url: &str, timeout: Duration) -> bool {
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if let Ok(response) = http.get(format!("{base_url}/health/ready")).send().await
            && response.status() == reqwest::StatusCode::OK
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// One running (or stopped) process of a service.
struct Instance {
    svc: Svc,
    port: u16,
    child: Option<Child>,
}

/// The running system and its private infrastructure, torn down when dropped.
pub struct System {
    config: SystemConfig,
    binaries: PathBuf,
    log_dir: PathBuf,
    databases: HashMap<Svc, TestDatabase>,
    vhost: TestVhost,
    instances: Vec<Instance>,
    http: reqwest::Client,
    /// Declared after the vhost: fields drop in order, and the vhost is deleted through the
    /// nodes before they stop.
    own_broker: Option<OwnBroker>,
}

/// `ALTER DATABASE … WITH ALLOW_CONNECTIONS …` as the server's superuser (from the `postgres`
/// database, which stays reachable whatever happens to the test database).
async fn allow_connections(database: &str, allowed: bool) {
    use sea_orm::ConnectionTrait;
    let admin = sea_orm::Database::connect(crate::postgres_admin_url("postgres"))
        .await
        .expect("connect to PostgreSQL as admin");
    admin
        .execute_unprepared(&format!(
            "ALTER DATABASE \"{database}\" WITH ALLOW_CONNECTIONS {allowed}"
        ))
        .await
        .expect("change whether the database allows connections");
    admin.close().await.expect("close the admin connection");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

impl System {
    /// Creates the databases and the vhost, builds the binaries and starts the configured
    /// replicas; returns once every started instance is ready.
    pub async fn start(config: SystemConfig) -> System {
        let binaries = build_binaries(config.profile);
        let mut databases = HashMap::new();
        for svc in [Svc::Order, Svc::Inventory, Svc::Payment] {
            databases.insert(svc, TestDatabase::create().await);
        }
        let (vhost, own_broker) = match config.broker {
            BrokerPlacement::Shared => (TestVhost::create(), None),
            BrokerPlacement::OwnNode => {
                let node = RabbitNode::start();
                (TestVhost::create_on(&node), Some(OwnBroker::Node(node)))
            }
            BrokerPlacement::Cluster(size) => {
                let cluster = RabbitCluster::start(size);
                (
                    TestVhost::create_on_cluster(&cluster),
                    Some(OwnBroker::Cluster(cluster)),
                )
            }
        };
        let log_dir = target_dir().join("system-logs").join(vhost.name());
        std::fs::create_dir_all(&log_dir).expect("create the log directory");
        let mut system = System {
            config,
            binaries,
            log_dir,
            databases,
            vhost,
            instances: Vec::new(),
            http: reqwest::Client::new(),
            own_broker,
        };
        for svc in Svc::ALL {
            for _ in 0..system.config.replicas.get(&svc).copied().unwrap_or(1) {
                system.add_instance(svc).await;
            }
        }
        system
    }

    /// Adds and starts one more instance of `svc`; returns its index among `svc`'s instances.
    pub async fn add_instance(&mut self, svc: Svc) -> usize {
        self.instances.push(Instance {
            svc,
            port: free_port(),
            child: None,
        });
        let replica = self
            .instances
            .iter()
            .filter(|instance| instance.svc == svc)
            .count()
            - 1;
        self.start_instance(svc, replica).await;
        replica
    }

    fn instance_mut(&mut self, svc: Svc, replica: usize) -> &mut Instance {
        self.instances
            .iter_mut()
            .filter(|instance| instance.svc == svc)
            .nth(replica)
            .expect("no such instance")
    }

    /// The environment `compose.yaml` gives `svc`, pointed at this system's infrastructure.
    pub fn environment(&self, svc: Svc, port: u16) -> Vec<(String, String)> {
        let mut env = vec![
            (
                "AMQP_URL".to_owned(),
                self.vhost.service_urls(svc.service()).join(","),
            ),
            (
                "AMQP_PRODUCER_USERS".to_owned(),
                self.vhost.producer_users_env(),
            ),
            ("AUTH_JWT_SECRET".to_owned(), crate::auth::SECRET.to_owned()),
            ("HTTP_ADDR".to_owned(), format!("127.0.0.1:{port}")),
            ("RUST_LOG".to_owned(), self.config.log_filter.clone()),
            ("LOG_FORMAT".to_owned(), "json".to_owned()),
            ("STARTUP_TIMEOUT_SECS".to_owned(), "60".to_owned()),
        ];
        if let Some(database) = self.databases.get(&svc) {
            env.push(("DATABASE_URL".to_owned(), database.url().to_owned()));
            // Small pools: many instances and tests share the server's 100 connections.
            env.push(("DATABASE_MAX_CONNECTIONS".to_owned(), "6".to_owned()));
        }
        match svc {
            Svc::Order => env.extend([
                (
                    "ORDER_SAGA_TIMEOUT_SECS".to_owned(),
                    self.config.saga_timeout_secs.to_string(),
                ),
                (
                    "ORDER_SAGA_RESEND_AFTER_MS".to_owned(),
                    self.config.resend_after_ms.to_string(),
                ),
            ]),
            Svc::Payment => env.push((
                "PAYMENT_DEMO_BALANCE".to_owned(),
                self.config.demo_balance.to_string(),
            )),
            Svc::Inventory | Svc::Notify => {}
        }
        env.extend(self.config.extra_environment.iter().cloned());
        env
    }

    /// (Re)starts a stopped instance and waits until it is ready.
    pub async fn start_instance(&mut self, svc: Svc, replica: usize) {
        self.spawn_instance(svc, replica);
        self.wait_ready(svc, replica, Duration::from_secs(60)).await;
    }

    /// (Re)starts a stopped instance without waiting for it (see [`wait_until_ready`]).
    pub fn spawn_instance(&mut self, svc: Svc, replica: usize) {
        let port = self.instance_mut(svc, replica).port;
        let env = self.environment(svc, port);
        let log_path = self.log_dir.join(format!("{}-{replica}.log", svc.binary()));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("open the service log");
        let child = Command::new(self.binaries.join(svc.binary()))
            .envs(env)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn the service");
        self.instance_mut(svc, replica).child = Some(child);
    }

    /// Waits until the instance answers `/health/ready` with 200; panics (pointing at its log)
    /// after `timeout` or if it exits.
    pub async fn wait_ready(&mut self, svc: Svc, replica: usize, timeout: Duration) {
        let url = format!("{}/health/ready", self.instance_url(svc, replica));
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Ok(response) = self.http.get(&url).send().await
                && response.status() == reqwest::StatusCode::OK
            {
                return;
            }
            let log = self.log_dir.join(format!("{}-{replica}.log", svc.binary()));
            if let Some(child) = self.instance_mut(svc, replica).child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "{} exited with {status} while starting; see {}",
                    svc.binary(),
                    log.display()
                );
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} was not ready within {timeout:?}; see {}",
                svc.binary(),
                log.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `SIGKILL`: the instance dies at once, mid-whatever.
    pub async fn kill(&mut self, svc: Svc, replica: usize) {
        if let Some(mut child) = self.instance_mut(svc, replica).child.take() {
            let _ = child.kill().await;
        }
    }

    /// `SIGTERM`, then waits for the exit; returns its status.
    pub async fn terminate(&mut self, svc: Svc, replica: usize) -> Option<ExitStatus> {
        let mut child = self.instance_mut(svc, replica).child.take()?;
        if let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        match tokio::time::timeout(Duration::from_secs(30), child.wait()).await {
            Ok(Ok(status)) => Some(status),
            _ => {
                let _ = child.kill().await;
                None
            }
        }
    }

    /// Whether the instance is running.
    pub fn is_running(&self, svc: Svc, replica: usize) -> bool {
        self.instances
            .iter()
            .filter(|instance| instance.svc == svc)
            .nth(replica)
            .is_some_and(|instance| instance.child.is_some())
    }

    /// The base URL of one instance.
    pub fn instance_url(&self, svc: Svc, replica: usize) -> String {
        let port = self
            .instances
            .iter()
            .filter(|instance| instance.svc == svc)
            .nth(replica)
            .map(|instance| instance.port)
            .expect("no such instance");
        format!("http://127.0.0.1:{port}")
    }

    /// The base URL of `svc`'s first instance.
    pub fn url(&self, svc: Svc) -> String {
        self.instance_url(svc, 0)
    }

    /// How many instances `svc` has (running or not).
    pub fn replicas(&self, svc: Svc) -> usize {
        self.instances
            .iter()
            .filter(|instance| instance.svc == svc)
            .count()
    }

    /// The database of a service that has one.
    pub fn database(&self, svc: Svc) -> &TestDatabase {
        self.databases
            .get(&svc)
            .expect("notify-svc has no database")
    }

    /// Takes `svc`'s database away as an outage would: no new connection is allowed
    /// (`ALLOW_CONNECTIONS false`) and every open one is terminated, so the service's pool
    /// can neither keep nor reopen a connection until [`System::give_database_back`].
    pub async fn take_database_away(&self, svc: Svc) {
        let database = self.database(svc);
        // Refuse new connections first: a pool reconnecting between the two statements would
        // otherwise keep the database.
        allow_connections(database.name(), false).await;
        database.terminate_connections().await;
    }

    /// Ends the outage of [`System::take_database_away`]: `svc`'s database accepts connections
    /// again.
    pub async fn give_database_back(&self, svc: Svc) {
        allow_connections(self.database(svc).name(), true).await;
    }

    /// The system's vhost.
    pub fn vhost(&self) -> &TestVhost {
        &self.vhost
    }

    /// The broker node of the system's own ([`BrokerPlacement::OwnNode`]).
    pub fn broker_node(&mut self) -> Option<&mut RabbitNode> {
        match &mut self.own_broker {
            Some(OwnBroker::Node(node)) => Some(node),
            Some(OwnBroker::Cluster(_)) | None => None,
        }
    }

    /// The broker cluster of the system's own ([`BrokerPlacement::Cluster`]).
    pub fn broker_cluster(&mut self) -> Option<&mut RabbitCluster> {
        match &mut self.own_broker {
            Some(OwnBroker::Cluster(cluster)) => Some(cluster),
            Some(OwnBroker::Node(_)) | None => None,
        }
    }

    /// Where the instances' logs are.
    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    /// Terminates every instance (`SIGTERM`) and returns the exit statuses.
    pub async fn shutdown(&mut self) -> Vec<(Svc, Option<ExitStatus>)> {
        let mut statuses = Vec::new();
        let targets: Vec<(Svc, usize)> = Svc::ALL
            .iter()
            .flat_map(|&svc| (0..self.replicas(svc)).map(move |replica| (svc, replica)))
            .collect();
        for (svc, replica) in targets {
            if self.is_running(svc, replica) {
                statuses.push((svc, self.terminate(svc, replica).await));
            }
        }
        statuses
    }
}
