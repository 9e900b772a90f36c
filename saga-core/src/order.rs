//! The reference definition: the order saga run by `order-svc`.
//!
//! Forward steps are partly choreographed, as in the system this crate was written for:
//! inventory reacts to the order's creation (the start effect [`OrderEffect::ReserveStock`]),
//! payment reacts to `StockReserved` by itself. The saga decides everything else: committing the
//! reservation after payment, every compensation, the deadline, and the final announcement.
//!
//! Messages travel through a broker that delivers at least once and in any order across queues,
//! so the table also decides:
//! - **reordered events** — `PaymentSucceeded` or `PaymentFailed` can overtake `StockReserved`
//!   (they come through different queues). Payment only ever acts on a reservation, so in
//!   `Pending` they imply it, and the saga moves as if `StockReserved` had come first;
//! - **late events** — after `Cancelled`, a reservation must be released and a charge refunded;
//! - **duplicates and overtaken events** — listed in `ignored`;
//! - **deadlines** — `DeadlinePassed` is an ordinary event, sent by a sweeper to instances stuck
//!   in `Pending` or `Reserved`. `Paid` has none: committing a held reservation cannot fail.
//!
//! Everything not decided is [`Outcome::Invalid`](crate::Outcome::Invalid): a correct
//! participant never sends it (for example `StockCommitted` before the saga asked for a commit).

use crate::{Row, Table};

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
/// use saga_core::order::{ORDER_SAGA, OrderEvent, OrderState};
/// use saga_core::Outcome;
/// assert!(ORDER_SAGA.validate().is_ok());
/// let outcome = ORDER_SAGA.step(OrderState::Reserved, OrderEvent::PaymentFailed);
/// assert_eq!(outcome.state(), OrderState::Cancelled);
/// assert!(matches!(outcome, Outcome::Transition { .. }));
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
        // Deadlines.
        Row::new(Pending, DeadlinePassed, Cancelled, &[AnnounceCancelled]),
        Row::new(
            Reserved,
            DeadlinePassed,
            Cancelled,
            &[ReleaseStock, AnnounceCancelled],
        ),
        // Late events after cancellation carry their compensation.
        Row::new(Cancelled, StockReserved, Cancelled, &[ReleaseStock]),
        Row::new(Cancelled, PaymentSucceeded, Cancelled, &[RefundPayment]),
    ],
    ignored: &[
        (Reserved, StockReserved),
        (Paid, StockReserved),
        (Paid, PaymentSucceeded),
        (Paid, DeadlinePassed),
        (Completed, StockReserved),
        (Completed, PaymentSucceeded),
        (Completed, StockCommitted),
        (Completed, DeadlinePassed),
        (Cancelled, StockFailed),
        (Cancelled, PaymentFailed),
        (Cancelled, StockReleased),
        (Cancelled, PaymentRefunded),
        (Cancelled, DeadlinePassed),
    ],
};
