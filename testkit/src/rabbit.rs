//! RabbitMQ nodes and clusters of a test's own, for faults that would disturb every other test
//! on the machine's shared broker: a memory or disk alarm, a full broker restart, a node of a
//! cluster stopped or killed.
//!
//! A [`RabbitNode`] is a separate `rabbitmq-server` process with a unique name
//! (`saga-<8 hex>@localhost`), AMQP and distribution ports of its own on 127.0.0.1, and its
//! data, logs, pid file and configuration in a directory of its own under
//! `$TMPDIR/testkit-rabbit/`. It has no plugins (no management UI) and lets `guest` in from
//! loopback. It shares the machine's epmd and Erlang cookie with the shared broker and the
//! command-line tools, so `rabbitmqctl -n <name>` reaches it. A [`RabbitCluster`] is several
//! such nodes joined into one cluster.
//!
//! Starting is slow. Measured with RabbitMQ 3.10.8 / Erlang 25 on a two-core machine: a node
//! accepts connections 5 to 7 s after its start (3 to 4 s of Erlang and RabbitMQ's prelaunch,
//! the rest boot steps), up to 16 s while other nodes start too; a graceful restart takes
//! about 7 s, a kill and a start 5 s; a three-node cluster 20 to 25 s (the nodes start in
//! parallel, then join one after the other); a cluster node stops in 2 s and rejoins in 5 to
//! 7 s; dropping a node takes 1.5 s. Share a node or a cluster within a test rather than
//! starting many.
//!
//! Everything is torn down when the fixture is dropped, also when the test panics: the nodes
//! are stopped (killed if they do not stop within a few seconds) and their directories
//! deleted. A test process that is killed cannot do that, nor can Ctrl-C stop its nodes (run
//! as root, Debian's wrapper starts them through `su`, in a session of their own, out of the
//! terminal's reach): the first node that a later test process starts kills the nodes of test
//! processes that are gone and deletes their directories.
//!
//! The methods block (each `rabbitmqctl` call starts an Erlang VM, 0.5 s or more). A test
//! whose own tasks must keep running meanwhile (a service started in the test process, a
//! confirm awaited in a spawned task) runs on a multi-threaded runtime, or wraps the call in
//! `tokio::task::block_in_place`.

use std::collections::BTreeSet;
use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::{BrokerNode, ToolFailure, VhostNode};

/// How long a node may take to start before the test fails. Generous: three nodes starting at
/// once on a loaded two-core machine take several times the 7 s of one.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// How long [`RabbitNode::stop`] waits for a graceful stop (a cluster node hands its quorum
/// queue leaderships over first).
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// How long dropping a node waits for a graceful stop before it kills the node.
const DROP_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// How long an alarm may take to be raised or cleared, or a cluster to see its nodes.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The memory high watermark that raises the memory alarm at once: a fraction of the machine's
/// memory far below what an idle node uses.
const ALARMING_MEMORY_WATERMARK: &str = "0.0000001";

/// RabbitMQ's default memory high watermark, which clears the alarm.
const DEFAULT_MEMORY_WATERMARK: &str = "0.4";

/// A disk free limit larger than any disk, which raises the disk alarm at once.
const ALARMING_DISK_FREE_LIMIT: &str = "1000000GB";

/// RabbitMQ's default disk free limit, which clears the alarm.
const DEFAULT_DISK_FREE_LIMIT: &str = "50MB";

/// The file in a node's directory that names the test process owning it.
const OWNER_FILE: &str = "owner";

/// A RabbitMQ node of a test's own; stopped and deleted when dropped.
#[derive(Debug)]
pub struct RabbitNode {
    /// `saga-<8 hex>@localhost`.
    name: String,
    amqp_port: u16,
    dist_port: u16,
    /// Everything of the node: data, logs, pid file, configuration, console output.
    dir: PathBuf,
    /// The `rabbitmq-server` process while the node runs. On Debian, run as root, it is `su`
    /// running the start script as the `rabbitmq` user; the Erlang VM is its descendant.
    server: Option<Child>,
    /// The Erlang VM's OS process (from the pid file) while the node runs.
    os_pid: Option<Pid>,
}

impl RabbitNode {
    /// Starts a fresh standalone node and waits until it accepts connections (about 7 s).
    pub fn start() -> RabbitNode {
        let mut node = RabbitNode::prepare();
        node.launch();
        node.await_running();
        node
    }

    /// A node with its name, ports, directory and configuration, not started yet. Dropping it
    /// cleans up whatever happened so far, so a start that panics leaves nothing behind.
    fn prepare() -> RabbitNode {
        let base = nodes_base_dir();
        reap_orphans(&base);
        let short_name = format!("saga-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let dir = base.join(&short_name);
        let node = RabbitNode {
            name: format!("{short_name}@localhost"),
            amqp_port: free_port(),
            dist_port: free_port(),
            dir,
            server: None,
            os_pid: None,
        };
        fs::create_dir(&node.dir)
            .unwrap_or_else(|error| panic!("create {}: {error}", node.dir.display()));
        write_file(&node.dir.join(OWNER_FILE), &std::process::id().to_string());
        // The node may run as another user (Debian's scripts switch to `rabbitmq` when run as
        // root): it creates its data and log directories here.
        fs::set_permissions(&node.dir, fs::Permissions::from_mode(0o777))
            .unwrap_or_else(|error| panic!("open up {}: {error}", node.dir.display()));
        fs::create_dir(node.dir.join("conf.d")).expect("create the node's conf.d");
        // Empty: the machine's rabbitmq-env.conf (it names the shared broker's node) must not
        // apply, and every setting of this node comes from the environment of its start.
        write_file(
            &node.dir.join("rabbitmq-env.conf"),
            "# Settings come from the environment; see testkit::rabbit.\n",
        );
        write_file(&node.dir.join("enabled_plugins"), "[].\n");
        // Erlang terms rather than rabbitmq.conf, so there is no .conf file to translate at
        // boot. `guest` may log in from loopback only (RabbitMQ's default, spelled out because
        // every URL of the node relies on it); the listener comes from
        // RABBITMQ_NODE_IP_ADDRESS and RABBITMQ_NODE_PORT.
        write_file(
            &node.dir.join("advanced.config"),
            "[{rabbit, [{loopback_users, [<<\"guest\">>]}]}].\n",
        );
        node
    }

    /// The environment of `rabbitmq-server` for this node. The names are those of RabbitMQ
    /// 3.10's `rabbit_env` (its prelaunch reads them, not only the shell scripts).
    fn environment(&self) -> Vec<(&'static str, String)> {
        let path = |name: &str| self.dir.join(name).display().to_string();
        vec![
            ("RABBITMQ_NODENAME", self.name.clone()),
            ("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1".to_owned()),
            ("RABBITMQ_NODE_PORT", self.amqp_port.to_string()),
            ("RABBITMQ_DIST_PORT", self.dist_port.to_string()),
            ("RABBITMQ_CONF_ENV_FILE", path("rabbitmq-env.conf")),
            // Absent on purpose (see `prepare`), but named so that no system file is read.
            ("RABBITMQ_CONFIG_FILE", path("rabbitmq.conf")),
            (
                "RABBITMQ_CONFIG_FILES",
                format!("{}/*.conf", path("conf.d")),
            ),
            ("RABBITMQ_ADVANCED_CONFIG_FILE", path("advanced.config")),
            ("RABBITMQ_ENABLED_PLUGINS_FILE", path("enabled_plugins")),
            ("RABBITMQ_MNESIA_BASE", path("mnesia")),
            ("RABBITMQ_LOG_BASE", path("log")),
            ("RABBITMQ_PID_FILE", path("pid")),
            // Distribution on loopback only, as the shared broker's (its rabbitmq-env.conf,
            // which this node does not read, says the same through ERL_FLAGS).
            (
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
                "-kernel inet_dist_use_interface {127,0,0,1}".to_owned(),
            ),
        ]
    }

    /// Spawns `rabbitmq-server` in the background, its console output appended to
    /// `console.log`. Not `-detached`: a detached node's early errors (before its log file is
    /// set up) would be lost.
    fn launch(&mut self) {
        let console = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("console.log"))
            .expect("open the node's console log");
        let mut command = Command::new("rabbitmq-server");
        // Whatever the developer's shell says about the shared broker must not leak in.
        for (variable, _) in std::env::vars_os() {
            if variable.to_string_lossy().starts_with("RABBITMQ_") {
                command.env_remove(variable);
            }
        }
        let server = command
            .envs(self.environment())
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(console.try_clone().expect("clone the console log handle"))
            .stderr(console)
            .spawn()
            .unwrap_or_else(|error| {
                panic!("run rabbitmq-server (is RabbitMQ installed locally?): {error}")
            });
        self.server = Some(server);
    }

    /// Waits until the launched node runs RabbitMQ, then learns its OS process. `rabbitmqctl
    /// wait <pid file>` rather than `await_startup`: the latter gives up at once while the new
    /// node is not yet registered with epmd, whereas `wait` waits for the pid file, then for
    /// the node's distribution, then for RabbitMQ's applications.
    fn await_running(&mut self) {
        let pid_file = self.dir.join("pid");
        let timeout = START_TIMEOUT.as_secs().to_string();
        let pid_file_text = pid_file.display().to_string();
        let mut waiter = self
            .cli()
            .command("rabbitmqctl")
            .args(["-q", "wait", "--timeout", &timeout, &pid_file_text])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run rabbitmqctl wait");
        let deadline = Instant::now() + START_TIMEOUT;
        let waited = loop {
            if let Some(status) = waiter.try_wait().expect("poll rabbitmqctl wait") {
                break status;
            }
            let exited = self
                .server
                .as_mut()
                .and_then(|server| server.try_wait().ok().flatten());
            if let Some(status) = exited {
                let _ = waiter.kill();
                let _ = waiter.wait();
                self.server = None;
                panic!(
                    "RabbitMQ node {} exited while starting ({status}){}",
                    self.name,
                    self.diagnosis()
                );
            }
            if Instant::now() > deadline {
                let _ = waiter.kill();
                let _ = waiter.wait();
                panic!(
                    "RabbitMQ node {} did not start within {START_TIMEOUT:?}{}",
                    self.name,
                    self.diagnosis()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        if !waited.success() {
            // It has exited: what it printed is all in its pipes.
            let said = waiter
                .wait_with_output()
                .map(|output| {
                    format!(
                        "{}{}",
                        String::from_utf8_lossy(&output.stdout),
                        String::from_utf8_lossy(&output.stderr)
                    )
                })
                .unwrap_or_default();
            panic!(
                "RabbitMQ node {} did not start ({waited}): {said}{}",
                self.name,
                self.diagnosis()
            );
        }
        let pid = read_pid(&pid_file).unwrap_or_else(|| panic!("no pid in {}", pid_file.display()));
        self.os_pid = Some(pid);
    }

    /// The ends of the node's log and console output, for a failure message.
    fn diagnosis(&self) -> String {
        let log = self.dir.join("log").join(format!("{}.log", self.name));
        let console = self.dir.join("console.log");
        format!(
            "\n--- {} (end) ---\n{}\n--- {} (end) ---\n{}",
            log.display(),
            tail(&log, 40),
            console.display(),
            tail(&console, 20)
        )
    }

    /// The node's name, `saga-<8 hex>@localhost`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The node's AMQP port on 127.0.0.1.
    pub fn amqp_port(&self) -> u16 {
        self.amqp_port
    }

    /// The AMQP URL of the node's default vhost (`/`) as `guest`.
    pub fn amqp_url(&self) -> String {
        format!("{}/%2f", self.admin_base())
    }

    /// `amqp://guest:guest@127.0.0.1:<port>`, without a vhost.
    fn admin_base(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}", self.amqp_port)
    }

    /// How a [`crate::TestVhost`] reaches this node.
    pub(crate) fn vhost_node(&self) -> VhostNode {
        VhostNode {
            cli: self.cli(),
            admin_base: self.admin_base(),
        }
    }

    fn cli(&self) -> BrokerNode {
        BrokerNode::Own(self.name.clone())
    }

    /// The node's directory (data under `mnesia/`, logs under `log/`, `console.log`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the node was started and has not been stopped or killed since.
    pub fn is_running(&self) -> bool {
        self.server.is_some()
    }

    /// `rabbitmqctl -n <node> args…`; its output. Panics with what it said if it fails.
    pub fn ctl(&self, args: &[&str]) -> String {
        self.try_ctl(args)
            .unwrap_or_else(|failure| panic!("{failure}"))
    }

    /// Like [`RabbitNode::ctl`], returning the failure instead (a command against a stopped
    /// node exits with status 69).
    pub fn try_ctl(&self, args: &[&str]) -> Result<String, String> {
        self.cli()
            .run("rabbitmqctl", args, None)
            .map_err(|failure| failure.to_string())
    }

    /// `rabbitmq-diagnostics -n <node> args…`; its output. Panics with what it said if it
    /// fails.
    pub fn diagnostics(&self, args: &[&str]) -> String {
        self.cli()
            .run("rabbitmq-diagnostics", args, None)
            .unwrap_or_else(|failure: ToolFailure| panic!("{failure}"))
    }

    /// The node's resource alarms, as `rabbitmq-diagnostics alarms` words them (`Memory alarm
    /// on node …`, `Free disk space alarm on node …`); empty when there are none.
    pub fn alarms(&self) -> Vec<String> {
        self.diagnostics(&["-q", "alarms"])
            .lines()
            .map(str::trim)
            .filter(|line| line.contains(" alarm on node "))
            .map(str::to_owned)
            .collect()
    }

    /// Raises (`true`) or clears the memory alarm by setting the memory high watermark to a
    /// tiny fraction of the machine's memory (or back to RabbitMQ's default, 0.4); returns once
    /// the node reports the alarm raised or cleared. While it is raised the node blocks every
    /// publishing connection (`connection.blocked`), and publishes wait for their confirms.
    pub fn set_memory_alarm(&self, on: bool) {
        let watermark = match on {
            true => ALARMING_MEMORY_WATERMARK,
            false => DEFAULT_MEMORY_WATERMARK,
        };
        self.ctl(&["-q", "set_vm_memory_high_watermark", watermark]);
        self.await_alarm("Memory alarm", on);
    }

    /// Raises (`true`) or clears the disk alarm by setting the disk free limit above any
    /// disk's size (or back to RabbitMQ's default, 50 MB); returns once the node reports the
    /// alarm raised or cleared. Its effect on publishers is the memory alarm's.
    pub fn set_disk_alarm(&self, on: bool) {
        let limit = match on {
            true => ALARMING_DISK_FREE_LIMIT,
            false => DEFAULT_DISK_FREE_LIMIT,
        };
        self.ctl(&["-q", "set_disk_free_limit", limit]);
        self.await_alarm("Free disk space alarm", on);
    }

    fn await_alarm(&self, alarm: &str, raised: bool) {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            let alarms = self.alarms();
            // In a cluster every node lists every node's alarms: only this node's count here.
            let this_node = format!("{alarm} on node {}", self.name);
            if alarms.iter().any(|line| line.starts_with(&this_node)) == raised {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{alarm} of {} still {} after {SETTLE_TIMEOUT:?}: {alarms:?}",
                self.name,
                if raised { "not raised" } else { "raised" },
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops the node gracefully (`rabbitmqctl stop`) and waits until its process is gone. Its
    /// data stays: [`RabbitNode::start_again`] brings it back. Does nothing if it is not
    /// running.
    pub fn stop(&mut self) {
        if self.server.is_none() {
            return;
        }
        self.ctl(&["-q", "stop"]);
        if !self.await_exit(STOP_TIMEOUT) {
            self.kill();
            panic!(
                "RabbitMQ node {} did not stop within {STOP_TIMEOUT:?}; killed{}",
                self.name,
                self.diagnosis()
            );
        }
    }

    /// Kills the node's Erlang VM (`SIGKILL`), as a crash or a power cut would, and waits until
    /// its process is gone. Does nothing if it is not running.
    pub fn kill(&mut self) {
        if self.server.is_none() {
            return;
        }
        self.kill_vm();
        assert!(
            self.await_exit(STOP_TIMEOUT),
            "the start script of RabbitMQ node {} did not exit after its VM was killed",
            self.name
        );
    }

    /// `SIGKILL` to the Erlang VM, or, when its pid is not known (a start that failed before
    /// the node wrote its pid file), to every process of the node.
    fn kill_vm(&mut self) {
        match self.os_pid.or_else(|| read_pid(&self.dir.join("pid"))) {
            Some(pid) => {
                let _ = kill(pid, Signal::SIGKILL);
            }
            None => kill_node_processes(&self.dir),
        }
    }

    /// Waits up to `timeout` until the node's start script (and so its VM) has exited; `true`
    /// if it has. The node is then not running.
    fn await_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let Some(server) = self.server.as_mut() else {
            return true;
        };
        loop {
            let exited = matches!(server.try_wait(), Ok(Some(_)) | Err(_));
            let vm_gone = self.os_pid.is_none_or(|pid| !is_alive(pid));
            if exited && vm_gone {
                self.server = None;
                self.os_pid = None;
                // A killed node leaves its pid file behind; `rabbitmqctl wait` would read it.
                let _ = fs::remove_file(self.dir.join("pid"));
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the stopped (or killed) node again: same name, ports and data directory, so
    /// durable queues and their persistent messages are back. Waits until it accepts
    /// connections; a node of a cluster rejoins it.
    pub fn start_again(&mut self) {
        assert!(
            self.server.is_none(),
            "RabbitMQ node {} is already running",
            self.name
        );
        self.launch();
        self.await_running();
    }

    /// [`RabbitNode::stop`], then [`RabbitNode::start_again`].
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// Begins a graceful stop without waiting for it (dropping a cluster stops its nodes in
    /// parallel). Never panics.
    fn begin_stop(&self) -> Option<Child> {
        self.server.as_ref()?;
        self.cli()
            .command("rabbitmqctl")
            .args(["-q", "stop"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()
    }

    /// Ends the node whatever its state, for `Drop`: waits for the graceful stop that
    /// `stopping` began, kills the node if it has not stopped within [`DROP_STOP_TIMEOUT`].
    /// Never panics.
    fn finish_stop(&mut self, stopping: Option<Child>) {
        if self.server.is_some() && !self.await_exit(DROP_STOP_TIMEOUT) {
            self.kill_vm();
            if !self.await_exit(Duration::from_secs(10)) {
                eprintln!(
                    "testkit: RabbitMQ node {} (pid {:?}) may still be running",
                    self.name, self.os_pid
                );
            }
        }
        if let Some(mut stopping) = stopping {
            let _ = stopping.kill();
            let _ = stopping.wait();
        }
    }
}

impl Drop for RabbitNode {
    fn drop(&mut self) {
        let stopping = self.begin_stop();
        self.finish_stop(stopping);
        if let Err(error) = fs::remove_dir_all(&self.dir) {
            eprintln!(
                "testkit: could not delete {} of RabbitMQ node {}: {error}",
                self.dir.display(),
                self.name
            );
        }
    }
}

/// Several [`RabbitNode`]s joined into one cluster; every node stopped and deleted when
/// dropped.
#[derive(Debug)]
pub struct RabbitCluster {
    nodes: Vec<RabbitNode>,
}

/// A queue as `rabbitmqctl list_queues --formatter json name leader members` describes it.
#[derive(Debug)]
struct QueueReplicas {
    leader: String,
    members: Vec<String>,
}

impl RabbitCluster {
    /// Starts `size` fresh nodes in parallel, joins the others to the first one after the other
    /// (`stop_app`, `join_cluster`, `start_app`) and waits until every node runs in the
    /// cluster (about 25 s for three). Quorum queues declared afterwards get a member on every
    /// node.
    pub fn start(size: usize) -> RabbitCluster {
        assert!(size > 0, "a cluster has at least one node");
        let mut cluster = RabbitCluster {
            nodes: (0..size).map(|_| RabbitNode::prepare()).collect(),
        };
        for node in &mut cluster.nodes {
            node.launch();
        }
        for node in &mut cluster.nodes {
            node.await_running();
        }
        let seed = cluster.nodes[0].name.clone();
        for node in &cluster.nodes[1..] {
            node.ctl(&["-q", "stop_app"]);
            // No `reset` first: `join_cluster` resets the joining node itself (it must drop
            // its own fresh database to take the cluster's).
            node.ctl(&["-q", "join_cluster", &seed]);
            node.ctl(&["-q", "start_app"]);
        }
        cluster.await_running_nodes(size);
        cluster
    }

    /// How many nodes the cluster has (running or not).
    pub fn size(&self) -> usize {
        self.nodes.len()
    }

    /// Node `index`.
    pub fn node(&self, index: usize) -> &RabbitNode {
        &self.nodes[index]
    }

    /// Node `index`, to stop, kill, restart or alarm it alone.
    pub fn node_mut(&mut self, index: usize) -> &mut RabbitNode {
        &mut self.nodes[index]
    }

    /// Every node, in order.
    pub fn nodes(&self) -> &[RabbitNode] {
        &self.nodes
    }

    /// [`RabbitNode::amqp_url`] of each node, in order.
    pub fn amqp_urls(&self) -> Vec<String> {
        self.nodes.iter().map(RabbitNode::amqp_url).collect()
    }

    /// The index of the node named `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|node| node.name == name)
    }

    /// `rabbitmqctl args…` through the first running node. Panics with what it said if it
    /// fails.
    pub fn ctl(&self, args: &[&str]) -> String {
        self.nodes
            .iter()
            .find(|node| node.is_running())
            .unwrap_or_else(|| panic!("no node of the cluster is running"))
            .ctl(args)
    }

    /// Stops node `index` gracefully; the others go on.
    pub fn stop_node(&mut self, index: usize) {
        self.nodes[index].stop();
    }

    /// Kills node `index` (`SIGKILL`); the others go on.
    pub fn kill_node(&mut self, index: usize) {
        self.nodes[index].kill();
    }

    /// Starts the stopped (or killed) node `index` again and waits until the cluster counts it
    /// among its running nodes.
    pub fn start_node(&mut self, index: usize) {
        self.nodes[index].start_again();
        let running = self.nodes.iter().filter(|node| node.is_running()).count();
        self.await_running_nodes(running);
    }

    /// The names of the nodes the cluster sees running (`cluster_status`, through the first
    /// running node).
    pub fn running_nodes(&self) -> Vec<String> {
        let status = self.ctl(&["-q", "cluster_status", "--formatter", "json"]);
        let status: serde_json::Value = serde_json::from_str(&status)
            .unwrap_or_else(|error| panic!("cluster_status is not JSON ({error}): {status}"));
        status["running_nodes"]
            .as_array()
            .map(|nodes| {
                nodes
                    .iter()
                    .filter_map(|node| node.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn await_running_nodes(&self, count: usize) {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            let running = self.running_nodes();
            if running.len() == count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster sees {running:?} running, not {count} nodes, after {SETTLE_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn replicas(&self, vhost: &str, queue: &str) -> QueueReplicas {
        let listing = self.ctl(&[
            "-q",
            "list_queues",
            "-p",
            vhost,
            "--formatter",
            "json",
            "name",
            "leader",
            "members",
        ]);
        let queues: serde_json::Value = serde_json::from_str(&listing)
            .unwrap_or_else(|error| panic!("list_queues is not JSON ({error}): {listing}"));
        let described = queues
            .as_array()
            .and_then(|queues| queues.iter().find(|described| described["name"] == queue))
            .unwrap_or_else(|| panic!("no queue {queue} in vhost {vhost}: {listing}"));
        QueueReplicas {
            leader: described["leader"].as_str().unwrap_or_default().to_owned(),
            members: described["members"]
                .as_array()
                .map(|members| {
                    members
                        .iter()
                        .filter_map(|member| member.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// The index of the node that leads the quorum queue `queue` of `vhost`, as the cluster
    /// sees it now (`list_queues name leader`). Right after its leader's node stops, a queue
    /// may still name it until a new leader is elected: poll for a change.
    pub fn leader_of(&self, vhost: &str, queue: &str) -> usize {
        let replicas = self.replicas(vhost, queue);
        self.index_of(&replicas.leader).unwrap_or_else(|| {
            panic!("quorum queue {queue} of {vhost} has no leader in the cluster: {replicas:?}")
        })
    }

    /// The indexes of the nodes that hold a member of the quorum queue `queue` of `vhost`, in
    /// order.
    pub fn members_of(&self, vhost: &str, queue: &str) -> Vec<usize> {
        let replicas = self.replicas(vhost, queue);
        let members: BTreeSet<usize> = replicas
            .members
            .iter()
            .filter_map(|member| self.index_of(member))
            .collect();
        members.into_iter().collect()
    }
}

impl Drop for RabbitCluster {
    fn drop(&mut self) {
        // All at once: one after the other, each graceful stop would cost its own seconds. The
        // nodes' own `Drop` then finds them stopped and deletes their directories.
        let stopping: Vec<_> = self.nodes.iter().map(RabbitNode::begin_stop).collect();
        for (node, stopping) in self.nodes.iter_mut().zip(stopping) {
            node.finish_stop(stopping);
        }
    }
}

/// Where the nodes' directories are: `$TMPDIR/testkit-rabbit`, open to every user (a node may
/// run as `rabbitmq`), sticky like `/tmp`.
fn nodes_base_dir() -> PathBuf {
    let base = std::env::temp_dir().join("testkit-rabbit");
    fs::create_dir_all(&base).unwrap_or_else(|error| panic!("create {}: {error}", base.display()));
    let _ = fs::set_permissions(&base, fs::Permissions::from_mode(0o1777));
    base
}

/// Kills the nodes of test processes that are gone (killed before their fixtures' `Drop` could
/// run) and deletes their directories; once per test process.
fn reap_orphans(base: &Path) {
    static REAPED: Once = Once::new();
    REAPED.call_once(|| {
        let Ok(entries) = fs::read_dir(base) else {
            return;
        };
        for entry in entries.flatten() {
            let dir = entry.path();
            let owner = fs::read_to_string(dir.join(OWNER_FILE))
                .ok()
                .and_then(|text| text.trim().parse::<i32>().ok());
            let orphaned = match owner {
                Some(owner) => !is_alive(Pid::from_raw(owner)),
                // Being created right now by another process, or left by a start that
                // failed before naming its owner: only the latter is old.
                None => entry
                    .metadata()
                    .and_then(|metadata| metadata.modified())
                    .is_ok_and(|modified| {
                        modified.elapsed().unwrap_or_default() > Duration::from_secs(600)
                    }),
            };
            if !orphaned {
                continue;
            }
            kill_node_processes(&dir);
            let _ = fs::remove_dir_all(&dir);
        }
    });
}

/// Kills (`SIGKILL`) every process of the node whose directory is `dir` and waits a little
/// for them to go. They are found by their environment, which names the node's data directory:
/// a pid file may be missing, or stale with its number reused. Linux only (`/proc`); elsewhere
/// nothing is found.
fn kill_node_processes(dir: &Path) {
    let marker = format!("RABBITMQ_MNESIA_BASE={}", dir.join("mnesia").display());
    let Ok(processes) = fs::read_dir("/proc") else {
        return;
    };
    let node_processes: Vec<Pid> = processes
        .flatten()
        .filter_map(|process| process.file_name().to_str()?.parse::<i32>().ok())
        .map(Pid::from_raw)
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/environ")).is_ok_and(|environment| {
                environment
                    .split(|&byte| byte == 0)
                    .any(|variable| variable == marker.as_bytes())
            })
        })
        .collect();
    for &pid in &node_processes {
        let _ = kill(pid, Signal::SIGKILL);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while node_processes.iter().any(|&pid| is_alive(pid)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether process `pid` exists (a process of another user counts) and is not a zombie.
fn is_alive(pid: Pid) -> bool {
    if matches!(kill(pid, None), Err(Errno::ESRCH)) {
        return false;
    }
    // A zombie has exited and only waits for its parent to notice.
    let state = fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let (_, after_name) = stat.rsplit_once(')')?;
            after_name.split_whitespace().next().map(str::to_owned)
        });
    state.as_deref() != Some("Z")
}

fn read_pid(path: &Path) -> Option<Pid> {
    fs::read_to_string(path)
        .ok()
        .and_then(|text| text.trim().parse::<i32>().ok())
        .map(Pid::from_raw)
}

fn write_file(path: &Path, contents: &str) {
    fs::write(path, contents).unwrap_or_else(|error| panic!("write {}: {error}", path.display()));
}

/// The last `lines` lines of a text file (a note if it cannot be read).
fn tail(path: &Path, lines: usize) -> String {
    match fs::read_to_string(path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(error) => format!("(unreadable: {error})"),
    }
}

/// A port free on 127.0.0.1 for a node's listener, below the kernel's ephemeral range: a node
/// restarted on the same ports must not find one taken by some outgoing connection meanwhile.
/// Never the same port twice in one test process.
fn free_port() -> u16 {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    // RabbitMQ's own defaults (management, Prometheus, distribution), which some local broker
    // may use.
    const RESERVED: [u16; 5] = [15672, 15674, 15675, 15692, 25672];
    let ephemeral_start = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let low: u16 = 10_000;
    let mut handed_out = HANDED_OUT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if ephemeral_start > low + 1_000 {
        let span = u128::from(ephemeral_start - low);
        for _ in 0..1_000 {
            let offset = u16::try_from(uuid::Uuid::new_v4().as_u128() % span).unwrap_or(0);
            let port = low + offset;
            if RESERVED.contains(&port) || handed_out.contains(&port) {
                continue;
            }
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                handed_out.insert(port);
                return port;
            }
        }
    }
    // No room below the ephemeral range: any free port will do.
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|address| address.port())
            .expect("a free port");
        if handed_out.insert(port) {
            return port;
        }
    }
}
