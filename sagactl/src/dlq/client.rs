//! The HTTP calls to the services' `/dead-letters` endpoints: every service asked at once, on a
//! runtime of its own, each with a timeout; an answer that is not a success becomes a
//! [`Failure`] (an RFC 9457 problem's title and detail, with a hint for the usual causes).

use std::fmt;
use std::time::Duration;

use futures::future::join_all;
use reqwest::{Method, Url};
use serde_json::Value;
use service_kit::problem::Problem;

use super::render::truncated;
use super::{Connection, DlqError, Target, operator_token};
use crate::Lookup;

/// How long a connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The most characters of an unexpected answer quoted in an error.
const QUOTED_BODY: usize = 200;

/// Why a service gave no usable answer.
#[derive(Clone, Debug, PartialEq)]
pub enum Failure {
    /// The request could not be sent, or the answer not read.
    Unreachable(String),
    /// No answer within the timeout.
    TimedOut(u64),
    /// An RFC 9457 problem.
    Problem(Problem),
    /// An error status without a problem document.
    Status {
        /// The HTTP status.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// A success whose body is not what the endpoint answers.
    Unreadable(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Unreachable(reason) => write!(formatter, "cannot reach it: {reason}"),
            Failure::TimedOut(seconds) => write!(
                formatter,
                "timed out: no answer within {seconds}s (wait longer with --timeout)"
            ),
            Failure::Problem(problem) => {
                write!(formatter, "{} ({})", problem.title, problem.status)?;
                if let Some(detail) = &problem.detail {
                    write!(formatter, ": {detail}")?;
                }
                for error in &problem.errors {
                    // The detail often says it already.
                    if !problem
                        .detail
                        .as_deref()
                        .is_some_and(|detail| detail.contains(&error.message))
                    {
                        write!(formatter, "; {}: {}", error.field, error.message)?;
                    }
                }
                match problem.status {
                    401 => write!(
                        formatter,
                        " (is the token signed with the services' AUTH_JWT_SECRET, and unexpired?)"
                    ),
                    403 => write!(formatter, " (the token must be an operator's)"),
                    _ => Ok(()),
                }
            }
            Failure::Status { status, body } => {
                write!(formatter, "HTTP {status}")?;
                match body.is_empty() {
                    true => write!(formatter, " with an empty body")?,
                    false => write!(formatter, ": {body}")?,
                }
                match status {
                    404 | 405 => write!(
                        formatter,
                        " (it serves no /dead-letters endpoints: an older version, or another \
                         program on this port?)"
                    ),
                    _ => Ok(()),
                }
            }
            Failure::Unreadable(reason) => {
                write!(formatter, "answered something unexpected: {reason}")
            }
        }
    }
}

/// A service that gave no usable answer.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceFailure {
    /// The service and where it was asked.
    pub target: Target,
    /// What went wrong.
    pub failure: Failure,
}

impl fmt::Display for ServiceFailure {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}: {}", self.target, self.failure)
    }
}

/// One request, the same for every service asked.
#[derive(Clone, Debug)]
pub(super) struct Request {
    /// The HTTP method.
    pub(super) method: Method,
    /// Path segments after the base URL's path (each percent-encoded when sent).
    pub(super) segments: Vec<String>,
    /// The query's pairs.
    pub(super) query: Vec<(&'static str, String)>,
    /// The JSON body, if any.
    pub(super) body: Option<Value>,
}

impl Request {
    /// `GET` of the path `segments`, without a query or a body.
    pub(super) fn get(segments: &[&str]) -> Request {
        Request {
            method: Method::GET,
            segments: segments
                .iter()
                .map(|segment| (*segment).to_owned())
                .collect(),
            query: Vec::new(),
            body: None,
        }
    }

    /// The URL of the request at a service whose base URL is `base`.
    fn url(&self, base: &Url) -> Url {
        let mut url = base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(&self.segments);
        }
        if !self.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&self.query);
        }
        url
    }
}

/// Everything a command needs, checked before any request.
pub(super) struct Plan {
    /// The services to ask.
    targets: Vec<Target>,
    /// The operator's bearer token.
    token: String,
    /// How many seconds each service has to answer.
    timeout: u64,
    /// What to ask each of them.
    request: Request,
}

impl Plan {
    /// Asks `targets` for `request`, with the token and timeout `connection` and
    /// `environment` give.
    pub(super) fn new(
        targets: Vec<Target>,
        connection: &Connection,
        environment: Lookup<'_>,
        request: Request,
    ) -> Result<Plan, DlqError> {
        Ok(Plan {
            targets,
            token: operator_token(connection, environment)?,
            timeout: connection.timeout,
            request,
        })
    }
}

/// Each target with its answer, or why there is none.
pub(super) type Answers = Vec<(Target, Result<Value, Failure>)>;

/// Asks every target at once, on a runtime of its own.
pub(super) fn execute(plan: &Plan) -> Result<Answers, DlqError> {
    let client = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(Duration::from_secs(plan.timeout))
        .user_agent(concat!("sagactl/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|error| DlqError::Client(service_kit::error_chain(&error)))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| DlqError::Client(error.to_string()))?;
    let answers = runtime.block_on(join_all(
        plan.targets.iter().map(|target| ask(&client, plan, target)),
    ));
    Ok(plan.targets.iter().cloned().zip(answers).collect())
}

/// One service's answer.
async fn ask(client: &reqwest::Client, plan: &Plan, target: &Target) -> Result<Value, Failure> {
    let unreachable = |error: reqwest::Error| match error.is_timeout() {
        true => Failure::TimedOut(plan.timeout),
        // The target names the service's URL already.
        false => Failure::Unreachable(service_kit::error_chain(&error.without_url())),
    };
    let mut request = client
        .request(plan.request.method.clone(), plan.request.url(&target.url))
        .bearer_auth(&plan.token);
    if let Some(body) = &plan.request.body {
        request = request.json(body);
    }
    let response = request.send().await.map_err(unreachable)?;
    let status = response.status();
    let body = response.text().await.map_err(unreachable)?;
    if status.is_success() {
        return serde_json::from_str(&body)
            .map_err(|error| Failure::Unreadable(format!("{error}: {}", quoted(&body))));
    }
    match serde_json::from_str::<Problem>(&body) {
        Ok(problem) => Err(Failure::Problem(problem)),
        Err(_) => Err(Failure::Status {
            status: status.as_u16(),
            body: quoted(&body),
        }),
    }
}

/// The start of a body, on one line.
fn quoted(body: &str) -> String {
    truncated(body, QUOTED_BODY)
}

#[cfg(test)]
#[allow(clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_encoded_segment_by_segment_under_the_base_path() {
        let request = Request::get(&["dead-letters", "inventory-svc.OrderCreated", "a/b c?"]);
        let cases = [
            (
                "http://localhost:8081",
                "http://localhost:8081/dead-letters/inventory-svc.OrderCreated/a%2Fb%20c%3F",
            ),
            (
                "http://proxy/inventory/",
                "http://proxy/inventory/dead-letters/inventory-svc.OrderCreated/a%2Fb%20c%3F",
            ),
        ];
        for (base, expected) in cases {
            let base = match Url::parse(base) {
                Ok(base) => base,
                Err(error) => panic!("{base}: {error}"),
            };
            assert_eq!(request.url(&base).as_str(), expected);
        }
        let mut listing = Request::get(&["dead-letters"]);
        listing.query = vec![("reason", "gave up & died".into()), ("limit", "5".into())];
        let base = Url::parse("http://localhost:8081").ok();
        assert_eq!(
            base.map(|base| listing.url(&base).to_string()),
            Some("http://localhost:8081/dead-letters?reason=gave+up+%26+died&limit=5".into())
        );
    }
}
