//! RabbitMQ nodes and clusters of a test's own, against real nodes: what survives a restart,
//! what an alarm does to a publisher, what a cluster does without its quorum queue's leader.
//!
//! Multi-threaded runtimes: the fixtures block while `rabbitmqctl` runs, and the client's
//! connections and spawned publishes must go on meanwhile.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, Event};
use testkit::TestVhost;
use testkit::rabbit::{RabbitCluster, RabbitNode};

/// How long a confirm of a publish to a healthy broker may take.
const CONFIRM_PATIENCE: Duration = Duration::from_secs(10);

/// How long a blocked publish is watched for a confirm that must not come.
const BLOCKED_FOR: Duration = Duration::from_secs(2);

async fn connect(url: &str) -> Connection {
    Connection::connect(url, ConnectionProperties::default())
        .await
        .unwrap_or_else(|error| panic!("connect to {url}: {error}"))
}

async fn confirm_channel(connection: &Connection) -> Channel {
    let channel = connection.create_channel().await.unwrap();
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    channel
}

async fn declare_quorum_queue(channel: &Channel, queue: &str) {
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            arguments,
        )
        .await
        .unwrap();
}

/// Publishes `body` persistently straight onto `queue` and waits for its confirm.
async fn publish_confirmed(channel: &Channel, queue: &str, body: &[u8]) {
    let confirmation = tokio::time::timeout(CONFIRM_PATIENCE, async {
        channel
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                body,
                BasicProperties::default().with_delivery_mode(2),
            )
            .await?
            .await
    })
    .await
    .expect("a confirm within the patience")
    .expect("a confirm");
    assert!(
        matches!(confirmation, Confirmation::Ack(None)),
        "{confirmation:?}"
    );
}

/// Takes the next message of `queue` (acknowledged), waiting up to `patience` for one.
async fn take(channel: &Channel, queue: &str, patience: Duration) -> Vec<u8> {
    let deadline = Instant::now() + patience;
    loop {
        let got = channel
            .basic_get(queue.into(), BasicGetOptions::default())
            .await
            .unwrap();
        if let Some(message) = got {
            message
                .delivery
                .ack(BasicAckOptions::default())
                .await
                .unwrap();
            return message.delivery.data;
        }
        assert!(Instant::now() < deadline, "{queue} stayed empty");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the broker counts `expected` messages in `queue` (it counts every few seconds).
async fn await_depth(vhost: &TestVhost, queue: &str, expected: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let depth = vhost.queue_depth(queue);
        if depth == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{queue} holds {depth} messages, not {expected}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Ways a node goes down and comes back.
type Outage = fn(&mut RabbitNode);

#[tokio::test(flavor = "multi_thread")]
async fn a_node_that_goes_down_keeps_the_confirmed_messages_of_its_durable_quorum_queues() {
    let started = Instant::now();
    let mut node = RabbitNode::start();
    eprintln!("a node started in {:?}", started.elapsed());
    let vhost = TestVhost::create_on(&node);
    let bystander = connect(vhost.url()).await;
    assert_eq!(
        vhost.close_connections(),
        1,
        "the vhost's commands go to its node"
    );
    let deadline = Instant::now() + CONFIRM_PATIENCE;
    while bystander.status().connected() {
        assert!(Instant::now() < deadline, "the node closed the connection");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let queue = "survivor";
    let outages: &[(&str, Outage)] = &[
        ("a graceful restart", RabbitNode::restart),
        ("a kill and a start", |node| {
            node.kill();
            assert!(!node.is_running());
            node.start_again();
        }),
    ];
    for &(outage, go_down_and_back) in outages {
        let connection = connect(vhost.url()).await;
        let channel = confirm_channel(&connection).await;
        declare_quorum_queue(&channel, queue).await;
        publish_confirmed(&channel, queue, outage.as_bytes()).await;

        let went = Instant::now();
        go_down_and_back(&mut node);
        eprintln!("{outage} took {:?}", went.elapsed());
        assert!(node.is_running());
        assert!(
            !connection.status().connected(),
            "{outage} closed the connection"
        );

        await_depth(&vhost, queue, 1).await;
        let connection = connect(vhost.url()).await;
        let channel = connection.create_channel().await.unwrap();
        let body = take(&channel, queue, CONFIRM_PATIENCE).await;
        assert_eq!(body, outage.as_bytes(), "after {outage}");
        connection.close(200, "done".into()).await.unwrap();
    }
}

/// Ways to raise (`true`) and clear a resource alarm.
type Alarm = fn(&RabbitNode, bool);

#[tokio::test(flavor = "multi_thread")]
async fn a_resource_alarm_blocks_publishers_until_it_clears() {
    let node = RabbitNode::start();
    let queue = "held-back";
    let alarms: &[(&str, Alarm)] = &[
        ("memory", RabbitNode::set_memory_alarm),
        ("disk", RabbitNode::set_disk_alarm),
    ];
    for &(alarm, set_alarm) in alarms {
        let connection = connect(&node.amqp_url()).await;
        let mut events = connection.events_listener();
        let channel = confirm_channel(&connection).await;
        declare_quorum_queue(&channel, queue).await;
        publish_confirmed(&channel, queue, b"before the alarm").await;

        set_alarm(&node, true);
        assert_eq!(node.alarms().len(), 1, "{alarm}: {:?}", node.alarms());
        let blocked_publish = tokio::spawn({
            let channel = channel.clone();
            async move {
                channel
                    .basic_publish(
                        "".into(),
                        queue.into(),
                        BasicPublishOptions::default(),
                        b"during the alarm",
                        BasicProperties::default().with_delivery_mode(2),
                    )
                    .await?
                    .await
            }
        });
        tokio::time::sleep(BLOCKED_FOR).await;
        assert!(
            !blocked_publish.is_finished(),
            "{alarm} alarm: a publish was confirmed (or failed) while the alarm was on"
        );
        assert!(
            connection.status().blocked(),
            "{alarm} alarm: the connection is not blocked"
        );
        let blocked = tokio::time::timeout(CONFIRM_PATIENCE, async {
            while let Some(event) = events.next().await {
                if let Event::ConnectionBlocked(reason) = event {
                    return reason;
                }
            }
            panic!("the connection's events ended");
        })
        .await
        .expect("a connection.blocked event");
        eprintln!("{alarm} alarm: blocked ({blocked})");

        set_alarm(&node, false);
        assert!(node.alarms().is_empty(), "{alarm}: {:?}", node.alarms());
        let confirmation = tokio::time::timeout(CONFIRM_PATIENCE, blocked_publish)
            .await
            .expect("the confirm once the alarm cleared")
            .unwrap()
            .unwrap();
        assert!(
            matches!(confirmation, Confirmation::Ack(None)),
            "{alarm}: {confirmation:?}"
        );
        assert!(!connection.status().blocked(), "{alarm}: still blocked");
        for expected in [&b"before the alarm"[..], b"during the alarm"] {
            assert_eq!(take(&channel, queue, CONFIRM_PATIENCE).await, expected);
        }
        connection.close(200, "done".into()).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_quorum_queue_of_a_cluster_outlives_the_node_of_its_leader() {
    let started = Instant::now();
    let mut cluster = RabbitCluster::start(3);
    eprintln!("a three-node cluster started in {:?}", started.elapsed());
    assert_eq!(cluster.running_nodes().len(), 3);
    let vhost = TestVhost::create_on_cluster(&cluster);
    assert_eq!(vhost.urls().len(), 3);
    assert_eq!(
        vhost.service_urls(contracts::Service::Order).len(),
        3,
        "one URL per node"
    );
    // Provisioned while the three nodes ran: a member on each.
    let queue = "order-svc.PaymentSucceeded";
    assert_eq!(cluster.members_of(vhost.name(), queue), [0, 1, 2]);
    let leader = cluster.leader_of(vhost.name(), queue);

    let stopped = Instant::now();
    cluster.stop_node(leader);
    eprintln!("the leader's node stopped in {:?}", stopped.elapsed());
    let deadline = Instant::now() + Duration::from_secs(30);
    let new_leader = loop {
        let current = cluster.leader_of(vhost.name(), queue);
        if current != leader {
            break current;
        }
        assert!(Instant::now() < deadline, "no new leader for {queue}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("leader moved from node {leader} to node {new_leader}");

    // Through one surviving node in, through the other out.
    let publisher_node = (leader + 1) % 3;
    let consumer_node = (leader + 2) % 3;
    let publisher = connect(&vhost.urls()[publisher_node]).await;
    publish_confirmed(
        &confirm_channel(&publisher).await,
        queue,
        b"without the leader",
    )
    .await;
    await_depth(&vhost, queue, 1).await;
    let consumer = connect(&vhost.urls()[consumer_node]).await;
    let consuming = consumer.create_channel().await.unwrap();
    let mut deliveries = consuming
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let delivery = tokio::time::timeout(CONFIRM_PATIENCE, deliveries.next())
        .await
        .expect("a delivery")
        .expect("the consumer is open")
        .expect("a delivery");
    assert_eq!(delivery.data, b"without the leader");
    delivery.ack(BasicAckOptions::default()).await.unwrap();
    consumer.close(200, "done".into()).await.unwrap();

    let restarted = Instant::now();
    cluster.start_node(leader);
    eprintln!("the node rejoined in {:?}", restarted.elapsed());
    assert_eq!(cluster.running_nodes().len(), 3);
    // The node that came back serves the queue again.
    let returned = connect(&vhost.urls()[leader]).await;
    let channel = confirm_channel(&returned).await;
    publish_confirmed(&channel, queue, b"after the return").await;
    assert_eq!(
        take(&channel, queue, CONFIRM_PATIENCE).await,
        b"after the return"
    );
    returned.close(200, "done".into()).await.unwrap();
    publisher.close(200, "done".into()).await.unwrap();
}
