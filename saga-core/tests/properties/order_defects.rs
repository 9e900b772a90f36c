//! Defects injected into the order table, each of which `validate` must name.

use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::select;
use saga_core::order::{ORDER_SAGA, OrderEffect, OrderEvent, OrderState};
use saga_core::{Confirmation, Deadline, DefinitionError, Label, Row, Table};

use super::{any_label, leak};

type OrderTable = Table<'static, OrderState, OrderEvent, OrderEffect>;
type OrderError = DefinitionError<OrderState, OrderEvent, OrderEffect>;

/// The `ignored` pairs of the order table that exist because an effect can be outstanding there
/// and the event confirms it: dropping one must be reported as that effect's undecided
/// confirmation.
pub(crate) const CONFIRMING_IGNORED_PAIRS: &[(OrderState, OrderEvent, OrderEffect)] = {
    use OrderEffect::*;
    use OrderEvent::*;
    use OrderState::*;
    &[
        (Paid, StockReserved, ReserveStock),
        (Completed, StockReserved, ReserveStock),
        (Paid, StockFailed, ReserveStock),
        (Completed, StockFailed, ReserveStock),
        (Cancelled, StockFailed, ReserveStock),
        (Cancelled, StockReleased, ReleaseStock),
        (Cancelled, PaymentRefunded, RefundPayment),
    ]
};

/// A defect to inject into the order table, and the error it must produce.
#[derive(Clone, Debug)]
pub(crate) enum Defect {
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
    /// Drop the `ignored` pair `CONFIRMING_IGNORED_PAIRS[pair]`.
    DropConfirmingPair { pair: usize },
    /// List confirmation `rule` a second time.
    ConfirmTwice { rule: usize },
    /// Empty the events of confirmation `rule`.
    ConfirmByNothing { rule: usize },
    /// Add a terminal state to the deadline.
    DeadlineOnTerminal { state: OrderState },
    /// Give the deadline another event that does not lead out of `Pending` and `Reserved`.
    DeadlineThatStays { event: OrderEvent },
    /// Add a deadline without states.
    EmptyDeadline,
    /// Add a second deadline over `state`, which already has one.
    SecondDeadline { state: OrderState },
}

impl Defect {
    /// The order table with the defect, and the error it must produce.
    pub(crate) fn apply(&self) -> (OrderTable, OrderError) {
        let mut rows = ORDER_SAGA.rows.to_vec();
        let mut terminal = ORDER_SAGA.terminal.to_vec();
        let mut ignored = ORDER_SAGA.ignored.to_vec();
        let mut deadlines = ORDER_SAGA.deadlines.to_vec();
        let mut confirmations = ORDER_SAGA.confirmations.to_vec();
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
            Defect::DropConfirmingPair { pair } => {
                let (state, event, effect) = CONFIRMING_IGNORED_PAIRS[pair];
                ignored.retain(|&candidate| candidate != (state, event));
                DefinitionError::ConfirmationUndecided {
                    effect,
                    state,
                    event,
                }
            }
            Defect::ConfirmTwice { rule } => {
                confirmations.push(ORDER_SAGA.confirmations[rule]);
                DefinitionError::DuplicateConfirmation {
                    effect: ORDER_SAGA.confirmations[rule].effect,
                }
            }
            Defect::ConfirmByNothing { rule } => {
                confirmations[rule].by = &[];
                DefinitionError::ConfirmationWithoutEvents {
                    effect: ORDER_SAGA.confirmations[rule].effect,
                }
            }
            Defect::DeadlineOnTerminal { state } => {
                let mut states = deadlines[0].states.to_vec();
                states.push(state);
                deadlines[0].states = leak(states);
                DefinitionError::TerminalStateWithDeadline { state }
            }
            Defect::DeadlineThatStays { event } => {
                deadlines[0].event = event;
                let stays = deadlines[0]
                    .states
                    .iter()
                    .copied()
                    .find(|&state| !leaves(state, event, deadlines[0].states))
                    .unwrap_or_else(|| panic!("{event:?} leaves the deadline's states"));
                DefinitionError::DeadlineDoesNotLeave {
                    state: stays,
                    event,
                }
            }
            Defect::EmptyDeadline => {
                deadlines.push(Deadline::new(
                    &[],
                    Duration::from_secs(1),
                    OrderEvent::DeadlinePassed,
                ));
                DefinitionError::DeadlineWithoutStates {
                    deadline: deadlines.len() - 1,
                    event: OrderEvent::DeadlinePassed,
                }
            }
            Defect::SecondDeadline { state } => {
                deadlines.push(Deadline::new(
                    leak(vec![state]),
                    Duration::from_secs(1),
                    OrderEvent::CancelRequested,
                ));
                DefinitionError::StateInTwoDeadlines { state }
            }
        };
        let table = Table {
            rows: leak(rows),
            terminal: leak(terminal),
            ignored: leak(ignored),
            deadlines: leak(deadlines),
            confirmations: leak::<Confirmation<'static, OrderEvent, OrderEffect>>(confirmations),
            ..ORDER_SAGA
        };
        (table, expected)
    }
}

/// Whether the order table's row for `event` in `state` leads out of `group`.
fn leaves(state: OrderState, event: OrderEvent, group: &[OrderState]) -> bool {
    ORDER_SAGA
        .row(state, event)
        .is_some_and(|row| !group.contains(&row.to))
}

/// Events that do not lead out of `Pending` and `Reserved` from at least one of them.
fn events_that_stay() -> Vec<OrderEvent> {
    let group = ORDER_SAGA.deadlines[0].states;
    OrderEvent::ALL
        .iter()
        .copied()
        .filter(|&event| group.iter().any(|&state| !leaves(state, event, group)))
        .collect()
}

pub(crate) fn any_defect() -> impl Strategy<Value = Defect> {
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
    let timed = select(ORDER_SAGA.deadlines[0].states);
    prop_oneof![
        (0..ORDER_SAGA.rows.len(), any_label::<OrderState>())
            .prop_map(|(row, to)| Defect::DecideTwice { row, to }),
        (0..ORDER_SAGA.ignored.len(), any_label::<OrderState>())
            .prop_map(|(pair, to)| Defect::RowForIgnoredPair { pair, to }),
        non_initial.prop_map(|state| Defect::CutOff { state }),
        non_terminal.prop_map(|state| Defect::Trap { state }),
        (
            terminal.clone(),
            any_label::<OrderEvent>(),
            any_label::<OrderState>()
        )
            .prop_filter("must leave", |(state, _, to)| state != to)
            .prop_map(|(state, event, to)| Defect::LeaveTerminal { state, event, to }),
        (any_label::<OrderState>(), any_label::<OrderEvent>())
            .prop_map(|(state, event)| Defect::EmptySelfLoop { state, event }),
        Just(Defect::NoTerminal),
        (0..CONFIRMING_IGNORED_PAIRS.len()).prop_map(|pair| Defect::DropConfirmingPair { pair }),
        (0..ORDER_SAGA.confirmations.len()).prop_map(|rule| Defect::ConfirmTwice { rule }),
        (0..ORDER_SAGA.confirmations.len()).prop_map(|rule| Defect::ConfirmByNothing { rule }),
        terminal.prop_map(|state| Defect::DeadlineOnTerminal { state }),
        select(events_that_stay()).prop_map(|event| Defect::DeadlineThatStays { event }),
        Just(Defect::EmptyDeadline),
        timed.prop_map(|state| Defect::SecondDeadline { state }),
    ]
}

fn errors_of(table: &OrderTable) -> Vec<OrderError> {
    table
        .validate()
        .err()
        .map(|invalid| invalid.errors)
        .unwrap_or_default()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    // Property 4: each kind of defect injected into the order table is reported as itself, and
    // validate still agrees with the oracle on the broken table.
    #[test]
    fn validate_reports_defects_injected_into_the_order_table(defect in any_defect()) {
        let (table, expected) = defect.apply();
        let errors = errors_of(&table);
        prop_assert!(errors.contains(&expected), "expected {:?} in {:?}", expected, errors);
        prop_assert_eq!(errors, super::oracle::oracle(&table));
    }
}

/// The list above is complete: dropping any other `ignored` pair whose event confirms an effect
/// is not reported as an undecided confirmation (the effect cannot be outstanding there), and
/// dropping a listed one is reported as exactly that.
#[test]
fn the_confirming_ignored_pairs_are_exactly_those_validate_demands() {
    for &(state, event) in ORDER_SAGA.ignored {
        let ignored: Vec<_> = ORDER_SAGA
            .ignored
            .iter()
            .copied()
            .filter(|&pair| pair != (state, event))
            .collect();
        let table = Table {
            ignored: leak(ignored),
            ..ORDER_SAGA
        };
        let expected: Vec<OrderError> = CONFIRMING_IGNORED_PAIRS
            .iter()
            .filter(|&&(listed_state, listed_event, _)| {
                (listed_state, listed_event) == (state, event)
            })
            .map(
                |&(state, event, effect)| DefinitionError::ConfirmationUndecided {
                    effect,
                    state,
                    event,
                },
            )
            .collect();
        assert_eq!(
            errors_of(&table),
            expected,
            "dropping ({state:?}, {event:?})"
        );
    }
}

#[test]
fn an_undecided_confirmation_explains_itself() {
    let (table, _) = Defect::DropConfirmingPair { pair: 5 }.apply();
    assert_eq!(
        table.validate().unwrap_err().to_string(),
        "saga table `OrderSaga` is invalid:\n  - effect ReleaseStock can be outstanding in \
         state Cancelled, which does not decide its confirmation StockReleased"
    );
}
