//! The defects of a table, computed independently of `Table::validate`: reachability by a
//! Floyd–Warshall transitive closure instead of a graph search, duplicates by counting, the
//! states where an effect can be outstanding by a fixed-point iteration instead of a search, and
//! decisions by scanning the rows and `ignored` instead of calling `step`.

use saga_core::{DefinitionError, Label, Table};

fn index<L: Label>(label: L) -> usize {
    L::ALL
        .iter()
        .position(|&candidate| candidate == label)
        .unwrap_or(usize::MAX)
}

/// `reach[i][j]`: `S::ALL[j]` can be reached from `S::ALL[i]` over `rows` (each state reaches
/// itself).
fn transitive_closure<S: Label, E: Label, F: Label>(table: &Table<'_, S, E, F>) -> Vec<Vec<bool>> {
    let count = S::ALL.len();
    let mut reach = vec![vec![false; count]; count];
    for (i, row) in reach.iter_mut().enumerate() {
        row[i] = true;
    }
    for row in table.rows {
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
    reach
}

/// Whether `table` has a row or an `ignored` pair for `(state, event)`.
pub(crate) fn decides<S: Label, E: Label, F: Label>(
    table: &Table<'_, S, E, F>,
    state: S,
    event: E,
) -> bool {
    table
        .rows
        .iter()
        .any(|row| row.from == state && row.event == event)
        || table.ignored.contains(&(state, event))
}

/// The states where `effect` can be outstanding when `confirming` confirms it: start from every
/// emission, then add the target of every row (from a state already in) whose event does not
/// confirm, until nothing changes.
pub(crate) fn outstanding<S: Label, E: Label, F: Label>(
    table: &Table<'_, S, E, F>,
    effect: F,
    confirming: &[E],
) -> Vec<S> {
    let mut states: Vec<S> = table
        .rows
        .iter()
        .filter(|row| row.effects.contains(&effect))
        .map(|row| row.to)
        .collect();
    if table.start_effects.contains(&effect) {
        states.push(table.initial);
    }
    loop {
        let before = states.len();
        for row in table.rows {
            if states.contains(&row.from)
                && !confirming.contains(&row.event)
                && !states.contains(&row.to)
            {
                states.push(row.to);
            }
        }
        if states.len() == before {
            break;
        }
    }
    states.sort();
    states.dedup();
    states
}

pub(crate) fn oracle<S: Label, E: Label, F: Label>(
    table: &Table<'_, S, E, F>,
) -> Vec<DefinitionError<S, E, F>> {
    let reach = transitive_closure(table);
    let mut errors = Vec::new();
    if table.terminal.is_empty() {
        errors.push(DefinitionError::NoTerminalState);
    }
    let decisions: Vec<(S, E)> = table
        .rows
        .iter()
        .map(|row| (row.from, row.event))
        .chain(table.ignored.iter().copied())
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
    for row in table.rows {
        if table.terminal.contains(&row.from) && row.to != row.from {
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
        if !reach[index(table.initial)][index(state)] {
            errors.push(DefinitionError::Unreachable { state });
        }
        let finishes = table
            .terminal
            .iter()
            .any(|&terminal| reach[index(state)][index(terminal)]);
        if !table.terminal.contains(&state) && !finishes {
            errors.push(DefinitionError::NoPathToTerminal { state });
        }
    }
    errors.extend(deadline_oracle(table));
    errors.extend(confirmation_oracle(table));
    errors.sort();
    errors.dedup();
    errors
}

fn deadline_oracle<S: Label, E: Label, F: Label>(
    table: &Table<'_, S, E, F>,
) -> Vec<DefinitionError<S, E, F>> {
    let mut errors = Vec::new();
    for (position, deadline) in table.deadlines.iter().enumerate() {
        if deadline.states.is_empty() {
            errors.push(DefinitionError::DeadlineWithoutStates {
                deadline: position,
                event: deadline.event,
            });
        }
        for &state in deadline.states {
            if table.terminal.contains(&state) {
                errors.push(DefinitionError::TerminalStateWithDeadline { state });
            }
            // The first row decides (as `step` documents); no row means no transition at all.
            let first = table
                .rows
                .iter()
                .find(|row| row.from == state && row.event == deadline.event);
            let leaves = first.is_some_and(|row| !deadline.states.contains(&row.to));
            if !leaves {
                errors.push(DefinitionError::DeadlineDoesNotLeave {
                    state,
                    event: deadline.event,
                });
            }
        }
    }
    for &state in S::ALL {
        let memberships: usize = table
            .deadlines
            .iter()
            .map(|deadline| usize::from(deadline.states.contains(&state)))
            .sum();
        if memberships >= 2 {
            errors.push(DefinitionError::StateInTwoDeadlines { state });
        }
    }
    errors
}

fn confirmation_oracle<S: Label, E: Label, F: Label>(
    table: &Table<'_, S, E, F>,
) -> Vec<DefinitionError<S, E, F>> {
    let mut errors = Vec::new();
    for (position, confirmation) in table.confirmations.iter().enumerate() {
        let effect = confirmation.effect;
        if confirmation.by.is_empty() {
            errors.push(DefinitionError::ConfirmationWithoutEvents { effect });
        }
        let earlier = table.confirmations[..position]
            .iter()
            .filter(|other| other.effect == effect)
            .count();
        if earlier > 0 {
            errors.push(DefinitionError::DuplicateConfirmation { effect });
            continue;
        }
        for state in outstanding(table, effect, confirmation.by) {
            for &event in confirmation.by {
                if !decides(table, state, event) {
                    errors.push(DefinitionError::ConfirmationUndecided {
                        effect,
                        state,
                        event,
                    });
                }
            }
        }
    }
    errors
}
