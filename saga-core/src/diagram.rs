//! Diagrams generated from the table: Mermaid `stateDiagram-v2` and Graphviz DOT.
//!
//! One edge per row, labelled `Event / effects`. The initial state gets an edge from the start
//! marker labelled with the start effects; terminal states get an edge to the end marker (Mermaid)
//! or a double border (DOT). `ignored` pairs are not drawn: they change nothing.

use core::fmt::Write as _;

use crate::table::edge_label;
use crate::{Label, Table};

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

fn escape_dot(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}
