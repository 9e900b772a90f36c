//! The broker's least privilege, against the real RabbitMQ: a vhost provisioned from the
//! generated definitions lets each service user do what its service must, and nothing else.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use contracts::envelope::Envelope;
use contracts::{
    CommitStock, CustomerId, MessageType, OrderId, PaymentId, PaymentSucceeded, Service,
    StockFailed,
};
use lapin::options::{BasicConsumeOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use outbox::Broker;
use testkit::TestVhost;
use testkit::bus::TestBus;

fn payment_succeeded() -> Envelope {
    let message = PaymentSucceeded {
        order_id: OrderId::generate(),
        customer_id: CustomerId::generate(),
        payment_id: PaymentId::generate(),
        amount: contracts::Money::new(100).unwrap(),
    };
    Envelope::new(&message, None).unwrap()
}

fn commit_stock() -> Envelope {
    Envelope::new(
        &CommitStock {
            order_id: OrderId::generate(),
        },
        None,
    )
    .unwrap()
}

fn stock_failed() -> Envelope {
    let message = StockFailed {
        order_id: OrderId::generate(),
        customer_id: CustomerId::generate(),
        reason: "test".into(),
    };
    Envelope::new(&message, None).unwrap()
}

/// Who publishes, what, and whether the broker accepts it.
type PublishCase = (Service, fn() -> Envelope, bool);

#[tokio::test]
async fn each_service_may_publish_only_the_types_it_produces() {
    let vhost = TestVhost::create();
    let cases: &[PublishCase] = &[
        (Service::Payment, payment_succeeded, true),
        (Service::Inventory, payment_succeeded, false),
        (Service::Order, payment_succeeded, false),
        (Service::Notify, payment_succeeded, false),
        (Service::Order, commit_stock, true),
        (Service::Inventory, commit_stock, false),
        (Service::Inventory, stock_failed, true),
        (Service::Payment, stock_failed, false),
        (Service::Notify, stock_failed, false),
    ];
    for &(publisher, envelope, accepted) in cases {
        // A refusal closes the channel: a fresh bus per case.
        let bus = TestBus::connect(&vhost, &[]).await;
        let envelope = envelope();
        let outcome = bus.try_publish_as(publisher, &envelope).await;
        let was_accepted = matches!(outcome, Ok(lapin::Confirmation::Ack(None)));
        assert_eq!(
            was_accepted, accepted,
            "{publisher} publishing {}: {outcome:?}",
            envelope.message_type
        );
        if !accepted {
            let error = outcome.expect_err("refused by the broker");
            assert!(outbox::broker::is_access_refused(&error), "{error}");
        }
    }
}

#[tokio::test]
async fn service_users_read_only_their_queues_and_dead_letters_and_configure_nothing() {
    let vhost = TestVhost::create();
    let connect = |service: Service| {
        let url = vhost.service_url(service);
        async move {
            lapin::Connection::connect(&url, lapin::ConnectionProperties::default())
                .await
                .expect("a service user logs in")
        }
    };
    // (who, queue, may consume)
    let cases: &[(Service, &str, bool)] = &[
        (Service::Payment, "payment-svc.StockReserved", true),
        (Service::Order, "order-svc.PaymentSucceeded", true),
        (Service::Notify, "notify-svc.OrderCompleted", true),
        (Service::Inventory, "payment-svc.StockReserved", false),
        (Service::Notify, "order-svc.PaymentSucceeded", false),
        // Its own dead letters, which operators list, redrive and discard through it.
        (Service::Payment, "payment-svc.StockReserved.dlq", true),
        (Service::Inventory, "payment-svc.StockReserved.dlq", false),
    ];
    for &(service, queue, allowed) in cases {
        let connection = connect(service).await;
        let channel = connection.create_channel().await.unwrap();
        let consumed = channel
            .basic_consume(
                queue.into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await;
        assert_eq!(
            consumed.is_ok(),
            allowed,
            "{service} consuming {queue}: {consumed:?}"
        );
        let _ = connection.close(200, "done".into()).await;
    }
    for &service in Service::ALL {
        let connection = connect(service).await;
        let channel = connection.create_channel().await.unwrap();
        let declared = channel
            .queue_declare(
                "anything".into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await;
        let error = declared.expect_err("service users may not configure");
        assert!(outbox::broker::is_access_refused(&error), "{error}");
    }
}

#[tokio::test]
async fn a_service_user_checks_the_provisioned_topology_instead_of_declaring_it() {
    let vhost = TestVhost::create();
    let queues: Vec<String> = Service::Order
        .subscriptions()
        .map(|message_type| format!("order-svc.{}", message_type.name()))
        .collect();
    let broker = Broker::new(vhost.service_url(Service::Order), contracts::topology())
        .consuming(queues.clone());
    let connection = broker.connect("test").await.expect("verified passively");
    let _ = connection.close(200, "done".into()).await;
    assert_eq!(broker.user(), vhost.service_user(Service::Order));

    let mut missing = queues;
    missing.push("order-svc.NoSuchQueue".into());
    let broker =
        Broker::new(vhost.service_url(Service::Order), contracts::topology()).consuming(missing);
    assert!(
        broker.connect("test").await.is_err(),
        "a missing queue fails"
    );
    assert_eq!(MessageType::PaymentSucceeded.producer(), Service::Payment);
}
