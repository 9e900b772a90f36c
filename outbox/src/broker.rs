//! Connecting to RabbitMQ, and backing off while it is away.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use lapin::options::ConfirmSelectOptions;
use lapin::{Channel, Connection, ConnectionProperties};
use tokio_util::sync::CancellationToken;

use crate::topology::Topology;

/// How long one attempt to open a connection to one node may take: a node that does not answer
/// (stopped, partitioned away) must not keep the others from being tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the broker is, who we are there, and what topology to expect. Cheap to clone.
///
/// The broker may be a cluster: `url` may list one URL per node, separated by commas
/// (`amqp://u:p@rabbit-1:5672/v,amqp://u:p@rabbit-2:5672/v`). Every connection tries the node
/// that answered last first, then the others in turn, so a stopped node costs one failed
/// attempt, not an outage. The URLs must name the same user and vhost.
#[derive(Clone, Debug)]
pub struct Broker {
    urls: Arc<[String]>,
    /// The node to try first: the last one that accepted a connection (shared by clones).
    preferred: Arc<AtomicUsize>,
    user: String,
    topology: Topology,
    queues: Vec<String>,
}

impl Broker {
    /// A broker at `url` (`amqp://user:pass@host:5672/vhost`, or several such URLs separated
    /// by commas for the nodes of a cluster) with the given topology.
    pub fn new(url: impl Into<String>, topology: Topology) -> Broker {
        let url = url.into();
        let urls: Vec<String> = url
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(str::to_owned)
            .collect();
        // AMQP's default user when the URL names none; a URL that does not parse fails at
        // connection time with the parser's reason.
        let user = urls
            .first()
            .and_then(|url| url.parse::<lapin::uri::AMQPUri>().ok())
            .map(|uri| uri.authority.userinfo.username)
            .unwrap_or_else(|| "guest".to_owned());
        Broker {
            urls: urls.into(),
            preferred: Arc::new(AtomicUsize::new(0)),
            user,
            topology,
            queues: Vec::new(),
        }
    }

    /// Opens a connection to the first node that accepts one, starting with the preferred.
    async fn open(&self, properties: ConnectionProperties) -> Result<Connection, lapin::Error> {
        let nodes = self.urls.len();
        let first = self.preferred.load(Ordering::Relaxed);
        let mut last_error = lapin::Error::from(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "no broker URL given",
        ));
        for attempt in 0..nodes {
            let node = (first + attempt) % nodes;
            let connecting = Connection::connect(&self.urls[node], properties.clone());
            match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
                Ok(Ok(connection)) => {
                    self.preferred.store(node, Ordering::Relaxed);
                    return Ok(connection);
                }
                Ok(Err(error)) => last_error = error,
                Err(_elapsed) => {
                    last_error = lapin::Error::from(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!(
                            "broker node {} did not answer within {CONNECT_TIMEOUT:?}",
                            node + 1
                        ),
                    ));
                }
            }
            if nodes > 1 {
                tracing::warn!(node = node + 1, nodes, cause = %last_error, "a broker node refused a connection; trying the next");
            }
        }
        Err(last_error)
    }

    /// The queues this process consumes: checked to exist when the topology cannot be declared
    /// (a provisioned broker whose users have no `configure` right).
    pub fn consuming(mut self, queues: Vec<String>) -> Broker {
        self.queues = queues;
        self
    }

    /// The topology this broker is used with.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// The user we connect as: the AMQP `user_id` of everything we publish (RabbitMQ refuses
    /// a `user_id` other than the connection's user, so receivers can trust it).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Opens a connection named `name` (visible in `rabbitmqctl list_connections client_properties`),
    /// makes sure the topology is there, and returns it.
    ///
    /// First the exchanges and the queues this process consumes are checked passively, which
    /// needs no right and, on a provisioned broker, is all it takes (its service users hold no
    /// `configure` right). If something is missing, the whole topology is declared
    /// (idempotently) where the user may; where it may not, the connection fails naming what is
    /// missing, with a hint to provision the broker.
    pub async fn connect(&self, name: &str) -> Result<Connection, lapin::Error> {
        let properties =
            ConnectionProperties::default().with_connection_name(name.to_owned().into());
        let connection = self.open(properties).await?;
        let missing = match self.topology.verify(&connection, &self.queues).await {
            Ok(()) => return Ok(connection),
            Err(missing) => missing,
        };
        let channel = connection.create_channel().await?;
        match self.topology.declare(&channel).await {
            Ok(()) => {
                // The declaring channel is not needed any more; a failure to close it is harmless.
                let _ = channel.close(200, "topology declared".into()).await;
                Ok(connection)
            }
            Err(error) if is_access_refused(&error) => {
                tracing::error!(%missing, user = %self.user, "the broker's topology is incomplete \
                    and this user may not declare it: provision the broker first (import the \
                    definitions generated by `outbox::provision`, e.g. `sagactl broker provision`)");
                Err(missing)
            }
            Err(error) => Err(error),
        }
    }

    /// A channel in publisher-confirm mode on `connection`.
    pub async fn confirm_channel(connection: &Connection) -> Result<Channel, lapin::Error> {
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(channel)
    }
}

/// Whether the broker refused an operation for lack of permission (AMQP 403).
pub fn is_access_refused(error: &lapin::Error) -> bool {
    use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
    matches!(error.kind(), lapin::ErrorKind::ProtocolError(protocol)
        if matches!(protocol.kind(), AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED)))
}

/// Exponential backoff between reconnection attempts: 100 ms doubling to `max`, with jitter so
/// that replicas do not reconnect in lockstep.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    /// Starts at 100 ms, never waits longer than `max`.
    pub fn new(max: Duration) -> Backoff {
        Backoff {
            next: Duration::from_millis(100),
            max,
        }
    }

    /// Back to the shortest delay, after a success.
    pub fn reset(&mut self) {
        self.next = Duration::from_millis(100);
    }

    /// Sleeps for the next delay, or until `shutdown`; returns `false` if shutdown came first.
    pub async fn wait(&mut self, shutdown: &CancellationToken) -> bool {
        let jitter = Duration::from_nanos(u64::from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|elapsed| elapsed.subsec_nanos() % 100_000_000)
                .unwrap_or(0),
        ));
        let delay = self.next + jitter.min(self.next / 2);
        self.next = (self.next * 2).min(self.max);
        tokio::select! {
            () = tokio::time::sleep(delay) => true,
            () = shutdown.cancelled() => false,
        }
    }
}
