//! Property tests of the generic engine and of the order table: stepping, absorption,
//! validation (against an independent oracle and against injected defects) and diagram export.

// Test helpers outside `#[test]` functions may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::collection::{btree_set, vec};
use proptest::prelude::*;
use proptest::sample::select;
use saga_core::order::{ORDER_SAGA, OrderEffect, OrderEvent, OrderState};
use saga_core::{DefinitionError, Label, Outcome, Row, Table, labels};

#[path = "../examples/trip_booking.rs"]
#[allow(dead_code, unreachable_pub)]
mod trip_booking;

labels! { enum S { S0, S1, S2, S3, S4, S5 } }
labels! { enum E { E0, E1, E2, E3 } }
labels! { enum F { F0, F1, F2 } }

fn any_label<L: Label>() -> impl Strategy<Value = L> {
    select(L::ALL)
}

/// An owned table, so that proptest can generate and shrink it; `table()` borrows it as a
/// `Table`. Effects are leaked into `'static` slices to keep the rows `Copy`.
#[derive(Clone, Debug)]
struct OwnedTable {
    initial: S,
    terminal: Vec<S>,
    rows: Vec<Row<'static, S, E, F>>,
    ignored: Vec<(S, E)>,
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
        }
    }
}

fn any_effects() -> impl Strategy<Value = &'static [F]> {
    vec(any_label::<F>(), 0..3).prop_map(|effects| &*Vec::leak(effects))
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
    )
        .prop_map(|(initial, terminal, rows, ignored)| OwnedTable {
            initial,
            terminal: terminal.into_iter().collect(),
            rows,
            ignored,
        })
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
/// terminal one; then extra rows and ignored pairs that cannot break any rule.
fn any_valid_table() -> impl Strategy<Value = OwnedTable> {
    (
        Just(S::ALL.to_vec()).prop_shuffle(),
        1..=2usize,
        vec(any::<usize>(), S::ALL.len() * 2),
        vec((any::<usize>(), any_label::<S>(), any_effects()), 0..12),
        vec((any_label::<S>(), any_label::<E>()), 0..8),
    )
        .prop_map(|(order, terminal_count, choices, extras, candidates)| {
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
            OwnedTable {
                initial: order[0],
                terminal,
                rows,
                ignored,
            }
        })
}

/// The defects of a table, computed independently of `Table::validate`: reachability by a
/// Floyd–Warshall transitive closure instead of a graph search, duplicates by counting.
fn oracle(owned: &OwnedTable) -> Vec<DefinitionError<S, E>> {
    let index = |state: S| {
        S::ALL
            .iter()
            .position(|&s| s == state)
            .unwrap_or(usize::MAX)
    };
    let count = S::ALL.len();
    let mut reach = vec![vec![false; count]; count];
    for (i, row) in reach.iter_mut().enumerate() {
        row[i] = true;
    }
    for row in &owned.rows {
        reach[index(row.from)][index(row.to)] = true;
    }
    for k in 0..count {
        for i in 0..count {
            for j in 0..count {
                if reach[i][k] && reach[k][j] {
                    reach[i][j] = true;
                }
            }
        }
    }
    let mut errors = Vec::new();
    if owned.terminal.is_empty() {
        errors.push(DefinitionError::NoTerminalState);
    }
    let decisions: Vec<(S, E)> = owned
        .rows
        .iter()
        .map(|row| (row.from, row.event))
        .chain(owned.ignored.iter().copied())
        .collect();
    for &(state, event) in &decisions {
        if decisions
            .iter()
            .filter(|&&pair| pair == (state, event))
            .count()
            > 1
        {
            errors.push(DefinitionError::DuplicateDecision { state, event });
        }
    }
    for row in &owned.rows {
        if owned.terminal.contains(&row.from) && row.to != row.from {
            errors.push(DefinitionError::TerminalStateLeft {
                state: row.from,
                event: row.event,
                to: row.to,
            });
        }
        if row.to == row.from && row.effects.is_empty() {
            errors.push(DefinitionError::SelfLoopWithoutEffects {
                state: row.from,
                event: row.event,
            });
        }
    }
    for &state in S::ALL {
        if !reach[index(owned.initial)][index(state)] {
            errors.push(DefinitionError::Unreachable { state });
        }
        let finishes = owned
            .terminal
            .iter()
            .any(|&terminal| reach[index(state)][index(terminal)]);
        if !owned.terminal.contains(&state) && !finishes {
            errors.push(DefinitionError::NoPathToTerminal { state });
        }
    }
    errors.sort();
    errors.dedup();
    errors
}

fn errors_of(table: &Table<'_, S, E, F>) -> Vec<DefinitionError<S, E>> {
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
        prop_assert_eq!(errors_of(&owned.table()), oracle(&owned));
    }

    // Property 4, the other side: tables valid by construction are accepted, and the oracle
    // agrees they are.
    #[test]
    fn validate_accepts_well_formed_tables(owned in any_valid_table()) {
        prop_assert_eq!(oracle(&owned), vec![]);
        prop_assert_eq!(owned.table().validate(), Ok(()));
    }

    // Property 4: each kind of defect injected into the order table is reported as itself.
    #[test]
    fn validate_reports_defects_injected_into_the_order_table(
        defect in any_defect(),
    ) {
        let (rows, terminal, expected) = defect.apply();
        let table = Table { rows: &rows, terminal: &terminal, ..ORDER_SAGA };
        let errors = table.validate().err().map(|invalid| invalid.errors).unwrap_or_default();
        prop_assert!(errors.contains(&expected), "expected {:?} in {:?}", expected, errors);
    }

    // Property 5: every row is drawn exactly once, in Mermaid and in DOT.
    #[test]
    fn diagrams_draw_every_row_exactly_once(owned in any_table_with_unique_decisions()) {
        check_diagrams(&owned.table())?;
    }

    #[test]
    fn diagrams_of_valid_tables_draw_every_row_exactly_once(owned in any_valid_table()) {
        check_diagrams(&owned.table())?;
    }
}

fn check_diagrams<St: Label, Ev: Label, Ef: Label>(
    table: &Table<'_, St, Ev, Ef>,
) -> Result<(), TestCaseError> {
    let mermaid = table.to_mermaid();
    let dot = table.to_dot();
    for row in table.rows {
        let mermaid_edge = format!(
            "{} --> {} : {}\n",
            row.from.name(),
            row.to.name(),
            row.label()
        );
        let dot_edge = format!(
            "\"{}\" -> \"{}\" [label=\"{}\"];\n",
            row.from.name(),
            row.to.name(),
            row.label()
        );
        prop_assert_eq!(
            mermaid.matches(&mermaid_edge).count(),
            1,
            "{}",
            mermaid_edge
        );
        prop_assert_eq!(dot.matches(&dot_edge).count(), 1, "{}", dot_edge);
    }
    // Nothing else is drawn: one start edge, one edge per row, one end edge per terminal state.
    let mermaid_edges = mermaid.lines().filter(|line| line.contains("-->")).count();
    prop_assert_eq!(mermaid_edges, 1 + table.rows.len() + table.terminal.len());
    let dot_edges = dot.lines().filter(|line| line.contains("->")).count();
    prop_assert_eq!(dot_edges, 1 + table.rows.len());
    Ok(())
}

/// A defect to inject into the order table, and the error it must produce.
#[derive(Clone, Debug)]
enum Defect {
    /// Add a second row for the pair decided by row `row`.
    DecideTwice { row: usize, to: OrderState },
    /// Add a row for an `ignored` pair.
    RowForIgnoredPair { pair: usize, to: OrderState },
    /// Remove every row leading into `state` from elsewhere.
    CutOff { state: OrderState },
    /// Remove every row leading out of `state`.
    Trap { state: OrderState },
    /// Add a row leaving a terminal state.
    LeaveTerminal {
        state: OrderState,
        event: OrderEvent,
        to: OrderState,
    },
    /// Add a self-loop that emits nothing.
    EmptySelfLoop {
        state: OrderState,
        event: OrderEvent,
    },
    /// Declare no terminal state.
    NoTerminal,
}

type Injected = (
    Vec<Row<'static, OrderState, OrderEvent, OrderEffect>>,
    Vec<OrderState>,
    DefinitionError<OrderState, OrderEvent>,
);

impl Defect {
    fn apply(&self) -> Injected {
        let mut rows = ORDER_SAGA.rows.to_vec();
        let mut terminal = ORDER_SAGA.terminal.to_vec();
        let expected = match *self {
            Defect::DecideTwice { row, to } => {
                let original = ORDER_SAGA.rows[row];
                rows.push(Row::new(
                    original.from,
                    original.event,
                    to,
                    &[OrderEffect::ReleaseStock],
                ));
                DefinitionError::DuplicateDecision {
                    state: original.from,
                    event: original.event,
                }
            }
            Defect::RowForIgnoredPair { pair, to } => {
                let (state, event) = ORDER_SAGA.ignored[pair];
                rows.push(Row::new(state, event, to, &[OrderEffect::ReleaseStock]));
                DefinitionError::DuplicateDecision { state, event }
            }
            Defect::CutOff { state } => {
                rows.retain(|row| row.to != state || row.from == state);
                DefinitionError::Unreachable { state }
            }
            Defect::Trap { state } => {
                rows.retain(|row| row.from != state || row.to == state);
                DefinitionError::NoPathToTerminal { state }
            }
            Defect::LeaveTerminal { state, event, to } => {
                rows.push(Row::new(state, event, to, &[]));
                DefinitionError::TerminalStateLeft { state, event, to }
            }
            Defect::EmptySelfLoop { state, event } => {
                rows.push(Row::new(state, event, state, &[]));
                DefinitionError::SelfLoopWithoutEffects { state, event }
            }
            Defect::NoTerminal => {
                terminal.clear();
                DefinitionError::NoTerminalState
            }
        };
        (rows, terminal, expected)
    }
}

fn any_defect() -> impl Strategy<Value = Defect> {
    let non_initial = select(
        OrderState::ALL
            .iter()
            .copied()
            .filter(|&s| s != ORDER_SAGA.initial)
            .collect::<Vec<_>>(),
    );
    let non_terminal = select(
        OrderState::ALL
            .iter()
            .copied()
            .filter(|&s| !ORDER_SAGA.is_terminal(s))
            .collect::<Vec<_>>(),
    );
    let terminal = select(ORDER_SAGA.terminal);
    prop_oneof![
        (0..ORDER_SAGA.rows.len(), any_label::<OrderState>())
            .prop_map(|(row, to)| Defect::DecideTwice { row, to }),
        (0..ORDER_SAGA.ignored.len(), any_label::<OrderState>())
            .prop_map(|(pair, to)| Defect::RowForIgnoredPair { pair, to }),
        non_initial.prop_map(|state| Defect::CutOff { state }),
        non_terminal.prop_map(|state| Defect::Trap { state }),
        (
            terminal,
            any_label::<OrderEvent>(),
            any_label::<OrderState>()
        )
            .prop_filter("must leave", |(state, _, to)| state != to)
            .prop_map(|(state, event, to)| Defect::LeaveTerminal { state, event, to }),
        (any_label::<OrderState>(), any_label::<OrderEvent>())
            .prop_map(|(state, event)| Defect::EmptySelfLoop { state, event }),
        Just(Defect::NoTerminal),
    ]
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
