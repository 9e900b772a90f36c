//! Definition-time checks of a transition table.

use crate::{DefinitionError, InvalidTable, Label, Outcome, Row, Table};

impl<'a, S: Label, E: Label, F: Label> Table<'a, S, E, F> {
    /// Checks the definition and reports every defect at once.
    ///
    /// Rejected: no terminal state; two decisions for one `(state, event)`; a row leaving a
    /// terminal state; a self-loop row without effects; a state (of `S::ALL`) unreachable from
    /// the initial state; a non-terminal state from which no terminal state is reachable.
    ///
    /// Deadlines: one without states; a state in two deadlines; a terminal state in one; a
    /// deadline whose event, in one of its states, is not a transition out of its states.
    ///
    /// Confirmations: two for one effect; one without events; and, for every confirmed effect, a
    /// state where it can still be outstanding (reached from where it is emitted without one of
    /// its confirming events) that does not decide one of its confirming events.
    pub fn validate(&self) -> Result<(), InvalidTable<S, E, F>> {
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
        errors.extend(self.deadline_defects());
        errors.extend(self.confirmation_defects());
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

    fn duplicate_decisions(&self) -> Vec<DefinitionError<S, E, F>> {
        let mut decided: Vec<(S, E)> = self
            .rows
            .iter()
            .map(|row| (row.from, row.event))
            .chain(self.ignored.iter().copied())
            .collect();
        decided.sort();
        let mut duplicates: Vec<DefinitionError<S, E, F>> = decided
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

    fn deadline_defects(&self) -> Vec<DefinitionError<S, E, F>> {
        let mut errors = Vec::new();
        for (index, deadline) in self.deadlines.iter().enumerate() {
            if deadline.states.is_empty() {
                errors.push(DefinitionError::DeadlineWithoutStates {
                    deadline: index,
                    event: deadline.event,
                });
            }
            for &state in deadline.states {
                if self.is_terminal(state) {
                    errors.push(DefinitionError::TerminalStateWithDeadline { state });
                }
                let leaves = match self.step(state, deadline.event) {
                    Outcome::Transition { to, .. } => !deadline.states.contains(&to),
                    Outcome::Compensate { .. }
                    | Outcome::Duplicate { .. }
                    | Outcome::Invalid { .. } => false,
                };
                if !leaves {
                    errors.push(DefinitionError::DeadlineDoesNotLeave {
                        state,
                        event: deadline.event,
                    });
                }
            }
        }
        for &state in S::ALL {
            let groups = self
                .deadlines
                .iter()
                .filter(|deadline| deadline.states.contains(&state))
                .count();
            if groups > 1 {
                errors.push(DefinitionError::StateInTwoDeadlines { state });
            }
        }
        errors
    }

    fn confirmation_defects(&self) -> Vec<DefinitionError<S, E, F>> {
        let mut errors = Vec::new();
        for (index, confirmation) in self.confirmations.iter().enumerate() {
            let effect = confirmation.effect;
            if confirmation.by.is_empty() {
                errors.push(DefinitionError::ConfirmationWithoutEvents { effect });
            }
            let listed_before = self.confirmations[..index]
                .iter()
                .any(|earlier| earlier.effect == effect);
            if listed_before {
                errors.push(DefinitionError::DuplicateConfirmation { effect });
                // The rule that counts (the first) is checked below; this one never applies.
                continue;
            }
            let outstanding = self.outstanding_states(effect);
            for (state_index, &state) in S::ALL.iter().enumerate() {
                if !outstanding[state_index] {
                    continue;
                }
                for &event in confirmation.by {
                    if matches!(self.step(state, event), Outcome::Invalid { .. }) {
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
