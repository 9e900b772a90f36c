//! Timers as table data: which states time out, after how long, with which event.

use core::time::Duration;

use crate::{Label, Table};

/// A timer as table data: while an instance is in any of `states`, `event` is delivered to it once
/// `after` has passed since it entered the group.
///
/// Moving between states of the same group keeps the timer running (an order that moves from
/// `Pending` to `Reserved` still has the 30 seconds it was given at creation); leaving the group
/// clears it; entering another group arms that group's timer. [`Table::timer_after`] says which
/// of these a step does, so a runtime stores one due time per instance and needs no other rule.
///
/// [`Table::validate`] checks that `event` leads out of the group from each of its states, so a
/// timer fires at most once per visit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Deadline<'a, S, E> {
    /// The states that share the timer. A state belongs to at most one deadline.
    pub states: &'a [S],
    /// How long after entering the group the timer fires. Embedding services may override it
    /// (a configuration value), but the table carries the default every diagram shows.
    pub after: Duration,
    /// The event the timer delivers.
    pub event: E,
}

impl<'a, S, E> Deadline<'a, S, E> {
    /// A timer shared by `states` that delivers `event` once `after` has passed.
    pub const fn new(states: &'a [S], after: Duration, event: E) -> Self {
        Deadline {
            states,
            after,
            event,
        }
    }
}

/// What a step does to an instance's timer; see [`Table::timer_after`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimerChange<'a, S, E> {
    /// Leave the timer as it is: still running if one runs, absent if none does.
    Keep,
    /// Start this deadline's timer now, replacing any other.
    Arm(&'a Deadline<'a, S, E>),
    /// Remove the timer: the new state has none.
    Clear,
}

impl<'a, S: Label, E: Label, F: Label> Table<'a, S, E, F> {
    /// The deadline (group) `state` belongs to, if any (the first one listing it, should a broken
    /// table list it twice).
    pub fn deadline_of(&self, state: S) -> Option<&'a Deadline<'a, S, E>> {
        self.deadlines
            .iter()
            .find(|deadline| deadline.states.contains(&state))
    }

    /// What a step from `from` (`None`: the instance just started) to `to` does to the timer.
    ///
    /// - `to` belongs to the same deadline as `from` (a self-loop included): [`TimerChange::Keep`];
    /// - `to` belongs to another deadline, or the instance just started in a deadline state:
    ///   [`TimerChange::Arm`] with `to`'s deadline;
    /// - `to` has no deadline but `from` had one: [`TimerChange::Clear`];
    /// - neither has one (or the instance just started without one): [`TimerChange::Keep`], as
    ///   there is no timer to change.
    pub fn timer_after(&self, from: Option<S>, to: S) -> TimerChange<'a, S, E> {
        let before = from.and_then(|state| self.deadline_of(state));
        let after = self.deadline_of(to);
        match (before, after) {
            (Some(old), Some(new)) if core::ptr::eq(old, new) => TimerChange::Keep,
            (_, Some(new)) => TimerChange::Arm(new),
            (Some(_), None) => TimerChange::Clear,
            (None, None) => TimerChange::Keep,
        }
    }
}

/// `after` for people: `30 s`, `1500 ms`, `250 us`, `7 ns` (the largest unit that is exact).
pub(crate) fn human_duration(after: Duration) -> String {
    if after.subsec_nanos() == 0 {
        return format!("{} s", after.as_secs());
    }
    if after.subsec_nanos().is_multiple_of(1_000_000) {
        return format!("{} ms", after.as_millis());
    }
    if after.subsec_nanos().is_multiple_of(1_000) {
        return format!("{} us", after.as_micros());
    }
    format!("{} ns", after.as_nanos())
}
