//! A service of the system running inside the test process: on port 0, with a fresh database
//! (if it has one) and a fresh vhost, stopped when the fixture is dropped.

use std::future::Future;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use contracts::{ProducerUsers, Service};
use service_kit::auth::AuthConfig;

use crate::auth::{Identity, authorization};
use crate::{TestDatabase, TestVhost};

/// What a service's `run_with_listener` needs from the fixture.
pub struct ServiceEnv {
    /// Bound to `127.0.0.1:0`.
    pub listener: TcpListener,
    /// The fresh database's URL, as its owning (non-superuser) role (empty for services
    /// without one).
    pub database_url: String,
    /// The fresh vhost's URL, as the service's own least-privilege broker user.
    pub amqp_url: String,
    /// The broker users of the vhost (`AMQP_PRODUCER_USERS`).
    pub producers: ProducerUsers,
    /// Tokens signed with [`crate::auth::SECRET`].
    pub auth: AuthConfig,
    /// Cancelled when the fixture is dropped.
    pub shutdown: CancellationToken,
}

/// A running service and its private infrastructure.
pub struct RunningService {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The vhost's administrator URL (for tools; a [`crate::bus::TestBus`] takes the vhost).
    pub amqp_url: String,
    /// An HTTP client.
    pub http: reqwest::Client,
    shutdown: CancellationToken,
    /// The service's database, if it has one.
    pub database: Option<TestDatabase>,
    /// The service's vhost.
    pub vhost: TestVhost,
}

impl RunningService {
    /// Starts `service` with `run` (typically its `run_with_listener`) and waits until
    /// `/health/ready` answers 200.
    pub async fn start<F, Fut, E>(service: Service, with_database: bool, run: F) -> RunningService
    where
        F: FnOnce(ServiceEnv) -> Fut,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let database = match with_database {
            true => Some(TestDatabase::create().await),
            false => None,
        };
        let vhost = TestVhost::create();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let base = format!("http://{}", listener.local_addr().expect("local address"));
        let shutdown = CancellationToken::new();
        let env = ServiceEnv {
            listener,
            database_url: database
                .as_ref()
                .map(|db| db.url().to_owned())
                .unwrap_or_default(),
            amqp_url: vhost.service_url(service),
            producers: vhost.producer_users(),
            auth: crate::auth::auth_config(),
            shutdown: shutdown.clone(),
        };
        let running = run(env);
        tokio::spawn(async move {
            if let Err(error) = running.await {
                eprintln!("service under test failed: {error}");
            }
        });
        let service = RunningService {
            base,
            amqp_url: vhost.url().to_owned(),
            http: reqwest::Client::new(),
            shutdown,
            database,
            vhost,
        };
        for _ in 0..400 {
            if let Ok(response) = service
                .http
                .get(format!("{}/health/ready", service.base))
                .send()
                .await
                && response.status() == StatusCode::OK
            {
                return service;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the service did not become ready");
    }

    /// Sends a request as an operator; `body` is sent as JSON text when given.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        self.request_as(&Identity::Operator, method, path, body, headers)
            .await
    }

    /// Sends a request as `identity`; `body` is sent as JSON text when given.
    pub async fn request_as(
        &self,
        identity: &Identity,
        method: &str,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let method: Method = method.parse().expect("an HTTP method");
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(value) = authorization(identity) {
            request = request.header("authorization", value);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_owned());
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("the service answers")
    }

    /// `GET path` as JSON, with its status, as an operator.
    pub async fn get_json(&self, path: &str) -> (StatusCode, Value) {
        let response = self.request("GET", path, None, &[]).await;
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Polls `GET path` until `accept` holds for its JSON; panics after `timeout`.
    pub async fn wait_for_json(
        &self,
        path: &str,
        timeout: Duration,
        accept: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let (_, body) = self.get_json(path).await;
            if accept(&body) {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting on {path}; last: {body}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for RunningService {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
