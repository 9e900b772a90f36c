//! The transition table and the pure `step` function.

use crate::{Confirmation, Deadline, Label};

/// One row of a transition table: in state `from`, on `event`, go to `to` and emit `effects`.
///
/// A row whose `to` equals its `from` does not move the saga; it only emits its effects. That is
/// how a table says "this late event needs its compensation" (for example a stock reservation
/// that arrives after the order was cancelled must be released).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Row<'a, S, E, F> {
    /// The state the row applies in.
    pub from: S,
    /// The event the row reacts to.
    pub event: E,
    /// The state after the event. Equal to `from` for a compensation-only row.
    pub to: S,
    /// What the saga asks others to do, in order: forward steps and compensations.
    pub effects: &'a [F],
}

impl<'a, S, E, F> Row<'a, S, E, F> {
    /// A row that moves the saga from `from` to `to` on `event`, emitting `effects`.
    pub const fn new(from: S, event: E, to: S, effects: &'a [F]) -> Self {
        Row {
            from,
            event,
            to,
            effects,
        }
    }
}

impl<'a, S: Label, E: Label, F: Label> Row<'a, S, E, F> {
    /// Whether the row only emits effects and leaves the state as it was.
    pub fn stays(&self) -> bool {
        self.from == self.to
    }

    /// The row's edge label in diagrams: `Event` or `Event / EffectA, EffectB`.
    pub fn label(&self) -> String {
        edge_label(self.event.name(), self.effects)
    }
}

pub(crate) fn edge_label<F: Label>(trigger: &str, effects: &[F]) -> String {
    let mut label = String::from(trigger);
    for (index, effect) in effects.iter().enumerate() {
        label.push_str(if index == 0 { " / " } else { ", " });
        label.push_str(effect.name());
    }
    label
}

/// A saga definition: plain data that can be inspected, validated, drawn and stepped.
///
/// Build it as a `static` so the running binary, its tests and its diagrams all read the same
/// rows. Check it once with [`Table::validate`](crate::Table::validate) (a unit test is the right
/// place) before trusting it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Table<'a, S, E, F> {
    /// The saga's name, used as the diagram title.
    pub name: &'a str,
    /// The state every instance starts in.
    pub initial: S,
    /// Effects emitted when an instance starts (the first forward step).
    pub start_effects: &'a [F],
    /// States an instance never leaves. At least one is required.
    pub terminal: &'a [S],
    /// The decisions that move the saga or emit effects.
    pub rows: &'a [Row<'a, S, E, F>],
    /// `(state, event)` pairs that change nothing: redeliveries of events already applied, and
    /// events the saga has moved past (a deadline that fires after payment succeeded).
    pub ignored: &'a [(S, E)],
    /// Timers: which states time out, after how long, with which event. Empty for a saga that
    /// never times out.
    pub deadlines: &'a [Deadline<'a, S, E>],
    /// Which events confirm which effects. An effect listed here is re-sent by the runtime until
    /// confirmed; one not listed is sent once.
    pub confirmations: &'a [Confirmation<'a, E, F>],
}

/// What [`Table::step`] decided for one event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome<'a, S, F> {
    /// A row moved the saga from `from` to `to`; emit `effects`.
    Transition {
        /// The state before the event.
        from: S,
        /// The state after the event.
        to: S,
        /// Effects to emit, in order.
        effects: &'a [F],
    },
    /// The event arrived where it needs only effects — typically a late event after the saga
    /// ended, whose compensation must run. The state stays `state`.
    Compensate {
        /// The state, unchanged.
        state: S,
        /// Effects to emit, in order.
        effects: &'a [F],
    },
    /// The event is already reflected in `state` (a redelivery, or an event the saga moved past).
    /// Nothing changes and nothing is emitted.
    Duplicate {
        /// The state, unchanged.
        state: S,
    },
    /// The table has no decision for this event in `state`. Nothing changes; the caller should
    /// report it, because a correct participant never sends it.
    Invalid {
        /// The state, unchanged.
        state: S,
    },
}

impl<'a, S: Copy, F> Outcome<'a, S, F> {
    /// The state after the event (the old state unless the outcome is a transition).
    pub fn state(&self) -> S {
        match *self {
            Outcome::Transition { to, .. } => to,
            Outcome::Compensate { state, .. }
            | Outcome::Duplicate { state }
            | Outcome::Invalid { state } => state,
        }
    }

    /// The effects to emit; empty for duplicates and invalid events.
    pub fn effects(&self) -> &'a [F] {
        match *self {
            Outcome::Transition { effects, .. } | Outcome::Compensate { effects, .. } => effects,
            Outcome::Duplicate { .. } | Outcome::Invalid { .. } => &[],
        }
    }

    /// Whether the event changed the state.
    pub fn is_transition(&self) -> bool {
        matches!(self, Outcome::Transition { .. })
    }
}

impl<'a, S: Label, E: Label, F: Label> Table<'a, S, E, F> {
    /// Decides what `event` does to an instance in `state`.
    ///
    /// Pure and total: it never panics, whatever the table holds. If a broken table has two rows
    /// for one pair, the first wins ([`Table::validate`] reports such tables).
    pub fn step(&self, state: S, event: E) -> Outcome<'a, S, F> {
        match self.row(state, event) {
            Some(row) if row.stays() => Outcome::Compensate {
                state,
                effects: row.effects,
            },
            Some(row) => Outcome::Transition {
                from: state,
                to: row.to,
                effects: row.effects,
            },
            None if self.ignored.contains(&(state, event)) => Outcome::Duplicate { state },
            None => Outcome::Invalid { state },
        }
    }

    /// The row deciding `event` in `state`, if there is one.
    pub fn row(&self, state: S, event: E) -> Option<&'a Row<'a, S, E, F>> {
        self.rows
            .iter()
            .find(|row| row.from == state && row.event == event)
    }

    /// Whether `state` is terminal.
    pub fn is_terminal(&self, state: S) -> bool {
        self.terminal.contains(&state)
    }

    /// States in which `event` moves the saga, in declaration order. A sweeper that predates
    /// [`Table::deadlines`] uses it to find the instances a `DeadlinePassed`-like event would move.
    pub fn states_moved_by(&self, event: E) -> Vec<S> {
        S::ALL
            .iter()
            .copied()
            .filter(|&state| self.step(state, event).is_transition())
            .collect()
    }

    /// Checks that `transitions` (`(from, event, to)` in order) is a path through the table that
    /// starts at the initial state: each item is a row of the table (a transition, or a
    /// compensation that stays) and each `from` is the previous `to`. Returns the state the path
    /// ends in, or the first item that breaks the path.
    pub fn check_path(
        &self,
        transitions: impl IntoIterator<Item = (S, E, S)>,
    ) -> Result<S, PathError<S, E>> {
        let mut current = self.initial;
        for (index, (from, event, to)) in transitions.into_iter().enumerate() {
            let follows = from == current && self.row(from, event).is_some_and(|row| row.to == to);
            if !follows {
                return Err(PathError {
                    index,
                    expected_from: current,
                    from,
                    event,
                    to,
                });
            }
            current = to;
        }
        Ok(current)
    }
}

/// A recorded transition that is not a step of the table (see [`Table::check_path`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathError<S, E> {
    /// Position of the offending transition.
    pub index: usize,
    /// The state the path had reached before it.
    pub expected_from: S,
    /// The recorded `from`.
    pub from: S,
    /// The recorded event.
    pub event: E,
    /// The recorded `to`.
    pub to: S,
}

impl<S: Label, E: Label> core::fmt::Display for PathError<S, E> {
    fn fmt(&self, formatter: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            formatter,
            "transition #{} {} --{}--> {} is not a row reachable from {}",
            self.index,
            self.from.name(),
            self.event.name(),
            self.to.name(),
            self.expected_from.name()
        )
    }
}

impl<S: Label, E: Label> std::error::Error for PathError<S, E> {}
