//! The saga: the table this order-svc runs, drawn, with how many orders each state holds now
//! and how many steps took each edge in the last hour — a jam shows at a glance.

use axum::extract::State;
use maud::{Markup, html};
use order_svc::representation::{SagaActivity, SagaDefinition};

use crate::AppState;
use crate::backend::Service;
use crate::error::ConsoleError;
use crate::pages::layout::{self, moment};
use crate::session::Session;

/// `GET /saga`.
pub(crate) async fn show(
    State(state): State<AppState>,
    session: Session,
) -> Result<Markup, ConsoleError> {
    let (definition, activity) = tokio::join!(
        state
            .backend
            .get::<SagaDefinition>(&session, Service::Order, "/saga"),
        state.backend.get::<SagaActivity>(
            &session,
            Service::Order,
            "/saga/activity?window_secs=3600"
        ),
    );
    let (definition, activity) = (definition?, activity?);
    let diagram = annotated_diagram(&definition, &activity);
    let body = html! {
        h1 { "The " (definition.name) " saga" }
        p.muted { "Orders in each state now; steps along each edge since " (moment(&activity.since)) " (the last hour). Reload for fresh counts." }
        div.diagram {
            pre.mermaid #diagram { (diagram) }
        }
        div.side-by-side {
            section {
                h2 { "Orders by state, now" }
                table #states {
                    thead { tr { th { "State" } th { "Orders" } } }
                    tbody {
                        @for state in &activity.states {
                            tr data-state=(state.state) {
                                td { a href=(format!("/orders?status={}", state.state)) { (state.state) } }
                                td.number { (state.orders) }
                            }
                        }
                    }
                }
            }
            section {
                h2 { "Steps by edge, last hour" }
                table #edges {
                    thead { tr { th { "From" } th { "Event" } th { "To" } th { "Steps" } } }
                    tbody {
                        @for edge in &activity.edges {
                            tr {
                                td { (edge.from.as_deref().unwrap_or("(placed)")) }
                                td { (edge.event.as_deref().unwrap_or("")) }
                                td { (edge.to) }
                                td.number { (edge.steps) }
                            }
                        }
                    }
                }
            }
        }
        script src="/assets/mermaid.min.js" {}
        script src="/assets/console.js" {}
    };
    Ok(layout::page("Saga", Some(&session), body))
}

/// The table as a Mermaid state diagram whose states carry their orders now and whose edges
/// carry their steps in the window.
fn annotated_diagram(definition: &SagaDefinition, activity: &SagaActivity) -> String {
    let orders_in = |state: &str| {
        activity
            .states
            .iter()
            .find(|entry| entry.state == state)
            .map_or(0, |entry| entry.orders)
    };
    let steps_along = |from: Option<&str>, event: Option<&str>, to: &str| {
        activity
            .edges
            .iter()
            .filter(|edge| {
                edge.from.as_deref() == from && edge.event.as_deref() == event && edge.to == to
            })
            .map(|edge| edge.steps)
            .sum::<u64>()
    };
    let mut states: Vec<&str> = vec![definition.initial.as_str()];
    for row in &definition.rows {
        for state in [row.from.as_str(), row.to.as_str()] {
            if !states.contains(&state) {
                states.push(state);
            }
        }
    }
    let mut lines = vec!["stateDiagram-v2".to_owned()];
    for state in &states {
        lines.push(format!(
            "    state \"{state} · {} now\" as {state}",
            orders_in(state)
        ));
    }
    lines.push(format!(
        "    [*] --> {}: placed · {}",
        definition.initial,
        steps_along(None, None, &definition.initial)
    ));
    for row in &definition.rows {
        lines.push(format!(
            "    {} --> {}: {} · {}",
            row.from,
            row.to,
            row.event,
            steps_along(Some(&row.from), Some(&row.event), &row.to)
        ));
    }
    for terminal in &definition.terminal {
        lines.push(format!("    {terminal} --> [*]"));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use order_svc::representation::{EdgeActivity, SagaRow, StateActivity};

    #[test]
    fn the_diagram_carries_the_counts() {
        let definition = SagaDefinition {
            name: "Order".into(),
            initial: "Pending".into(),
            start_effects: vec![],
            terminal: vec!["Done".into()],
            rows: vec![SagaRow {
                from: "Pending".into(),
                event: "Finished".into(),
                to: "Done".into(),
                effects: vec![],
            }],
            ignored: vec![],
            mermaid: String::new(),
            dot: String::new(),
        };
        let activity = SagaActivity {
            since: chrono::Utc::now(),
            states: vec![
                StateActivity {
                    state: "Pending".into(),
                    orders: 3,
                },
                StateActivity {
                    state: "Done".into(),
                    orders: 7,
                },
            ],
            edges: vec![
                EdgeActivity {
                    from: None,
                    event: None,
                    to: "Pending".into(),
                    steps: 10,
                },
                EdgeActivity {
                    from: Some("Pending".into()),
                    event: Some("Finished".into()),
                    to: "Done".into(),
                    steps: 7,
                },
            ],
        };
        assert_eq!(
            annotated_diagram(&definition, &activity),
            "stateDiagram-v2\n    state \"Pending · 3 now\" as Pending\n    state \"Done · 7 now\" as Done\n    [*] --> Pending: placed · 10\n    Pending --> Done: Finished · 7\n    Done --> [*]"
        );
    }
}
