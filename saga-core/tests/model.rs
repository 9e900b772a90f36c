//! Property 3, model-based: the order saga together with small pure models of inventory and
//! payment, over a network that delivers every message at least once, duplicated and in any
//! order, with deadlines firing at arbitrary moments. Proptest chooses the schedule; at
//! quiescence no order is stuck, no stock and no money leaks.

// Test helpers outside `#[test]` functions may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::collection::vec;
use proptest::prelude::*;
use saga_core::Outcome;
use saga_core::order::{ORDER_SAGA, OrderEffect, OrderEvent, OrderState};

/// A message in flight, addressed to one participant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Message {
    Saga(OrderEvent),
    Inventory(InventoryCommand),
    Payment(PaymentCommand),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum InventoryCommand {
    /// `OrderCreated`.
    Reserve,
    Commit,
    Release,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PaymentCommand {
    /// Payment's own subscription to `StockReserved`.
    Charge,
    Refund,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reservation {
    None,
    Held,
    Committed,
    Released,
    Failed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Payment {
    None,
    Charged,
    Refunded,
    Failed,
}

/// Everything the participants did, and every rule they saw broken.
#[derive(Debug)]
struct World {
    saga: OrderState,
    stock_suffices: bool,
    funds_suffice: bool,
    reservation: Reservation,
    payment: Payment,
    reservations_made: u32,
    commits: u32,
    releases: u32,
    charges: u32,
    refunds: u32,
    announced_completed: u32,
    announced_cancelled: u32,
    in_flight: Vec<Message>,
    violations: Vec<String>,
}

impl World {
    fn new(stock_suffices: bool, funds_suffice: bool) -> Self {
        let mut world = World {
            saga: ORDER_SAGA.initial,
            stock_suffices,
            funds_suffice,
            reservation: Reservation::None,
            payment: Payment::None,
            reservations_made: 0,
            commits: 0,
            releases: 0,
            charges: 0,
            refunds: 0,
            announced_completed: 0,
            announced_cancelled: 0,
            in_flight: Vec::new(),
            violations: Vec::new(),
        };
        world.emit(ORDER_SAGA.start_effects);
        world
    }

    fn emit(&mut self, effects: &[OrderEffect]) {
        for &effect in effects {
            let message = match effect {
                OrderEffect::ReserveStock => Message::Inventory(InventoryCommand::Reserve),
                OrderEffect::CommitStock => Message::Inventory(InventoryCommand::Commit),
                OrderEffect::ReleaseStock => Message::Inventory(InventoryCommand::Release),
                OrderEffect::RefundPayment => Message::Payment(PaymentCommand::Refund),
                // Announcements leave the system: the model counts what the saga emitted.
                OrderEffect::AnnounceCompleted => {
                    self.announced_completed += 1;
                    continue;
                }
                OrderEffect::AnnounceCancelled => {
                    self.announced_cancelled += 1;
                    continue;
                }
            };
            self.in_flight.push(message);
        }
    }

    fn deliver(&mut self, message: Message) {
        match message {
            Message::Saga(event) => self.saga_hears(event),
            Message::Inventory(command) => self.inventory_hears(command),
            Message::Payment(command) => self.payment_hears(command),
        }
    }

    fn saga_hears(&mut self, event: OrderEvent) {
        let outcome = ORDER_SAGA.step(self.saga, event);
        if let Outcome::Invalid { state } = outcome {
            self.violations.push(format!(
                "saga got {event:?} in {state:?}, which it cannot decide"
            ));
        }
        self.saga = outcome.state();
        self.emit(outcome.effects());
    }

    /// Inventory: reserves all or nothing once, commits or releases what it holds; releasing
    /// an absent reservation leaves a tombstone so that a late reserve request holds nothing.
    fn inventory_hears(&mut self, command: InventoryCommand) {
        use InventoryCommand::*;
        use Reservation as R;
        match (command, self.reservation) {
            (Reserve, R::None) if self.stock_suffices => {
                self.reservation = R::Held;
                self.reservations_made += 1;
                // StockReserved fans out to both subscribers: the saga and payment.
                self.in_flight
                    .push(Message::Saga(OrderEvent::StockReserved));
                self.in_flight
                    .push(Message::Payment(PaymentCommand::Charge));
            }
            (Reserve, R::None) => {
                self.reservation = R::Failed;
                self.in_flight.push(Message::Saga(OrderEvent::StockFailed));
            }
            (Reserve, _) => {}
            (Commit, R::Held) => {
                self.reservation = R::Committed;
                self.commits += 1;
                self.in_flight
                    .push(Message::Saga(OrderEvent::StockCommitted));
            }
            (Commit, R::Committed) => self
                .in_flight
                .push(Message::Saga(OrderEvent::StockCommitted)),
            (Commit, other) => self
                .violations
                .push(format!("commit asked of a {other:?} reservation")),
            (Release, R::Held) => {
                self.reservation = R::Released;
                self.releases += 1;
                self.in_flight
                    .push(Message::Saga(OrderEvent::StockReleased));
            }
            (Release, R::Committed) => self
                .violations
                .push("release asked of committed stock".into()),
            (Release, R::None) => {
                self.reservation = R::Released;
                self.in_flight
                    .push(Message::Saga(OrderEvent::StockReleased));
            }
            (Release, R::Released | R::Failed) => {
                self.in_flight
                    .push(Message::Saga(OrderEvent::StockReleased));
            }
        }
    }

    /// Payment: charges once per order, refunds what it charged.
    fn payment_hears(&mut self, command: PaymentCommand) {
        use PaymentCommand::*;
        match (command, self.payment) {
            (Charge, Payment::None) if self.funds_suffice => {
                self.payment = Payment::Charged;
                self.charges += 1;
                self.in_flight
                    .push(Message::Saga(OrderEvent::PaymentSucceeded));
            }
            (Charge, Payment::None) => {
                self.payment = Payment::Failed;
                self.in_flight
                    .push(Message::Saga(OrderEvent::PaymentFailed));
            }
            (Charge, _) => {}
            (Refund, Payment::Charged) => {
                self.payment = Payment::Refunded;
                self.refunds += 1;
                self.in_flight
                    .push(Message::Saga(OrderEvent::PaymentRefunded));
            }
            (Refund, Payment::Refunded) => {
                self.in_flight
                    .push(Message::Saga(OrderEvent::PaymentRefunded));
            }
            (Refund, other) => self
                .violations
                .push(format!("refund asked of a {other:?} payment")),
        }
    }

    /// Delivers everything still in flight, oldest first; when the network is empty and the
    /// saga still waits, its deadline fires (the sweeper). Bounded, to report livelocks.
    fn run_to_quiescence(&mut self) {
        for _ in 0..1_000 {
            if self.in_flight.is_empty() {
                if ORDER_SAGA.is_terminal(self.saga) {
                    return;
                }
                self.saga_hears(OrderEvent::DeadlinePassed);
                continue;
            }
            let message = self.in_flight.remove(0);
            self.deliver(message);
        }
        self.violations
            .push("no quiescence after 1,000 deliveries".into());
    }
}

/// One step of the adversarial schedule.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// Deliver the in-flight message at `pick % len`; keep a copy of it in flight if
    /// `duplicate` (the broker redelivers it later).
    Deliver { pick: usize, duplicate: bool },
    /// The deadline sweeper fires now, whatever the saga's state (it may race a transition).
    Deadline,
}

fn any_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (any::<usize>(), prop::bool::weighted(0.25))
            .prop_map(|(pick, duplicate)| Step::Deliver { pick, duplicate }),
        1 => Just(Step::Deadline),
    ]
}

fn run(stock_suffices: bool, funds_suffice: bool, schedule: &[Step]) -> World {
    let mut world = World::new(stock_suffices, funds_suffice);
    for &step in schedule {
        match step {
            Step::Deadline => world.saga_hears(OrderEvent::DeadlinePassed),
            Step::Deliver { .. } if world.in_flight.is_empty() => {}
            Step::Deliver { pick, duplicate } => {
                let index = pick % world.in_flight.len();
                let message = if duplicate {
                    world.in_flight[index]
                } else {
                    world.in_flight.remove(index)
                };
                world.deliver(message);
            }
        }
    }
    world.run_to_quiescence();
    world
}

fn check(world: &World) -> Result<(), TestCaseError> {
    prop_assert!(
        world.violations.is_empty(),
        "rules broken: {:?}",
        world.violations
    );
    prop_assert!(
        ORDER_SAGA.is_terminal(world.saga),
        "stuck in {:?}",
        world.saga
    );
    match world.saga {
        OrderState::Completed => {
            prop_assert_eq!(world.reservation, Reservation::Committed);
            prop_assert_eq!((world.commits, world.releases), (1, 0), "stock");
            prop_assert_eq!((world.charges, world.refunds), (1, 0), "money");
            prop_assert_eq!(
                (world.announced_completed, world.announced_cancelled),
                (1, 0)
            );
        }
        OrderState::Cancelled => {
            prop_assert_eq!(world.commits, 0, "committed stock of a cancelled order");
            prop_assert_eq!(world.reservations_made, world.releases, "stock still held");
            prop_assert_eq!(world.charges, world.refunds, "money still charged");
            prop_assert_eq!(
                (world.announced_completed, world.announced_cancelled),
                (0, 1)
            );
        }
        other => prop_assert!(false, "not terminal: {:?}", other),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn no_order_is_stuck_and_nothing_leaks_under_any_schedule(
        stock_suffices in any::<bool>(),
        funds_suffice in any::<bool>(),
        schedule in vec(any_step(), 0..80),
    ) {
        check(&run(stock_suffices, funds_suffice, &schedule))?;
    }
}

/// Without deadlines or failures, delivery in order completes the order: the model is not
/// trivially satisfied by cancelling everything.
#[test]
fn a_calm_network_completes_the_order() {
    let world = run(true, true, &[]);
    assert_eq!(world.saga, OrderState::Completed);
    assert_eq!((world.commits, world.charges), (1, 1));
}

/// Table-driven outcomes the model must reach on a calm network.
#[test]
fn calm_outcomes_match_the_participants_answers() {
    let cases = [
        (true, true, OrderState::Completed),
        (false, true, OrderState::Cancelled),
        (true, false, OrderState::Cancelled),
        (false, false, OrderState::Cancelled),
    ];
    for (stock_suffices, funds_suffice, expected) in cases {
        let world = run(stock_suffices, funds_suffice, &[]);
        assert_eq!(
            world.saga, expected,
            "stock {stock_suffices}, funds {funds_suffice}"
        );
        check(&world).unwrap();
    }
}

/// The schedule the issue names: the deadline cancels a reserved order, then payment's late
/// success arrives and must be refunded.
#[test]
fn a_late_charge_after_the_deadline_is_refunded() {
    // Reserve; deliver StockReserved to the saga; fire the deadline; then let payment charge.
    let world = run(
        true,
        true,
        &[
            Step::Deliver {
                pick: 0,
                duplicate: false,
            }, // inventory reserves
            Step::Deliver {
                pick: 0,
                duplicate: false,
            }, // saga: Pending -> Reserved
            Step::Deadline, // Reserved -> Cancelled, release
        ],
    );
    assert_eq!(world.saga, OrderState::Cancelled);
    assert_eq!((world.charges, world.refunds), (1, 1));
    assert_eq!((world.reservations_made, world.releases), (1, 1));
}
