//! The operator's endpoints over a service's dead letters (operators only; a customer gets 403):
//!
//! * `GET /dead-letters?queue=&type=&reason=&limit=`: every queue's count and the dead letters
//!   that match, with reason, attempts, headers and payload;
//! * `GET /dead-letters/{queue}/{id}`: one of them;
//! * `POST /dead-letters/redrive`, `POST /dead-letters/discard` with a [`Selection`] (by queue,
//!   type, reason, ids — or `"all": true`, so that an empty body never empties every queue);
//! * `POST /dead-letters/{queue}/{id}/redrive`, `DELETE /dead-letters/{queue}/{id}`: one.
//!
//! The work is `outbox::dead_letters`'; this module is its HTTP face. Each service answers for
//! its own queues (`sagactl dlq` asks every service).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use outbox::dead_letters::{
    DeadLetter, DeadLetterError, DeadLetterQueues, Disposal, Filter, Listing,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Caller, Forbidden};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::problem::Problem;

/// The most dead letters one listing returns.
pub const MAX_LIMIT: u32 = 1_000;

/// What can go wrong; each becomes problem+json here and nowhere else.
#[derive(Debug, thiserror::Error)]
enum DeadLetterApiError {
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("no dead letter {id} in {queue}'s dead-letter queue")]
    NotFound { queue: String, id: String },
    #[error("{}", .0.title)]
    Request(Problem),
    #[error(transparent)]
    Queues(#[from] DeadLetterError),
}

impl IntoResponse for DeadLetterApiError {
    fn into_response(self) -> Response {
        let problem = match &self {
            DeadLetterApiError::Forbidden(forbidden) => forbidden.problem(),
            DeadLetterApiError::Invalid { field, message } => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "Validation failed")
                    .with_detail(self.to_string())
                    .with_field_error(*field, message.clone())
            }
            DeadLetterApiError::NotFound { .. } => {
                Problem::new(StatusCode::NOT_FOUND, "Not found").with_detail(self.to_string())
            }
            DeadLetterApiError::Request(problem) => problem.clone(),
            DeadLetterApiError::Queues(DeadLetterError::UnknownQueue(queue)) => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "Validation failed")
                    .with_detail(self.to_string())
                    .with_field_error("queue", format!("{queue} is not a queue of this service"))
            }
            DeadLetterApiError::Queues(cause) => {
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, "The broker is unavailable")
                    .with_detail("the dead-letter queues cannot be read now; try again")
                    .with_internal_cause(cause)
            }
        };
        problem.into_response()
    }
}

/// One dead letter.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeadLetterView {
    /// The queue it was dead-lettered from (it waits in `queue.dlq`).
    pub queue: String,
    /// Its id in that queue: the message id, or `sha256:…` of the body for a message without
    /// one.
    pub id: String,
    /// Its message type.
    #[serde(rename = "type")]
    pub message_type: Option<String>,
    /// Its correlation id (the order id in the order system).
    pub correlation_id: Option<String>,
    /// Why it was dead-lettered.
    pub reason: String,
    /// When, RFC 3339 UTC (when known).
    pub dead_lettered_at: Option<String>,
    /// How many times its handler tried it.
    pub attempts: u32,
    /// How many times an operator redrove it before.
    pub redriven: u32,
    /// Who sent it, as the broker and the consumer saw it (unvalidated).
    pub sender: Option<String>,
    /// Its AMQP headers.
    pub headers: serde_json::Map<String, serde_json::Value>,
    /// Its body: JSON, or the text of a body that is not JSON.
    pub payload: serde_json::Value,
}

impl From<DeadLetter> for DeadLetterView {
    fn from(dead_letter: DeadLetter) -> Self {
        DeadLetterView {
            queue: dead_letter.queue,
            id: dead_letter.id,
            message_type: dead_letter.message_type,
            correlation_id: dead_letter.correlation_id,
            reason: dead_letter.reason,
            dead_lettered_at: dead_letter.dead_lettered_at,
            attempts: dead_letter.attempts,
            redriven: dead_letter.redriven,
            sender: dead_letter.sender,
            headers: dead_letter.headers,
            payload: dead_letter.payload,
        }
    }
}

/// How many dead letters a queue holds.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct QueueDepth {
    /// The queue.
    pub queue: String,
    /// Messages in its dead-letter queue.
    pub dead_letters: u32,
}

/// A listing.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeadLetterListing {
    /// Every queue of the service (or the one asked for) with its count.
    pub queues: Vec<QueueDepth>,
    /// The dead letters that match, in queue order.
    pub dead_letters: Vec<DeadLetterView>,
    /// Whether more matched than the limit.
    pub truncated: bool,
}

impl From<Listing> for DeadLetterListing {
    fn from(listing: Listing) -> Self {
        DeadLetterListing {
            queues: listing
                .depths
                .into_iter()
                .map(|(queue, dead_letters)| QueueDepth {
                    queue,
                    dead_letters,
                })
                .collect(),
            dead_letters: listing.dead_letters.into_iter().map(Into::into).collect(),
            truncated: listing.truncated,
        }
    }
}

/// Filters of `GET /dead-letters`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListDeadLetters {
    /// Only this queue's.
    pub queue: Option<String>,
    /// Only of this message type.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub message_type: Option<String>,
    /// Only those whose reason contains this text (ignoring case).
    pub reason: Option<String>,
    /// At most this many, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// Which dead letters to redrive or discard: those matching every criterion given. At least
/// one criterion, or `all`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Selection {
    /// Only this queue's.
    pub queue: Option<String>,
    /// Only of this message type.
    #[serde(rename = "type")]
    pub message_type: Option<String>,
    /// Only those whose reason contains this text (ignoring case).
    pub reason: Option<String>,
    /// Only these ids.
    #[serde(default)]
    pub ids: Vec<String>,
    /// Every dead letter of the service (no other criterion needed).
    #[serde(default)]
    pub all: bool,
}

/// How many dead letters an operation moved.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Moved {
    /// Sent back to their queue (redrive) or deleted (discard).
    pub count: usize,
}

/// The service's dead letters, with the count of every queue.
///
/// Operators only. Reading a dead-letter queue holds its messages for a moment (they go back in
/// their order).
#[utoipa::path(
    get, path = "/dead-letters",
    params(ListDeadLetters),
    responses(
        (status = 200, body = DeadLetterListing),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller is not an operator", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The broker is unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_dead_letters(
    State(queues): State<Arc<DeadLetterQueues>>,
    caller: Caller,
    query: Result<ApiQuery<ListDeadLetters>, Problem>,
) -> Result<ApiJson<DeadLetterListing>, DeadLetterApiError> {
    caller.require_operator()?;
    let ApiQuery(query) = query.map_err(DeadLetterApiError::Request)?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=i64::from(MAX_LIMIT)).contains(&limit) {
        return Err(DeadLetterApiError::Invalid {
            field: "limit",
            message: format!("must be between 1 and {MAX_LIMIT}, got {limit}"),
        });
    }
    let filter = Filter {
        queue: query.queue,
        message_type: query.message_type,
        reason: query.reason,
        ids: Vec::new(),
    };
    let listing = queues
        .list(&filter, usize::try_from(limit).unwrap_or(100))
        .await?;
    Ok(ApiJson(listing.into()))
}

/// One dead letter.
#[utoipa::path(
    get, path = "/dead-letters/{queue}/{id}",
    params(
        ("queue" = String, Path, description = "The queue it was dead-lettered from"),
        ("id" = String, Path, description = "Its id"),
    ),
    responses(
        (status = 200, body = DeadLetterView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller is not an operator", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such dead letter", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The broker is unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_dead_letter(
    State(queues): State<Arc<DeadLetterQueues>>,
    caller: Caller,
    path: Result<ApiPath<(String, String)>, Problem>,
) -> Result<ApiJson<DeadLetterView>, DeadLetterApiError> {
    caller.require_operator()?;
    let ApiPath((queue, id)) = path.map_err(DeadLetterApiError::Request)?;
    let filter = one(&queue, &id);
    let listing = queues.list(&filter, 1).await?;
    match listing.dead_letters.into_iter().next() {
        Some(dead_letter) => Ok(ApiJson(dead_letter.into())),
        None => Err(DeadLetterApiError::NotFound { queue, id }),
    }
}

/// Sends the selected dead letters back to their queues.
///
/// Safe for messages that were in fact applied before: every consumer is idempotent, so those
/// change nothing. A redriven message gets a fresh set of attempts.
#[utoipa::path(
    post, path = "/dead-letters/redrive",
    request_body = Selection,
    responses(
        (status = 200, body = Moved),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller is not an operator", body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No criterion and no `all`, or a queue that is not the service's", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The broker is unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn redrive_selected(
    State(queues): State<Arc<DeadLetterQueues>>,
    caller: Caller,
    body: Result<ApiJson<Selection>, Problem>,
) -> Result<ApiJson<Moved>, DeadLetterApiError> {
    dispose_selected(&queues, &caller, body, Disposal::Redrive).await
}

/// Deletes the selected dead letters.
#[utoipa::path(
    post, path = "/dead-letters/discard",
    request_body = Selection,
    responses(
        (status = 200, body = Moved),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller is not an operator", body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No criterion and no `all`, or a queue that is not the service's", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The broker is unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn discard_selected(
    State(queues): State<Arc<DeadLetterQueues>>,
    caller: Caller,
    body: Result<ApiJson<Selection>, Problem>,
) -> Result<ApiJson<Moved>, DeadLetterApiError> {
    dispose_selected(&queues, &caller, body, Disposal::Discard).await
}

/// Sends one dead letter back to its queue.
#[utoipa::path(
    post, path = "/dead-letters/{queue}/{id}/redrive",
    params(
        ("queue" = String, Path, description = "The queue it was dead-lettered from"),
        ("id" = String, Path, description = "Its id"),
    ),
    responses(
        (status = 200, body = Moved),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller is not an operator", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such dead letter", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "A body (none is read) over the limit", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The broker is unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn redrive_one(
    State(queues): State<Arc<DeadLetterQueues>>,
    caller: Caller,
    path: Result<ApiPath<(String, String)>, Problem>,
) -> Result<ApiJson<Moved>, DeadLetterApiError> {
    dispose_one(&queues, &caller, path, Disposal::Redrive).await
}

/// Deletes one dead letter.
#[utoipa::path(
    delete, path = "/dead-letters/{queue}/{id}",
    params(
        ("queue" = String, Path, description = "The queue it was dead-lettered from"),
        ("id" = String, Path, description = "Its id"),
    ),
    responses(
        (status = 200, body = Moved),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller is not an operator", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such dead letter", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The broker is unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn discard_one(
    State(queues): State<Arc<DeadLetterQueues>>,
    caller: Caller,
    path: Result<ApiPath<(String, String)>, Problem>,
) -> Result<ApiJson<Moved>, DeadLetterApiError> {
    dispose_one(&queues, &caller, path, Disposal::Discard).await
}

/// Redrives or discards what a selection selects (an operator's only).
async fn dispose_selected(
    queues: &DeadLetterQueues,
    caller: &Caller,
    body: Result<ApiJson<Selection>, Problem>,
    disposal: Disposal,
) -> Result<ApiJson<Moved>, DeadLetterApiError> {
    caller.require_operator()?;
    let filter = selected(body)?;
    let count = queues.dispose(&filter, disposal).await?;
    Ok(ApiJson(Moved { count }))
}

/// Redrives or discards one dead letter (an operator's only); 404 when there is none.
async fn dispose_one(
    queues: &DeadLetterQueues,
    caller: &Caller,
    path: Result<ApiPath<(String, String)>, Problem>,
    disposal: Disposal,
) -> Result<ApiJson<Moved>, DeadLetterApiError> {
    caller.require_operator()?;
    let ApiPath((queue, id)) = path.map_err(DeadLetterApiError::Request)?;
    match queues.dispose(&one(&queue, &id), disposal).await? {
        0 => Err(DeadLetterApiError::NotFound { queue, id }),
        count => Ok(ApiJson(Moved { count })),
    }
}

/// The filter of one dead letter.
fn one(queue: &str, id: &str) -> Filter {
    Filter {
        queue: Some(queue.to_owned()),
        ids: vec![id.to_owned()],
        ..Filter::default()
    }
}

/// The filter a selection asks for; an empty one must say `all`.
fn selected(body: Result<ApiJson<Selection>, Problem>) -> Result<Filter, DeadLetterApiError> {
    let ApiJson(selection) = body.map_err(DeadLetterApiError::Request)?;
    let filter = Filter {
        queue: selection.queue,
        message_type: selection.message_type,
        reason: selection.reason,
        ids: selection.ids,
    };
    if filter.is_empty() && !selection.all {
        return Err(DeadLetterApiError::Invalid {
            field: "all",
            message: "name a queue, type, reason or ids, or set \"all\": true to select every \
                      dead letter"
                .into(),
        });
    }
    Ok(filter)
}

/// The dead-letter routes over `queues`, documented, for a service's API.
///
/// The document names the service's own queues (an enum on every `queue`) and says that a
/// selection must select something, so that a request valid by the document is one the service
/// accepts.
pub fn dead_letter_routes(queues: Arc<DeadLetterQueues>) -> OpenApiRouter {
    let queue_names = queues.queues().to_vec();
    let mut router = OpenApiRouter::new()
        .routes(routes!(list_dead_letters))
        .routes(routes!(get_dead_letter, discard_one))
        .routes(routes!(redrive_one))
        .routes(routes!(redrive_selected))
        .routes(routes!(discard_selected))
        .with_state(queues);
    document_queues(router.get_openapi_mut(), &queue_names);
    router
}

/// Writes what the derived document cannot know into it: the queues this service answers for,
/// on every `queue` parameter and on [`Selection`]'s `queue`; and that a selection names at
/// least one criterion or says `"all": true`.
fn document_queues(openapi: &mut utoipa::openapi::OpenApi, queues: &[String]) {
    use utoipa::openapi::schema::{AllOfBuilder, AnyOfBuilder, ArrayBuilder, ObjectBuilder, Type};
    use utoipa::openapi::{RefOr, Schema};

    let queue_schema = || -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(queues.iter().map(String::as_str)))
            .into()
    };
    for path_item in openapi.paths.paths.values_mut() {
        let operations = [
            &mut path_item.get,
            &mut path_item.post,
            &mut path_item.delete,
        ];
        for operation in operations.into_iter().flatten() {
            for parameter in operation.parameters.iter_mut().flatten() {
                if parameter.name == "queue" {
                    parameter.schema = Some(queue_schema());
                }
            }
        }
    }
    let Some(components) = openapi.components.as_mut() else {
        return;
    };
    let Some(RefOr::T(Schema::Object(selection))) = components.schemas.get_mut("Selection") else {
        return;
    };
    selection
        .properties
        .insert("queue".to_owned(), queue_schema());
    let required = |field: &str, schema: Option<RefOr<Schema>>| -> RefOr<Schema> {
        let object = ObjectBuilder::new().required(field);
        match schema {
            Some(schema) => object.property(field, schema).into(),
            None => object.into(),
        }
    };
    let one_criterion = AnyOfBuilder::new()
        .item(required("queue", None))
        .item(required("type", None))
        .item(required("reason", None))
        .item(required(
            "ids",
            Some(
                ArrayBuilder::new()
                    .items(ObjectBuilder::new().schema_type(Type::String))
                    .min_items(Some(1))
                    .into(),
            ),
        ))
        .item(required(
            "all",
            Some(
                ObjectBuilder::new()
                    .schema_type(Type::Boolean)
                    .enum_values(Some([true]))
                    .into(),
            ),
        ));
    let whole = AllOfBuilder::new()
        .item(Schema::Object(selection.clone()))
        .item(one_criterion)
        .description(selection.description.clone());
    components
        .schemas
        .insert("Selection".to_owned(), Schema::AllOf(whole.build()).into());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(body: &str, expected: Result<Filter, &str>) {
        let selection: Selection = match serde_json::from_str(body) {
            Ok(selection) => selection,
            Err(error) => panic!("{body}: {error}"),
        };
        let outcome = selected(Ok(ApiJson(selection))).map_err(|error| error.to_string());
        assert_eq!(outcome, expected.map_err(str::to_owned), "{body}");
    }

    #[test]
    fn a_selection_names_something_or_says_all() {
        let all_fields = "all: name a queue, type, reason or ids, or set \"all\": true to select every dead letter";
        check("{}", Err(all_fields));
        check(r#"{"all": false}"#, Err(all_fields));
        check(r#"{"all": true}"#, Ok(Filter::default()));
        check(
            r#"{"queue": "q", "type": "T"}"#,
            Ok(Filter {
                queue: Some("q".into()),
                message_type: Some("T".into()),
                ..Filter::default()
            }),
        );
        check(
            r#"{"ids": ["a", "b"], "reason": "gave up"}"#,
            Ok(Filter {
                reason: Some("gave up".into()),
                ids: vec!["a".into(), "b".into()],
                ..Filter::default()
            }),
        );
    }

    #[test]
    fn the_document_names_the_queues_and_asks_for_a_criterion() {
        let topology = outbox::Topology::new("saga.events", Vec::new());
        let queues = DeadLetterQueues::new(
            outbox::Broker::new("amqp://127.0.0.1:9/unused", topology),
            vec![
                "inventory.order-created".into(),
                "inventory.order-cancelled".into(),
            ],
        );
        let router = dead_letter_routes(Arc::new(queues));
        let document = serde_json::to_value(router.get_openapi()).unwrap();
        let names = serde_json::json!(["inventory.order-created", "inventory.order-cancelled"]);
        for (path, method) in [
            ("/dead-letters", "get"),
            ("/dead-letters/{queue}/{id}", "get"),
            ("/dead-letters/{queue}/{id}", "delete"),
            ("/dead-letters/{queue}/{id}/redrive", "post"),
        ] {
            let parameters = document["paths"][path][method]["parameters"]
                .as_array()
                .unwrap();
            let queue = parameters
                .iter()
                .find(|parameter| parameter["name"] == "queue")
                .unwrap();
            assert_eq!(queue["schema"]["enum"], names, "{method} {path}");
        }
        let selection = &document["components"]["schemas"]["Selection"];
        assert_eq!(selection["allOf"][0]["properties"]["queue"]["enum"], names);
        let criteria: Vec<&serde_json::Value> = selection["allOf"][1]["anyOf"]
            .as_array()
            .unwrap()
            .iter()
            .map(|criterion| &criterion["required"][0])
            .collect();
        assert_eq!(criteria, ["queue", "type", "reason", "ids", "all"]);
    }
}
