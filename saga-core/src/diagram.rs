//! Diagrams generated from the table: Mermaid `stateDiagram-v2` and Graphviz DOT.
//!
//! One edge per row, labelled `Event / effects`. The initial state gets an edge from the start
//! marker labelled with the start effects; terminal states get an edge to the end marker (Mermaid)
//! or a double border (DOT). `ignored` pairs are not drawn: they change nothing. Each deadline is
//! a note on its first state (Mermaid `note right of`, DOT `xlabel`): `Event after 30 s`, plus the
//! other states sharing its timer. Confirmations are not drawn: they add no edge.

use core::fmt::Write as _;

use crate::table::edge_label;
use crate::timer::human_duration;
use crate::{Deadline, Label, Table};

impl<'a, S: Label, E: Label, F: Label> Table<'a, S, E, F> {
    /// The table as a Mermaid `stateDiagram-v2`, ready to paste into Markdown.
    pub fn to_mermaid(&self) -> String {
        let mut text = String::from("stateDiagram-v2\n");
        // `write!` into a String cannot fail; the results are ignored deliberately.
        let _ = writeln!(
            text,
            "    [*] --> {} : {}",
            self.initial.name(),
            edge_label("start", self.start_effects)
        );
        for row in self.rows {
            let _ = writeln!(
                text,
                "    {} --> {} : {}",
                row.from.name(),
                row.to.name(),
                row.label()
            );
        }
        for state in self.terminal {
            let _ = writeln!(text, "    {} --> [*]", state.name());
        }
        for deadline in self.deadlines {
            let Some(first) = deadline.states.first() else {
                continue;
            };
            let _ = writeln!(
                text,
                "    note right of {} : {}",
                first.name(),
                deadline_note(deadline)
            );
        }
        text
    }

    /// The table as a Graphviz DOT digraph (`dot -Tsvg` draws it).
    pub fn to_dot(&self) -> String {
        let mut text = String::new();
        let _ = writeln!(text, "digraph \"{}\" {{", escape_dot(self.name));
        text.push_str("    rankdir=LR;\n");
        text.push_str("    node [shape=box, style=rounded];\n");
        text.push_str("    \"[*]\" [shape=point];\n");
        for state in self.terminal {
            let _ = writeln!(text, "    \"{}\" [peripheries=2];", state.name());
        }
        for deadline in self.deadlines {
            let Some(first) = deadline.states.first() else {
                continue;
            };
            let _ = writeln!(
                text,
                "    \"{}\" [xlabel=\"{}\"];",
                first.name(),
                escape_dot(&deadline_note(deadline))
            );
        }
        let _ = writeln!(
            text,
            "    \"[*]\" -> \"{}\" [label=\"{}\"];",
            self.initial.name(),
            escape_dot(&edge_label("start", self.start_effects))
        );
        for row in self.rows {
            let _ = writeln!(
                text,
                "    \"{}\" -> \"{}\" [label=\"{}\"];",
                row.from.name(),
                row.to.name(),
                escape_dot(&row.label())
            );
        }
        text.push_str("}\n");
        text
    }
}

/// `DeadlinePassed after 30 s (timer shared with Reserved)`: a one-line Mermaid note
/// (`note right of State : text`, ended by the line's end) of label names, digits and parentheses.
fn deadline_note<S: Label, E: Label>(deadline: &Deadline<'_, S, E>) -> String {
    let mut note = format!(
        "{} after {}",
        deadline.event.name(),
        human_duration(deadline.after)
    );
    let others: Vec<&str> = deadline
        .states
        .iter()
        .skip(1)
        .map(|state| state.name())
        .collect();
    if !others.is_empty() {
        let _ = write!(note, " (timer shared with {})", others.join(", "));
    }
    note
}

fn escape_dot(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}
