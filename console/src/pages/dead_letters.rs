//! The dead letters of every service, with their reason, attempts and payload, and a button to
//! redrive or discard each (through each service's operator endpoints).

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use service_kit::dead_letters::DeadLetterListing;

use crate::AppState;
use crate::backend::Service;
use crate::error::ConsoleError;
use crate::pages::layout::{self, csrf_field, segment};
use crate::session::Session;

/// What the last action did, shown once after its redirect.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Done {
    #[serde(default)]
    done: String,
}

/// A redrive or discard form.
#[derive(Deserialize)]
pub(crate) struct Action {
    csrf: String,
}

/// `GET /dead-letters`.
pub(crate) async fn list(
    State(state): State<AppState>,
    session: Session,
    Query(done): Query<Done>,
) -> Markup {
    let listings = listings_of_every_service(&state, &session).await;
    let body = html! {
        h1 { "Dead letters" }
        p.muted { "Messages a consumer gave up on, with why. Redriving one sends it back to its queue with fresh attempts: safe, since every consumer is idempotent." }
        @match done.done.as_str() {
            "redriven" => p.notice role="status" { "Redriven: the message is back in its queue." },
            "discarded" => p.notice role="status" { "Discarded." },
            _ => {},
        }
        @for (service, listing) in &listings {
            section.service data-service=(service.name()) {
                h2 { (service.name()) }
                @match listing {
                    Err(error) => p.error { (error.to_string()) },
                    Ok(listing) => {
                        p.queues {
                            @for queue in &listing.queues {
                                span.queue { code { (queue.queue) } ": " strong { (queue.dead_letters) } }
                            }
                        }
                        @if listing.dead_letters.is_empty() {
                            p.muted.empty { "None." }
                        }
                        @for letter in &listing.dead_letters {
                            article.dead-letter data-id=(letter.id) {
                                h3 {
                                    code { (letter.queue) } " · "
                                    (letter.message_type.as_deref().unwrap_or("unknown type"))
                                }
                                dl {
                                    dt { "Id" } dd { code { (letter.id) } }
                                    dt { "Reason" } dd.reason { (letter.reason) }
                                    dt { "Attempts" } dd { (letter.attempts) @if letter.redriven > 0 { " (redriven " (letter.redriven) " times before)" } }
                                    @if let Some(at) = &letter.dead_lettered_at { dt { "Dead-lettered" } dd { (at) } }
                                    @if let Some(sender) = &letter.sender { dt { "Sender" } dd { (sender) } }
                                    @if let Some(order) = &letter.correlation_id {
                                        dt { "Order" }
                                        dd {
                                            @match uuid::Uuid::parse_str(order) {
                                                Ok(order_id) => a href=(format!("/orders/{order_id}")) { code { (order) } },
                                                Err(_) => code { (order) },
                                            }
                                        }
                                    }
                                }
                                details {
                                    summary { "Payload and headers" }
                                    (layout::json(&letter.payload))
                                    (layout::json(&serde_json::Value::Object(letter.headers.clone())))
                                }
                                div.actions {
                                    form method="post" action=(action_path(*service, &letter.queue, &letter.id, "redrive")) {
                                        (csrf_field(&session))
                                        button.redrive type="submit" { "Redrive" }
                                    }
                                    form method="post" action=(action_path(*service, &letter.queue, &letter.id, "discard")) {
                                        (csrf_field(&session))
                                        button.discard type="submit" { "Discard" }
                                    }
                                }
                            }
                        }
                        @if listing.truncated { p.muted { "More than shown; use sagactl dlq to work through all." } }
                    },
                }
            }
        }
    };
    layout::page("Dead letters", Some(&session), body)
}

/// Every service's listing, fetched at once, those with something to show first; a service
/// that fails shows its error alone.
async fn listings_of_every_service(
    state: &AppState,
    session: &Session,
) -> Vec<(Service, Result<DeadLetterListing, ConsoleError>)> {
    let fetch = |service: Service| async move {
        let listing = state
            .backend
            .get::<DeadLetterListing>(session, service, "/dead-letters?limit=100")
            .await;
        (service, listing)
    };
    let (order, inventory, payment, notify) = tokio::join!(
        fetch(Service::Order),
        fetch(Service::Inventory),
        fetch(Service::Payment),
        fetch(Service::Notify),
    );
    let mut listings = vec![order, inventory, payment, notify];
    // What needs the operator first: services with dead letters (or an error), then the rest.
    listings.sort_by_key(|(_, listing)| {
        listing
            .as_ref()
            .is_ok_and(|listing| listing.dead_letters.is_empty())
    });
    listings
}

fn action_path(service: Service, queue: &str, id: &str, action: &str) -> String {
    format!(
        "/dead-letters/{}/{}/{}/{action}",
        service.name(),
        segment(queue),
        segment(id)
    )
}

/// `POST /dead-letters/{service}/{queue}/{id}/{action}`: `redrive` or `discard` one.
pub(crate) async fn act(
    State(state): State<AppState>,
    session: Session,
    Path((service, queue, id, action)): Path<(String, String, String, String)>,
    Form(form): Form<Action>,
) -> Result<Response, ConsoleError> {
    session.check_csrf(&form.csrf)?;
    let service = Service::from_name(&service).ok_or(ConsoleError::Invalid {
        field: "service",
        message: format!("{service} is not a service of the system"),
    })?;
    let (method, path, done) = match action.as_str() {
        "redrive" => (
            Method::POST,
            format!("/dead-letters/{}/{}/redrive", segment(&queue), segment(&id)),
            "redriven",
        ),
        "discard" => (
            Method::DELETE,
            format!("/dead-letters/{}/{}", segment(&queue), segment(&id)),
            "discarded",
        ),
        other => {
            return Err(ConsoleError::Invalid {
                field: "action",
                message: format!("{other} is neither redrive nor discard"),
            });
        }
    };
    state
        .backend
        .change(&session, service, method, &path, None)
        .await?;
    tracing::info!(
        operator = session.subject(),
        service = service.name(),
        %queue,
        %id,
        action = %action,
        "dead letter {done} from the console"
    );
    Ok((
        StatusCode::SEE_OTHER,
        [(header::LOCATION, format!("/dead-letters?done={done}"))],
    )
        .into_response())
}
