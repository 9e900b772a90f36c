//! A new saga with persistence, a timer and confirmed effects, in one file. Run it with
//! `DATABASE_URL=postgres://… AMQP_URL=amqp://… cargo run -p saga-runtime --example parcel`.
use std::{sync::Arc, time::Duration};

use outbox::runtime::{Infrastructure, Messaging};
use outbox::{NewMessage, Producers, Route, Topology};
use saga_core::{Confirmation, Deadline, Label, Row, Table, labels};
use saga_runtime::{Correlated, EffectContext, JsonMessage, Rejection, Saga, SagaHandler};
use saga_runtime::{SagaMigrator, SagaRuntime, Sweeper};
use sea_orm::TransactionTrait;
use tokio_util::sync::CancellationToken;

labels! { pub enum Parcel { Packed, Shipped, Delivered, Returned } }
labels! { pub enum Heard { CourierBooked, Signed, Refused, TimedOut, BuyerRefunded } }
labels! { pub enum Asked { BookCourier, RefundBuyer } }
use {Asked::*, Heard::*, Parcel::*};

static PARCEL: Table<'static, Parcel, Heard, Asked> = Table {
    name: "Parcel",
    initial: Packed,
    start_effects: &[BookCourier],
    terminal: &[Delivered, Returned],
    rows: &[
        Row::new(Packed, CourierBooked, Shipped, &[]),
        Row::new(Packed, TimedOut, Returned, &[RefundBuyer]),
        Row::new(Shipped, Signed, Delivered, &[]),
        Row::new(Shipped, Refused, Returned, &[RefundBuyer]),
    ],
    ignored: &[
        (Shipped, CourierBooked),
        (Delivered, CourierBooked),
        (Returned, CourierBooked),
        (Returned, BuyerRefunded),
    ],
    // No courier within an hour: the parcel goes back and the buyer is refunded.
    deadlines: &[Deadline::new(
        &[Packed],
        Duration::from_secs(3600),
        TimedOut,
    )],
    // Both requests are re-sent until answered.
    confirmations: &[
        Confirmation::new(BookCourier, &[CourierBooked]),
        Confirmation::new(RefundBuyer, &[BuyerRefunded]),
    ],
};

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct ParcelData {
    address: String,
}

struct ParcelSaga;

impl Saga for ParcelSaga {
    type State = Parcel;
    type Event = Heard;
    type Effect = Asked;
    type Data = ParcelData;
    type Message = JsonMessage;

    fn table(&self) -> &'static Table<'static, Parcel, Heard, Asked> {
        &PARCEL
    }

    fn event_of(&self, message: &JsonMessage) -> Option<Correlated<Heard>> {
        let event = Heard::from_name(&message.message_type)?;
        Some(Correlated {
            instance_id: message.correlation_id,
            event,
        })
    }

    fn messages(
        &self,
        effect: Asked,
        parcel: &EffectContext<'_, Self>,
    ) -> Result<Vec<NewMessage>, Rejection> {
        let body = serde_json::json!({ "address": parcel.data.address });
        let message =
            JsonMessage::new(effect.name(), parcel.instance_id, body).caused_by(parcel.cause);
        Ok(vec![message.into_new_message()])
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (database_url, amqp_url) = (std::env::var("DATABASE_URL")?, std::env::var("AMQP_URL")?);
    // The saga hears replies on queues of its own; requests wait on the couriers' queues.
    let replies = Heard::ALL
        .iter()
        .map(|heard| Route::new(format!("parcels.{heard}"), heard.name()));
    let queues: Vec<String> = replies.clone().map(|route| route.queue).collect();
    let requests = Asked::ALL
        .iter()
        .map(|asked| Route::new(format!("couriers.{asked}"), asked.name()));
    let topology = Topology::new("parcel.events", replies.chain(requests).collect());
    // Who may send the replies: the couriers' broker user.
    let couriers = std::env::var("COURIER_USER").unwrap_or_else(|_| "guest".to_owned());
    let producers: Producers = Heard::ALL
        .iter()
        .map(|heard| (heard.name(), couriers.as_str()))
        .collect();
    let runtime = Arc::new(SagaRuntime::new(ParcelSaga)?);
    let infrastructure = Infrastructure {
        database_url: &database_url,
        amqp_url: &amqp_url,
        startup_timeout: Duration::from_secs(30),
        max_connections: 5,
        max_batch: 16,
        lanes: 2,
    };
    // Database (migrated), broker, consumer with inbox, relay, retention; then the sweeper.
    let handler = SagaHandler::new(runtime.clone());
    let mut messaging = Messaging::start::<SagaMigrator, _, _>(
        "parcels",
        queues,
        topology,
        &producers,
        infrastructure,
        handler,
        &CancellationToken::new(),
    )
    .await?;
    let sweeper =
        Sweeper::new(messaging.db.clone(), messaging.signal.clone()).with_saga(runtime.clone());
    messaging
        .background
        .spawn_producer(|stop| sweeper.run(stop));

    let (transaction, parcel) = (messaging.db.begin().await?, uuid::Uuid::now_v7());
    runtime
        .start(
            &transaction,
            parcel,
            ParcelData {
                address: "1 Main St".into(),
            },
            None,
        )
        .await?;
    transaction.commit().await?;
    messaging.signal.wake();
    println!(
        "parcel {parcel} packed: BookCourier is re-sent until a courier answers; Ctrl-C stops"
    );
    tokio::signal::ctrl_c().await?;
    messaging.background.shutdown().await;
    Ok(())
}
