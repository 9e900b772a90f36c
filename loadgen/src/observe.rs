//! Watching orders end without polling them: a private queue on the broker bound to the
//! terminal events `OrderCompleted` and `OrderCancelled`, whose arrival time ends each order's
//! POST-to-terminal latency.

use std::sync::Arc;

use contracts::{AnyMessage, EXCHANGE, Envelope, MessageType};
use futures::StreamExt;
use lapin::options::{
    BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties, Consumer, ExchangeKind};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::ledger::{Ledger, Terminal, Via};
use crate::{Error, Status};

/// The message types that end an order.
pub const TERMINAL_TYPES: [MessageType; 2] =
    [MessageType::OrderCompleted, MessageType::OrderCancelled];

/// A connection to the broker with a private queue already receiving terminal events.
pub struct Observer {
    connection: Connection,
    consumer: Consumer,
    queue: String,
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Observer")
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

/// A running observer; [`Watching::stop`] ends it.
#[derive(Debug)]
pub(crate) struct Watching {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Observer {
    /// Connects to `amqp_url`, checks that the services' `saga.events` exchange exists there
    /// (a passive declaration: a wrong vhost is an error now, not a run that sees no event),
    /// declares an exclusive auto-delete queue bound to the terminal event types, and starts
    /// consuming. Events published from now on reach the queue.
    pub async fn connect(amqp_url: &str) -> Result<Observer, Error> {
        let amqp = |source| Error::Amqp {
            url: crate::redact(amqp_url),
            source,
        };
        let properties =
            ConnectionProperties::default().with_connection_name("loadgen".to_owned().into());
        let connection = Connection::connect(amqp_url, properties)
            .await
            .map_err(amqp)?;
        let probe = connection.create_channel().await.map_err(amqp)?;
        probe
            .exchange_declare(
                EXCHANGE.into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    passive: true,
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|source| Error::NoExchange {
                url: crate::redact(amqp_url),
                source,
            })?;
        // A failed passive declaration closes its channel; the probe is done either way.
        let _ = probe.close(200, "exchange found".into()).await;
        let channel = connection.create_channel().await.map_err(amqp)?;
        let queue = channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(amqp)?;
        for message_type in TERMINAL_TYPES {
            channel
                .queue_bind(
                    queue.name().clone(),
                    EXCHANGE.into(),
                    message_type.name().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(amqp)?;
        }
        // No acknowledgements: the queue is private and lives as long as this connection, so
        // there is nothing to redeliver to anyone if this process dies.
        let consumer = channel
            .basic_consume(
                queue.name().clone(),
                "loadgen".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(amqp)?;
        Ok(Observer {
            connection,
            consumer,
            queue: queue.name().as_str().to_owned(),
        })
    }

    /// Closes the connection (and so deletes the private queue) without watching.
    pub async fn close(self) {
        let _ = self.connection.close(200, "loadgen done".into()).await;
    }

    /// The private queue's (server-generated) name.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// Records every terminal event in `ledger`, timed against `start`, until stopped.
    pub(crate) fn watch(self, ledger: Arc<Ledger>, start: Instant) -> Watching {
        let (stop, mut stopped) = oneshot::channel();
        let Observer {
            connection,
            mut consumer,
            ..
        } = self;
        let task = tokio::spawn(async move {
            let error = loop {
                let delivery = tokio::select! {
                    _ = &mut stopped => break None,
                    delivery = consumer.next() => delivery,
                };
                let delivery = match delivery {
                    Some(Ok(delivery)) => delivery,
                    Some(Err(error)) => break Some(format!("the event consumer failed: {error}")),
                    None => break Some("the event consumer was closed by the broker".to_owned()),
                };
                let at = start.elapsed();
                match outbox::wire::decode::<Envelope<AnyMessage>>(
                    &delivery.properties,
                    &delivery.data,
                ) {
                    Ok(envelope) => {
                        let (status, reason, total) = match envelope.payload {
                            AnyMessage::OrderCompleted(completed) => {
                                (Status::Completed, None, Some(completed.total.minor_units()))
                            }
                            AnyMessage::OrderCancelled(cancelled) => {
                                (Status::Cancelled, Some(cancelled.reason), None)
                            }
                            _ => {
                                ledger.undecodable();
                                continue;
                            }
                        };
                        let terminal = Terminal {
                            status,
                            at,
                            via: Via::Event,
                            reason,
                            total,
                        };
                        ledger.terminal_event(envelope.correlation_id.as_uuid(), terminal);
                    }
                    Err(_) => ledger.undecodable(),
                }
            };
            ledger.observer_stopped(error);
            // Closing deletes the exclusive queue; a failure to close changes nothing.
            let _ = connection.close(200, "loadgen done".into()).await;
        });
        Watching { stop, task }
    }
}

impl Watching {
    /// Stops consuming, closes the connection and waits for both.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}
