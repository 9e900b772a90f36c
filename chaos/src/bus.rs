//! The harness's own access to the run's vhost: as its administrator (poison, forgeries, the
//! dead-letter queues) and as each service's least-privilege user (duplicates, which must be
//! published exactly as the producing service's relay publishes them — with its user and its
//! `user_id` — or consumers would dead-letter them as forgeries and prove nothing).

use contracts::Service;
use lapin::options::ConfirmSelectOptions;
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ErrorKind};
use testkit::TestVhost;

/// Where the run's vhost is and who the harness may be there.
#[derive(Clone, Debug)]
pub struct BrokerAccess {
    /// The administrator's URL (every right on the vhost).
    pub admin_url: String,
    /// Each service's URL and broker user.
    pub services: Vec<(Service, String, String)>,
}

impl BrokerAccess {
    /// The URLs and users of `vhost`.
    pub fn of(vhost: &TestVhost) -> BrokerAccess {
        BrokerAccess {
            // Every node's URL, so that the harness reaches a cluster through any node up.
            admin_url: vhost.urls().join(","),
            services: Service::ALL
                .iter()
                .map(|&service| {
                    (
                        service,
                        vhost.service_urls(service).join(","),
                        vhost.service_user(service).to_owned(),
                    )
                })
                .collect(),
        }
    }

    /// The broker user named in a URL (the administrator's, for [`BrokerAccess::admin_url`]).
    pub fn admin_user(&self) -> String {
        outbox::Broker::new(self.admin_url.as_str(), contracts::topology())
            .user()
            .to_owned()
    }

    /// `service`'s URL and user.
    pub fn service(&self, service: Service) -> Option<(&str, &str)> {
        self.services
            .iter()
            .find(|(candidate, _, _)| *candidate == service)
            .map(|(_, url, user)| (url.as_str(), user.as_str()))
    }
}

/// What the broker said to one publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Published {
    /// Confirmed and routed to at least one queue.
    Accepted,
    /// Refused for lack of a right (`ACCESS_REFUSED`) or for a `user_id` that is not the
    /// connection's user (`PRECONDITION_FAILED`): the broker's own protection.
    Refused(String),
    /// Anything else (a cut connection, an unroutable message): proves nothing either way.
    Failed(String),
}

/// One connection with a confirming channel.
pub struct Publisher {
    connection: Connection,
    channel: Channel,
}

impl Publisher {
    /// Connects to `urls` (one node's, or several separated by commas: the first that answers)
    /// named `name` in the broker's connection list.
    pub async fn connect(urls: &str, name: &str) -> Result<Publisher, lapin::Error> {
        let properties =
            ConnectionProperties::default().with_connection_name(name.to_owned().into());
        let connection = connect_any(urls, properties).await?;
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(Publisher {
            connection,
            channel,
        })
    }

    /// Publishes one message (mandatory: an unroutable one is not [`Published::Accepted`])
    /// and waits for the broker's confirmation. A refusal closes the channel: use a new
    /// publisher afterwards.
    pub async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        properties: BasicProperties,
        body: &[u8],
    ) -> Published {
        let confirmed =
            testkit::bus::publish_mandatory(&self.channel, exchange, routing_key, body, properties)
                .await;
        match confirmed {
            Ok(Confirmation::Ack(None)) => Published::Accepted,
            Ok(Confirmation::Ack(Some(returned))) => {
                Published::Failed(format!("unroutable: {}", returned.reply_text.as_str()))
            }
            Ok(other) => Published::Failed(format!("not confirmed: {other:?}")),
            Err(error) => match error.kind() {
                ErrorKind::ProtocolError(amqp)
                    if matches!(
                        amqp.kind(),
                        AMQPErrorKind::Soft(
                            AMQPSoftError::ACCESSREFUSED | AMQPSoftError::PRECONDITIONFAILED
                        )
                    ) =>
                {
                    Published::Refused(amqp.to_string())
                }
                _ => Published::Failed(error.to_string()),
            },
        }
    }

    /// Closes the connection (a failure to close changes nothing).
    pub async fn close(self) {
        let _ = self.channel.close(200, "chaos done".into()).await;
        let _ = self.connection.close(200, "chaos done".into()).await;
    }
}

/// A connection to the first of `urls` (separated by commas) that accepts one.
pub async fn connect_any(
    urls: &str,
    properties: ConnectionProperties,
) -> Result<Connection, lapin::Error> {
    let mut last_error = None;
    for url in urls.split(',') {
        match Connection::connect(url, properties.clone()).await {
            Ok(connection) => return Ok(connection),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        lapin::Error::from(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "no broker URL",
        ))
    }))
}
