//! The participants' models: inventory and payment, answering every copy of every command.

use saga_core::order::{OrderEvent, OrderState};

use super::{InventoryCommand, Message, Payment, PaymentCommand, Reservation, World};

impl World {
    fn answer(&mut self, event: OrderEvent) {
        self.in_flight.push(Message::Saga(event));
    }

    /// `StockReserved` fans out to both subscribers: the saga and payment.
    fn announce_reserved(&mut self) {
        self.answer(OrderEvent::StockReserved);
        self.in_flight
            .push(Message::Payment(PaymentCommand::Charge));
    }

    /// Inventory: reserves all or nothing once, commits or releases what it holds, and answers
    /// every copy of every command with the decision it took. Releasing an absent reservation
    /// leaves a tombstone so that a late reserve request holds nothing.
    pub(super) fn inventory_hears(&mut self, command: InventoryCommand) {
        use InventoryCommand::*;
        use Reservation as R;
        match (command, self.reservation) {
            (Reserve, R::None) if self.stock_suffices => {
                self.reservation = R::Held;
                self.reservations_made += 1;
                self.announce_reserved();
            }
            (Reserve, R::None) => {
                self.reservation = R::Failed;
                self.answer(OrderEvent::StockFailed);
            }
            (Reserve, R::Held | R::Committed) => self.announce_reserved(),
            (Reserve, R::Released | R::Tombstone | R::Failed) => {
                self.answer(OrderEvent::StockFailed);
            }
            (Commit, R::Held) => {
                self.reservation = R::Committed;
                self.commits += 1;
                self.answer(OrderEvent::StockCommitted);
            }
            (Commit, R::Committed) => self.answer(OrderEvent::StockCommitted),
            (Commit, other) => self
                .violations
                .push(format!("commit asked of a {other:?} reservation")),
            (Release, R::Held) => {
                self.reservation = R::Released;
                self.releases += 1;
                self.answer(OrderEvent::StockReleased);
            }
            (Release, R::Committed) => self
                .violations
                .push("release asked of committed stock".into()),
            (Release, R::None) => {
                self.reservation = R::Tombstone;
                self.answer(OrderEvent::StockReleased);
            }
            (Release, R::Released | R::Tombstone | R::Failed) => {
                self.answer(OrderEvent::StockReleased);
            }
        }
    }

    /// Payment: charges once per order, refunds what it charged, answers every copy with the
    /// decision it took. A refund of nothing leaves a tombstone so a late charge charges nothing.
    pub(super) fn payment_hears(&mut self, command: PaymentCommand) {
        use PaymentCommand::*;
        match (command, self.payment) {
            (Charge, Payment::None) if self.funds_suffice => {
                if self.refund_reached_payment {
                    self.violations
                        .push("charged after a refund request reached payment".into());
                }
                if self.saga == OrderState::Cancelled {
                    self.late_charges += 1;
                    if !self.refund_requested {
                        self.violations
                            .push("charged after cancellation, and no refund was requested".into());
                    }
                }
                self.payment = Payment::Charged;
                self.charges += 1;
                self.answer(OrderEvent::PaymentSucceeded);
            }
            (Charge, Payment::None) => {
                self.payment = Payment::Failed;
                self.answer(OrderEvent::PaymentFailed);
            }
            // It charged (and maybe refunded since): it says so again; silence would be safe too.
            (Charge, Payment::Charged | Payment::Refunded) => {
                self.answer(OrderEvent::PaymentSucceeded);
            }
            (Charge, Payment::Failed | Payment::Tombstone) => {
                self.answer(OrderEvent::PaymentFailed);
            }
            (Refund, current) => {
                self.refund_reached_payment = true;
                match current {
                    Payment::Charged => {
                        self.payment = Payment::Refunded;
                        self.refunds += 1;
                    }
                    Payment::None => self.payment = Payment::Tombstone,
                    Payment::Refunded | Payment::Failed | Payment::Tombstone => {}
                }
                self.answer(OrderEvent::PaymentRefunded);
            }
        }
    }
}
