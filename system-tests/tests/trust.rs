//! Trust across the running system: events cannot be forged (the broker refuses a service user
//! publishing a type it does not produce, and consumers dead-letter whatever the broker lets
//! through from anyone but the type's producer), and each caller sees and changes only what is
//! theirs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;

use common::{PATIENCE, call, eventually, id};
use contracts::envelope::{HEADER_DEAD_LETTER_REASON, HEADER_ORIGINAL_USER_ID};
use contracts::{
    CustomerId, EXCHANGE, Envelope, Money, OrderId, PaymentId, PaymentSucceeded, PricedLine,
    ProductId, Quantity, Service, StockCommitted, StockReserved,
};
use lapin::options::{BasicGetOptions, BasicPublishOptions};
use lapin::{BasicProperties, Channel, Connection};
use outbox::{Broker, NewMessage, wire};
use serde_json::{Value, json};
use testkit::TestVhost;
use testkit::auth::Identity;
use testkit::bus::TestBus;
use testkit::client::{Client, timeline};
use testkit::system::{Svc, System, SystemConfig};

/// `PaymentSucceeded` for the victim order: goods committed without a charge, if believed.
fn payment_succeeded(order: OrderId, customer: CustomerId) -> Envelope {
    let message = PaymentSucceeded {
        order_id: order,
        customer_id: customer,
        payment_id: PaymentId::generate(),
        amount: Money::new(1).unwrap(),
    };
    Envelope::new(&message, None).unwrap()
}

/// `StockCommitted` for the victim order: completed without a charge, if believed.
fn stock_committed(order: OrderId) -> Envelope {
    Envelope::new(&StockCommitted { order_id: order }, None).unwrap()
}

/// `StockReserved` for an order that was never placed, naming a bystander: a charge of 5000
/// to the bystander, if payment believed it.
fn stock_reserved(order: OrderId, bystander: CustomerId) -> Envelope {
    let line = PricedLine {
        product_id: ProductId::new("guarded").unwrap(),
        quantity: Quantity::new(1).unwrap(),
        unit_price: Money::new(5_000).unwrap(),
    };
    Envelope::new(
        &StockReserved::new(order, bystander, vec![line]).unwrap(),
        None,
    )
    .unwrap()
}

/// The administrator's user name (of the vhost's URL).
fn administrator(system: &System) -> String {
    let uri: lapin::uri::AMQPUri = system.vhost().url().parse().unwrap();
    uri.authority.userinfo.username
}

/// A connection and a confirming channel as `service`'s broker user.
async fn connect_as(vhost: &TestVhost, service: Service) -> (Connection, Channel) {
    let connection = Broker::new(vhost.service_url(service), contracts::topology())
        .connect("trust test")
        .await
        .unwrap();
    let channel = Broker::confirm_channel(&connection).await.unwrap();
    (connection, channel)
}

/// How a forged message that the broker accepts is sent.
enum Route {
    /// By the administrator to the events exchange, without a `user_id`.
    AdministratorWithoutUserId,
    /// By the administrator to the events exchange, with its own `user_id`.
    AdministratorAsItself,
    /// By a service user into the retry path of a queue, dressed as a retry of a message of
    /// the type's producer (`x-original-user-id`).
    RetryPathAs(Service, &'static str),
}

/// A forged message the broker accepts, and where its dead letters must appear.
struct Sneaked {
    envelope: Envelope,
    route: Route,
    /// `(queue whose .dlq holds it, texts its x-dead-letter-reason contains)`.
    dead_letters: Vec<(&'static str, Vec<String>)>,
}

async fn sneak(system: &System, bus: &TestBus, sneaked: &Sneaked) {
    let outgoing = wire::outgoing(&NewMessage::from(&sneaked.envelope));
    match sneaked.route {
        Route::AdministratorWithoutUserId => {
            bus.publish_raw(
                EXCHANGE,
                &outgoing.routing_key,
                outgoing.properties,
                &outgoing.body,
            )
            .await;
        }
        Route::AdministratorAsItself => {
            let properties = outgoing
                .properties
                .with_user_id(administrator(system).as_str().into());
            bus.publish_raw(EXCHANGE, &outgoing.routing_key, properties, &outgoing.body)
                .await;
        }
        Route::RetryPathAs(service, queue) => {
            let producer = system
                .vhost()
                .service_user(sneaked.envelope.message_type.producer());
            let properties = wire::with_headers(
                &outgoing.properties,
                &[(HEADER_ORIGINAL_USER_ID, wire::long_string(producer))],
            )
            .with_user_id(system.vhost().service_user(service).into());
            let (connection, channel) = connect_as(system.vhost(), service).await;
            let confirmation = channel
                .basic_publish(
                    contracts::topology().retry_exchange(1).as_str().into(),
                    queue.into(),
                    BasicPublishOptions::default(),
                    &outgoing.body,
                    properties,
                )
                .await
                .unwrap()
                .await
                .unwrap();
            assert!(
                confirmation.is_ack(),
                "{service} may write to the retry path"
            );
            let _ = connection.close(200, "done".into()).await;
        }
    }
}

/// Takes (and removes) the dead letters of `queue`'s `.dlq` until there are `count`; panics
/// after [`PATIENCE`].
async fn take_dead_letters(channel: &Channel, queue: &str, count: usize) -> Vec<BasicProperties> {
    let dead_letter_queue = outbox::dead_letter_queue(queue);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut taken = Vec::new();
    while taken.len() < count {
        let next = channel
            .basic_get(
                dead_letter_queue.as_str().into(),
                BasicGetOptions { no_ack: true },
            )
            .await
            .unwrap();
        match next {
            Some(message) => taken.push(message.delivery.properties.clone()),
            None => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{dead_letter_queue} holds {} of {count} dead letters",
                    taken.len()
                );
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
    taken
}

/// Checks the dead letters of `queue` against what was sneaked into it.
fn check_dead_letters(queue: &str, found: &[BasicProperties], sneaked: &[Sneaked]) {
    let expected: BTreeMap<String, &Vec<String>> = sneaked
        .iter()
        .flat_map(|sneaked| {
            sneaked
                .dead_letters
                .iter()
                .filter(|(target, _)| *target == queue)
                .map(|(_, reason)| (sneaked.envelope.message_id.to_string(), reason))
        })
        .collect();
    let found: BTreeMap<String, String> = found
        .iter()
        .map(|properties| {
            (
                properties
                    .message_id()
                    .as_ref()
                    .map(|id| id.to_string())
                    .unwrap_or_default(),
                wire::header_text(properties, HEADER_DEAD_LETTER_REASON).unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        found.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "{queue}.dlq holds exactly the forged messages sent to it"
    );
    for (message_id, texts) in expected {
        let reason = &found[&message_id];
        for text in texts {
            assert!(
                reason.contains(text.as_str()),
                "{queue}: the reason {reason:?} names {text:?}"
            );
        }
    }
}

/// With each service's own broker user and with the administrator's, messages that would move
/// an order (or money) without its producer: the broker refuses every service user publishing a
/// type it does not produce; what the broker lets through (the administrator's messages, a
/// service user's message slipped into a retry path) is dead-lettered by every consumer with a
/// reason naming the expected sender. The order does not move, no stock is committed and no
/// money moves; once payment is back, the order completes charged its catalog price once.
#[tokio::test]
async fn forged_events_are_refused_or_dead_lettered_and_nothing_moves() {
    let config = SystemConfig {
        // The victim order must wait, Reserved, for as long as the test takes.
        saga_timeout_secs: 600,
        ..SystemConfig::default()
    };
    let mut system = System::start(config).await;
    let client = Client::new(&system);
    let customer = testkit::auth::customer();
    let bystander = testkit::auth::customer();
    client.set_product("guarded", 5, 700).await;
    client.set_balance(&customer.to_string(), 10_000).await;
    client.set_balance(&bystander.to_string(), 7_000).await;
    // Without payment, the order is Reserved and stays so: the state a forged PaymentSucceeded
    // would move on.
    system.terminate(Svc::Payment, 0).await;
    let (status, placed) = client
        .place(&customer.to_string(), &[("guarded", 2)], None)
        .await;
    assert_eq!(status, 201, "{placed}");
    let order_id = id(&placed);
    let reserved = eventually("the order is Reserved", || async {
        let order = client.order(&order_id).await;
        (order["status"] == "Reserved").then_some(order)
    })
    .await;
    assert_eq!(client.stock("guarded").await, (3, 2, 0));

    let order: OrderId = order_id.parse().unwrap();
    let customer_id = CustomerId::from(customer);
    let bystander_id = CustomerId::from(bystander);
    let never_placed = OrderId::generate();
    // The broker refuses each offer, so one envelope of each type serves every non-producer.
    let forgeries = [
        payment_succeeded(order, customer_id),
        stock_committed(order),
        stock_reserved(never_placed, bystander_id),
    ];
    let mut accepted = Vec::new();
    for envelope in &forgeries {
        for &service in Service::ALL {
            if envelope.message_type.producer() == service {
                continue;
            }
            // A refusal closes the channel: a fresh bus per attempt.
            let bus = TestBus::connect(system.vhost(), &[]).await;
            let outcome = bus.try_publish_as(service, envelope).await;
            let refused =
                matches!(&outcome, Err(error) if outbox::broker::is_access_refused(error));
            if !refused {
                accepted.push(format!(
                    "{service} published {}: {outcome:?}",
                    envelope.message_type
                ));
            }
        }
    }
    assert!(
        accepted.is_empty(),
        "the broker accepted forgeries:\n{}",
        accepted.join("\n")
    );

    let payment_user = system.vhost().service_user(Service::Payment).to_owned();
    let inventory_user = system.vhost().service_user(Service::Inventory).to_owned();
    let notify_user = system.vhost().service_user(Service::Notify).to_owned();
    let order_user = system.vhost().service_user(Service::Order).to_owned();
    let admin = administrator(&system);
    let reason = |texts: &[&str]| texts.iter().map(|text| (*text).to_owned()).collect();
    let sneaked = [
        Sneaked {
            envelope: payment_succeeded(order, customer_id),
            route: Route::AdministratorWithoutUserId,
            dead_letters: vec![
                (
                    "order-svc.PaymentSucceeded",
                    reason(&["no user_id", &payment_user]),
                ),
                (
                    "notify-svc.PaymentSucceeded",
                    reason(&["no user_id", &payment_user]),
                ),
            ],
        },
        Sneaked {
            envelope: payment_succeeded(order, customer_id),
            route: Route::AdministratorAsItself,
            dead_letters: vec![
                (
                    "order-svc.PaymentSucceeded",
                    reason(&[&payment_user, &format!("user_id {admin}")]),
                ),
                (
                    "notify-svc.PaymentSucceeded",
                    reason(&[&payment_user, &format!("user_id {admin}")]),
                ),
            ],
        },
        Sneaked {
            envelope: payment_succeeded(order, customer_id),
            route: Route::RetryPathAs(Service::Notify, "order-svc.PaymentSucceeded"),
            dead_letters: vec![(
                "order-svc.PaymentSucceeded",
                reason(&[&payment_user, &format!("user_id {notify_user}")]),
            )],
        },
        Sneaked {
            envelope: stock_reserved(never_placed, bystander_id),
            route: Route::AdministratorAsItself,
            dead_letters: vec![
                (
                    "order-svc.StockReserved",
                    reason(&[&inventory_user, &format!("user_id {admin}")]),
                ),
                (
                    "payment-svc.StockReserved",
                    reason(&[&inventory_user, &format!("user_id {admin}")]),
                ),
            ],
        },
        Sneaked {
            envelope: stock_reserved(never_placed, bystander_id),
            route: Route::RetryPathAs(Service::Order, "payment-svc.StockReserved"),
            dead_letters: vec![(
                "payment-svc.StockReserved",
                reason(&[&inventory_user, &format!("user_id {order_user}")]),
            )],
        },
    ];
    let bus = TestBus::connect(system.vhost(), &[]).await;
    for forged in &sneaked {
        sneak(&system, &bus, forged).await;
    }

    let admin_connection = Broker::new(system.vhost().url(), contracts::topology())
        .connect("trust test: dead letters")
        .await
        .unwrap();
    let dead_letters = admin_connection.create_channel().await.unwrap();
    let expected_count = |queue: &str| {
        sneaked
            .iter()
            .flat_map(|forged| forged.dead_letters.iter())
            .filter(|(target, _)| *target == queue)
            .count()
    };
    // Payment's queue waits for payment to come back; the others' consumers are running.
    let running = [
        "order-svc.PaymentSucceeded",
        "notify-svc.PaymentSucceeded",
        "order-svc.StockReserved",
    ];
    for queue in running {
        let found = take_dead_letters(&dead_letters, queue, expected_count(queue)).await;
        check_dead_letters(queue, &found, &sneaked);
    }
    let now = client.order(&order_id).await;
    assert_eq!(
        (&now["status"], timeline(&now), &now["updated_at"]),
        (
            &reserved["status"],
            timeline(&reserved),
            &reserved["updated_at"]
        ),
        "the order did not move: {now}"
    );
    assert_eq!(
        client.stock("guarded").await,
        (3, 2, 0),
        "nothing was committed"
    );
    assert_eq!(
        client.notifications(&order_id).await,
        Vec::<Value>::new(),
        "no payment was announced"
    );

    system.start_instance(Svc::Payment, 0).await;
    let client = Client::new(&system);
    let found = take_dead_letters(
        &dead_letters,
        "payment-svc.StockReserved",
        expected_count("payment-svc.StockReserved"),
    )
    .await;
    check_dead_letters("payment-svc.StockReserved", &found, &sneaked);
    let done = client.wait_terminal(&order_id, PATIENCE).await;
    assert_eq!(
        (done["status"].as_str(), done["total"].as_i64()),
        (Some("Completed"), Some(2 * 700)),
        "{done}"
    );
    let events: Vec<String> = timeline(&done)
        .into_iter()
        .map(|(_, event, _)| event)
        .collect();
    assert_eq!(
        events,
        ["StockReserved", "PaymentSucceeded", "StockCommitted"],
        "only the real events reached the saga"
    );
    let (_, payment) = client.payment(&order_id).await;
    assert_eq!(payment["amount"].as_i64(), Some(2 * 700), "{payment}");
    assert_eq!(
        client.balance(&customer.to_string()).await,
        10_000 - 2 * 700
    );
    assert_eq!(
        client.balance(&bystander.to_string()).await,
        7_000,
        "the bystander paid nothing"
    );
    let (status, _) = client.payment(&never_placed.to_string()).await;
    assert_eq!(status, 404, "no charge for the order never placed");
    // Read from the queues themselves: the broker's message counts of quorum queues lag.
    let mut left = Vec::new();
    for subscription in contracts::SUBSCRIPTIONS {
        let dead_letter_queue = outbox::dead_letter_queue(&subscription.queue());
        let next = dead_letters
            .basic_get(
                dead_letter_queue.as_str().into(),
                BasicGetOptions { no_ack: true },
            )
            .await
            .unwrap();
        if let Some(message) = next {
            left.push(format!(
                "{dead_letter_queue}: {:?}",
                wire::header_text(&message.delivery.properties, HEADER_DEAD_LETTER_REASON)
            ));
        }
    }
    assert!(left.is_empty(), "no other dead letters: {left:?}");
    let _ = admin_connection.close(200, "done".into()).await;
}

/// A broker user cannot claim to be another: RabbitMQ refuses a `user_id` that is not the
/// connection's, even on a routing key the user may publish.
#[tokio::test]
async fn a_service_user_cannot_sign_as_another() {
    let vhost = TestVhost::create();
    let order = OrderId::generate();
    // Inventory produces StockReserved, so its topic permission lets the key through: only the
    // user_id is wrong.
    let envelope = stock_reserved(order, CustomerId::generate());
    let outgoing = wire::outgoing(&NewMessage::from(&envelope));
    // (publisher, the user_id it claims)
    let cases = [
        (Service::Inventory, Service::Payment),
        (Service::Inventory, Service::Order),
    ];
    for (publisher, claimed) in cases {
        let (connection, channel) = connect_as(&vhost, publisher).await;
        let properties = outgoing
            .properties
            .clone()
            .with_user_id(vhost.service_user(claimed).into());
        let outcome = match channel
            .basic_publish(
                EXCHANGE.into(),
                outgoing.routing_key.as_str().into(),
                BasicPublishOptions::default(),
                &outgoing.body,
                properties,
            )
            .await
        {
            Ok(confirm) => confirm.await,
            Err(error) => Err(error),
        };
        // RabbitMQ: PRECONDITION_FAILED, "user_id property set to … but authenticated user
        // was …".
        assert!(
            matches!(&outcome, Err(error) if error.to_string().contains("user_id")),
            "{publisher} signing as {claimed} was not refused for its user_id: {outcome:?}"
        );
        let _ = connection.close(200, "done".into()).await;
    }
    // Read from the queue itself: the broker's message counts of quorum queues lag.
    let administrator = Broker::new(vhost.url(), contracts::topology())
        .connect("trust test: payment's queue")
        .await
        .unwrap();
    let channel = administrator.create_channel().await.unwrap();
    let reached = channel
        .basic_get(
            "payment-svc.StockReserved".into(),
            BasicGetOptions { no_ack: true },
        )
        .await
        .unwrap();
    assert!(reached.is_none(), "nothing reached payment");
    let _ = administrator.close(200, "done".into()).await;
}

/// What an answer of the walk may show.
#[derive(Debug)]
enum Sees {
    /// Customer A's order (its owner's or an operator's view): the answer mentions it.
    TheOrder,
    /// Nothing of customer A's order.
    Nothing,
    /// Exactly what the same request answers when this id (in the path) names nothing: no hint
    /// that it exists.
    AsIfMissing(String),
}

/// One request of the walk: who, where, what, the status they must get, and what the answer
/// may show.
type Visit<'a> = (
    &'a Identity,
    Svc,
    &'static str,
    String,
    Option<Value>,
    u16,
    Sees,
);

/// Sends a visit; what is wrong with its answer, if anything.
async fn check(system: &System, a_order: &str, visit: Visit<'_>) -> Option<String> {
    let (who, svc, method, path, body, status, sees) = visit;
    let (got, answer) = call(system, who, svc, method, &path, body.clone()).await;
    let mentions = answer.to_string().contains(a_order);
    let seen_right = match &sees {
        Sees::TheOrder => mentions,
        Sees::Nothing => !mentions,
        Sees::AsIfMissing(id) => {
            let nothing = uuid::Uuid::now_v7().to_string();
            let (missing_status, missing) =
                call(system, who, svc, method, &path.replace(id, &nothing), body).await;
            (missing_status, missing.to_string().replace(&nothing, id)) == (got, answer.to_string())
        }
    };
    match (got.as_u16() == status, seen_right) {
        (true, true) => None,
        _ => Some(format!(
            "{who:?} {method} {} {path}: {got} {answer}, expected {status} showing {sees:?}",
            svc.binary()
        )),
    }
}

/// Customer A, customer B and an operator across the four services: each customer sees only
/// their own orders, payments, notifications and account (another's answers like a missing one);
/// a customer may read the catalog but change neither stock, prices nor balances, and may order
/// only for themselves; the operator sees and does everything.
#[tokio::test]
async fn customers_see_only_their_own_and_only_operators_move_goods_and_money() {
    let system = System::start(SystemConfig::default()).await;
    let operator = Client::new(&system);
    let a = testkit::auth::customer();
    let b = testkit::auth::customer();
    let (as_a, as_b) = (Identity::Customer(a), Identity::Customer(b));
    operator.set_product("walk-widget", 5, 300).await;
    operator.set_balance(&a.to_string(), 5_000).await;
    operator.set_balance(&b.to_string(), 5_000).await;

    let (status, a_order) = operator
        .as_identity(as_a.clone())
        .place(&a.to_string(), &[("walk-widget", 1)], None)
        .await;
    assert_eq!(status, 201, "A orders for themselves: {a_order}");
    // A customer may leave the customer out: the order is theirs.
    let (status, b_order) = call(
        &system,
        &as_b,
        Svc::Order,
        "POST",
        "/orders",
        Some(json!({"items": [{"product_id": "walk-widget", "quantity": 1}]})),
    )
    .await;
    assert_eq!(
        (status.as_u16(), b_order["customer_id"].as_str()),
        (201, Some(b.to_string().as_str())),
        "{b_order}"
    );
    let (a_order, b_order) = (id(&a_order), id(&b_order));
    for order in [&a_order, &b_order] {
        let done = operator.wait_terminal(order, PATIENCE).await;
        assert_eq!(done["status"], "Completed", "{done}");
        eventually("the completion is announced", || async {
            let kinds: Vec<Value> = operator
                .notifications(order)
                .await
                .iter()
                .map(|notification| notification["kind"].clone())
                .collect();
            kinds.contains(&json!("OrderCompleted")).then_some(())
        })
        .await;
    }

    let op = Identity::Operator;
    let anonymous = Identity::Anonymous;
    let for_a = json!({"customer_id": a, "items": [{"product_id": "walk-widget", "quantity": 1}]});
    let priced_by_b =
        json!({"items": [{"product_id": "walk-widget", "quantity": 1, "unit_price": 0}]});
    // One row per request, as a table.
    #[rustfmt::skip]
    let visits: Vec<Visit> = vec![
        (&as_a, Svc::Order, "GET", format!("/orders/{a_order}"), None, 200, Sees::TheOrder),
        (&as_b, Svc::Order, "GET", format!("/orders/{a_order}"), None, 404, Sees::AsIfMissing(a_order.clone())),
        (&as_a, Svc::Order, "GET", format!("/orders/{b_order}"), None, 404, Sees::AsIfMissing(b_order.clone())),
        (&anonymous, Svc::Order, "GET", format!("/orders/{a_order}"), None, 401, Sees::Nothing),
        (&as_a, Svc::Order, "GET", "/orders".into(), None, 200, Sees::TheOrder),
        (&as_b, Svc::Order, "GET", "/orders".into(), None, 200, Sees::Nothing),
        (&as_b, Svc::Order, "GET", format!("/orders?customer_id={a}"), None, 403, Sees::Nothing),
        (&op, Svc::Order, "GET", format!("/orders?customer_id={a}"), None, 200, Sees::TheOrder),
        (&op, Svc::Order, "GET", "/orders".into(), None, 200, Sees::TheOrder),
        (&as_a, Svc::Payment, "GET", format!("/payments/{a_order}"), None, 200, Sees::TheOrder),
        (&as_b, Svc::Payment, "GET", format!("/payments/{a_order}"), None, 404, Sees::AsIfMissing(a_order.clone())),
        (&op, Svc::Payment, "GET", format!("/payments/{a_order}"), None, 200, Sees::TheOrder),
        (&as_a, Svc::Notify, "GET", format!("/notifications?order_id={a_order}"), None, 200, Sees::TheOrder),
        (&as_b, Svc::Notify, "GET", format!("/notifications?order_id={a_order}"), None, 200, Sees::AsIfMissing(a_order.clone())),
        (&op, Svc::Notify, "GET", format!("/notifications?order_id={a_order}"), None, 200, Sees::TheOrder),
        (&as_a, Svc::Payment, "GET", format!("/accounts/{a}"), None, 200, Sees::Nothing),
        (&as_b, Svc::Payment, "GET", format!("/accounts/{a}"), None, 404, Sees::AsIfMissing(a.to_string())),
        (&as_b, Svc::Payment, "PUT", format!("/accounts/{b}"), Some(json!({"balance": 1_000_000})), 403, Sees::Nothing),
        (&as_b, Svc::Payment, "PUT", format!("/accounts/{a}"), Some(json!({"balance": 0})), 403, Sees::Nothing),
        (&as_b, Svc::Inventory, "GET", "/products/walk-widget".into(), None, 200, Sees::Nothing),
        (&as_b, Svc::Inventory, "PUT", "/products/walk-widget".into(), Some(json!({"available": 1_000, "price": 0})), 403, Sees::Nothing),
        (&as_b, Svc::Inventory, "GET", format!("/reservations/{a_order}"), None, 403, Sees::Nothing),
        (&op, Svc::Inventory, "GET", format!("/reservations/{a_order}"), None, 200, Sees::TheOrder),
        (&as_b, Svc::Order, "POST", "/orders".into(), Some(for_a), 403, Sees::Nothing),
        (&as_b, Svc::Order, "POST", "/orders".into(), Some(priced_by_b), 422, Sees::Nothing),
    ];
    let mut wrong = Vec::new();
    for visit in visits {
        wrong.extend(check(&system, &a_order, visit).await);
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    assert_eq!(operator.stock("walk-widget").await, (3, 0, 2));
    assert_eq!(common::catalog_price(&system, "walk-widget").await, 300);
    assert_eq!(operator.balance(&a.to_string()).await, 5_000 - 300);
    assert_eq!(operator.balance(&b.to_string()).await, 5_000 - 300);
}
