//! The frame of every page: head, navigation, the signed-in operator and the sign-out form.

use maud::{DOCTYPE, Markup, html};

use crate::session::Session;

/// A whole page.
pub(crate) fn page(title: &str, session: Option<&Session>, body: Markup) -> Markup {
    frame(title, session, None, body)
}

/// A whole page that reloads itself every `seconds`.
pub(crate) fn refreshing_page(
    title: &str,
    session: &Session,
    seconds: u32,
    body: Markup,
) -> Markup {
    frame(title, Some(session), Some(seconds), body)
}

fn frame(title: &str, session: Option<&Session>, refresh: Option<u32>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(seconds) = refresh {
                    meta http-equiv="refresh" content=(seconds);
                }
                title { (title) " · saga-rs console" }
                link rel="stylesheet" href="/assets/console.css";
            }
            body {
                header {
                    a.brand href="/orders" { "saga-rs" }
                    @if let Some(session) = session {
                        nav {
                            a href="/orders" { "Orders" }
                            a href="/saga" { "Saga" }
                            a href="/dead-letters" { "Dead letters" }
                        }
                        form.sign-out method="post" action="/sign-out" {
                            span { "operator " strong { (session.subject()) } }
                            (csrf_field(session))
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// The hidden CSRF field every state-changing form carries.
pub(crate) fn csrf_field(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf()); }
}

/// A moment as the console shows it: UTC, to the second.
pub(crate) fn moment(at: &chrono::DateTime<chrono::Utc>) -> Markup {
    html! {
        time datetime=(at.to_rfc3339()) { (at.format("%Y-%m-%d %H:%M:%S UTC")) }
    }
}

/// An amount of minor units as major.minor (the system keeps integers; this is display only).
pub(crate) fn money(minor_units: Option<i64>) -> Markup {
    match minor_units {
        Some(minor) => html! {
            (format!("{}.{:02}", minor.div_euclid(100), minor.rem_euclid(100)))
        },
        None => html! { span.muted { "not priced yet" } },
    }
}

/// A JSON value, pretty-printed.
pub(crate) fn json(value: &serde_json::Value) -> Markup {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    html! { pre.json { (text) } }
}

/// A JSON object as a definition list (nested values pretty-printed).
pub(crate) fn object(value: &serde_json::Value) -> Markup {
    match value.as_object() {
        Some(fields) => html! {
            dl {
                @for (name, field) in fields {
                    dt { (name) }
                    dd {
                        @match field {
                            serde_json::Value::String(text) => (text),
                            serde_json::Value::Object(_) | serde_json::Value::Array(_) => (json(field)),
                            other => (other.to_string()),
                        }
                    }
                }
            }
        },
        None => json(value),
    }
}

/// Percent-encodes one path segment.
pub(crate) fn segment(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (byte as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_money_and_path_segments() {
        let check = |minor: i64, shown: &str| {
            assert_eq!(money(Some(minor)).into_string(), shown, "{minor}");
        };
        check(0, "0.00");
        check(250, "2.50");
        check(123_456, "1234.56");
        assert_eq!(segment("sha256:ab/c d"), "sha256%3Aab%2Fc%20d");
        assert_eq!(
            segment("inventory-svc.OrderCreated"),
            "inventory-svc.OrderCreated"
        );
    }
}
