//! Activity: how many instances each state holds now, and how many steps took each edge of the
//! table since a moment — what a console draws on the saga's diagram, so that a jam shows at a
//! glance (a state that fills up, an edge that stops being taken).

use chrono::{DateTime, Utc};
use saga_core::Label;
use sea_orm::ConnectionTrait;
use uuid::Uuid;

use crate::definition::Saga;
use crate::engine::SagaRuntime;
use crate::error::RuntimeError;
use crate::store;

/// A saga's activity: its instances by state, its steps by edge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Activity<S, E> {
    /// Every state of the table in declaration order, with how many instances are in it now
    /// (zero included).
    pub in_state: Vec<(S, u64)>,
    /// Every edge taken since [`Activity::since`], most taken first.
    pub edges: Vec<EdgeCount<S, E>>,
    /// Where the edge counts start.
    pub since: DateTime<Utc>,
}

/// How many steps took one edge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EdgeCount<S, E> {
    /// The state before; `None` for instances started.
    pub from: Option<S>,
    /// The event; `None` for instances started.
    pub event: Option<E>,
    /// The state after.
    pub to: S,
    /// How many steps.
    pub steps: u64,
}

impl<D: Saga> SagaRuntime<D> {
    /// The saga's instances by state now, and its steps by edge since `since` (two indexed
    /// aggregates).
    ///
    /// # Errors
    /// [`RuntimeError::Database`] when a query fails; [`RuntimeError::Corrupt`] (with a nil
    /// instance id) for a state or event name this definition does not know.
    pub async fn activity<C: ConnectionTrait>(
        &self,
        db: &C,
        since: DateTime<Utc>,
    ) -> Result<Activity<D::State, D::Event>, RuntimeError> {
        let counted = store::query(
            db,
            "SELECT state, count(*) FROM saga_instances WHERE saga = $1 GROUP BY state",
            [self.name().into()],
            |row| {
                Ok((
                    row.try_get_by_index::<String>(0)?,
                    row.try_get_by_index::<i64>(1)?,
                ))
            },
        )
        .await?;
        let mut in_state: Vec<(D::State, u64)> =
            D::State::ALL.iter().map(|&state| (state, 0)).collect();
        for (name, instances) in counted {
            let state = self.known_state(&name)?;
            if let Some(entry) = in_state.iter_mut().find(|(known, _)| *known == state) {
                entry.1 = count(instances);
            }
        }
        let taken = store::query(
            db,
            "SELECT from_state, event, to_state, count(*) FROM saga_transitions
             WHERE saga = $1 AND at >= $2
             GROUP BY from_state, event, to_state ORDER BY count(*) DESC, to_state",
            [self.name().into(), since.into()],
            |row| {
                Ok((
                    row.try_get_by_index::<Option<String>>(0)?,
                    row.try_get_by_index::<Option<String>>(1)?,
                    row.try_get_by_index::<String>(2)?,
                    row.try_get_by_index::<i64>(3)?,
                ))
            },
        )
        .await?;
        let edges = taken
            .into_iter()
            .map(|(from, event, to, steps)| {
                Ok(EdgeCount {
                    from: from.map(|name| self.known_state(&name)).transpose()?,
                    event: event.map(|name| self.known_event(&name)).transpose()?,
                    to: self.known_state(&to)?,
                    steps: count(steps),
                })
            })
            .collect::<Result<_, RuntimeError>>()?;
        Ok(Activity {
            in_state,
            edges,
            since,
        })
    }

    fn known_state(&self, name: &str) -> Result<D::State, RuntimeError> {
        self.state_named(Uuid::nil(), name)
    }

    fn known_event(&self, name: &str) -> Result<D::Event, RuntimeError> {
        D::Event::from_name(name).ok_or_else(|| RuntimeError::Corrupt {
            saga: self.name(),
            instance_id: Uuid::nil(),
            detail: format!("unknown event {name:?}"),
        })
    }
}

/// A SQL count as a count (never negative).
fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}
