//! Diagrams: every row drawn exactly once, and one note per deadline.

use proptest::prelude::*;
use saga_core::{Label, Table};

use super::{any_table_with_unique_decisions, any_valid_table};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    // Property 5: every row is drawn exactly once, in Mermaid and in DOT.
    #[test]
    fn diagrams_draw_every_row_exactly_once(owned in any_table_with_unique_decisions()) {
        check_diagrams(&owned.table())?;
    }

    #[test]
    fn diagrams_of_valid_tables_draw_every_row_exactly_once(owned in any_valid_table()) {
        check_diagrams(&owned.table())?;
    }
}

pub(crate) fn check_diagrams<St: Label, Ev: Label, Ef: Label>(
    table: &Table<'_, St, Ev, Ef>,
) -> Result<(), TestCaseError> {
    let mermaid = table.to_mermaid();
    let dot = table.to_dot();
    for row in table.rows {
        let mermaid_edge = format!(
            "{} --> {} : {}\n",
            row.from.name(),
            row.to.name(),
            row.label()
        );
        let dot_edge = format!(
            "\"{}\" -> \"{}\" [label=\"{}\"];\n",
            row.from.name(),
            row.to.name(),
            row.label()
        );
        prop_assert_eq!(
            mermaid.matches(&mermaid_edge).count(),
            1,
            "{}",
            mermaid_edge
        );
        prop_assert_eq!(dot.matches(&dot_edge).count(), 1, "{}", dot_edge);
    }
    // Nothing else is drawn: one start edge, one edge per row, one end edge per terminal state.
    let mermaid_edges = mermaid.lines().filter(|line| line.contains("-->")).count();
    prop_assert_eq!(mermaid_edges, 1 + table.rows.len() + table.terminal.len());
    let dot_edges = dot.lines().filter(|line| line.contains("->")).count();
    prop_assert_eq!(dot_edges, 1 + table.rows.len());
    // One note per deadline that has states, on its first state, naming the others.
    let drawn: Vec<_> = table
        .deadlines
        .iter()
        .filter(|deadline| !deadline.states.is_empty())
        .collect();
    let notes: Vec<&str> = mermaid
        .lines()
        .filter(|line| line.starts_with("    note right of "))
        .collect();
    let xlabels = dot.lines().filter(|line| line.contains("[xlabel=")).count();
    prop_assert_eq!((notes.len(), xlabels), (drawn.len(), drawn.len()));
    for (deadline, note) in drawn.iter().zip(&notes) {
        let others: Vec<&str> = deadline.states[1..].iter().map(|s| s.name()).collect();
        let shared = if others.is_empty() {
            String::new()
        } else {
            format!(" (timer shared with {})", others.join(", "))
        };
        prop_assert!(
            note.starts_with(&format!(
                "    note right of {} : {} after ",
                deadline.states[0].name(),
                deadline.event.name()
            )) && note.ends_with(&shared)
                && (shared.is_empty() != note.contains("(timer shared with")),
            "{}",
            note
        );
    }
    Ok(())
}
