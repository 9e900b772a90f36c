//! Embedding proven by a saga no order type touches: saga-core's trip-booking example runs on the
//! runtime against the real PostgreSQL and RabbitMQ, with small simulated suppliers behind the
//! real relay and consumer runner. A hotel request is lost and re-sent, a car desk that does not
//! answer lets the deadline fire, and a late car booking is compensated.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code, unreachable_pub)]
#[path = "../../saga-core/examples/trip_booking.rs"]
mod trip;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use outbox::{
    Broker, ConsumerConfig, ConsumerRunner, Handler, HandlerError, NewMessage, OutboxPublisher,
    OutboxSignal, Producers, PublisherConfig, Route, Topology, TransactionalProcessor,
};
use saga_core::{Deadline, Label, Table};
use saga_runtime::{
    Correlated, EffectContext, JsonMessage, Rejection, Saga, SagaHandler, SagaRuntime, Settings,
    Sweeper,
};
use sea_orm::{DatabaseConnection, DatabaseTransaction, TransactionTrait};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use trip::{Reply, Request, TRIP_BOOKING, Trip};
use uuid::Uuid;

/// One timeline row as `(from, event, to)`.
type PathRow = (Option<Trip>, Option<Reply>, Trip);

const EXCHANGE: &str = "trip.events";
const SAGA_SERVICE: &str = "trip-saga";
const SUPPLIERS: &str = "suppliers";

fn trip_message(kind: &str, trip_id: Uuid, cause: Option<Uuid>) -> NewMessage {
    JsonMessage::new(kind, trip_id, serde_json::json!({ "trip_id": trip_id }))
        .caused_by(cause)
        .into_new_message()
}

/// What the saga keeps of a trip.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct TripData {
    traveller: String,
}

/// The trip saga's whole definition: the table, the correlation, the effects' messages.
struct TripSaga {
    deadline: Duration,
}

impl Saga for TripSaga {
    type State = Trip;
    type Event = Reply;
    type Effect = Request;
    type Data = TripData;
    type Message = JsonMessage;

    fn table(&self) -> &'static Table<'static, Trip, Reply, Request> {
        &TRIP_BOOKING
    }

    fn event_of(&self, message: &JsonMessage) -> Option<Correlated<Reply>> {
        Some(Correlated {
            instance_id: message.correlation_id,
            event: Reply::from_name(&message.message_type)?,
        })
    }

    fn messages(
        &self,
        effect: Request,
        trip: &EffectContext<'_, Self>,
    ) -> Result<Vec<NewMessage>, Rejection> {
        Ok(vec![trip_message(
            effect.name(),
            trip.instance_id,
            trip.cause,
        )])
    }

    fn deadline_after(&self, _deadline: &Deadline<'static, Trip, Reply>) -> Duration {
        self.deadline
    }
}

/// How the simulated suppliers treat a trip.
#[derive(Clone, Copy, Debug, Default)]
struct Policy {
    reject_hotel: bool,
    lose_first_hotel_request: bool,
    car_desk_down: bool,
}

/// The suppliers: they hold and release bookings, answer every request (repeats with the
/// decision already taken), and can be told to lose a message or to stay silent.
#[derive(Default)]
struct Suppliers {
    policies: Mutex<HashMap<Uuid, Policy>>,
    held: Mutex<HashSet<(Uuid, &'static str)>>,
    lost: Mutex<Vec<(Uuid, String)>>,
    car_desk_open: AtomicBool,
}

impl Suppliers {
    /// The reply to a request, if the suppliers answer it now.
    fn answer(&self, message: &JsonMessage) -> Option<&'static str> {
        let request = Request::from_name(&message.message_type)?;
        let trip_id = message.correlation_id;
        let mut policies = self.policies.lock().unwrap();
        let policy = policies.entry(trip_id).or_default();
        let mut held = self.held.lock().unwrap();
        let (resource, reply) = match request {
            Request::BookFlight => ("flight", "FlightConfirmed"),
            Request::BookHotel if policy.lose_first_hotel_request => {
                policy.lose_first_hotel_request = false;
                self.lost
                    .lock()
                    .unwrap()
                    .push((trip_id, message.message_type.clone()));
                return None;
            }
            Request::BookHotel if policy.reject_hotel => return Some("HotelRejected"),
            Request::BookHotel => ("hotel", "HotelConfirmed"),
            Request::BookCar
                if policy.car_desk_down && !self.car_desk_open.load(Ordering::SeqCst) =>
            {
                self.lost
                    .lock()
                    .unwrap()
                    .push((trip_id, message.message_type.clone()));
                return None;
            }
            Request::BookCar => ("car", "CarConfirmed"),
            Request::CancelFlight | Request::CancelHotel | Request::CancelCar => {
                let (resource, reply) = match request {
                    Request::CancelFlight => ("flight", "FlightCancelled"),
                    Request::CancelHotel => ("hotel", "HotelCancelled"),
                    _ => ("car", "CarCancelled"),
                };
                held.remove(&(trip_id, resource));
                return Some(reply);
            }
        };
        held.insert((trip_id, resource));
        Some(reply)
    }
}

struct SupplierHandler(Arc<Suppliers>);

impl Handler<JsonMessage> for SupplierHandler {
    async fn handle(
        &self,
        transaction: &DatabaseTransaction,
        message: &JsonMessage,
    ) -> Result<(), HandlerError> {
        let Some(reply) = self.0.answer(message) else {
            return Ok(());
        };
        let answer = trip_message(reply, message.correlation_id, Some(message.id));
        outbox::enqueue_all(transaction, &[answer]).await?;
        Ok(())
    }
}

fn queue(service: &str, message_type: &str) -> String {
    format!("{service}.{message_type}")
}

fn topology() -> Topology {
    let mut routes = Vec::new();
    for reply in Reply::ALL {
        if !matches!(reply, Reply::TravellerGaveUp | Reply::TimedOut) {
            routes.push(Route::new(queue(SAGA_SERVICE, reply.name()), reply.name()));
        }
    }
    for request in Request::ALL {
        routes.push(Route::new(queue(SUPPLIERS, request.name()), request.name()));
    }
    Topology::new(EXCHANGE, routes)
}

struct TripSystem {
    db: DatabaseConnection,
    signal: OutboxSignal,
    runtime: Arc<SagaRuntime<TripSaga>>,
    suppliers: Arc<Suppliers>,
    shutdown: CancellationToken,
    _database: testkit::TestDatabase,
    _vhost: testkit::TestVhost,
}

impl TripSystem {
    async fn start() -> TripSystem {
        let database = testkit::TestDatabase::create().await;
        let vhost = testkit::TestVhost::create();
        let db = sea_orm::Database::connect(database.url()).await.unwrap();
        outbox::migrate::<saga_runtime::SagaMigrator>(&db)
            .await
            .unwrap();
        let settings = Settings {
            resend_after: Duration::from_millis(800),
            resend_max: Duration::from_secs(2),
            ..Settings::default()
        };
        let runtime = Arc::new(
            SagaRuntime::new(TripSaga {
                deadline: Duration::from_secs(5),
            })
            .unwrap()
            .with_settings(settings),
        );
        let topology = topology();
        // Everything here connects as the vhost's administrator, so it sends every type.
        let producers: Producers = topology
            .routes
            .iter()
            .map(|route| (route.message_type.clone(), "guest".to_owned()))
            .collect();
        let signal = OutboxSignal::new();
        let shutdown = CancellationToken::new();
        let broker = Broker::new(vhost.url(), topology.clone());
        let publisher = OutboxPublisher::new(
            db.clone(),
            broker.clone(),
            signal.clone(),
            PublisherConfig::default(),
        );
        tokio::spawn(publisher.run(shutdown.clone()));

        let suppliers = Arc::new(Suppliers::default());
        let consumers = [
            (SAGA_SERVICE, None),
            (SUPPLIERS, Some(Arc::clone(&suppliers))),
        ];
        for (service, supplier) in consumers {
            let queues: Vec<String> = topology
                .routes
                .iter()
                .filter(|route| route.queue.starts_with(&format!("{service}.")))
                .map(|route| route.queue.clone())
                .collect();
            let config = ConsumerConfig {
                producers: producers.clone(),
                connection_name: service.to_owned(),
                ..ConsumerConfig::default()
            };
            let broker = Broker::new(vhost.url(), topology.clone());
            match supplier {
                None => {
                    let processor = TransactionalProcessor::new(
                        db.clone(),
                        SagaHandler::new(Arc::clone(&runtime)),
                        signal.clone(),
                    );
                    let runner = ConsumerRunner::new(broker, queues, processor, config);
                    tokio::spawn(runner.run(shutdown.clone()));
                }
                Some(suppliers) => {
                    let processor = TransactionalProcessor::new(
                        db.clone(),
                        SupplierHandler(suppliers),
                        signal.clone(),
                    );
                    let runner = ConsumerRunner::new(broker, queues, processor, config);
                    tokio::spawn(runner.run(shutdown.clone()));
                }
            }
        }
        let sweeper = Sweeper::new(db.clone(), signal.clone())
            .with_saga(Arc::clone(&runtime))
            .interval(Duration::from_millis(100));
        tokio::spawn(sweeper.run(shutdown.clone()));
        TripSystem {
            db,
            signal,
            runtime,
            suppliers,
            shutdown,
            _database: database,
            _vhost: vhost,
        }
    }

    async fn book(&self, traveller: &str, policy: Policy) -> Uuid {
        let trip_id = Uuid::now_v7();
        self.suppliers
            .policies
            .lock()
            .unwrap()
            .insert(trip_id, policy);
        let transaction = self.db.begin().await.unwrap();
        self.runtime
            .start(
                &transaction,
                trip_id,
                TripData {
                    traveller: traveller.to_owned(),
                },
                None,
            )
            .await
            .unwrap();
        transaction.commit().await.unwrap();
        self.signal.wake();
        trip_id
    }

    /// Waits until the trip is in `state` with no effect outstanding.
    async fn settled(&self, trip_id: Uuid, state: Trip) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let instance = self.runtime.instance(&self.db, trip_id).await.unwrap();
            let effects = self.runtime.effects(&self.db, trip_id).await.unwrap();
            let outstanding: Vec<_> = effects
                .iter()
                .filter(|effect| effect.is_outstanding())
                .collect();
            if instance.as_ref().map(|trip| trip.state) == Some(state) && outstanding.is_empty() {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "trip {trip_id} did not settle in {state}: {instance:?}, outstanding {outstanding:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `(effect, attempts)` of every effect the trip sent, in the order first sent.
    async fn attempts(&self, trip_id: Uuid) -> Vec<(Request, u32)> {
        let effects = self.runtime.effects(&self.db, trip_id).await.unwrap();
        effects
            .iter()
            .map(|effect| (effect.effect, effect.attempts))
            .collect()
    }

    async fn path(&self, trip_id: Uuid) -> Vec<PathRow> {
        let timeline = self.runtime.timeline(&self.db, trip_id).await.unwrap();
        self.runtime.check_timeline(&timeline).unwrap();
        timeline
            .iter()
            .map(|entry| (entry.from, entry.event, entry.to))
            .collect()
    }

    fn held(&self, trip_id: Uuid) -> Vec<&'static str> {
        let mut held: Vec<&'static str> = self
            .suppliers
            .held
            .lock()
            .unwrap()
            .iter()
            .filter(|(trip, _)| *trip == trip_id)
            .map(|(_, resource)| *resource)
            .collect();
        held.sort_unstable();
        held
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trip_saga_runs_on_the_runtime_through_loss_and_deadlines() {
    use Reply::*;
    use Trip::*;
    let system = TripSystem::start().await;

    // A hotel request lost on the way: re-sent, confirmed, booked.
    let lossy = system
        .book(
            "Ada",
            Policy {
                lose_first_hotel_request: true,
                ..Policy::default()
            },
        )
        .await;
    // A rejected hotel: the flight is cancelled.
    let rejected = system
        .book(
            "Grace",
            Policy {
                reject_hotel: true,
                ..Policy::default()
            },
        )
        .await;
    // A car desk that does not answer: the deadline abandons the booking and cancels the
    // hotel and the flight; when the desk opens, the re-sent car request is booked late and
    // cancelled at once.
    let silent = system
        .book(
            "Edsger",
            Policy {
                car_desk_down: true,
                ..Policy::default()
            },
        )
        .await;

    system.settled(lossy, Booked).await;
    system.settled(rejected, Abandoned).await;
    let abandoned_at = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let trip = system
            .runtime
            .instance(&system.db, silent)
            .await
            .unwrap()
            .unwrap();
        if trip.state == Abandoned {
            break;
        }
        assert!(
            tokio::time::Instant::now() < abandoned_at,
            "the deadline never fired: {trip:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    system.suppliers.car_desk_open.store(true, Ordering::SeqCst);
    system.settled(silent, Abandoned).await;

    let cases: [(Uuid, Vec<PathRow>, &[&str]); 3] = [
        (
            lossy,
            vec![
                (None, None, Started),
                (Some(Started), Some(FlightConfirmed), FlightHeld),
                (Some(FlightHeld), Some(HotelConfirmed), HotelHeld),
                (Some(HotelHeld), Some(CarConfirmed), Booked),
            ],
            &["car", "flight", "hotel"],
        ),
        (
            rejected,
            vec![
                (None, None, Started),
                (Some(Started), Some(FlightConfirmed), FlightHeld),
                (Some(FlightHeld), Some(HotelRejected), Abandoned),
            ],
            &[],
        ),
        (
            silent,
            vec![
                (None, None, Started),
                (Some(Started), Some(FlightConfirmed), FlightHeld),
                (Some(FlightHeld), Some(HotelConfirmed), HotelHeld),
                (Some(HotelHeld), Some(TimedOut), Abandoned),
                (Some(Abandoned), Some(CarConfirmed), Abandoned),
            ],
            &[],
        ),
    ];
    for (trip_id, path, held) in cases {
        // A re-sent request whose first answer was only slow is answered twice; after the trip
        // was abandoned the table compensates each such answer again (harmless: cancelling is
        // idempotent), so only the first row of each compensation is part of the story.
        let mut told = system.path(trip_id).await;
        told.retain(|row| !(row.0 == Some(Abandoned) && row.2 == Abandoned) || path.contains(row));
        told.dedup();
        assert_eq!(told, path, "trip {trip_id}");
        assert_eq!(system.held(trip_id), held, "trip {trip_id}");
    }

    // What was lost was sent again (anything slow may have been too: re-sends are harmless).
    let lossy_attempts = system.attempts(lossy).await;
    let hotel = lossy_attempts
        .iter()
        .find(|(effect, _)| *effect == Request::BookHotel)
        .expect("the hotel was asked for");
    assert!(
        hotel.1 >= 2,
        "the hotel request was re-sent: {lossy_attempts:?}"
    );
    let silent_attempts = system.attempts(silent).await;
    let car = silent_attempts
        .iter()
        .find(|(effect, _)| *effect == Request::BookCar)
        .expect("the car was asked for");
    assert!(
        car.1 >= 2,
        "the car request was re-sent: {silent_attempts:?}"
    );
    let lost = system.suppliers.lost.lock().unwrap().clone();
    assert!(lost.contains(&(lossy, "BookHotel".to_owned())), "{lost:?}");

    system.shutdown.cancel();
}
