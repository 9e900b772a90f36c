//! Property 3, model-based: the order saga, run as the runtime runs it, together with small pure
//! models of inventory and payment, over a network that duplicates, reorders and LOSES messages
//! (any message, any number of times). The runtime's part is modelled from the table alone: every
//! effect with a `Confirmation` is outstanding from its emission until a confirming event is
//! applied and may be re-sent (a new copy) any number of times meanwhile; the timer follows
//! `Table::timer_after` and fires only while armed; the customer may ask to cancel at any moment.
//! Proptest chooses the schedule; once loss stops and the re-sends get through, every order is
//! terminal with nothing outstanding, no stock or money leaks, nobody is charged twice, and a
//! charge after cancellation happens only when it outran the pre-emptive refund request.

// Test helpers outside `#[test]` functions may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::collection::vec;
use proptest::prelude::*;
use saga_core::order::{ORDER_SAGA, OrderEffect, OrderEvent, OrderState};
use saga_core::{Deadline, Outcome, TimerChange};

#[path = "model/participants.rs"]
mod participants;

#[path = "model/schedules.rs"]
mod schedules;

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
    /// Held, then released.
    Released,
    /// Released before anything was held: a late reservation request holds nothing.
    Tombstone,
    Failed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Payment {
    None,
    Charged,
    Refunded,
    Failed,
    /// Refunded before anything was charged: a late charge request charges nothing.
    Tombstone,
}

type OrderDeadline = Deadline<'static, OrderState, OrderEvent>;

/// Everything the saga, its runtime and the participants did, and every rule they saw broken.
#[derive(Debug)]
struct World {
    saga: OrderState,
    /// The runtime's timer, as `timer_after` set it.
    timer: Option<&'static OrderDeadline>,
    /// Effects awaiting confirmation (the runtime's table of outstanding effects).
    outstanding: Vec<OrderEffect>,
    stock_suffices: bool,
    funds_suffice: bool,
    reservation: Reservation,
    payment: Payment,
    reservations_made: u32,
    commits: u32,
    releases: u32,
    charges: u32,
    refunds: u32,
    /// Charges made while the saga was already cancelled (each then refunded).
    late_charges: u32,
    /// Whether the saga ever asked for a refund, and whether a request reached payment.
    refund_requested: bool,
    refund_reached_payment: bool,
    /// Cancellation requests the API refused (409): the order was paid or completed.
    cancellations_refused: u32,
    announced_completed: u32,
    announced_cancelled: u32,
    in_flight: Vec<Message>,
    violations: Vec<String>,
}

fn message_for(effect: OrderEffect) -> Option<Message> {
    match effect {
        OrderEffect::ReserveStock => Some(Message::Inventory(InventoryCommand::Reserve)),
        OrderEffect::CommitStock => Some(Message::Inventory(InventoryCommand::Commit)),
        OrderEffect::ReleaseStock => Some(Message::Inventory(InventoryCommand::Release)),
        OrderEffect::RefundPayment => Some(Message::Payment(PaymentCommand::Refund)),
        // Announcements leave the system: the model counts what the saga emitted.
        OrderEffect::AnnounceCompleted | OrderEffect::AnnounceCancelled => None,
    }
}

impl World {
    fn new(stock_suffices: bool, funds_suffice: bool) -> Self {
        let mut world = World {
            saga: ORDER_SAGA.initial,
            timer: None,
            outstanding: Vec::new(),
            stock_suffices,
            funds_suffice,
            reservation: Reservation::None,
            payment: Payment::None,
            reservations_made: 0,
            commits: 0,
            releases: 0,
            charges: 0,
            refunds: 0,
            late_charges: 0,
            refund_requested: false,
            refund_reached_payment: false,
            cancellations_refused: 0,
            announced_completed: 0,
            announced_cancelled: 0,
            in_flight: Vec::new(),
            violations: Vec::new(),
        };
        world.change_timer(ORDER_SAGA.timer_after(None, ORDER_SAGA.initial));
        world.emit(ORDER_SAGA.start_effects);
        world
    }

    fn change_timer(&mut self, change: TimerChange<'static, OrderState, OrderEvent>) {
        match change {
            TimerChange::Keep => {}
            TimerChange::Arm(deadline) => self.timer = Some(deadline),
            TimerChange::Clear => self.timer = None,
        }
    }

    fn emit(&mut self, effects: &[OrderEffect]) {
        for &effect in effects {
            match effect {
                OrderEffect::AnnounceCompleted => self.announced_completed += 1,
                OrderEffect::AnnounceCancelled => self.announced_cancelled += 1,
                OrderEffect::RefundPayment => self.refund_requested = true,
                _ => {}
            }
            let confirmed = ORDER_SAGA.confirmation_of(effect).is_some();
            if confirmed && !self.outstanding.contains(&effect) {
                self.outstanding.push(effect);
            }
            if let Some(message) = message_for(effect) {
                self.in_flight.push(message);
            }
        }
    }

    /// The runtime re-sends an outstanding effect: a new copy of its command.
    fn resend(&mut self, pick: usize) {
        if self.outstanding.is_empty() {
            return;
        }
        let effect = self.outstanding[pick % self.outstanding.len()];
        if let Some(message) = message_for(effect) {
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

    /// The runtime applies `event`: step, confirm, move the timer, emit.
    fn saga_hears(&mut self, event: OrderEvent) {
        let outcome = ORDER_SAGA.step(self.saga, event);
        if let Outcome::Invalid { state } = outcome {
            self.violations.push(format!(
                "saga got {event:?} in {state:?}, which it cannot decide"
            ));
            return;
        }
        self.apply(event, outcome);
    }

    fn apply(&mut self, event: OrderEvent, outcome: Outcome<'static, OrderState, OrderEffect>) {
        let confirmed = ORDER_SAGA.confirmed_by(event);
        self.outstanding
            .retain(|effect| !confirmed.contains(effect));
        if let Outcome::Transition { from, to, .. } = outcome {
            self.change_timer(ORDER_SAGA.timer_after(Some(from), to));
        }
        self.saga = outcome.state();
        self.emit(outcome.effects());
    }

    /// The sweeper: fires the armed timer's event (only while one is armed).
    fn timer_fires(&mut self) {
        if let Some(deadline) = self.timer {
            self.saga_hears(deadline.event);
        }
    }

    /// `POST /orders/{id}/cancel`: the API steps the table; no decision is a 409, which is the
    /// right answer for a paid or completed order and a bug anywhere else.
    fn customer_cancels(&mut self) {
        let outcome = ORDER_SAGA.step(self.saga, OrderEvent::CancelRequested);
        match outcome {
            Outcome::Invalid {
                state: OrderState::Paid | OrderState::Completed,
            } => self.cancellations_refused += 1,
            Outcome::Invalid { state } => self
                .violations
                .push(format!("cancellation refused in {state:?}")),
            _ => self.apply(OrderEvent::CancelRequested, outcome),
        }
    }

    /// Loss has stopped: delivers everything in flight, oldest first; when the network is empty,
    /// the runtime re-sends what is outstanding, else the armed timer fires. Bounded, to report
    /// livelocks.
    fn run_to_quiescence(&mut self) {
        for _ in 0..1_000 {
            if !self.in_flight.is_empty() {
                let message = self.in_flight.remove(0);
                self.deliver(message);
                continue;
            }
            if !self.outstanding.is_empty() {
                for pick in 0..self.outstanding.len() {
                    self.resend(pick);
                }
                continue;
            }
            if self.timer.is_some() {
                self.timer_fires();
                continue;
            }
            if !ORDER_SAGA.is_terminal(self.saga) {
                self.violations.push(format!(
                    "{:?} waits with no timer and nothing outstanding",
                    self.saga
                ));
            }
            return;
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
    /// The message at `pick % len` is lost for good.
    Lose { pick: usize },
    /// The runtime re-sends the outstanding effect at `pick % len`.
    Resend { pick: usize },
    /// The sweeper fires the armed timer, if any.
    Timer,
    /// A sweeper that claimed the instance just before its step committed delivers the
    /// deadline's event late, in a state that has no timer (any other state has one).
    LateTimer,
    /// The customer asks to cancel.
    Cancel,
}

fn any_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (any::<usize>(), prop::bool::weighted(0.25))
            .prop_map(|(pick, duplicate)| Step::Deliver { pick, duplicate }),
        2 => any::<usize>().prop_map(|pick| Step::Lose { pick }),
        2 => any::<usize>().prop_map(|pick| Step::Resend { pick }),
        1 => Just(Step::Timer),
        1 => Just(Step::LateTimer),
        1 => Just(Step::Cancel),
    ]
}

fn run(stock_suffices: bool, funds_suffice: bool, schedule: &[Step]) -> World {
    let mut world = World::new(stock_suffices, funds_suffice);
    for &step in schedule {
        match step {
            Step::Deliver { .. } | Step::Lose { .. } if world.in_flight.is_empty() => {}
            Step::Deliver { pick, duplicate } => {
                let index = pick % world.in_flight.len();
                let message = if duplicate {
                    world.in_flight[index]
                } else {
                    world.in_flight.remove(index)
                };
                world.deliver(message);
            }
            Step::Lose { pick } => {
                let index = pick % world.in_flight.len();
                world.in_flight.remove(index);
            }
            Step::Resend { pick } => world.resend(pick),
            Step::Timer => world.timer_fires(),
            Step::LateTimer if world.timer.is_none() => {
                world.saga_hears(OrderEvent::DeadlinePassed);
            }
            Step::LateTimer => {}
            Step::Cancel => world.customer_cancels(),
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
    prop_assert!(
        world.outstanding.is_empty(),
        "unconfirmed: {:?}",
        world.outstanding
    );
    prop_assert!(world.timer.is_none(), "a finished order keeps a timer");
    prop_assert!(world.charges <= 1, "charged {} times", world.charges);
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
        schedule in vec(any_step(), 0..100),
    ) {
        check(&run(stock_suffices, funds_suffice, &schedule))?;
    }
}
