//! A service's whole start and stop, around the parts that are its own: [`ServiceBuilder`].
//!
//! Every service of the system starts the same way: connect to what it depends on (retrying
//! within `STARTUP_TIMEOUT_SECS`), start its consumer (and, with a database, the relay and
//! retention), turn what it depends on into readiness checks, assemble the router around its
//! API, bind `HTTP_ADDR` only then (so a bound port means a started service), serve until
//! shutdown, and stop the background work last: producers (consumers, sweepers) first, the relay
//! after them, so that it publishes what their last transactions committed. A service supplies
//! only what is its own: its name and subscriptions, its migrator and handler, its batching (and
//! why), its extra background producers and its API with the API's state.
//!
//! ```no_run
//! # use outbox::runtime::Infrastructure;
//! # use service_kit::auth::Authenticator;
//! # use service_kit::entrypoint::RunError;
//! # use service_kit::launch::ServiceBuilder;
//! # use tokio_util::sync::CancellationToken;
//! # use utoipa_axum::router::OpenApiRouter;
//! # #[derive(Clone, Debug)]
//! # struct Ping;
//! # impl outbox::Inbound for Ping {
//! #     fn decode(_: &outbox::Incoming<'_>) -> Result<Self, String> { Ok(Ping) }
//! #     fn message_id(&self) -> uuid::Uuid { uuid::Uuid::nil() }
//! #     fn message_type(&self) -> &str { "Ping" }
//! #     fn correlation_id(&self) -> uuid::Uuid { uuid::Uuid::nil() }
//! # }
//! # struct PingHandler;
//! # impl outbox::Handler<Ping> for PingHandler {
//! #     async fn handle(
//! #         &self,
//! #         _: &sea_orm::DatabaseTransaction,
//! #         _: &Ping,
//! #     ) -> Result<(), outbox::HandlerError> { Ok(()) }
//! # }
//! # async fn sweep(_db: sea_orm::DatabaseConnection, _stop: CancellationToken) {}
//! async fn run(authenticator: Authenticator, shutdown: CancellationToken) -> Result<(), RunError> {
//!     let service = ServiceBuilder {
//!         name: "ping-svc",
//!         queues: vec!["ping-svc.Ping".to_owned()],
//!         topology: outbox::Topology::new("ping.events", vec![outbox::Route::new("ping-svc.Ping", "Ping")]),
//!         producers: [("Ping", "pinger")].into_iter().collect(),
//!         authenticator,
//!     };
//!     let infrastructure = Infrastructure {
//!         database_url: "postgres://ping-svc@localhost/ping",
//!         amqp_url: "amqp://ping-svc@localhost/%2f",
//!         startup_timeout: std::time::Duration::from_secs(60),
//!         max_connections: 10,
//!         // Pings touch no shared row: batches save commits without contention.
//!         max_batch: 64,
//!         lanes: 2,
//!     };
//!     let started = service
//!         .start_with_database::<outbox::OutboxMigrator, _>(
//!             infrastructure,
//!             PingHandler,
//!             &shutdown,
//!             |messaging| {
//!                 // The service's own producers start before it serves, and stop with the
//!                 // consumer, before the relay.
//!                 let db = messaging.db.clone();
//!                 messaging.background.spawn_producer(|stop| sweep(db, stop));
//!                 OpenApiRouter::new()
//!             },
//!         )
//!         .await?;
//!     started.serve("127.0.0.1:8080".parse().map_err(RunError::startup)?, shutdown).await
//! }
//! ```
//!
//! # Where this lives, and why
//!
//! The messaging half of a start (connecting, migrating, the consumer, the relay, retention, the
//! two-phase stop) is `outbox::runtime`'s, because it is the same for anything built on the
//! outbox and `outbox` is published alone, without HTTP. The HTTP half (readiness, router,
//! serving) is this crate's. The builder joins the two, so it lives here, on the HTTP side:
//! `service-kit` depends on `outbox`, which is generic (no message type, no subscription list),
//! and never on `contracts`: a service passes its name, queues, topology and producers, which
//! `contracts` gives it.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use outbox::runtime::{
    BackgroundTasks, BrokerInfrastructure, BrokerMessaging, Infrastructure, Messaging, Probe,
};
use outbox::{DeadLetterQueues, Handler, Inbound, Producers, StatelessHandler, Topology};
use sea_orm_migration::MigratorTrait;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use utoipa_axum::router::OpenApiRouter;

use crate::auth::Authenticator;
use crate::dead_letters::dead_letter_routes;
use crate::entrypoint::{RunError, bind, serve_then, service_router};
use crate::health::Readiness;

/// Who a service is: what every start needs besides the service's own parts, which the two
/// `start_*` methods take.
#[derive(Clone)]
pub struct ServiceBuilder {
    /// The service's name (`inventory-svc`): its broker connections are named after it
    /// (`inventory-svc consumer`, `inventory-svc publisher`) and so is its OpenAPI document.
    pub name: &'static str,
    /// The queues the service consumes.
    pub queues: Vec<String>,
    /// The system's topology, declared at start where the service's broker user may.
    pub topology: Topology,
    /// Who may send each message type the service consumes.
    pub producers: Producers,
    /// How callers of the service's API are authenticated.
    pub authenticator: Authenticator,
}

impl ServiceBuilder {
    /// Starts a service with a database: connects to it and migrates with `Mig`, connects to
    /// the broker, starts the consumer with `handler` (each message in a transaction with its
    /// inbox row), the relay and retention ([`Messaging::start`]); then runs `own_parts`, which
    /// may add the service's own producers to `messaging.background` (a sweeper) and returns
    /// its API with the API's state. Readiness checks the database and the broker.
    pub async fn start_with_database<Mig: MigratorTrait, M: Inbound>(
        self,
        infrastructure: Infrastructure<'_>,
        handler: impl Handler<M>,
        shutdown: &CancellationToken,
        own_parts: impl FnOnce(&mut Messaging) -> OpenApiRouter,
    ) -> Result<StartedService, RunError> {
        let dead_letters = Arc::new(DeadLetterQueues::new(
            outbox::Broker::new(infrastructure.amqp_url, self.topology.clone()),
            self.queues.clone(),
        ));
        let mut messaging = Messaging::start::<Mig, M, _>(
            self.name,
            self.queues,
            self.topology,
            &self.producers,
            infrastructure,
            handler,
            shutdown,
        )
        .await
        .map_err(RunError::startup)?;
        let api = own_parts(&mut messaging);
        let probes = messaging.probes();
        started(
            self.name,
            self.authenticator,
            api,
            dead_letters,
            probes,
            messaging.background,
        )
    }

    /// Starts a service without a database: connects to the broker and starts the consumer
    /// with `handler`, deduplicating in memory ([`BrokerMessaging::start`]); then runs
    /// `own_parts` as [`ServiceBuilder::start_with_database`] does. Readiness checks the broker.
    pub async fn start_without_database<M: Inbound>(
        self,
        infrastructure: BrokerInfrastructure<'_>,
        handler: impl StatelessHandler<M>,
        shutdown: &CancellationToken,
        own_parts: impl FnOnce(&mut BrokerMessaging) -> OpenApiRouter,
    ) -> Result<StartedService, RunError> {
        let dead_letters = Arc::new(DeadLetterQueues::new(
            outbox::Broker::new(infrastructure.amqp_url, self.topology.clone()),
            self.queues.clone(),
        ));
        let mut messaging = BrokerMessaging::start::<M, _>(
            self.name,
            self.queues,
            self.topology,
            &self.producers,
            infrastructure,
            handler,
            shutdown,
        )
        .await
        .map_err(RunError::startup)?;
        let api = own_parts(&mut messaging);
        let probes = messaging.probes();
        started(
            self.name,
            self.authenticator,
            api,
            dead_letters,
            probes,
            messaging.background,
        )
    }
}

/// How often the `dead_letters{queue}` gauges are refreshed.
const DEAD_LETTER_GAUGE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(15);

/// The service's router (its API and the operator's dead-letter endpoints behind
/// authentication, readiness from `probes`) with its running background tasks, the dead-letter
/// gauges among them.
fn started(
    name: &'static str,
    authenticator: Authenticator,
    api: OpenApiRouter,
    dead_letters: Arc<DeadLetterQueues>,
    probes: Vec<(&'static str, Probe)>,
    mut background: BackgroundTasks,
) -> Result<StartedService, RunError> {
    let gauges = Arc::clone(&dead_letters);
    background.spawn_producer(|stop| {
        outbox::dead_letters::run_gauges(gauges, DEAD_LETTER_GAUGE_INTERVAL, stop)
    });
    let api = api.merge(dead_letter_routes(dead_letters));
    let router = service_router(api, readiness(probes), name, authenticator)?;
    Ok(StartedService { router, background })
}

/// Readiness that runs each probe under its name.
fn readiness(probes: Vec<(&'static str, Probe)>) -> Readiness {
    probes
        .into_iter()
        .fold(Readiness::new(), |readiness, (name, probe)| {
            readiness.with_check(name, move || probe())
        })
}

/// A started service, not yet serving: its router and its running background tasks.
#[must_use = "a started service does nothing until it serves"]
pub struct StartedService {
    router: Router,
    background: BackgroundTasks,
}

impl StartedService {
    /// Binds `address`, then serves as [`StartedService::serve_on`] does.
    pub async fn serve(
        self,
        address: SocketAddr,
        shutdown: CancellationToken,
    ) -> Result<(), RunError> {
        let listener = bind(address).await?;
        self.serve_on(listener, shutdown).await
    }

    /// Serves on `listener` until `shutdown` is cancelled, then stops the background tasks:
    /// producers first, the relay last ([`BackgroundTasks::shutdown`]).
    pub async fn serve_on(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> Result<(), RunError> {
        serve_then(listener, self.router, shutdown, self.background.shutdown()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A probe that answers `outcome`.
    fn probe(outcome: Result<(), &'static str>) -> Probe {
        Arc::new(move || Box::pin(async move { outcome.map_err(str::to_owned) }))
    }

    #[tokio::test]
    async fn readiness_runs_every_probe_under_its_name() {
        let probes = vec![
            ("database", probe(Ok(()))),
            ("broker", probe(Err("connection refused"))),
        ];
        let report = readiness(probes).evaluate().await;
        let outcomes: Vec<(&str, Result<(), String>)> = report.outcomes.into_iter().collect();
        assert_eq!(
            outcomes,
            vec![
                ("broker", Err("connection refused".to_owned())),
                ("database", Ok(())),
            ]
        );
    }
}
