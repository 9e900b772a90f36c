//! What `sagactl dlq` prints: aligned tables, a dead letter's fields, JSON as the services
//! answered it, and how many dead letters were moved.

use serde_json::{Map, Value};
use service_kit::dead_letters::{DeadLetterListing, DeadLetterView, MAX_LIMIT, Moved};

use super::{Action, ListArgs, Target};

/// The most characters of a reason a listing shows (`show` prints it whole).
const REASON_WIDTH: usize = 60;

/// `text` on one line (whitespace runs become one space), at most `width` characters (the
/// last one `…` when it is cut).
pub(super) fn truncated(text: &str, width: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.chars().count() <= width {
        true => flat,
        false => {
            let mut cut: String = flat.chars().take(width.saturating_sub(1)).collect();
            cut.push('…');
            cut
        }
    }
}

/// A table: a header line and aligned columns two spaces apart.
struct Table {
    /// The column headers.
    headers: &'static [&'static str],
    /// Which columns are right-aligned (numbers).
    right: &'static [bool],
    /// The rows, a cell per column.
    rows: Vec<Vec<String>>,
}

impl Table {
    /// The table as text, each line without trailing spaces.
    fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|header| header.len()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let headers: Vec<String> = self
            .headers
            .iter()
            .map(|&header| header.to_owned())
            .collect();
        let mut text = String::new();
        for row in std::iter::once(&headers).chain(&self.rows) {
            let mut line = String::new();
            for (column, cell) in row.iter().enumerate() {
                let width = widths.get(column).copied().unwrap_or(0);
                let padding = " ".repeat(width.saturating_sub(cell.chars().count()));
                if column > 0 {
                    line.push_str("  ");
                }
                match self.right.get(column).copied().unwrap_or(false) {
                    true => {
                        line.push_str(&padding);
                        line.push_str(cell);
                    }
                    false => {
                        line.push_str(cell);
                        line.push_str(&padding);
                    }
                }
            }
            text.push_str(line.trim_end());
            text.push('\n');
        }
        text
    }
}

/// The value, or `-` when there is none.
fn or_dash(value: Option<&str>) -> String {
    value.unwrap_or("-").to_owned()
}

/// `1 one`, else `N many`.
fn plural(count: usize, one: &str, many: &str) -> String {
    match count {
        1 => format!("1 {one}"),
        count => format!("{count} {many}"),
    }
}

/// JSON, indented.
fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// The output of `list`: each queue's count, then the dead letters (or each service's
/// answer as JSON).
pub(super) fn render_list(
    answers: &[(Target, Value, DeadLetterListing)],
    arguments: &ListArgs,
) -> String {
    if arguments.json {
        let keyed: Map<String, Value> = answers
            .iter()
            .map(|(target, value, _)| (target.service.name().to_owned(), value.clone()))
            .collect();
        return format!("{}\n", pretty(&Value::Object(keyed)));
    }
    let depths = Table {
        headers: &["SERVICE", "QUEUE", "DEAD LETTERS"],
        right: &[false, false, true],
        rows: answers
            .iter()
            .flat_map(|(target, _, listing)| {
                listing.queues.iter().map(|queue| {
                    vec![
                        target.service.name().to_owned(),
                        queue.queue.clone(),
                        queue.dead_letters.to_string(),
                    ]
                })
            })
            .collect(),
    };
    let letters = Table {
        headers: &[
            "QUEUE",
            "ID",
            "TYPE",
            "CORRELATION ID",
            "ATTEMPTS",
            "REDRIVEN",
            "DEAD-LETTERED AT",
            "REASON",
        ],
        right: &[false, false, false, false, true, true, false, false],
        rows: answers
            .iter()
            .flat_map(|(_, _, listing)| &listing.dead_letters)
            .map(|letter| {
                vec![
                    letter.queue.clone(),
                    letter.id.clone(),
                    or_dash(letter.message_type.as_deref()),
                    or_dash(letter.correlation_id.as_deref()),
                    letter.attempts.to_string(),
                    letter.redriven.to_string(),
                    or_dash(letter.dead_lettered_at.as_deref()),
                    truncated(&letter.reason, REASON_WIDTH),
                ]
            })
            .collect(),
    };
    let mut text = depths.render();
    text.push('\n');
    let filtered =
        arguments.queue.is_some() || arguments.message_type.is_some() || arguments.reason.is_some();
    match (letters.rows.is_empty(), filtered) {
        (true, false) => text.push_str("No dead letters.\n"),
        (true, true) => text.push_str("No dead letters match.\n"),
        (false, _) => text.push_str(&letters.render()),
    }
    for (target, _, listing) in answers {
        if listing.truncated {
            text.push_str(&format!(
                "{}: more dead letters match than --limit {}; narrow with --queue, --type or \
                 --reason, or raise --limit (at most {MAX_LIMIT}).\n",
                target.service, arguments.limit
            ));
        }
    }
    text
}

/// The output of `show`: every field, then the headers and the payload (or the answer as
/// JSON).
pub(super) fn render_show(answers: &[(Target, Value, DeadLetterView)], json: bool) -> String {
    let mut text = String::new();
    for (target, value, letter) in answers {
        if json {
            text.push_str(&pretty(value));
            text.push('\n');
            continue;
        }
        let fields = [
            ("queue", letter.queue.clone()),
            ("id", letter.id.clone()),
            ("service", target.to_string()),
            ("type", or_dash(letter.message_type.as_deref())),
            ("correlation id", or_dash(letter.correlation_id.as_deref())),
            ("reason", letter.reason.clone()),
            (
                "dead-lettered at",
                or_dash(letter.dead_lettered_at.as_deref()),
            ),
            ("attempts", letter.attempts.to_string()),
            ("redriven", letter.redriven.to_string()),
            ("sender", or_dash(letter.sender.as_deref())),
        ];
        for (name, value) in fields {
            text.push_str(&format!("{:<18}{value}\n", format!("{name}:")));
        }
        text.push_str(&format!(
            "headers:\n{}\n",
            pretty(&Value::Object(letter.headers.clone()))
        ));
        text.push_str(&format!("payload:\n{}\n", pretty(&letter.payload)));
    }
    text
}

/// The output of `redrive` and `discard`: how many each service moved, and in all.
pub(super) fn render_moved(
    answers: &[(Target, Value, Moved)],
    action: Action,
    one: Option<(&String, &String)>,
) -> String {
    let mut text = String::new();
    for (target, _, moved) in answers {
        let what = match one {
            Some((queue, id)) => format!("dead letter {id} of {queue}"),
            None => plural(moved.count, "dead letter", "dead letters"),
        };
        text.push_str(&format!("{}: {} {what}\n", target.service, action.past()));
    }
    if answers.len() > 1 {
        let total: usize = answers.iter().map(|(_, _, moved)| moved.count).sum();
        text.push_str(&format!(
            "{} {} in all\n",
            action.past(),
            plural(total, "dead letter", "dead letters")
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_cut_on_one_line() {
        let cases = [
            ("short", 10, "short"),
            ("exactly ten", 11, "exactly ten"),
            ("a\nmulti-line\t reason", 40, "a multi-line reason"),
            ("gave up after 5 attempts", 10, "gave up a…"),
            ("émigré ünïcode", 5, "émig…"),
        ];
        for (text, width, expected) in cases {
            assert_eq!(truncated(text, width), expected, "{text:?}");
        }
    }

    #[test]
    fn tables_align_their_columns() {
        let table = Table {
            headers: &["NAME", "COUNT"],
            right: &[false, true],
            rows: vec![
                vec!["a-long-name".into(), "3".into()],
                vec!["b".into(), "12345".into()],
            ],
        };
        assert_eq!(
            table.render(),
            "NAME         COUNT\na-long-name      3\nb            12345\n"
        );
    }
}
