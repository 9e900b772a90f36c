//! The harness's publisher against a vhost provisioned as production is: the broker's answers
//! to each kind of sender are what the chaos run's forgery check relies on (a spoofed `user_id`
//! and a type outside a user's topic permissions are refused; what the broker takes, it takes
//! from the sender it names).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chaos::bus::{BrokerAccess, Published, Publisher};
use contracts::{EXCHANGE, Service};
use lapin::BasicProperties;
use lapin::types::ShortString;

/// Who publishes: a service's user, or the administrator.
#[derive(Clone, Copy, Debug)]
enum Sender {
    ServiceUser(Service),
    Administrator,
}

/// What the broker must say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expected {
    Accepted,
    Refused,
}

/// `user_id` on the message: the sender's own, another service's user, or none.
#[derive(Clone, Copy, Debug)]
enum UserId {
    Own,
    Of(Service),
    Absent,
}

async fn check(
    broker: &BrokerAccess,
    sender: Sender,
    user_id: UserId,
    routing_key: &str,
    expected: Expected,
) {
    let (url, own_user) = match sender {
        Sender::ServiceUser(service) => {
            let (url, user) = broker.service(service).unwrap();
            (url.to_owned(), user.to_owned())
        }
        Sender::Administrator => (broker.admin_url.clone(), broker.admin_user()),
    };
    let user_id = match user_id {
        UserId::Own => Some(own_user),
        UserId::Of(service) => Some(broker.service(service).unwrap().1.to_owned()),
        UserId::Absent => None,
    };
    let mut properties = BasicProperties::default().with_type(routing_key.into());
    if let Some(user_id) = &user_id {
        properties = properties.with_user_id(ShortString::from(user_id.as_str()));
    }
    let publisher = Publisher::connect(&url, "chaos broker test").await.unwrap();
    let published = publisher
        .publish(EXCHANGE, routing_key, properties, b"{}")
        .await;
    publisher.close().await;
    let case = format!("{sender:?} with user_id {user_id:?} publishing {routing_key}");
    match (expected, &published) {
        (Expected::Accepted, Published::Accepted) => {}
        (Expected::Refused, Published::Refused(reason)) => {
            assert!(
                reason.contains("ACCESS_REFUSED") || reason.contains("PRECONDITION_FAILED"),
                "{case}: {reason}"
            );
        }
        _ => panic!("{case}: expected {expected:?}, the broker said {published:?}"),
    }
}

#[tokio::test]
async fn the_broker_refuses_spoofed_senders_and_types_outside_a_users_rights() {
    let vhost = testkit::TestVhost::create();
    let broker = BrokerAccess::of(&vhost);
    use Expected::*;
    use Sender::*;
    use UserId::*;
    let cases = [
        // The producer, as the services' relays publish: what duplicates are sent as.
        (
            ServiceUser(Service::Payment),
            Own,
            "PaymentSucceeded",
            Accepted,
        ),
        (ServiceUser(Service::Order), Own, "OrderCreated", Accepted),
        // A service publishing a type it does not produce: its topic permissions refuse it.
        (
            ServiceUser(Service::Inventory),
            Own,
            "PaymentSucceeded",
            Refused,
        ),
        (ServiceUser(Service::Order), Own, "StockReserved", Refused),
        // notify-svc may publish nothing.
        (ServiceUser(Service::Notify), Own, "OrderCompleted", Refused),
        // Nobody may claim another user's user_id.
        (
            ServiceUser(Service::Inventory),
            Of(Service::Payment),
            "StockReserved",
            Refused,
        ),
        (
            Administrator,
            Of(Service::Payment),
            "PaymentSucceeded",
            Refused,
        ),
        // The administrator may publish anything, under its own name or none: consumers must
        // dead-letter those.
        (Administrator, Own, "PaymentSucceeded", Accepted),
        (Administrator, Absent, "StockReserved", Accepted),
    ];
    for (sender, user_id, routing_key, expected) in cases {
        check(&broker, sender, user_id, routing_key, expected).await;
    }
}
