//! Timers and confirmations: what a runtime reads from the table.

use proptest::collection::vec;
use proptest::prelude::*;
use saga_core::order::{ORDER_SAGA, OrderEffect, OrderEvent, OrderState};
use saga_core::{Deadline, Label, Table, TimerChange};

use super::{E, F, S, any_label, any_table, any_valid_table};

/// The timer a runtime would hold, by the deadline's position in the table.
fn position_of<St, Ev>(
    deadlines: &[Deadline<'_, St, Ev>],
    deadline: &Deadline<'_, St, Ev>,
) -> usize {
    deadlines
        .iter()
        .position(|candidate| core::ptr::eq(candidate, deadline))
        .unwrap()
}

/// Applies `change` to `timer` (`(deadline position, step at which it was armed)`) at `step`.
fn apply<St, Ev>(
    deadlines: &[Deadline<'_, St, Ev>],
    timer: Option<(usize, usize)>,
    change: TimerChange<'_, St, Ev>,
    step: usize,
) -> Option<(usize, usize)> {
    match change {
        TimerChange::Keep => timer,
        TimerChange::Arm(deadline) => Some((position_of(deadlines, deadline), step)),
        TimerChange::Clear => None,
    }
}

/// The first deadline listing `state`, found without `deadline_of`.
fn group_of<St: Label, Ev>(deadlines: &[Deadline<'_, St, Ev>], state: St) -> Option<usize> {
    deadlines
        .iter()
        .position(|deadline| deadline.states.contains(&state))
}

/// Walks `events` from the start, holding the timer as a runtime would (only through
/// `timer_after`), and checks after every transition that the timer held is the new state's
/// deadline, armed when the walk last entered that group.
fn check_timer_walk<St: Label, Ev: Label, Ef: Label>(
    table: &Table<'_, St, Ev, Ef>,
    events: &[Ev],
) -> Result<(), TestCaseError> {
    let mut state = table.initial;
    let mut timer = apply(table.deadlines, None, table.timer_after(None, state), 0);
    let mut entered_group_at = 0;
    prop_assert_eq!(
        timer.map(|(group, _)| group),
        group_of(table.deadlines, state)
    );
    for (index, &event) in events.iter().enumerate() {
        let step = index + 1;
        let outcome = table.step(state, event);
        if !outcome.is_transition() {
            continue;
        }
        let next = outcome.state();
        if group_of(table.deadlines, next) != group_of(table.deadlines, state) {
            entered_group_at = step;
        }
        timer = apply(
            table.deadlines,
            timer,
            table.timer_after(Some(state), next),
            step,
        );
        state = next;
        let expected = group_of(table.deadlines, state).map(|group| (group, entered_group_at));
        prop_assert_eq!(timer, expected, "after {:?} into {:?}", event, state);
    }
    Ok(())
}

/// `confirmed_by` and `confirmation_of` agree: an event confirms an effect exactly when the
/// effect's (first) rule lists it, and each effect is listed once.
fn check_confirmations<St: Label, Ev: Label, Ef: Label>(
    table: &Table<'_, St, Ev, Ef>,
) -> Result<(), TestCaseError> {
    for &event in Ev::ALL {
        let confirmed = table.confirmed_by(event);
        let expected: Vec<Ef> = {
            let mut effects: Vec<Ef> = Vec::new();
            for confirmation in table.confirmations {
                let first = table
                    .confirmations
                    .iter()
                    .find(|rule| rule.effect == confirmation.effect)
                    .unwrap();
                if first.by.contains(&event) && !effects.contains(&confirmation.effect) {
                    effects.push(confirmation.effect);
                }
            }
            effects
        };
        prop_assert_eq!(&confirmed, &expected, "{:?}", event);
        for &effect in Ef::ALL {
            let rule = table.confirmation_of(effect);
            prop_assert_eq!(
                confirmed.contains(&effect),
                rule.is_some_and(|rule| rule.by.contains(&event))
            );
            prop_assert!(rule.is_none_or(|rule| rule.effect == effect));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    // The timer a runtime holds through `timer_after` is always the current state's deadline,
    // and moving inside a group never restarts it: on valid tables and on arbitrary ones.
    #[test]
    fn timer_after_keeps_the_timer_of_the_current_group(
        owned in any_valid_table(),
        events in vec(any_label::<E>(), 0..32),
    ) {
        check_timer_walk(&owned.table(), &events)?;
    }

    #[test]
    fn timer_after_follows_any_table(
        owned in any_table(),
        events in vec(any_label::<E>(), 0..32),
    ) {
        check_timer_walk(&owned.table(), &events)?;
    }

    #[test]
    fn order_saga_timer_follows_its_deadline(events in vec(any_label::<OrderEvent>(), 0..32)) {
        check_timer_walk(&ORDER_SAGA, &events)?;
    }

    #[test]
    fn confirmed_by_agrees_with_confirmation_of(owned in any_table()) {
        check_confirmations(&owned.table())?;
    }

    // In a valid table, a confirming event is never Invalid where its effect can be outstanding,
    // checked by walking: whatever the events, each confirmation of an effect emitted and not yet
    // confirmed is decided.
    #[test]
    fn confirmations_are_decided_while_outstanding(
        owned in any_valid_table(),
        events in vec(any_label::<E>(), 0..32),
    ) {
        let table = owned.table();
        let mut state = table.initial;
        let mut outstanding: Vec<F> = table.start_effects.to_vec();
        for event in events {
            for &effect in &outstanding {
                for &confirming in table.confirmation_of(effect).map_or(&[][..], |rule| rule.by) {
                    prop_assert!(
                        !matches!(table.step(state, confirming), saga_core::Outcome::Invalid { .. }),
                        "{:?} outstanding in {:?}, {:?} undecided", effect, state, confirming
                    );
                }
            }
            let outcome = table.step(state, event);
            if matches!(outcome, saga_core::Outcome::Invalid { .. }) {
                continue;
            }
            let confirmed = table.confirmed_by(event);
            outstanding.retain(|effect| !confirmed.contains(effect));
            for &effect in outcome.effects() {
                if table.confirmation_of(effect).is_some() && !outstanding.contains(&effect) {
                    outstanding.push(effect);
                }
            }
            state = outcome.state();
        }
    }
}

/// Table-driven `timer_after` on the order saga: one timer from creation over Pending and
/// Reserved.
#[test]
fn order_saga_timer_changes() {
    use OrderState::*;
    let deadline = &ORDER_SAGA.deadlines[0];
    let check = |from: Option<OrderState>, to: OrderState, expected: TimerChange<'_, _, _>| {
        assert_eq!(
            ORDER_SAGA.timer_after(from, to),
            expected,
            "{from:?} -> {to:?}"
        );
    };
    check(None, Pending, TimerChange::Arm(deadline));
    check(Some(Pending), Reserved, TimerChange::Keep);
    check(Some(Pending), Paid, TimerChange::Clear);
    check(Some(Reserved), Paid, TimerChange::Clear);
    check(Some(Reserved), Cancelled, TimerChange::Clear);
    check(Some(Paid), Completed, TimerChange::Keep);
    check(Some(Cancelled), Cancelled, TimerChange::Keep);
    assert_eq!(ORDER_SAGA.deadline_of(Reserved), Some(deadline));
    assert_eq!(ORDER_SAGA.deadline_of(Paid), None);
}

/// Table-driven confirmations of the order saga.
#[test]
fn order_saga_confirmations() {
    use OrderEffect::*;
    use OrderEvent::*;
    let check = |event: OrderEvent, expected: &[OrderEffect]| {
        assert_eq!(ORDER_SAGA.confirmed_by(event), expected, "{event:?}");
    };
    check(StockReserved, &[ReserveStock]);
    check(StockFailed, &[ReserveStock]);
    check(StockCommitted, &[CommitStock]);
    check(StockReleased, &[ReleaseStock]);
    check(PaymentRefunded, &[RefundPayment]);
    check(PaymentSucceeded, &[]);
    check(DeadlinePassed, &[]);
    check(CancelRequested, &[]);
    assert!(ORDER_SAGA.confirmation_of(AnnounceCancelled).is_none());
    assert!(ORDER_SAGA.confirmation_of(AnnounceCompleted).is_none());
}

#[test]
fn the_order_saga_deadline_is_drawn_as_a_note() {
    let note = "DeadlinePassed after 30 s (timer shared with Reserved)";
    assert!(
        ORDER_SAGA
            .to_mermaid()
            .contains(&format!("    note right of Pending : {note}\n"))
    );
    assert!(
        ORDER_SAGA
            .to_dot()
            .contains(&format!("    \"Pending\" [xlabel=\"{note}\"];\n"))
    );
}

/// Sub-second deadlines are drawn in the largest exact unit.
#[test]
fn deadline_durations_are_drawn_in_exact_units() {
    use std::time::Duration;
    let check = |after: Duration, expected: &str| {
        let deadlines = [Deadline::new(&[S::S0][..], after, E::E0)];
        let table: Table<'_, S, E, F> = Table {
            name: "Durations",
            initial: S::S0,
            start_effects: &[],
            terminal: &[S::S1],
            rows: &[],
            ignored: &[],
            deadlines: &deadlines,
            confirmations: &[],
        };
        let line = format!("note right of S0 : E0 after {expected}\n");
        assert!(table.to_mermaid().contains(&line), "{after:?}");
    };
    check(Duration::from_secs(90), "90 s");
    check(Duration::from_millis(1_500), "1500 ms");
    check(Duration::from_micros(250), "250 us");
    check(Duration::from_nanos(7), "7 ns");
}
