//! Confirmed effects: which events prove that an effect was carried out.

use crate::{Label, Table};

/// Which events confirm that an effect was carried out.
///
/// An effect without a `Confirmation` is fire-and-forget (announcements). One with a
/// `Confirmation` stays outstanding from the moment a step emits it until one of `by` is applied
/// to the instance; meanwhile the runtime re-sends it, so a command lost anywhere (in the broker,
/// in a dead-letter queue, in a crash) is sent again. Participants must therefore treat the
/// command idempotently and answer every copy.
///
/// [`Table::validate`] checks that each of `by` is decided in every state where the effect can
/// still be outstanding, so a confirmation never arrives where the table has no answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Confirmation<'a, E, F> {
    /// The effect that needs confirming.
    pub effect: F,
    /// The events any one of which confirms it (a success and a refusal both count: either way
    /// the participant has decided).
    pub by: &'a [E],
}

impl<'a, E, F> Confirmation<'a, E, F> {
    /// `effect` stays outstanding until one of `by` is heard.
    pub const fn new(effect: F, by: &'a [E]) -> Self {
        Confirmation { effect, by }
    }
}

impl<'a, S: Label, E: Label, F: Label> Table<'a, S, E, F> {
    /// The confirmation rule of `effect`, if it needs confirming (the first one listed, should a
    /// broken table list it twice).
    pub fn confirmation_of(&self, effect: F) -> Option<&'a Confirmation<'a, E, F>> {
        self.confirmations
            .iter()
            .find(|confirmation| confirmation.effect == effect)
    }

    /// The effects `event` confirms, in declaration order, each once.
    pub fn confirmed_by(&self, event: E) -> Vec<F> {
        let mut effects = Vec::new();
        for confirmation in self.confirmations {
            let rule = self.confirmation_of(confirmation.effect);
            // Only the rule `confirmation_of` returns counts, so the runtime and this list agree.
            let applies = rule.is_some_and(|rule| core::ptr::eq(rule, confirmation));
            if applies
                && confirmation.by.contains(&event)
                && !effects.contains(&confirmation.effect)
            {
                effects.push(confirmation.effect);
            }
        }
        effects
    }

    /// `outstanding[i]` tells whether `effect` can still be outstanding in `S::ALL[i]`: the
    /// closure, from every state where a step emits it (the initial state for a start effect, the
    /// `to` of each row emitting it), over the rows whose event does not confirm it.
    pub(crate) fn outstanding_states(&self, effect: F) -> Vec<bool> {
        let confirming: &[E] = self
            .confirmation_of(effect)
            .map_or(&[], |confirmation| confirmation.by);
        let mut seeds: Vec<S> = self
            .rows
            .iter()
            .filter(|row| row.effects.contains(&effect))
            .map(|row| row.to)
            .collect();
        if self.start_effects.contains(&effect) {
            seeds.push(self.initial);
        }
        let position = |state: S| S::ALL.iter().position(|&candidate| candidate == state);
        let mut seen = vec![false; S::ALL.len()];
        while let Some(state) = seeds.pop() {
            let Some(index) = position(state) else {
                continue;
            };
            if seen[index] {
                continue;
            }
            seen[index] = true;
            seeds.extend(
                self.rows
                    .iter()
                    .filter(|row| row.from == state && !confirming.contains(&row.event))
                    .map(|row| row.to),
            );
        }
        seen
    }
}
