//! Property tests of the generic engine and of the order table: stepping, absorption,
//! validation (against an independent oracle and against injected defects), timers,
//! confirmations and diagram export. The oracle, the order table's defects and the timer and
//! confirmation properties live in `tests/properties/`.

// Test helpers outside `#[test]` functions may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use proptest::collection::{btree_set, vec};
use proptest::prelude::*;
use proptest::sample::select;
use saga_core::order::{ORDER_SAGA, OrderEffect, OrderEvent, OrderState};
use saga_core::{Confirmation, Deadline, DefinitionError, Label, Outcome, Row, Table, labels};

#[path = "../examples/trip_booking.rs"]
#[allow(dead_code, unreachable_pub)]
mod trip_booking;

#[path = "properties/oracle.rs"]
mod oracle;

#[path = "properties/order_defects.rs"]
mod order_defects;

#[path = "properties/timers.rs"]
mod timers;

#[path = "properties/diagrams.rs"]
mod diagrams;

use diagrams::check_diagrams;

use oracle::oracle;

labels! { enum S { S0, S1, S2, S3, S4, S5 } }
labels! { enum E { E0, E1, E2, E3 } }
labels! { enum F { F0, F1, F2 } }

fn any_label<L: Label>() -> impl Strategy<Value = L> {
    select(L::ALL)
}

/// A `'static` slice of `items`, so that generated rows, deadlines and confirmations stay `Copy`
/// (tests may leak).
fn leak<T>(items: Vec<T>) -> &'static [T] {
    Vec::leak(items)
}

/// An owned table, so that proptest can generate and shrink it; `table()` borrows it as a
/// `Table`. Effects, deadline states and confirming events are leaked into `'static` slices.
#[derive(Clone, Debug)]
struct OwnedTable {
    initial: S,
    terminal: Vec<S>,
    rows: Vec<Row<'static, S, E, F>>,
    ignored: Vec<(S, E)>,
    deadlines: Vec<Deadline<'static, S, E>>,
    confirmations: Vec<Confirmation<'static, E, F>>,
}

impl OwnedTable {
    fn table(&self) -> Table<'_, S, E, F> {
        Table {
            name: "Generated",
            initial: self.initial,
            start_effects: &[F::F0],
            terminal: &self.terminal,
            rows: &self.rows,
            ignored: &self.ignored,
            deadlines: &self.deadlines,
            confirmations: &self.confirmations,
        }
    }
}

fn any_effects() -> impl Strategy<Value = &'static [F]> {
    vec(any_label::<F>(), 0..3).prop_map(leak)
}

fn any_deadline() -> impl Strategy<Value = Deadline<'static, S, E>> {
    (
        vec(any_label::<S>(), 0..3).prop_map(leak),
        1..120u64,
        any_label::<E>(),
    )
        .prop_map(|(states, seconds, event)| {
            Deadline::new(states, Duration::from_secs(seconds), event)
        })
}

fn any_confirmation() -> impl Strategy<Value = Confirmation<'static, E, F>> {
    (any_label::<F>(), vec(any_label::<E>(), 0..3).prop_map(leak))
        .prop_map(|(effect, by)| Confirmation::new(effect, by))
}

fn any_row() -> impl Strategy<Value = Row<'static, S, E, F>> {
    (
        any_label::<S>(),
        any_label::<E>(),
        any_label::<S>(),
        any_effects(),
    )
        .prop_map(|(from, event, to, effects)| Row::new(from, event, to, effects))
}

/// Arbitrary tables: most are broken in one way or several.
fn any_table() -> impl Strategy<Value = OwnedTable> {
    (
        any_label::<S>(),
        btree_set(any_label::<S>(), 0..3),
        vec(any_row(), 0..24),
        vec((any_label::<S>(), any_label::<E>()), 0..8),
        vec(any_deadline(), 0..3),
        vec(any_confirmation(), 0..4),
    )
        .prop_map(
            |(initial, terminal, rows, ignored, deadlines, confirmations)| OwnedTable {
                initial,
                terminal: terminal.into_iter().collect(),
                rows,
                ignored,
                deadlines,
                confirmations,
            },
        )
}

/// Tables whose `(state, event)` decisions are unique, so that every row draws a distinct edge.
fn any_table_with_unique_decisions() -> impl Strategy<Value = OwnedTable> {
    any_table().prop_map(|mut owned| {
        let mut seen = std::collections::BTreeSet::new();
        owned.rows.retain(|row| seen.insert((row.from, row.event)));
        owned.ignored.retain(|pair| seen.insert(*pair));
        owned
    })
}

/// Tables that validate by construction: states in a random order, each reached from one of
/// the two before it, the last one or two terminal, every non-terminal state given a row into a
/// terminal one; then extra rows and ignored pairs that cannot break any rule; then deadlines
/// (per event, a random group of non-terminal states whose rows on it lead out of the group) and
/// confirmations (random non-empty event sets, each made decided, by an `ignored` pair, wherever
/// its effect can be outstanding).
fn any_valid_table() -> impl Strategy<Value = OwnedTable> {
    (
        (
            Just(S::ALL.to_vec()).prop_shuffle(),
            1..=2usize,
            vec(any::<usize>(), S::ALL.len() * 2),
            vec((any::<usize>(), any_label::<S>(), any_effects()), 0..12),
            vec((any_label::<S>(), any_label::<E>()), 0..8),
        ),
        vec(any::<u8>(), E::ALL.len()),
        vec(any::<u8>(), F::ALL.len()),
    )
        .prop_map(|(shape, deadline_masks, confirmation_masks)| {
            let (order, terminal_count, choices, extras, candidates) = shape;
            let first_terminal = order.len() - terminal_count;
            let terminal = order[first_terminal..].to_vec();
            let mut decided = std::collections::BTreeSet::new();
            let mut rows = Vec::new();
            let mut add = |from: S, to: S, effects: &'static [F]| {
                let free = E::ALL
                    .iter()
                    .copied()
                    .find(|&event| !decided.contains(&(from, event)));
                if let Some(event) = free {
                    decided.insert((from, event));
                    rows.push(Row::new(from, event, to, effects));
                }
            };
            for position in 1..order.len() {
                let high = (position - 1).min(first_terminal - 1);
                let low = position.saturating_sub(2).min(high);
                let parent = order[low + choices[position] % (high - low + 1)];
                add(parent, order[position], &[F::F1]);
            }
            for (position, &state) in order[..first_terminal].iter().enumerate() {
                add(
                    state,
                    terminal[choices[S::ALL.len() + position] % terminal.len()],
                    &[],
                );
            }
            for (choice, to, effects) in extras {
                let from = order[choice % order.len()];
                let to = if terminal.contains(&from) { from } else { to };
                if to == from && effects.is_empty() {
                    continue;
                }
                add(from, to, effects);
            }
            let mut ignored = Vec::new();
            for pair in candidates {
                if decided.insert(pair) {
                    ignored.push(pair);
                }
            }
            let deadlines = valid_deadlines(&rows, &terminal, &deadline_masks);
            let mut owned = OwnedTable {
                initial: order[0],
                terminal,
                rows,
                ignored,
                deadlines,
                confirmations: Vec::new(),
            };
            for (&effect, &mask) in F::ALL.iter().zip(&confirmation_masks) {
                let by: Vec<E> = events_in(mask);
                if by.is_empty() {
                    continue;
                }
                let undecided: Vec<(S, E)> = oracle::outstanding(&owned.table(), effect, &by)
                    .into_iter()
                    .flat_map(|state| by.iter().map(move |&event| (state, event)))
                    .filter(|&(state, event)| !oracle::decides(&owned.table(), state, event))
                    .collect();
                owned.ignored.extend(undecided);
                owned
                    .confirmations
                    .push(Confirmation::new(effect, leak(by)));
            }
            owned
        })
}

/// The events whose bit is set in `mask` (bit `i` for `E::ALL[i]`).
fn events_in(mask: u8) -> Vec<E> {
    E::ALL
        .iter()
        .enumerate()
        .filter(|&(bit, _)| mask & (1 << bit) != 0)
        .map(|(_, &event)| event)
        .collect()
}

/// For each event, the non-terminal states picked by its mask (bit `i` for `S::ALL[i]`) whose
/// row on it exists, minus those whose row stays in the group; each state in one group at most.
fn valid_deadlines(
    rows: &[Row<'static, S, E, F>],
    terminal: &[S],
    masks: &[u8],
) -> Vec<Deadline<'static, S, E>> {
    let mut timed: Vec<S> = Vec::new();
    let mut deadlines = Vec::new();
    for (&event, &mask) in E::ALL.iter().zip(masks) {
        let picked: Vec<&Row<'static, S, E, F>> = rows
            .iter()
            .filter(|row| row.event == event && !terminal.contains(&row.from))
            .filter(|row| !timed.contains(&row.from))
            .filter(|row| {
                let bit = S::ALL.iter().position(|&state| state == row.from).unwrap();
                mask & (1 << bit) != 0
            })
            .collect();
        let group: Vec<S> = picked.iter().map(|row| row.from).collect();
        // Dropping members only makes "leads out of the group" truer for the others.
        let states: Vec<S> = picked
            .iter()
            .filter(|row| !group.contains(&row.to))
            .map(|row| row.from)
            .collect();
        if states.is_empty() {
            continue;
        }
        timed.extend(&states);
        deadlines.push(Deadline::new(
            leak(states),
            Duration::from_secs(u64::from(mask) + 1),
            event,
        ));
    }
    deadlines
}

fn errors_of(table: &Table<'_, S, E, F>) -> Vec<DefinitionError<S, E, F>> {
    table
        .validate()
        .err()
        .map(|invalid| invalid.errors)
        .unwrap_or_default()
}

/// Checks one outcome of `step` against the table it came from.
fn check_outcome<St: Label, Ev: Label, Ef: Label>(
    table: &Table<'_, St, Ev, Ef>,
    state: St,
    event: Ev,
    outcome: Outcome<'_, St, Ef>,
) -> Result<(), TestCaseError> {
    let row = table.row(state, event);
    match outcome {
        Outcome::Transition { from, to, effects } => {
            prop_assert_eq!(from, state);
            let row = row.ok_or_else(|| TestCaseError::fail("a transition without a row"))?;
            prop_assert!(row.to == to && row.effects == effects && to != from);
        }
        Outcome::Compensate {
            state: stayed,
            effects,
        } => {
            prop_assert_eq!(stayed, state);
            let row = row.ok_or_else(|| TestCaseError::fail("a compensation without a row"))?;
            prop_assert!(row.to == state && row.effects == effects);
        }
        Outcome::Duplicate { state: stayed } => {
            prop_assert_eq!(stayed, state);
            prop_assert!(row.is_none() && table.ignored.contains(&(state, event)));
        }
        Outcome::Invalid { state: stayed } => {
            prop_assert_eq!(stayed, state);
            prop_assert!(row.is_none() && !table.ignored.contains(&(state, event)));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    // Property 1, on the order table: any sequence of events, every state change is a row.
    #[test]
    fn order_saga_changes_state_only_along_rows(
        events in vec(any_label::<OrderEvent>(), 0..64),
    ) {
        let mut state = ORDER_SAGA.initial;
        for event in events {
            let outcome = ORDER_SAGA.step(state, event);
            check_outcome(&ORDER_SAGA, state, event, outcome)?;
            state = outcome.state();
        }
    }

    // Property 1, on arbitrary (even broken) tables from arbitrary states: never a panic, and
    // the outcome is always the table's own decision.
    #[test]
    fn step_follows_any_table(
        owned in any_table(),
        start in any_label::<S>(),
        events in vec(any_label::<E>(), 0..32),
    ) {
        let table = owned.table();
        let mut state = start;
        for event in events {
            let outcome = table.step(state, event);
            check_outcome(&table, state, event, outcome)?;
            state = outcome.state();
        }
    }

    // Property 2: Completed and Cancelled are absorbing.
    #[test]
    fn order_saga_terminal_states_are_absorbing(
        terminal in select(ORDER_SAGA.terminal),
        events in vec(any_label::<OrderEvent>(), 0..64),
    ) {
        let mut state = terminal;
        for event in events {
            state = ORDER_SAGA.step(state, event).state();
            prop_assert_eq!(state, terminal);
        }
    }

    // Property 2, generalised: in every table that validates, terminal states are absorbing.
    #[test]
    fn valid_tables_have_absorbing_terminal_states(
        owned in any_valid_table(),
        events in vec(any_label::<E>(), 0..32),
    ) {
        let table = owned.table();
        prop_assert_eq!(table.validate(), Ok(()));
        for &terminal in table.terminal {
            let mut state = terminal;
            for &event in &events {
                state = table.step(state, event).state();
                prop_assert_eq!(state, terminal);
            }
        }
    }

    // Property 4: validate reports exactly the defects an independent oracle finds.
    #[test]
    fn validate_agrees_with_an_independent_oracle(owned in any_table()) {
        prop_assert_eq!(errors_of(&owned.table()), oracle(&owned.table()));
    }

    // Property 4, the other side: tables valid by construction are accepted, and the oracle
    // agrees they are.
    #[test]
    fn validate_accepts_well_formed_tables(owned in any_valid_table()) {
        prop_assert_eq!(oracle(&owned.table()), vec![]);
        prop_assert_eq!(owned.table().validate(), Ok(()));
    }
}

#[test]
fn validate_accepts_the_order_saga_and_the_trip_example() {
    assert_eq!(ORDER_SAGA.validate(), Ok(()));
    assert_eq!(trip_booking::TRIP_BOOKING.validate(), Ok(()));
}

#[test]
fn reference_diagrams_draw_every_row_exactly_once() {
    check_diagrams(&ORDER_SAGA).unwrap();
    check_diagrams(&trip_booking::TRIP_BOOKING).unwrap();
}

#[test]
fn the_order_saga_has_exactly_the_five_statuses() {
    let names: Vec<&str> = OrderState::ALL.iter().map(|state| state.name()).collect();
    assert_eq!(
        names,
        ["Pending", "Reserved", "Paid", "Completed", "Cancelled"]
    );
    assert_eq!(
        ORDER_SAGA.states_moved_by(OrderEvent::DeadlinePassed),
        [OrderState::Pending, OrderState::Reserved]
    );
}

#[test]
fn names_read_back_as_the_same_labels() {
    for &state in OrderState::ALL {
        assert_eq!(OrderState::from_name(state.name()), Some(state));
    }
    for &event in OrderEvent::ALL {
        assert_eq!(OrderEvent::from_name(event.name()), Some(event));
    }
    for &effect in OrderEffect::ALL {
        assert_eq!(OrderEffect::from_name(effect.name()), Some(effect));
    }
    assert_eq!(OrderState::from_name("pending"), None);
}

#[test]
fn invalid_tables_explain_themselves() {
    let table = Table {
        terminal: &[],
        ..ORDER_SAGA
    };
    let message = table.validate().unwrap_err().to_string();
    assert_eq!(
        message,
        "saga table `OrderSaga` is invalid:\n  - the table declares no terminal state\n  \
         - no terminal state is reachable from non-terminal state Pending\n  \
         - no terminal state is reachable from non-terminal state Reserved\n  \
         - no terminal state is reachable from non-terminal state Paid\n  \
         - no terminal state is reachable from non-terminal state Completed\n  \
         - no terminal state is reachable from non-terminal state Cancelled"
    );
}

#[test]
fn check_path_accepts_table_paths_and_names_the_first_wrong_step() {
    use OrderEvent::*;
    use OrderState::*;
    let happy = [
        (Pending, StockReserved, Reserved),
        (Reserved, PaymentSucceeded, Paid),
        (Paid, StockCommitted, Completed),
    ];
    assert_eq!(ORDER_SAGA.check_path(happy), Ok(Completed));
    let compensated = [
        (Pending, DeadlinePassed, Cancelled),
        (Cancelled, StockReserved, Cancelled),
        (Cancelled, PaymentSucceeded, Cancelled),
    ];
    assert_eq!(ORDER_SAGA.check_path(compensated), Ok(Cancelled));
    let ignored_pair = [
        (Pending, StockReserved, Reserved),
        (Reserved, StockReserved, Reserved),
    ];
    assert_eq!(ORDER_SAGA.check_path(ignored_pair).unwrap_err().index, 1);
    let skipped = [
        (Pending, StockReserved, Reserved),
        (Paid, StockCommitted, Completed),
    ];
    let error = ORDER_SAGA.check_path(skipped).unwrap_err();
    assert_eq!((error.index, error.expected_from), (1, Reserved));
}
