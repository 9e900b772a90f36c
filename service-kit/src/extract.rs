//! Extractors whose every rejection is a [`Problem`], and the 404/405 fallback handlers.
//!
//! | extractor      | rejection                                                               |
//! |----------------|-------------------------------------------------------------------------|
//! | [`ApiJson`]    | 415 (not JSON), 413 (over the body limit), 400 (malformed or wrong shape) |
//! | [`ApiPath`]    | 400 naming the path parameter                                           |
//! | [`ApiQuery`]   | 400 naming the query parameter                                          |
//!
//! Field names in [`crate::problem::FieldError`] are JSON paths as `serde_path_to_error` prints
//! them (`items[0].quantity`, `[2].name` inside a top-level array). An error about the body as a
//! whole (say, an array where an object belongs) is reported against the field `body`; a missing
//! or unknown field against the field's own path (`customer.email`).

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, OriginalUri, Path, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::error::Category;

use crate::http::RequestBodyLimit;
use crate::problem::Problem;

/// The field name used for complaints about the `Content-Type` header.
pub const CONTENT_TYPE_FIELD: &str = "Content-Type";

/// The field name used for complaints about the request body as a whole.
pub const BODY_FIELD: &str = "body";

/// The field name used for complaints about the query string as a whole.
pub const QUERY_FIELD: &str = "query";

/// A JSON request or response body.
///
/// As an extractor it accepts `application/json` (with any parameters, e.g. `charset=utf-8`) and
/// any `application/*+json`, and rejects with a problem: 415 for another or missing content
/// type, 413 beyond the body limit ([`crate::http::body_limit`]), 400 for malformed JSON (the
/// detail carries the parser's line and column) and 400 -- not axum's 422 -- for JSON of the wrong
/// shape, with the offending JSON path as the field. The body must be a JSON object.
///
/// As a response it serialises `T` with `Content-Type: application/json`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        check_json_content_type(request.headers())?;
        let body_limit = request.extensions().get::<RequestBodyLimit>().copied();
        let bytes = match Bytes::from_request(request, state).await {
            Ok(bytes) => bytes,
            Err(rejection) => return Err(body_read_problem(&rejection, body_limit)),
        };
        deserialize_json_body(&bytes).map(ApiJson)
    }
}

impl<T> IntoResponse for ApiJson<T>
where
    T: Serialize,
{
    fn into_response(self) -> Response {
        let body = match serde_json::to_vec(&self.0) {
            Ok(body) => body,
            Err(error) => {
                return Problem::internal(format!("cannot serialise the response body: {error}"))
                    .into_response();
            }
        };
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response()
    }
}

fn check_json_content_type(headers: &HeaderMap) -> Result<(), Problem> {
    let unsupported = |message: String| {
        Problem::from_status(StatusCode::UNSUPPORTED_MEDIA_TYPE)
            .with_detail("the request body must be JSON (Content-Type: application/json)")
            .with_field_error(CONTENT_TYPE_FIELD, message)
    };
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Err(unsupported("missing; expected application/json".to_owned()));
    };
    let Ok(value) = value.to_str() else {
        return Err(unsupported(
            "not readable text; expected application/json".to_owned(),
        ));
    };
    if is_json_media_type(value) {
        return Ok(());
    }
    Err(unsupported(format!(
        "{value:?} is not supported; expected application/json"
    )))
}

fn is_json_media_type(content_type: &str) -> bool {
    let essence = match content_type.split_once(';') {
        Some((essence, _parameters)) => essence,
        None => content_type,
    };
    let essence = essence.trim().to_ascii_lowercase();
    if essence == "application/json" {
        return true;
    }
    match essence.strip_prefix("application/") {
        Some(subtype) => subtype.ends_with("+json"),
        None => false,
    }
}

fn body_read_problem(rejection: &BytesRejection, body_limit: Option<RequestBodyLimit>) -> Problem {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return crate::http::payload_too_large(body_limit);
    }
    Problem::from_status(StatusCode::BAD_REQUEST).with_detail(format!(
        "the request body could not be read: {}",
        rejection.body_text()
    ))
}

fn deserialize_json_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    // Every request body of the services is an object, and serde would read a struct from an
    // array of its fields' values too (`[100]` as `{"balance": 100}`), which the OpenAPI
    // documents do not allow.
    if bytes.iter().find(|byte| !byte.is_ascii_whitespace()) == Some(&b'[') {
        let message = "must be a JSON object, not an array";
        return Err(Problem::from_status(StatusCode::BAD_REQUEST)
            .with_detail(format!("the request body {message}"))
            .with_field_error(BODY_FIELD, message));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = match serde_path_to_error::deserialize::<_, T>(&mut deserializer) {
        Ok(value) => value,
        Err(error) => return Err(json_error_problem(error)),
    };
    // A valid document followed by more text is as malformed as a truncated one.
    match deserializer.end() {
        Ok(()) => Ok(value),
        Err(error) => Err(malformed_json_problem(&error)),
    }
}

fn json_error_problem(error: serde_path_to_error::Error<serde_json::Error>) -> Problem {
    let path = error.path().to_string();
    let error = error.into_inner();
    match error.classify() {
        Category::Syntax | Category::Eof | Category::Io => malformed_json_problem(&error),
        Category::Data => {
            let message = message_without_position(&error);
            let field = field_name(&path, &message, BODY_FIELD);
            Problem::from_status(StatusCode::BAD_REQUEST)
                .with_detail(format!(
                    "the request body does not match the expected shape: {field}: {error}"
                ))
                .with_field_error(field, message)
        }
    }
}

fn malformed_json_problem(error: &serde_json::Error) -> Problem {
    Problem::from_status(StatusCode::BAD_REQUEST)
        .with_detail(format!("the request body is not valid JSON: {error}"))
        .with_field_error(BODY_FIELD, error.to_string())
}

// serde_json appends " at line L column C" to every message; the detail keeps it, the field
// error (which already names the place by path) does not.
fn message_without_position(error: &serde_json::Error) -> String {
    let message = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    match message.strip_suffix(&suffix) {
        Some(stripped) => stripped.to_owned(),
        None => message,
    }
}

/// The field a deserialisation error is about.
///
/// serde reports a missing or unknown field at the path of the object that lacks or has it, with
/// the field's name only in the message (`missing field `quantity``); the name is appended so the
/// client sees `items[0].quantity`. `.` is serde_path_to_error's root path.
fn field_name(path: &str, message: &str, root_field: &str) -> String {
    let named_field = ["missing field `", "unknown field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split_once('`'))
        .map(|(name, _rest)| name);
    let is_root = path == "." || path.is_empty();
    match (named_field, is_root) {
        (Some(name), true) => name.to_owned(),
        (Some(name), false) if path.ends_with(name) => path.to_owned(),
        (Some(name), false) => format!("{path}.{name}"),
        (None, true) => root_field.to_owned(),
        (None, false) => path.to_owned(),
    }
}

/// Path parameters, rejecting with a 400 problem that names the parameter.
///
/// `ApiPath<Uuid>` on `/orders/{id}` answers `/orders/abc` with detail `invalid id: ...` and the
/// field error `{"field": "id", ...}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let rejection = match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => return Ok(ApiPath(value)),
            Err(rejection) => rejection,
        };
        // Some of axum's errors omit the parameter's name; the raw parameters supply it.
        let parameter_names: Vec<String> =
            match RawPathParams::from_request_parts(parts, state).await {
                Ok(raw) => raw.iter().map(|(name, _value)| name.to_owned()).collect(),
                Err(_) => Vec::new(),
            };
        Err(path_rejection_problem(rejection, &parameter_names))
    }
}

fn path_rejection_problem(rejection: PathRejection, parameter_names: &[String]) -> Problem {
    use axum::extract::path::ErrorKind;

    let error = match rejection {
        PathRejection::FailedToDeserializePathParams(error) => error,
        PathRejection::MissingPathParams(error) => {
            // The handler's route has no such parameter: a wiring bug, not the client's fault.
            return Problem::internal(error.body_text());
        }
        other => return rejection_problem(other.status(), other.body_text()),
    };
    if error.status().is_server_error() {
        return Problem::internal(error.body_text());
    }
    let body_text = error.body_text();
    let only_parameter = match parameter_names {
        [only] => Some(only.clone()),
        _ => None,
    };
    let (parameter, message) = match error.into_kind() {
        ErrorKind::ParseErrorAtKey {
            key,
            value,
            expected_type,
        } => (
            Some(key),
            format!("cannot parse {value:?} as {expected_type}"),
        ),
        ErrorKind::DeserializeError {
            key,
            value,
            message,
        } => (Some(key), format!("invalid value {value:?}: {message}")),
        ErrorKind::InvalidUtf8InPathParam { key } => (Some(key), "is not valid UTF-8".to_owned()),
        ErrorKind::ParseErrorAtIndex {
            index,
            value,
            expected_type,
        } => (
            parameter_names.get(index).cloned(),
            format!("cannot parse {value:?} as {expected_type}"),
        ),
        ErrorKind::ParseError {
            value,
            expected_type,
        } => (
            only_parameter,
            format!("cannot parse {value:?} as {expected_type}"),
        ),
        ErrorKind::Message(message) => (only_parameter, message),
        _ => (None, body_text),
    };
    match parameter {
        Some(parameter) => Problem::from_status(StatusCode::BAD_REQUEST)
            .with_detail(format!("invalid {parameter}: {message}"))
            .with_field_error(parameter, message),
        None => Problem::from_status(StatusCode::BAD_REQUEST)
            .with_detail(format!("invalid path parameters: {message}")),
    }
}

fn rejection_problem(status: StatusCode, body_text: String) -> Problem {
    if status.is_server_error() {
        return Problem::internal(body_text);
    }
    Problem::from_status(status).with_detail(body_text)
}

/// A query string, rejecting with a 400 problem that names the parameter.
///
/// Parsed like axum's `Query` (`serde_urlencoded`), with `serde_path_to_error` tracking which
/// parameter failed: `?limit=ten` on a `u32` field answers with the field `limit`, a missing
/// required parameter with its name, anything else with the field `query`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        deserialize_query(query).map(ApiQuery)
    }
}

fn deserialize_query<T: DeserializeOwned>(query: &str) -> Result<T, Problem> {
    let deserializer =
        serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    match serde_path_to_error::deserialize::<_, T>(deserializer) {
        Ok(value) => Ok(value),
        Err(error) => {
            let path = error.path().to_string();
            let message = error.into_inner().to_string();
            let field = field_name(&path, &message, QUERY_FIELD);
            Err(Problem::from_status(StatusCode::BAD_REQUEST)
                .with_detail(format!("invalid query string: {field}: {message}"))
                .with_field_error(field, message))
        }
    }
}

/// A fallback handler answering every unrouted request with a 404 problem.
///
/// Use as `router.fallback(service_kit::extract::fallback)`; [`crate::http::with_edge_layers`]
/// does it for you.
pub async fn fallback(method: Method, OriginalUri(uri): OriginalUri) -> Problem {
    Problem::from_status(StatusCode::NOT_FOUND)
        .with_detail(format!("no route for {method} {}", uri.path()))
}

/// A handler answering a known path requested with the wrong method with a 405 problem.
///
/// Use as `router.method_not_allowed_fallback(service_kit::extract::method_not_allowed)`, which
/// axum applies to the routes registered before the call; the `Allow` header is kept.
/// [`crate::http::with_edge_layers`] does it for you.
pub async fn method_not_allowed(method: Method, OriginalUri(uri): OriginalUri) -> Problem {
    Problem::from_status(StatusCode::METHOD_NOT_ALLOWED)
        .with_detail(format!("{method} is not allowed on {}", uri.path()))
}

/// Deserialises a JSON integer that may be written with a zero fraction (`5.0`), for
/// `#[serde(deserialize_with = "service_kit::extract::integer")]` on `i64` fields.
///
/// JSON Schema, and so the OpenAPI documents the services publish, counts `5.0` as an integer;
/// a client (or a fuzzer reading the document) may send it. A fraction (`5.5`), a number outside
/// `i64` or anything that is not a number is still an error naming the field.
pub fn integer<'de, D>(deserializer: D) -> Result<i64, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct Integer;

    impl serde::de::Visitor<'_> for Integer {
        type Value = i64;

        fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            formatter.write_str("an integer")
        }

        fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<i64, E> {
            Ok(value)
        }

        fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<i64, E> {
            i64::try_from(value).map_err(|_| {
                E::invalid_value(serde::de::Unexpected::Unsigned(value), &"an i64 integer")
            })
        }

        fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<i64, E> {
            // -2^63 is exactly representable; 2^63 is the first value past i64::MAX.
            const LIMIT: f64 = 9_223_372_036_854_775_808.0;
            if value.fract() != 0.0 || !value.is_finite() {
                return Err(E::invalid_type(serde::de::Unexpected::Float(value), &self));
            }
            if !(-LIMIT..LIMIT).contains(&value) {
                return Err(E::invalid_value(
                    serde::de::Unexpected::Float(value),
                    &"an i64 integer",
                ));
            }
            Ok(value as i64)
        }
    }

    deserializer.deserialize_any(Integer)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn integers_may_carry_a_zero_fraction_and_nothing_else() {
        #[derive(Debug, serde::Deserialize)]
        struct Body {
            #[serde(deserialize_with = "integer")]
            n: i64,
        }
        let check = |json: &str, expected: Result<i64, &str>| {
            let parsed = serde_json::from_str::<Body>(&format!(r#"{{"n": {json}}}"#))
                .map(|body| body.n)
                .map_err(|error| error.to_string());
            match (parsed, expected) {
                (Ok(value), Ok(wanted)) => assert_eq!(value, wanted, "{json}"),
                (Err(error), Err(wanted)) => assert!(error.contains(wanted), "{json}: {error}"),
                (parsed, expected) => panic!("{json}: got {parsed:?}, expected {expected:?}"),
            }
        };
        check("5", Ok(5));
        check("-5", Ok(-5));
        check("5.0", Ok(5));
        check("-608269028.0", Ok(-608_269_028));
        // Needs serde_json's correctly rounded float parsing (found by schemathesis).
        check("2211177398096747.0", Ok(2_211_177_398_096_747));
        check("1e3", Ok(1000));
        check("9223372036854775807", Ok(i64::MAX));
        check("-9223372036854775808", Ok(i64::MIN));
        check("-9223372036854775808.0", Ok(i64::MIN));
        check("5.5", Err("expected an integer"));
        check("9223372036854775808", Err("expected an i64 integer"));
        check("1e19", Err("expected an i64 integer"));
        check(r#""5""#, Err("expected an integer"));
        check("null", Err("expected an integer"));
    }

    #[test]
    fn json_media_types() {
        let cases = [
            ("application/json", true),
            ("application/json; charset=utf-8", true),
            ("Application/JSON", true),
            ("application/merge-patch+json", true),
            ("application/problem+json", true),
            ("text/json", false),
            ("text/plain", false),
            ("application/jsonx", false),
            ("application/x-www-form-urlencoded", false),
            ("", false),
        ];
        for (content_type, expected) in cases {
            assert_eq!(is_json_media_type(content_type), expected, "{content_type}");
        }
    }

    #[test]
    fn field_names() {
        let cases = [
            (
                ".",
                "invalid type: integer `1`, expected struct Order",
                "body",
            ),
            (".", "missing field `items`", "items"),
            ("items[0]", "missing field `quantity`", "items[0].quantity"),
            ("items[0].quantity", "invalid type", "items[0].quantity"),
            (
                "customer",
                "unknown field `nickname`, expected `email`",
                "customer.nickname",
            ),
            (
                "customer.nickname",
                "unknown field `nickname`, expected `email`",
                "customer.nickname",
            ),
        ];
        for (path, message, expected) in cases {
            assert_eq!(
                field_name(path, message, BODY_FIELD),
                expected,
                "{path} {message}"
            );
        }
    }
}
