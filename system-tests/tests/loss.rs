//! Commands lost in flight: a competing consumer takes part of what reaches inventory's
//! `CommitStock` and `ReleaseStock` queues and payment's `RefundPayment` queue, acknowledges it
//! and throws it away, as a consumer that acknowledged and died would. The saga re-sends every
//! command until its confirmation arrives, so once the loss stops every order settles with
//! stock and money conserved.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use contracts::{MessageType, Service, Subscription};
use futures::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use outbox::Broker;
use tokio::task::JoinHandle;

use common::{assert_conserved, id, settled};
use testkit::client::{Client, new_customer};
use testkit::system::{System, SystemConfig};

/// The queues the competitor takes from, each with the user of the service that consumes it
/// (the only user with the right to read it).
const LOSSY: [Subscription; 3] = [
    Subscription {
        service: Service::Inventory,
        message_type: MessageType::CommitStock,
    },
    Subscription {
        service: Service::Inventory,
        message_type: MessageType::ReleaseStock,
    },
    Subscription {
        service: Service::Payment,
        message_type: MessageType::RefundPayment,
    },
];

/// How long the competitor takes commands.
const LOSS: Duration = Duration::from_secs(6);

/// How long an order may take to settle once the loss stopped: the re-sends back off from
/// the test's 500 ms, so the next copy of a command lost last comes within a few seconds.
const PATIENCE: Duration = Duration::from_secs(60);

/// Consumes `queue` as `service`'s user for [`LOSS`], acknowledging and discarding every
/// delivery; returns how many it took.
fn compete(system: &System, subscription: Subscription) -> JoinHandle<usize> {
    let url = system.vhost().service_url(subscription.service);
    let queue = subscription.queue();
    tokio::spawn(async move {
        let connection = Broker::new(url, contracts::topology())
            .connect("competitor")
            .await
            .expect("connect as the consuming service's user");
        let channel = connection.create_channel().await.expect("a channel");
        // One at a time: the broker then hands the competitor a share of the queue rather
        // than a window full that the service would never see either way.
        channel
            .basic_qos(1, BasicQosOptions::default())
            .await
            .expect("set the prefetch");
        let mut deliveries = channel
            .basic_consume(
                queue.as_str().into(),
                "competitor".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("consume the service's queue");
        let mut taken = 0;
        let stop = tokio::time::sleep(LOSS);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => break,
                delivery = deliveries.next() => {
                    let delivery = delivery.expect("the consumer is open").expect("a delivery");
                    delivery.ack(BasicAckOptions::default()).await.expect("ack");
                    taken += 1;
                }
            }
        }
        // Whatever was delivered but not acknowledged goes back to the queue on close.
        connection
            .close(200, "the loss stops".into())
            .await
            .expect("close the competitor's connection");
        taken
    })
}

/// ~30 orders flow while the competitor runs: most complete, a poor customer's are cancelled
/// by the failing payment (ReleaseStock), and some are cancelled by their customer at once
/// (ReleaseStock and RefundPayment). Every one settles; the competitor took something.
#[tokio::test]
async fn commands_lost_in_flight_are_re_sent_until_every_order_settles() {
    let config = SystemConfig {
        resend_after_ms: 500,
        ..SystemConfig::default()
    };
    let system = System::start(config).await;
    let client = Client::new(&system);
    let rich = new_customer();
    let poor = new_customer();
    client.set_product("lossy-widget", 100, 300).await;
    client.set_balance(&rich, 1_000_000).await;
    // Less than one order costs (2 × 300).
    client.set_balance(&poor, 500).await;

    let competitors: Vec<_> = LOSSY
        .iter()
        .map(|&subscription| compete(&system, subscription))
        .collect();
    // (order id, the customer paid enough, cancelled by the customer before it was paid).
    let mut placed = Vec::new();
    for index in 0..30 {
        let pays = index % 5 != 4;
        let customer = if pays { &rich } else { &poor };
        let (status, order) = client.place(customer, &[("lossy-widget", 2)], None).await;
        assert_eq!(status, 201, "{order}");
        let order_id = id(&order);
        let mut cancelled_first = false;
        if index % 4 == 1 {
            let (status, answer) = client.cancel(&order_id).await;
            // Placing and cancelling race with the saga: a paid order refuses (409).
            assert!(
                status == 200 || status == 409,
                "cancel {order_id}: {status} {answer}"
            );
            cancelled_first = status == 200;
        }
        placed.push((order_id, pays, cancelled_first));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut taken = Vec::new();
    for (subscription, competitor) in LOSSY.iter().zip(competitors) {
        taken.push((
            subscription.queue(),
            competitor.await.expect("the competitor"),
        ));
    }
    println!("the competitor took {taken:?}");
    assert!(
        taken.iter().map(|(_, count)| count).sum::<usize>() > 0,
        "the competitor took no command: the test lost nothing"
    );

    let mut orders = Vec::new();
    for (order_id, pays, cancelled_first) in &placed {
        let order = settled(&client, order_id, PATIENCE).await;
        let expected = if *pays && !cancelled_first {
            "Completed"
        } else {
            "Cancelled"
        };
        assert_eq!(order["status"], expected, "{order}");
        orders.push(order);
    }
    let (completed, cancelled) = assert_conserved(
        &client,
        &orders,
        &[("lossy-widget", 100)],
        &[(&rich, 1_000_000), (&poor, 500)],
    )
    .await;
    println!("{completed} completed, {cancelled} cancelled");
}
