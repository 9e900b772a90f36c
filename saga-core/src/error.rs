//! The defects [`Table::validate`](crate::Table::validate) reports, with their explanations.

use core::fmt;

use crate::Label;

/// One defect of a saga definition, found by [`Table::validate`](crate::Table::validate).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DefinitionError<S, E, F> {
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
    /// A deadline that lists no state: its timer could never run.
    DeadlineWithoutStates {
        /// The deadline's position in `deadlines`.
        deadline: usize,
        /// Its event.
        event: E,
    },
    /// A state listed by two deadlines: which timer runs there would be ambiguous.
    StateInTwoDeadlines {
        /// The state.
        state: S,
    },
    /// A terminal state with a deadline: a finished instance would keep a timer.
    TerminalStateWithDeadline {
        /// The terminal state.
        state: S,
    },
    /// A deadline's event, in one of its states, is not a transition out of the deadline's
    /// states: the timer would fire for ever (or be `Invalid`).
    DeadlineDoesNotLeave {
        /// The state the timer fires in.
        state: S,
        /// The deadline's event.
        event: E,
    },
    /// An effect with two confirmation rules: which one counts would be ambiguous.
    DuplicateConfirmation {
        /// The effect.
        effect: F,
    },
    /// A confirmation rule without events: the effect would be re-sent for ever.
    ConfirmationWithoutEvents {
        /// The effect.
        effect: F,
    },
    /// `effect` can still be outstanding in `state`, where its confirmation `event` has no
    /// decision: the confirmation would arrive and be `Invalid`.
    ConfirmationUndecided {
        /// The effect that can be outstanding.
        effect: F,
        /// A state where it can be.
        state: S,
        /// The confirming event `state` does not decide.
        event: E,
    },
}

impl<S: Label, E: Label, F: Label> fmt::Display for DefinitionError<S, E, F> {
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
            DefinitionError::DeadlineWithoutStates { deadline, event } => write!(
                formatter,
                "deadline #{deadline} ({}) lists no state",
                event.name()
            ),
            DefinitionError::StateInTwoDeadlines { state } => write!(
                formatter,
                "state {} belongs to more than one deadline",
                state.name()
            ),
            DefinitionError::TerminalStateWithDeadline { state } => {
                write!(formatter, "terminal state {} has a deadline", state.name())
            }
            DefinitionError::DeadlineDoesNotLeave { state, event } => write!(
                formatter,
                "deadline event {} does not move state {} out of its deadline's states \
                 (the timer would fire for ever)",
                event.name(),
                state.name()
            ),
            DefinitionError::DuplicateConfirmation { effect } => write!(
                formatter,
                "effect {} has more than one confirmation",
                effect.name()
            ),
            DefinitionError::ConfirmationWithoutEvents { effect } => write!(
                formatter,
                "effect {} has a confirmation without events (it would be re-sent for ever)",
                effect.name()
            ),
            DefinitionError::ConfirmationUndecided {
                effect,
                state,
                event,
            } => write!(
                formatter,
                "effect {} can be outstanding in state {}, which does not decide its \
                 confirmation {}",
                effect.name(),
                state.name(),
                event.name()
            ),
        }
    }
}

impl<S: Label, E: Label, F: Label> std::error::Error for DefinitionError<S, E, F> {}

/// Every defect [`Table::validate`](crate::Table::validate) found, in a stable order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidTable<S, E, F> {
    /// The table's name.
    pub table: String,
    /// The defects, sorted.
    pub errors: Vec<DefinitionError<S, E, F>>,
}

impl<S: Label, E: Label, F: Label> fmt::Display for InvalidTable<S, E, F> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "saga table `{}` is invalid:", self.table)?;
        for error in &self.errors {
            write!(formatter, "\n  - {error}")?;
        }
        Ok(())
    }
}

impl<S: Label, E: Label, F: Label> std::error::Error for InvalidTable<S, E, F> {}
