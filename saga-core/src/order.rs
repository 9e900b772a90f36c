//! The reference definition: the order saga run by `order-svc`.
//!
//! Forward steps are partly choreographed, as in the system this crate was written for:
//! inventory reacts to the order's creation (the start effect [`OrderEffect::ReserveStock`]),
//! payment reacts to `StockReserved` by itself. The saga decides everything else: committing the
//! reservation after payment, every compensation, the deadline, the customer's cancellation and
//! the final announcement.
//!
//! Messages travel through a broker that delivers at least once, in any order across queues, and
//! can lose a command for good (dead-lettered, purged, taken by a consumer that died), so the
//! table also decides:
//! - **reordered events** — `PaymentSucceeded` or `PaymentFailed` can overtake `StockReserved`
//!   (they come through different queues). Payment only ever acts on a reservation, so in
//!   `Pending` they imply it, and the saga moves as if `StockReserved` had come first;
//! - **late events** — after `Cancelled`, a reservation must be released and a charge refunded;
//! - **duplicates and overtaken events** — listed in `ignored`;
//! - **confirmations** — `ReserveStock` is confirmed by `StockReserved` or `StockFailed`,
//!   `CommitStock` by `StockCommitted`, `ReleaseStock` by `StockReleased`, `RefundPayment` by
//!   `PaymentRefunded`. The runtime re-sends each until its confirmation is applied, and every
//!   participant answers every copy with the decision it already took, so a lost command or a
//!   lost answer only delays the saga. Announcements are fire-and-forget. The re-sends make
//!   answers arrive where the happy path never sees them (a repeated `StockReserved` after the
//!   order was paid): each is decided, as [`Table::validate`](crate::Table::validate) demands;
//! - **the deadline** — one timer, armed when the order is created and shared by `Pending` and
//!   `Reserved` (moving to `Reserved` does not restart it), delivers `DeadlinePassed` after 30 s
//!   (services may configure another duration). `Paid` has none: committing a held reservation
//!   cannot fail, and `CommitStock` is re-sent until confirmed;
//! - **cancellation by the customer or an operator** — `CancelRequested` cancels a `Pending` or
//!   `Reserved` order; a `Cancelled` one ignores it (asking twice is fine); a `Paid` or
//!   `Completed` order has no decision for it, so it is [`Outcome::Invalid`](crate::Outcome::Invalid)
//!   and the API answers 409 naming the state: the goods are paid for and on their way.
//!
//! Cancelling a `Pending` or `Reserved` order (deadline or request) is **pre-emptive**: a
//! reservation or a charge may be in flight, so it asks inventory to release and payment to
//! refund whether or not they acted yet. Participants leave a tombstone for a compensation of
//! nothing, so the late reservation request reserves nothing and the late charge request charges
//! nothing — the customer never sees a charge and a refund. Late events that still get through
//! (the charge happened before the refund request arrived) are compensated by the
//! `Cancelled` rows.
//!
//! Everything not decided is [`Outcome::Invalid`](crate::Outcome::Invalid): a correct
//! participant never sends it (for example `StockCommitted` before the saga asked for a commit).

use core::time::Duration;

use crate::{Confirmation, Deadline, Row, Table};

crate::labels! {
    /// The statuses of an order.
    pub enum OrderState {
        /// Created; waiting for inventory.
        Pending,
        /// Stock is held for the order; waiting for payment.
        Reserved,
        /// Payment succeeded; waiting for inventory to commit the reservation.
        Paid,
        /// Goods committed and paid for. Terminal.
        Completed,
        /// Cancelled; every effect that happened is compensated. Terminal.
        Cancelled,
    }
}

crate::labels! {
    /// What the order saga hears.
    pub enum OrderEvent {
        /// Inventory holds every line of the order.
        StockReserved,
        /// Inventory could not hold every line (unknown product, not enough stock).
        StockFailed,
        /// Payment charged the order's total.
        PaymentSucceeded,
        /// Payment could not charge (for example insufficient balance).
        PaymentFailed,
        /// Inventory turned the reservation into a sale.
        StockCommitted,
        /// Inventory released the reservation (confirmation of a compensation).
        StockReleased,
        /// Payment refunded the charge (confirmation of a compensation).
        PaymentRefunded,
        /// The order stayed too long in a waiting state.
        DeadlinePassed,
        /// The customer (or an operator) asks to cancel the order.
        CancelRequested,
    }
}

crate::labels! {
    /// What the order saga asks others to do.
    pub enum OrderEffect {
        /// Ask inventory to reserve every line (published as `OrderCreated`).
        ReserveStock,
        /// Ask inventory to turn the reservation into a sale.
        CommitStock,
        /// Compensation: ask inventory to release the reservation.
        ReleaseStock,
        /// Compensation: ask payment to refund the charge.
        RefundPayment,
        /// Tell the world the order completed.
        AnnounceCompleted,
        /// Tell the world the order was cancelled.
        AnnounceCancelled,
    }
}

use OrderEffect::*;
use OrderEvent::*;
use OrderState::*;

/// The order saga's table.
///
/// ```
/// use saga_core::order::{ORDER_SAGA, OrderEffect, OrderEvent, OrderState};
/// use saga_core::{Outcome, TimerChange};
/// assert!(ORDER_SAGA.validate().is_ok());
/// let outcome = ORDER_SAGA.step(OrderState::Reserved, OrderEvent::PaymentFailed);
/// assert_eq!(outcome.state(), OrderState::Cancelled);
/// assert!(matches!(outcome, Outcome::Transition { .. }));
///
/// // One timer from creation: Pending -> Reserved keeps it, Reserved -> Paid clears it.
/// assert!(matches!(ORDER_SAGA.timer_after(None, OrderState::Pending), TimerChange::Arm(_)));
/// assert_eq!(ORDER_SAGA.timer_after(Some(OrderState::Pending), OrderState::Reserved),
///            TimerChange::Keep);
/// assert_eq!(ORDER_SAGA.timer_after(Some(OrderState::Reserved), OrderState::Paid),
///            TimerChange::Clear);
///
/// // A paid order cannot be cancelled; the commit is re-sent until inventory confirms it.
/// assert!(matches!(ORDER_SAGA.step(OrderState::Paid, OrderEvent::CancelRequested),
///                  Outcome::Invalid { .. }));
/// assert!(ORDER_SAGA.confirmation_of(OrderEffect::CommitStock).is_some());
/// assert!(ORDER_SAGA.confirmation_of(OrderEffect::AnnounceCompleted).is_none());
/// assert_eq!(ORDER_SAGA.confirmed_by(OrderEvent::StockCommitted), [OrderEffect::CommitStock]);
/// ```
pub static ORDER_SAGA: Table<'static, OrderState, OrderEvent, OrderEffect> = Table {
    name: "OrderSaga",
    initial: Pending,
    start_effects: &[ReserveStock],
    terminal: &[Completed, Cancelled],
    rows: &[
        // The forward path.
        Row::new(Pending, StockReserved, Reserved, &[]),
        Row::new(Reserved, PaymentSucceeded, Paid, &[CommitStock]),
        Row::new(Paid, StockCommitted, Completed, &[AnnounceCompleted]),
        // Failures, with the compensations the progress so far requires.
        Row::new(Pending, StockFailed, Cancelled, &[AnnounceCancelled]),
        Row::new(
            Reserved,
            PaymentFailed,
            Cancelled,
            &[ReleaseStock, AnnounceCancelled],
        ),
        // Payment's answer overtook StockReserved: it implies the reservation.
        Row::new(Pending, PaymentSucceeded, Paid, &[CommitStock]),
        Row::new(
            Pending,
            PaymentFailed,
            Cancelled,
            &[ReleaseStock, AnnounceCancelled],
        ),
        // The deadline and the customer's request cancel pre-emptively: a reservation or a charge
        // may be in flight, and the participants' tombstones stop the late one.
        Row::new(Pending, DeadlinePassed, Cancelled, PRE_EMPTIVE_CANCELLATION),
        Row::new(
            Reserved,
            DeadlinePassed,
            Cancelled,
            PRE_EMPTIVE_CANCELLATION,
        ),
        Row::new(
            Pending,
            CancelRequested,
            Cancelled,
            PRE_EMPTIVE_CANCELLATION,
        ),
        Row::new(
            Reserved,
            CancelRequested,
            Cancelled,
            PRE_EMPTIVE_CANCELLATION,
        ),
        // Late events after cancellation carry their compensation.
        Row::new(Cancelled, StockReserved, Cancelled, &[ReleaseStock]),
        Row::new(Cancelled, PaymentSucceeded, Cancelled, &[RefundPayment]),
    ],
    ignored: &[
        // Redeliveries, and inventory's answers to re-sent reservation requests.
        (Reserved, StockReserved),
        (Paid, StockReserved),
        (Completed, StockReserved),
        // ReserveStock is still outstanding in Paid and Completed when payment's answer overtook
        // StockReserved, so its other confirmation must be decided there too. A correct
        // inventory never refuses stock it held for a charged order; ignoring the refusal only
        // confirms the request.
        (Paid, StockFailed),
        (Completed, StockFailed),
        // Payment's answers to repeated StockReserved copies: it re-announces its decision.
        (Paid, PaymentSucceeded),
        (Completed, PaymentSucceeded),
        // Inventory's answers to re-sent commits.
        (Completed, StockCommitted),
        // A timer that fired just as the instance left Pending or Reserved (a sweeper that
        // claimed it a moment before its step committed): harmless, so decided rather than
        // Invalid. Validate demands no such pair; it keeps the sweeper free of races.
        (Paid, DeadlinePassed),
        (Completed, DeadlinePassed),
        (Cancelled, DeadlinePassed),
        // After cancellation: refusals and confirmations of compensations change nothing (they
        // confirm the outstanding effect), and asking again is idempotent.
        (Cancelled, StockFailed),
        (Cancelled, PaymentFailed),
        (Cancelled, StockReleased),
        (Cancelled, PaymentRefunded),
        (Cancelled, CancelRequested),
    ],
    deadlines: &[Deadline::new(
        &[Pending, Reserved],
        Duration::from_secs(30),
        DeadlinePassed,
    )],
    confirmations: &[
        Confirmation::new(ReserveStock, &[StockReserved, StockFailed]),
        Confirmation::new(CommitStock, &[StockCommitted]),
        Confirmation::new(ReleaseStock, &[StockReleased]),
        Confirmation::new(RefundPayment, &[PaymentRefunded]),
    ],
};

/// What cancelling a `Pending` or `Reserved` order asks for, whatever the participants did so
/// far: release (of a reservation that may not exist yet), refund (of a charge that may not exist
/// yet), and the announcement.
const PRE_EMPTIVE_CANCELLATION: &[OrderEffect] = &[ReleaseStock, RefundPayment, AnnounceCancelled];
