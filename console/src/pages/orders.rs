//! The orders: a filtered, paginated, self-refreshing list, and one order's whole story.

use axum::extract::{Path, Query, State};
use chrono::{DateTime, NaiveDateTime, Utc};
use maud::{Markup, html};
use order_svc::representation::{Order, OrderPage};
use serde::Deserialize;

use crate::AppState;
use crate::backend::Service;
use crate::error::ConsoleError;
use crate::pages::layout::{self, moment, money, segment};
use crate::session::Session;

/// How often the list reloads itself, in seconds.
const REFRESH_SECS: u32 = 5;

/// The order statuses the filter offers.
const STATUSES: [&str; 5] = ["Pending", "Reserved", "Paid", "Completed", "Cancelled"];

/// The list's filters, as the form sends them (empty fields are no filter).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Filters {
    #[serde(default)]
    status: String,
    #[serde(default)]
    customer_id: String,
    /// `datetime-local` (UTC) or RFC 3339.
    #[serde(default)]
    created_after: String,
    #[serde(default)]
    created_before: String,
    #[serde(default)]
    waiting_longer_than_secs: String,
    #[serde(default)]
    cursor: String,
    /// `off` stops the reloading.
    #[serde(default)]
    refresh: String,
}

impl Filters {
    /// The query of order-svc's `GET /orders` for these filters.
    fn order_query(&self) -> Result<Vec<(&'static str, String)>, ConsoleError> {
        let mut query = vec![("limit", "25".to_owned())];
        let mut add = |name: &'static str, value: String| {
            if !value.is_empty() {
                query.push((name, value));
            }
        };
        add("status", self.status.trim().to_owned());
        add("customer_id", self.customer_id.trim().to_owned());
        add(
            "created_after",
            utc("created_after", &self.created_after)?.unwrap_or_default(),
        );
        add(
            "created_before",
            utc("created_before", &self.created_before)?.unwrap_or_default(),
        );
        add(
            "waiting_longer_than_secs",
            self.waiting_longer_than_secs.trim().to_owned(),
        );
        add("cursor", self.cursor.trim().to_owned());
        Ok(query)
    }

    /// This list's URL at `cursor` (empty: the first page), reloading unless `refresh` is
    /// `off`.
    fn link(&self, cursor: &str, refresh: &str) -> String {
        let pairs = [
            ("status", self.status.as_str()),
            ("customer_id", &self.customer_id),
            ("created_after", &self.created_after),
            ("created_before", &self.created_before),
            ("waiting_longer_than_secs", &self.waiting_longer_than_secs),
            ("cursor", cursor),
            ("refresh", refresh),
        ];
        let kept: Vec<(&str, &str)> = pairs
            .into_iter()
            .filter(|(_, value)| !value.is_empty())
            .collect();
        format!(
            "/orders?{}",
            serde_urlencoded::to_string(kept).unwrap_or_default()
        )
    }
}

/// A moment from the form: `datetime-local` (read as UTC, as the form says) or RFC 3339; as
/// RFC 3339.
fn utc(field: &'static str, text: &str) -> Result<Option<String>, ConsoleError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if let Ok(moment) = DateTime::parse_from_rfc3339(text) {
        return Ok(Some(moment.with_timezone(&Utc).to_rfc3339()));
    }
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .map(|naive| Some(naive.and_utc().to_rfc3339()))
        .ok_or_else(|| ConsoleError::Invalid {
            field,
            message: format!("{text:?} is not a date and time (YYYY-MM-DDTHH:MM, UTC)"),
        })
}

/// `GET /orders`.
pub(crate) async fn list(
    State(state): State<AppState>,
    session: Session,
    Query(filters): Query<Filters>,
) -> Result<Markup, ConsoleError> {
    let query = serde_urlencoded::to_string(filters.order_query()?).unwrap_or_default();
    let page: OrderPage = state
        .backend
        .get(&session, Service::Order, &format!("/orders?{query}"))
        .await?;
    let body = html! {
        h1 { "Orders" }
        form.filters method="get" action="/orders" {
            label { "Status "
                select name="status" {
                    option value="" { "any" }
                    @for status in STATUSES {
                        option value=(status) selected[filters.status == status] { (status) }
                    }
                }
            }
            label { "Customer " input type="text" name="customer_id" value=(filters.customer_id) placeholder="customer id" size="36"; }
            label { "Placed after (UTC) " input type="datetime-local" name="created_after" value=(filters.created_after); }
            label { "Placed before (UTC) " input type="datetime-local" name="created_before" value=(filters.created_before); }
            label { "Waiting longer than " input type="number" name="waiting_longer_than_secs" min="0" value=(filters.waiting_longer_than_secs) size="6"; " s" }
            @if filters.refresh == "off" { input type="hidden" name="refresh" value="off"; }
            button type="submit" { "Filter" }
            a href="/orders" { "Clear" }
        }
        p.muted {
            @if filters.refresh == "off" {
                "Not refreshing. " a href=(filters.link(&filters.cursor, "")) { "Refresh every " (REFRESH_SECS) " s" }
            } @else {
                "Refreshes every " (REFRESH_SECS) " s. "
                a href=(filters.link(&filters.cursor, "off")) { "Stop" }
            }
        }
        @if page.items.is_empty() {
            p #no-orders { "No order matches." }
        } @else {
            table #orders {
                thead { tr { th { "Order" } th { "Status" } th { "Customer" } th { "Total" } th { "Placed" } th { "Last change" } } }
                tbody {
                    @for order in &page.items {
                        tr data-status=(order.status) {
                            td { a href=(format!("/orders/{}", order.id)) { code { (order.id) } } }
                            td { span class=(format!("status status-{}", order.status)) { (order.status) } }
                            td { code { (order.customer_id) } }
                            td.number { (money(order.total)) }
                            td { (moment(&order.created_at)) }
                            td { (moment(&order.updated_at)) }
                        }
                    }
                }
            }
        }
        nav.pages {
            @if !filters.cursor.is_empty() { a href=(filters.link("", &filters.refresh)) { "First page" } }
            @if let Some(next) = page.next_cursor {
                a #next-page href=(filters.link(&next.to_string(), &filters.refresh)) { "Next page" }
            }
        }
    };
    Ok(match filters.refresh.as_str() {
        "off" => layout::page("Orders", Some(&session), body),
        _ => layout::refreshing_page("Orders", &session, REFRESH_SECS, body),
    })
}

/// `GET /orders/{id}`: the order, its timeline, what it awaits, and what the payment and
/// inventory services hold for it.
pub(crate) async fn show(
    State(state): State<AppState>,
    session: Session,
    Path(order_id): Path<uuid::Uuid>,
) -> Result<Markup, ConsoleError> {
    let path = segment(&order_id.to_string());
    let order: Order = state
        .backend
        .get(&session, Service::Order, &format!("/orders/{path}"))
        .await?;
    let (payment_path, reservation_path) =
        (format!("/payments/{path}"), format!("/reservations/{path}"));
    let (payment, reservation) = tokio::join!(
        state
            .backend
            .get_optional::<serde_json::Value>(&session, Service::Payment, &payment_path),
        state.backend.get_optional::<serde_json::Value>(
            &session,
            Service::Inventory,
            &reservation_path
        ),
    );
    let trace_link = order.trace_id.as_ref().map(|trace_id| {
        let url = state
            .trace_url
            .as_ref()
            .map(|template| template.replace(crate::config::TRACE_ID_PLACEHOLDER, trace_id));
        (trace_id.clone(), url)
    });
    let timeline = order.timeline.as_deref().unwrap_or_default();
    let awaiting = order.awaiting_confirmation.as_deref().unwrap_or_default();
    let body = html! {
        p { a href="/orders" { "← Orders" } }
        h1 { "Order " code { (order.id) } }
        dl.summary {
            dt { "Status" } dd { span #status class=(format!("status status-{}", order.status)) { (order.status) } }
            @if let Some(reason) = &order.cancellation_reason { dt { "Cancelled because" } dd #cancellation-reason { (reason) } }
            dt { "Customer" } dd { a href=(format!("/orders?customer_id={}", order.customer_id)) { code { (order.customer_id) } } }
            dt { "Total" } dd { (money(order.total)) }
            dt { "Placed" } dd { (moment(&order.created_at)) }
            dt { "Last change" } dd { (moment(&order.updated_at)) }
            @if let Some(deadline) = &order.deadline_at { dt { "Deadline" } dd { (moment(deadline)) } }
            @if let Some((trace_id, url)) = &trace_link {
                dt { "Trace" }
                dd {
                    @match url {
                        Some(url) => a #trace href=(url) target="_blank" rel="noopener noreferrer" { code { (trace_id) } },
                        None => code #trace { (trace_id) },
                    }
                }
            }
        }
        h2 { "Lines" }
        table #lines {
            thead { tr { th { "Product" } th { "Quantity" } th { "Unit price" } } }
            tbody {
                @for item in &order.items {
                    tr { td { (item.product_id) } td.number { (item.quantity) } td.number { (money(item.unit_price)) } }
                }
            }
        }
        h2 { "Timeline" }
        ol #timeline.timeline {
            li.step {
                span.transition { "placed → Pending" }
                (moment(&order.created_at))
            }
            @for step in timeline {
                li.step {
                    span.transition { (step.from) " → " (step.to) }
                    " on " strong.event { (step.event) }
                    (moment(&step.at))
                    @if !step.effects.is_empty() {
                        div.effects { "asked for: " (step.effects.join(", ")) }
                    }
                    @if let Some(message_id) = step.message_id {
                        div.cause { "message " code { (message_id) } }
                    }
                }
            }
        }
        h2 { "Awaiting confirmation" }
        @if awaiting.is_empty() {
            p #awaiting.muted { "Nothing: every effect that needs a confirmation has one." }
        } @else {
            table #awaiting {
                thead { tr { th { "Effect" } th { "Attempts" } th { "First sent" } th { "Last sent" } th { "Next attempt" } } }
                tbody {
                    @for effect in awaiting {
                        tr {
                            td { (effect.effect) }
                            td.number { (effect.attempts) }
                            td { (moment(&effect.first_sent_at)) }
                            td { (moment(&effect.last_sent_at)) }
                            td { (moment(&effect.next_attempt_at)) }
                        }
                    }
                }
            }
        }
        div.side-by-side {
            section #payment {
                h2 { "Payment (payment-svc)" }
                (held(payment, "No payment for this order."))
            }
            section #reservation {
                h2 { "Reservation (inventory-svc)" }
                (held(reservation, "No reservation for this order."))
            }
        }
    };
    Ok(layout::page(
        &format!("Order {}", order.id),
        Some(&session),
        body,
    ))
}

/// What another service holds for the order, or why it cannot be shown (the rest of the page
/// still is).
fn held(found: Result<Option<serde_json::Value>, ConsoleError>, none: &str) -> Markup {
    match found {
        Ok(Some(value)) => layout::object(&value),
        Ok(None) => html! { p.muted { (none) } },
        Err(error) => html! { p.error { (error.to_string()) } },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_keep_the_filters_and_name_refresh_once() {
        let filters = Filters {
            status: "Paid".into(),
            refresh: "off".into(),
            ..Filters::default()
        };
        let check = |cursor: &str, refresh: &str, expected: &str| {
            assert_eq!(
                filters.link(cursor, refresh),
                expected,
                "{cursor} {refresh}"
            );
        };
        check("", "", "/orders?status=Paid");
        check("c1", "off", "/orders?status=Paid&cursor=c1&refresh=off");
        check("", "off", "/orders?status=Paid&refresh=off");
    }

    #[test]
    fn form_moments_are_read_as_utc() {
        let check = |text: &str, expected: Result<Option<&str>, ()>| {
            let read = utc("created_after", text).map_err(|_| ());
            assert_eq!(
                read,
                expected.map(|moment| moment.map(str::to_owned)),
                "{text}"
            );
        };
        check("", Ok(None));
        check("2026-12-02T10:30", Ok(Some("2026-12-02T10:30:00+00:00")));
        check("2026-12-02T10:30:15", Ok(Some("2026-12-02T10:30:15+00:00")));
        check(
            "2026-12-02T11:30:00+01:00",
            Ok(Some("2026-12-02T10:30:00+00:00")),
        );
        check("yesterday", Err(()));
    }
}
