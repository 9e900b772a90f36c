//! The saga re-sends every command with a new message id until it hears the answer: every copy
//! is answered with the decision already taken, and nothing is done twice.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{PATIENCE, bus, order, priced, set_product, start, stock};
use contracts::{AnyMessage, CommitStock, Envelope, OrderCreated, ReleaseStock};
use serde_json::json;
use testkit::bus::TestBus;
use testkit::service::RunningService;

/// Where an order's reservation stands before a command is repeated.
#[derive(Clone, Copy, Debug)]
enum Prior {
    /// Inventory never heard of the order.
    Nothing,
    Held,
    Committed,
    /// Held, then released.
    Released,
    /// Released before the reservation request came.
    Tombstone,
    /// The request could not be held (the product has 1 unit, the order asks 2).
    Failed,
}

/// A command the saga repeats.
#[derive(Clone, Copy, Debug)]
enum Command {
    Reserve,
    Commit,
    Release,
}

/// What each copy of a command must be answered with.
#[derive(Clone, Copy, Debug)]
enum Answer {
    /// `StockReserved` of the order's 2 units at the price they were held at, 250.
    Reserved,
    /// `StockFailed` with this reason (`{product}` stands for the case's product).
    Failed(&'static str),
    Committed,
    Released,
    /// Nothing: the command is refused (the saga never sends it).
    Refused,
}

/// The message the saga sends for `command` about `placed`.
async fn send(bus: &TestBus, command: Command, placed: &OrderCreated) -> Envelope {
    match command {
        Command::Reserve => bus.publish_message(placed).await,
        Command::Commit => {
            bus.publish_message(&CommitStock {
                order_id: placed.order_id,
            })
            .await
        }
        Command::Release => {
            bus.publish_message(&ReleaseStock {
                order_id: placed.order_id,
                reason: "order cancelled".into(),
            })
            .await
        }
    }
}

/// The next answer must be `expected` for `placed`, caused by `sent`.
async fn expect_answer(
    bus: &mut TestBus,
    (placed, product): (&OrderCreated, &str),
    sent: &Envelope,
    expected: Answer,
    case: &str,
) {
    if let Answer::Refused = expected {
        bus.expect_silence(Duration::from_millis(500)).await;
        return;
    }
    let reply = bus.next(PATIENCE).await;
    assert_eq!(reply.causation_id, Some(sent.message_id), "{case}");
    match (reply.payload, expected) {
        (AnyMessage::StockReserved(reserved), Answer::Reserved) => {
            assert_eq!(
                (reserved.order_id, reserved.customer_id),
                (placed.order_id, placed.customer_id),
                "{case}"
            );
            assert_eq!(
                priced(&reserved),
                (vec![(product.to_owned(), 2, 250)], 500),
                "{case}"
            );
        }
        (AnyMessage::StockFailed(failed), Answer::Failed(reason)) => assert_eq!(
            (failed.order_id, failed.customer_id, failed.reason),
            (
                placed.order_id,
                placed.customer_id,
                reason.replace("{product}", product)
            ),
            "{case}"
        ),
        (AnyMessage::StockCommitted(committed), Answer::Committed) => {
            assert_eq!(committed.order_id, placed.order_id, "{case}");
        }
        (AnyMessage::StockReleased(released), Answer::Released) => {
            assert_eq!(released.order_id, placed.order_id, "{case}");
        }
        (other, _) => panic!("{case}: expected {expected:?}, got {other:?}"),
    }
}

/// Brings a fresh order of 2 units of `product` (10 in stock at 250, or 1 for
/// [`Prior::Failed`]) to `prior`, then sends `command` twice with different message ids, the
/// catalog price changed in between: both copies must get `expected` (a repeat the decision
/// already taken, at the price held), and the stock must end at `after` (available, reserved,
/// committed) with the reservation `status` (`None`: no reservation).
async fn check_repeat(
    (service, bus): (&RunningService, &mut TestBus),
    (product, prior, command): (&str, Prior, Command),
    expected: Answer,
    (after, status): ((i64, i64, i64), Option<&str>),
) {
    let case = format!("{command:?} after {prior:?}");
    let units = if let Prior::Failed = prior { 1 } else { 10 };
    set_product(service, product, units, 250).await;
    let placed = order(&[(product, 2)]);
    let subject = (&placed, product);
    let setup: &[(Command, Answer)] = match prior {
        Prior::Nothing => &[],
        Prior::Held => &[(Command::Reserve, Answer::Reserved)],
        Prior::Committed => &[
            (Command::Reserve, Answer::Reserved),
            (Command::Commit, Answer::Committed),
        ],
        Prior::Released => &[
            (Command::Reserve, Answer::Reserved),
            (Command::Release, Answer::Released),
        ],
        Prior::Tombstone => &[(Command::Release, Answer::Released)],
        Prior::Failed => &[(
            Command::Reserve,
            Answer::Failed("insufficient stock for {product}: 2 requested, 1 available"),
        )],
    };
    for &(step, answer) in setup {
        let sent = send(bus, step, &placed).await;
        expect_answer(bus, subject, &sent, answer, &format!("{case}: {step:?}")).await;
    }
    for copy in ["first copy", "second copy"] {
        let sent = send(bus, command, &placed).await;
        expect_answer(bus, subject, &sent, expected, &format!("{case}, {copy}")).await;
        // A repeat answers the decision taken, not today's catalog.
        let (available, _, _) = stock(service, product).await;
        set_product(service, product, available, 999).await;
    }
    assert_eq!(stock(service, product).await, after, "{case}");
    let (code, body) = service
        .get_json(&format!("/reservations/{}", placed.order_id))
        .await;
    match status {
        Some(status) => assert_eq!(
            (code.as_u16(), &body["status"]),
            (200, &json!(status)),
            "{case}"
        ),
        None => assert_eq!(code, 404, "{case}: {body}"),
    }
}

/// The saga re-sends every command with a new message id until it hears the answer, and the
/// answer to the first copy may be the one that was lost: every copy, in every state, is
/// answered with the decision already taken, and nothing is done twice. A release before the
/// reservation leaves a tombstone that makes the late request hold nothing.
#[tokio::test]
async fn every_copy_of_a_command_is_answered_with_the_decision_already_taken() {
    let service = start().await;
    let mut bus = bus(&service).await;
    const CANCELLED_BEFORE: &str =
        "the order was cancelled before its stock was reserved: order cancelled";
    const CANCELLED_AFTER: &str = "the order was cancelled after its stock was reserved; the \
                                   stock was released: order cancelled";
    const SHORT: &str = "insufficient stock for {product}: 2 requested, 1 available";
    // (prior state, command, answer to each copy, stock after, reservation status after).
    type Case = (
        Prior,
        Command,
        Answer,
        (i64, i64, i64),
        Option<&'static str>,
    );
    let cases: &[Case] = &[
        (
            Prior::Nothing,
            Command::Reserve,
            Answer::Reserved,
            (8, 2, 0),
            Some("Held"),
        ),
        (
            Prior::Held,
            Command::Reserve,
            Answer::Reserved,
            (8, 2, 0),
            Some("Held"),
        ),
        (
            Prior::Committed,
            Command::Reserve,
            Answer::Reserved,
            (8, 0, 2),
            Some("Committed"),
        ),
        (
            Prior::Released,
            Command::Reserve,
            Answer::Failed(CANCELLED_AFTER),
            (10, 0, 0),
            Some("Released"),
        ),
        (
            Prior::Tombstone,
            Command::Reserve,
            Answer::Failed(CANCELLED_BEFORE),
            (10, 0, 0),
            Some("Released"),
        ),
        (
            Prior::Failed,
            Command::Reserve,
            Answer::Failed(SHORT),
            (1, 0, 0),
            Some("Failed"),
        ),
        // The saga commits only what is held; anything else is refused and changes nothing.
        (
            Prior::Nothing,
            Command::Commit,
            Answer::Refused,
            (10, 0, 0),
            None,
        ),
        (
            Prior::Held,
            Command::Commit,
            Answer::Committed,
            (8, 0, 2),
            Some("Committed"),
        ),
        (
            Prior::Committed,
            Command::Commit,
            Answer::Committed,
            (8, 0, 2),
            Some("Committed"),
        ),
        (
            Prior::Released,
            Command::Commit,
            Answer::Refused,
            (10, 0, 0),
            Some("Released"),
        ),
        (
            Prior::Tombstone,
            Command::Commit,
            Answer::Refused,
            (10, 0, 0),
            Some("Released"),
        ),
        (
            Prior::Failed,
            Command::Commit,
            Answer::Refused,
            (1, 0, 0),
            Some("Failed"),
        ),
        // A release of nothing is still confirmed; sold stock is never taken back.
        (
            Prior::Nothing,
            Command::Release,
            Answer::Released,
            (10, 0, 0),
            Some("Released"),
        ),
        (
            Prior::Held,
            Command::Release,
            Answer::Released,
            (10, 0, 0),
            Some("Released"),
        ),
        (
            Prior::Committed,
            Command::Release,
            Answer::Refused,
            (8, 0, 2),
            Some("Committed"),
        ),
        (
            Prior::Released,
            Command::Release,
            Answer::Released,
            (10, 0, 0),
            Some("Released"),
        ),
        (
            Prior::Tombstone,
            Command::Release,
            Answer::Released,
            (10, 0, 0),
            Some("Released"),
        ),
        (
            Prior::Failed,
            Command::Release,
            Answer::Released,
            (1, 0, 0),
            Some("Failed"),
        ),
    ];
    for (index, &(prior, command, answer, after, status)) in cases.iter().enumerate() {
        let product = format!("repeat-{index}");
        check_repeat(
            (&service, &mut bus),
            (&product, prior, command),
            answer,
            (after, status),
        )
        .await;
    }
}
