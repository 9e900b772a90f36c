//! Definition-time checks of a transition table.

use core::fmt;

use crate::{Label, Row, Table};

/// One defect of a saga definition, found by [`Table::validate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DefinitionError<S, E> {
    /// The table declares no terminal state, so no instance can ever finish.
    NoTerminalState,
    /// Two decisions (rows, or a row and an `ignored` entry) for one `(state, event)` pair.
    DuplicateDecision {
        /// The state.
        state: S,
        /// The event decided twice in it.
        event: E,
    },
    /// A row leads out of a terminal state.
    TerminalStateLeft {
        /// The terminal state.
        state: S,
        /// The event of the offending row.
        event: E,
        /// Where the row leads.
        to: S,
    },
    /// A row that stays in its state and emits nothing: it belongs in `ignored`.
    SelfLoopWithoutEffects {
        /// The state.
        state: S,
        /// The event.
        event: E,
    },
    /// No sequence of events leads from the initial state to this state.
    Unreachable {
        /// The unreachable state.
        state: S,
    },
    /// A non-terminal state from which no terminal state can be reached: instances there are
    /// stuck for ever.
    NoPathToTerminal {
        /// The trapping state.
        state: S,
    },
}

impl<S: Label, E: Label> fmt::Display for DefinitionError<S, E> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DefinitionError::NoTerminalState => {
                formatter.write_str("the table declares no terminal state")
            }
            DefinitionError::DuplicateDecision { state, event } => write!(
                formatter,
                "state {} decides event {} more than once",
                state.name(),
                event.name()
            ),
            DefinitionError::TerminalStateLeft { state, event, to } => write!(
                formatter,
                "terminal state {} is left on event {} (to {})",
                state.name(),
                event.name(),
                to.name()
            ),
            DefinitionError::SelfLoopWithoutEffects { state, event } => write!(
                formatter,
                "row {} --{}--> {} changes nothing; list the pair in `ignored` instead",
                state.name(),
                event.name(),
                state.name()
            ),
            DefinitionError::Unreachable { state } => write!(
                formatter,
                "state {} is unreachable from the initial state",
                state.name()
            ),
            DefinitionError::NoPathToTerminal { state } => write!(
                formatter,
                "no terminal state is reachable from non-terminal state {}",
                state.name()
            ),
        }
    }
}

impl<S: Label, E: Label> std::error::Error for DefinitionError<S, E> {}

/// Every defect [`Table::validate`] found, in a stable order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidTable<S, E> {
    /// The table's name.
    pub table: String,
    /// The defects, sorted.
    pub errors: Vec<DefinitionError<S, E>>,
}

impl<S: Label, E: Label> fmt::Display for InvalidTable<S, E> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "saga table `{}` is invalid:", self.table)?;
        for error in &self.errors {
            write!(formatter, "\n  - {error}")?;
        }
        Ok(())
    }
}

impl<S: Label, E: Label> std::error::Error for InvalidTable<S, E> {}

impl<'a, S: Label, E: Label, F: Label> Table<'a, S, E, F> {
    /// Checks the definition and reports every defect at once.
    ///
    /// Rejected: no terminal state; two decisions for one `(state, event)`; a row leaving a
    /// terminal state; a self-loop row without effects; a state (of `S::ALL`) unreachable from
    /// the initial state; a non-terminal state from which no terminal state is reachable.
    pub fn validate(&self) -> Result<(), InvalidTable<S, E>> {
        let mut errors = Vec::new();
        if self.terminal.is_empty() {
            errors.push(DefinitionError::NoTerminalState);
        }
        errors.extend(self.duplicate_decisions());
        for row in self.rows {
            if self.is_terminal(row.from) && !row.stays() {
                errors.push(DefinitionError::TerminalStateLeft {
                    state: row.from,
                    event: row.event,
                    to: row.to,
                });
            }
            if row.stays() && row.effects.is_empty() {
                errors.push(DefinitionError::SelfLoopWithoutEffects {
                    state: row.from,
                    event: row.event,
                });
            }
        }
        let reachable = self.reachable_from_initial();
        let finishing = self.states_that_can_finish();
        for (index, &state) in S::ALL.iter().enumerate() {
            if !reachable[index] {
                errors.push(DefinitionError::Unreachable { state });
            }
            if !self.is_terminal(state) && !finishing[index] {
                errors.push(DefinitionError::NoPathToTerminal { state });
            }
        }
        if errors.is_empty() {
            return Ok(());
        }
        errors.sort();
        errors.dedup();
        Err(InvalidTable {
            table: self.name.to_owned(),
            errors,
        })
    }

    fn duplicate_decisions(&self) -> Vec<DefinitionError<S, E>> {
        let mut decided: Vec<(S, E)> = self
            .rows
            .iter()
            .map(|row| (row.from, row.event))
            .chain(self.ignored.iter().copied())
            .collect();
        decided.sort();
        let mut duplicates: Vec<DefinitionError<S, E>> = decided
            .windows(2)
            .filter(|pair| pair[0] == pair[1])
            .map(|pair| DefinitionError::DuplicateDecision {
                state: pair[0].0,
                event: pair[0].1,
            })
            .collect();
        duplicates.dedup();
        duplicates
    }

    /// `reachable[i]` tells whether `S::ALL[i]` can be reached from the initial state.
    fn reachable_from_initial(&self) -> Vec<bool> {
        self.closure(&[self.initial], |row| (row.from, row.to))
    }

    /// `finishing[i]` tells whether a terminal state can be reached from `S::ALL[i]`.
    fn states_that_can_finish(&self) -> Vec<bool> {
        self.closure(self.terminal, |row| (row.to, row.from))
    }

    /// Breadth-first closure of `seeds` over the rows, each row read as the edge `direction`.
    fn closure(&self, seeds: &[S], direction: impl Fn(&Row<'a, S, E, F>) -> (S, S)) -> Vec<bool> {
        let position = |state: S| S::ALL.iter().position(|&candidate| candidate == state);
        let mut seen = vec![false; S::ALL.len()];
        let mut frontier: Vec<S> = seeds.to_vec();
        while let Some(state) = frontier.pop() {
            let Some(index) = position(state) else {
                continue;
            };
            if seen[index] {
                continue;
            }
            seen[index] = true;
            frontier.extend(
                self.rows
                    .iter()
                    .map(&direction)
                    .filter(|&(source, _)| source == state)
                    .map(|(_, target)| target),
            );
        }
        seen
    }
}
