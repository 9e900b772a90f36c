//! Chosen schedules with known outcomes: the model is not trivially satisfied (a calm network
//! completes the order), and the cases behave as intended.

use saga_core::order::OrderState;

use super::{Step, check, run};

const DELIVER_FIRST: Step = Step::Deliver {
    pick: 0,
    duplicate: false,
};

/// Without deadlines, losses or failures, delivery in order completes the order: the model is
/// not trivially satisfied by cancelling everything.
#[test]
fn a_calm_network_completes_the_order() {
    let world = run(true, true, &[]);
    assert_eq!(world.saga, OrderState::Completed);
    assert_eq!((world.commits, world.charges), (1, 1));
}

/// Table-driven outcomes the model must reach, each with the number of charges and refunds.
#[test]
fn schedules_end_as_the_participants_and_the_customer_decide() {
    // (name, stock suffices, funds suffice, schedule, final state, (charges, refunds))
    type Case = (
        &'static str,
        bool,
        bool,
        &'static [Step],
        OrderState,
        (u32, u32),
    );
    let cases: &[Case] = &[
        ("calm", true, true, &[], OrderState::Completed, (1, 0)),
        ("no stock", false, true, &[], OrderState::Cancelled, (0, 0)),
        ("no funds", true, false, &[], OrderState::Cancelled, (0, 0)),
        ("neither", false, false, &[], OrderState::Cancelled, (0, 0)),
        // The reservation request is lost; the runtime re-sends it and the order completes.
        (
            "lost reservation request",
            true,
            true,
            &[Step::Lose { pick: 0 }],
            OrderState::Completed,
            (1, 0),
        ),
        // The customer cancels at once: nothing was reserved or charged, and nothing will be.
        (
            "cancelled at once",
            true,
            true,
            &[Step::Cancel],
            OrderState::Cancelled,
            (0, 0),
        ),
        // The commit is lost (its answer too), twice: re-sent until inventory confirms.
        (
            "lost commits",
            true,
            true,
            &[
                DELIVER_FIRST, // inventory reserves: StockReserved, Charge
                DELIVER_FIRST, // saga: Pending -> Reserved
                DELIVER_FIRST, // payment charges: PaymentSucceeded
                DELIVER_FIRST, // saga: Reserved -> Paid, CommitStock
                Step::Lose { pick: 0 },
                Step::Cancel, // refused: paid
                Step::Resend { pick: 0 },
                DELIVER_FIRST, // inventory commits: StockCommitted
                Step::Lose { pick: 0 },
                Step::Resend { pick: 0 },
            ],
            OrderState::Completed,
            (1, 0),
        ),
        // The deadline cancels a reserved order while payment's charge request waits; the
        // pre-emptive refund reaches payment first, so the late charge charges nothing.
        (
            "deadline pre-empts the charge",
            true,
            true,
            &[
                DELIVER_FIRST, // inventory reserves
                DELIVER_FIRST, // saga: Pending -> Reserved
                Step::Timer,   // Reserved -> Cancelled: release, refund
                // In flight: the charge request, the release, the refund. The refund reaches
                // payment before the charge request.
                Step::Deliver {
                    pick: 2,
                    duplicate: false,
                },
            ],
            OrderState::Cancelled,
            (0, 0),
        ),
        // The charge request outruns the refund: charged, then refunded (the only cycle left).
        (
            "charge outruns the refund",
            true,
            true,
            &[
                DELIVER_FIRST, // inventory reserves
                DELIVER_FIRST, // saga: Pending -> Reserved
                Step::Timer,   // Reserved -> Cancelled: release, refund
                DELIVER_FIRST, // payment charges
            ],
            OrderState::Cancelled,
            (1, 1),
        ),
    ];
    for &(name, stock_suffices, funds_suffice, schedule, state, money) in cases {
        let world = run(stock_suffices, funds_suffice, schedule);
        assert_eq!(world.saga, state, "{name}");
        assert_eq!((world.charges, world.refunds), money, "{name}");
        check(&world).unwrap_or_else(|error| panic!("{name}: {error}"));
    }
}

/// The cancellation API: refused (409) exactly for paid and completed orders.
#[test]
fn cancellation_is_refused_once_paid() {
    let paid = [DELIVER_FIRST; 4]; // reserve, Reserved, charge, Paid
    let world = run(
        true,
        true,
        &[&paid[..], &[Step::Cancel, Step::Cancel]].concat(),
    );
    assert_eq!(world.cancellations_refused, 2);
    assert_eq!(world.saga, OrderState::Completed);
    let world = run(true, true, &[Step::Cancel, Step::Cancel]);
    assert_eq!(world.cancellations_refused, 0);
    assert_eq!(world.saga, OrderState::Cancelled);
}
