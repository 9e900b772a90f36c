//! The console's calls to the four services' REST APIs, each made with the signed-in
//! operator's own token.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;

use crate::config::ServiceUrls;
use crate::error::ConsoleError;
use crate::session::Session;

/// How long a page waits for a service.
const TIMEOUT: Duration = Duration::from_secs(10);

/// One of the four services (the system's own list of them).
pub(crate) use contracts::Service;

/// The services' APIs.
#[derive(Clone, Debug)]
pub(crate) struct Backend {
    http: reqwest::Client,
    urls: ServiceUrls,
}

impl Backend {
    /// Calls the services at `urls`.
    pub(crate) fn new(urls: ServiceUrls) -> Backend {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .unwrap_or_default();
        Backend { http, urls }
    }

    fn base(&self, service: Service) -> &str {
        match service {
            Service::Order => &self.urls.order,
            Service::Inventory => &self.urls.inventory,
            Service::Payment => &self.urls.payment,
            Service::Notify => &self.urls.notify,
        }
    }

    /// `GET path` (with its query) as JSON.
    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        session: &Session,
        service: Service,
        path: &str,
    ) -> Result<T, ConsoleError> {
        self.call(session, service, Method::GET, path, None).await
    }

    /// `GET path`, `None` when the service answers 404.
    pub(crate) async fn get_optional<T: DeserializeOwned>(
        &self,
        session: &Session,
        service: Service,
        path: &str,
    ) -> Result<Option<T>, ConsoleError> {
        match self.get(session, service, path).await {
            Ok(found) => Ok(Some(found)),
            Err(ConsoleError::Service {
                status: StatusCode::NOT_FOUND,
                ..
            }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// A call that changes something (`POST`, `DELETE`), with a JSON body when given; its
    /// answer as JSON.
    pub(crate) async fn change(
        &self,
        session: &Session,
        service: Service,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value, ConsoleError> {
        self.call(session, service, method, path, body).await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        session: &Session,
        service: Service,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<T, ConsoleError> {
        let unreachable = |cause: reqwest::Error| ConsoleError::Unreachable {
            service: service.name(),
            cause: cause.to_string(),
        };
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base(service)))
            .bearer_auth(session.token());
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED {
            return Err(ConsoleError::SignedOut);
        }
        if !status.is_success() {
            let problem: serde_json::Value = response.json().await.unwrap_or_default();
            let detail = problem["detail"]
                .as_str()
                .or(problem["title"].as_str())
                .unwrap_or("no detail")
                .to_owned();
            return Err(ConsoleError::Service {
                service: service.name(),
                status,
                detail,
            });
        }
        response.json().await.map_err(unreachable)
    }
}
